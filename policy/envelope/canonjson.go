package envelope

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"slices"
	"unicode/utf16"
	"unicode/utf8"

	"tollgate.dev/tollgate/policy/internal/jsonlimit"
)

// canonicalJSON re-encodes a JSON document the way securesystemslib's encode_canonical
// does (and go-securesystemslib's cjson): object members sorted by key, no whitespace,
// strings with only '\' and '"' escaped and every other character written raw as UTF-8,
// integers only. Duplicate member names keep the last value, as both encoding/json and
// Python's json do.
//
// Links can list 100,000 artifacts, so this is a single pass over the bytes: a tokenizer
// checks the document (JSON grammar, UTF-8, jsonlimit's size and depth bounds) while it
// writes the canonical form, and reorders an object's members only when they are not
// already sorted (Python and Go both write them sorted). It accepts and rejects exactly
// what validating, decoding and re-encoding would (the tests fuzz it against both): in
// particular a float is an error only where it survives, since a member overridden by a
// later duplicate is dropped unexamined.
func canonicalJSON(raw []byte) ([]byte, error) {
	if len(raw) > jsonlimit.MaxBytes {
		return nil, fmt.Errorf("document is %d bytes, over the limit of %d", len(raw), jsonlimit.MaxBytes)
	}
	// Canonical output is never longer than its input. The member stack holds the members
	// of the objects being written, a link's artifacts at most: about one per 100 bytes.
	c := canonWriter{in: raw, out: make([]byte, 0, len(raw)), members: make([]canonMember, 0, len(raw)/64+16)}
	c.ws()
	noCanon, err := c.value(0)
	if err == nil {
		if c.ws(); c.i != len(c.in) {
			err = errInvalidJSON
		}
	}
	switch {
	case err != nil:
		return nil, err
	case noCanon != nil:
		return nil, noCanon
	}
	return c.out, nil
}

var (
	errInvalidJSON = errors.New("invalid JSON")
	errNotUTF8     = errors.New("JSON is not valid UTF-8")
	errTooDeep     = fmt.Errorf("document nests deeper than %d levels", jsonlimit.MaxDepth)
)

// canonPlain marks the bytes a string can hold that need neither escaping nor decoding.
var canonPlain = func() (t [256]bool) {
	for b := 0x20; b < 0x80; b++ {
		t[b] = b != '"' && b != '\\'
	}
	return t
}()

type canonWriter struct {
	in      []byte
	i       int
	out     []byte
	members []canonMember // a stack shared by nested objects
	keys    []byte        // decoded names that had escapes
	noCanon []error       // see canonMember.noCanon
	scratch []byte        // reused when an object's members must be reordered
}

// canonMember is one member of the object being written. It holds no pointers (offsets
// only; documents are at most jsonlimit.MaxBytes), so a large stack costs the GC nothing.
type canonMember struct {
	keyOff, keyLen int32 // decoded name: in c.in, or in c.keys if escaped
	escaped        bool
	order          int32 // position among the object's members in the input
	start, end     int32 // its canonical `"name":value` in out
	noCanon        int32 // 1 + index in c.noCanon of why the value has no canonical form; 0 if it has one
}

func (c *canonWriter) key(m *canonMember) []byte {
	if m.escaped {
		return c.keys[m.keyOff : m.keyOff+m.keyLen]
	}
	return c.in[m.keyOff : m.keyOff+m.keyLen]
}

func (c *canonWriter) ws() {
	for c.i < len(c.in) {
		switch c.in[c.i] {
		case ' ', '\t', '\n', '\r':
			c.i++
		default:
			return
		}
	}
}

// value writes the canonical form of the value at c.i, whose nesting depth is depth. err
// means the document is not valid JSON within bounds, and stops everything; noCanon means
// the value is valid but has no canonical form (a float), which matters only if the value
// is not dropped as an overridden duplicate.
func (c *canonWriter) value(depth int) (noCanon, err error) {
	if c.i >= len(c.in) {
		return nil, errInvalidJSON
	}
	switch b := c.in[c.i]; {
	case b == '{':
		return c.object(depth + 1)
	case b == '[':
		return c.array(depth + 1)
	case b == '"':
		_, _, _, err := c.str(false)
		return nil, err
	case b == 't':
		return nil, c.literal("true")
	case b == 'f':
		return nil, c.literal("false")
	case b == 'n':
		return nil, c.literal("null")
	case b == '-' || '0' <= b && b <= '9':
		return c.number()
	}
	return nil, errInvalidJSON
}

func (c *canonWriter) literal(s string) error {
	if len(c.in)-c.i < len(s) || string(c.in[c.i:c.i+len(s)]) != s {
		return errInvalidJSON
	}
	c.i += len(s)
	c.out = append(c.out, s...)
	return nil
}

func (c *canonWriter) digits() int {
	start := c.i
	for c.i < len(c.in) && '0' <= c.in[c.i] && c.in[c.i] <= '9' {
		c.i++
	}
	return c.i - start
}

// number writes an integer as Python's str(int(...)) would; anything Python reads as a
// float has no canonical form (securesystemslib cannot canonicalize floats either).
func (c *canonWriter) number() (noCanon, err error) {
	start := c.i
	if c.in[c.i] == '-' {
		c.i++
	}
	switch {
	case c.i < len(c.in) && c.in[c.i] == '0':
		c.i++
	case c.digits() == 0:
		return nil, errInvalidJSON
	}
	integer := c.i
	if c.i < len(c.in) && c.in[c.i] == '.' {
		c.i++
		if c.digits() == 0 {
			return nil, errInvalidJSON
		}
	}
	if c.i < len(c.in) && (c.in[c.i] == 'e' || c.in[c.i] == 'E') {
		c.i++
		if c.i < len(c.in) && (c.in[c.i] == '+' || c.in[c.i] == '-') {
			c.i++
		}
		if c.digits() == 0 {
			return nil, errInvalidJSON
		}
	}
	n := c.in[start:c.i]
	if c.i != integer {
		return fmt.Errorf("number %.40q is not an integer; canonical JSON allows integers only", n), nil
	}
	if string(n) == "-0" {
		n = n[1:] // Python reads -0 as the integer 0
	}
	c.out = append(c.out, n...)
	return nil, nil
}

// str writes the canonical form of the string at c.i. With decoded set it also returns
// where the decoded string is: in the input when it has no escapes, else in c.keys.
func (c *canonWriter) str(decoded bool) (off, n int32, escaped bool, err error) {
	c.i++ // '"'
	start := c.i
	for {
		for c.i < len(c.in) && canonPlain[c.in[c.i]] {
			c.i++
		}
		if c.i >= len(c.in) {
			return 0, 0, false, errInvalidJSON
		}
		switch b := c.in[c.i]; {
		case b == '"':
			s := c.in[start:c.i]
			c.i++
			c.out = append(c.out, '"')
			c.out = append(c.out, s...)
			c.out = append(c.out, '"')
			return int32(start), int32(len(s)), false, nil
		case b == '\\':
			from := len(c.keys)
			err := c.escapedStr(start, decoded)
			return int32(from), int32(len(c.keys) - from), true, err
		case b < 0x20:
			return 0, 0, false, errInvalidJSON
		default:
			if err := c.utf8Rune(); err != nil {
				return 0, 0, false, err
			}
		}
	}
}

// utf8Rune moves past one multi-byte UTF-8 sequence at c.i.
func (c *canonWriter) utf8Rune() error {
	r, size := utf8.DecodeRune(c.in[c.i:])
	if r == utf8.RuneError && size == 1 {
		return errNotUTF8
	}
	c.i += size
	return nil
}

// escapedStr finishes a string from its first escape, decoding escapes as encoding/json
// does (so a lone surrogate becomes U+FFFD) and writing '"' and '\' escaped. With decoded
// set, the decoded string is appended to c.keys.
func (c *canonWriter) escapedStr(start int, decoded bool) error {
	if decoded {
		c.keys = append(c.keys, c.in[start:c.i]...)
	}
	c.out = append(c.out, '"')
	c.out = append(c.out, c.in[start:c.i]...)
	for {
		if c.i >= len(c.in) {
			return errInvalidJSON
		}
		switch b := c.in[c.i]; {
		case b == '"':
			c.i++
			c.out = append(c.out, '"')
			return nil
		case b == '\\':
			r, n := unescape(c.in[c.i:])
			if n == 0 {
				return errInvalidJSON
			}
			c.i += n
			if r == '"' || r == '\\' {
				c.out = append(c.out, '\\', byte(r))
			} else {
				c.out = utf8.AppendRune(c.out, r)
			}
			if decoded {
				c.keys = utf8.AppendRune(c.keys, r)
			}
		case b < 0x20:
			return errInvalidJSON
		default:
			from := c.i
			if b < utf8.RuneSelf {
				c.i++
			} else if err := c.utf8Rune(); err != nil {
				return err
			}
			c.out = append(c.out, c.in[from:c.i]...)
			if decoded {
				c.keys = append(c.keys, c.in[from:c.i]...)
			}
		}
	}
}

// unescape decodes the escape sequence at the start of s and returns the rune and the
// bytes it took, 0 if it is not a valid JSON escape.
func unescape(s []byte) (rune, int) {
	if len(s) < 2 {
		return 0, 0
	}
	switch s[1] {
	case '"', '\\', '/':
		return rune(s[1]), 2
	case 'b':
		return '\b', 2
	case 'f':
		return '\f', 2
	case 'n':
		return '\n', 2
	case 'r':
		return '\r', 2
	case 't':
		return '\t', 2
	case 'u':
		r := hex4(s[2:])
		if r < 0 {
			return 0, 0
		}
		if !utf16.IsSurrogate(r) {
			return r, 6
		}
		if len(s) >= 12 && s[6] == '\\' && s[7] == 'u' {
			if r2 := hex4(s[8:]); r2 >= 0 {
				if d := utf16.DecodeRune(r, r2); d != utf8.RuneError {
					return d, 12
				}
			}
		}
		return utf8.RuneError, 6
	}
	return 0, 0
}

func hex4(s []byte) rune {
	if len(s) < 4 {
		return -1
	}
	var r rune
	for _, b := range s[:4] {
		switch {
		case '0' <= b && b <= '9':
			b -= '0'
		case 'a' <= b && b <= 'f':
			b -= 'a' - 10
		case 'A' <= b && b <= 'F':
			b -= 'A' - 10
		default:
			return -1
		}
		r = r<<4 | rune(b)
	}
	return r
}

func (c *canonWriter) array(depth int) (noCanon, err error) {
	if depth > jsonlimit.MaxDepth {
		return nil, errTooDeep
	}
	c.i++
	c.out = append(c.out, '[')
	if c.ws(); c.i < len(c.in) && c.in[c.i] == ']' {
		c.i++
		c.out = append(c.out, ']')
		return nil, nil
	}
	for {
		c.ws()
		nc, err := c.value(depth)
		if err != nil {
			return nil, err
		}
		if noCanon == nil {
			noCanon = nc
		}
		if c.ws(); c.i >= len(c.in) {
			return nil, errInvalidJSON
		}
		switch c.in[c.i] {
		case ',':
			c.i++
			c.out = append(c.out, ',')
			continue
		case ']':
			c.i++
			c.out = append(c.out, ']')
			return noCanon, nil
		}
		return nil, errInvalidJSON
	}
}

func (c *canonWriter) object(depth int) (noCanon, err error) {
	if depth > jsonlimit.MaxDepth {
		return nil, errTooDeep
	}
	c.i++
	open := len(c.out)
	c.out = append(c.out, '{')
	if c.ws(); c.i < len(c.in) && c.in[c.i] == '}' {
		c.i++
		c.out = append(c.out, '}')
		return nil, nil
	}
	base := len(c.members)
	sorted := true
	for {
		if c.ws(); c.i >= len(c.in) || c.in[c.i] != '"' {
			return nil, errInvalidJSON
		}
		if len(c.members) > base {
			c.out = append(c.out, ',')
		}
		m, err := c.member(len(c.members)-base, depth)
		if err != nil {
			return nil, err
		}
		if n := len(c.members); n > base && bytes.Compare(c.key(&c.members[n-1]), c.key(&m)) >= 0 {
			sorted = false
		}
		c.members = append(c.members, m)
		if c.ws(); c.i >= len(c.in) {
			return nil, errInvalidJSON
		}
		if c.in[c.i] == ',' {
			c.i++
			continue
		}
		if c.in[c.i] != '}' {
			return nil, errInvalidJSON
		}
		c.i++
		break
	}
	ms := c.members[base:]
	if !sorted {
		ms = c.reorder(open+1, ms)
	}
	c.out = append(c.out, '}')
	for _, m := range ms {
		if m.noCanon != 0 {
			noCanon = c.noCanon[m.noCanon-1]
			break
		}
	}
	c.members = c.members[:base]
	return noCanon, nil
}

// member writes the object member at c.i, the order-th of its object.
func (c *canonWriter) member(order, depth int) (canonMember, error) {
	m := canonMember{order: int32(order), start: int32(len(c.out))}
	var err error
	if m.keyOff, m.keyLen, m.escaped, err = c.str(true); err != nil {
		return m, err
	}
	if c.ws(); c.i >= len(c.in) || c.in[c.i] != ':' {
		return m, errInvalidJSON
	}
	c.i++
	c.out = append(c.out, ':')
	c.ws()
	nc, err := c.value(depth) // nested objects use the member stack above this object's
	if err != nil {
		return m, err
	}
	m.end = int32(len(c.out))
	if nc != nil {
		c.noCanon = append(c.noCanon, nc)
		m.noCanon = int32(len(c.noCanon))
	}
	return m, nil
}

// reorder rewrites the members written from out[from:] sorted by name, keeping the last
// of duplicates, and returns the members kept. Byte order of UTF-8 is code point order,
// which is how Python sorts str keys; ties are broken by input order, so the last
// duplicate comes last.
func (c *canonWriter) reorder(from int, ms []canonMember) []canonMember {
	c.scratch = append(c.scratch[:0], c.out[from:]...)
	c.out = c.out[:from]
	slices.SortFunc(ms, func(a, b canonMember) int {
		if n := bytes.Compare(c.key(&a), c.key(&b)); n != 0 {
			return n
		}
		return cmp.Compare(a.order, b.order)
	})
	kept := ms[:0]
	for j, m := range ms {
		if j+1 < len(ms) && bytes.Equal(c.key(&ms[j+1]), c.key(&m)) {
			continue
		}
		if len(kept) > 0 {
			c.out = append(c.out, ',')
		}
		c.out = append(c.out, c.scratch[int(m.start)-from:int(m.end)-from]...)
		kept = append(kept, m)
	}
	return kept
}

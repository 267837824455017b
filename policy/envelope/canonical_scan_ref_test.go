package envelope

import (
	"bytes"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"unicode/utf8"

	"tollgate.dev/tollgate/policy/internal/jsonlimit"
)

// The byte-level scanner canonicalJSON used before the single-pass canonicalizer: validate
// (jsonlimit.Check, json.Valid, utf8.Valid), then canonicalize by spans. It is kept as the
// reference the new implementation is fuzzed against (FuzzCanonicalStreamingVsScanner).

// canonicalScanReference re-encodes a JSON document the way securesystemslib's encode_canonical
// does (and go-securesystemslib's cjson): object members sorted by key, no whitespace,
// strings with only '\' and '"' escaped and every other character written raw as UTF-8,
// integers only. Duplicate member names keep the last value, as both encoding/json and
// Python's json do.
//
// It works on the bytes directly instead of decoding into maps: links can list 100,000
// artifacts, and a generic decode costs several times more than the signature check.
// The document is validated first, so the scanner below only ever sees valid JSON.
func canonicalScanReference(raw []byte) ([]byte, error) {
	// The depth bound also keeps the span scanning below linear in practice.
	if err := jsonlimit.Check(raw, jsonlimit.MaxBytes); err != nil {
		return nil, err
	}
	if !json.Valid(raw) {
		return nil, errors.New("invalid JSON")
	}
	if !utf8.Valid(raw) {
		return nil, errors.New("JSON is not valid UTF-8")
	}
	c := canonicalizer{in: raw, out: bytes.NewBuffer(make([]byte, 0, len(raw)))}
	if err := c.value(skipSpace(raw, 0)); err != nil {
		return nil, err
	}
	return c.out.Bytes(), nil
}

type canonicalizer struct {
	in  []byte
	out *bytes.Buffer
}

// member is one object member: its decoded name and the span of its value.
type member struct {
	key        string
	start, end int
}

// value writes the canonical form of the value starting at i and returns nothing but an
// error; spans come from skipValue.
func (c *canonicalizer) value(i int) error {
	switch b := c.in[i]; {
	case b == '{':
		return c.object(i)
	case b == '[':
		c.out.WriteByte('[')
		i = skipSpace(c.in, i+1)
		for first := true; c.in[i] != ']'; first = false {
			if !first {
				c.out.WriteByte(',')
			}
			if err := c.value(i); err != nil {
				return err
			}
			i = skipSpace(c.in, skipValue(c.in, i))
			if c.in[i] == ',' {
				i = skipSpace(c.in, i+1)
			}
		}
		c.out.WriteByte(']')
	case b == '"':
		s, _, err := readString(c.in, i)
		if err != nil {
			return err
		}
		writeCanonicalString(c.out, s)
	case b == 't' || b == 'f' || b == 'n':
		c.out.Write(c.in[i:skipValue(c.in, i)])
	default:
		n, err := canonicalInt(string(c.in[i:skipValue(c.in, i)]))
		if err != nil {
			return err
		}
		c.out.WriteString(n)
	}
	return nil
}

func (c *canonicalizer) object(i int) error {
	var members []member
	i = skipSpace(c.in, i+1)
	for c.in[i] != '}' {
		key, next, err := readString(c.in, i)
		if err != nil {
			return err
		}
		start := skipSpace(c.in, skipSpace(c.in, next)+1) // past ':'
		end := skipValue(c.in, start)
		members = append(members, member{key, start, end})
		i = skipSpace(c.in, end)
		if c.in[i] == ',' {
			i = skipSpace(c.in, i+1)
		}
	}
	// Byte order of UTF-8 is code point order, which is how Python sorts str keys. The
	// sort is stable, so among duplicates the last one written comes last and wins.
	slices.SortStableFunc(members, func(a, b member) int { return strings.Compare(a.key, b.key) })
	c.out.WriteByte('{')
	first := true
	for j, m := range members {
		if j+1 < len(members) && members[j+1].key == m.key {
			continue
		}
		if !first {
			c.out.WriteByte(',')
		}
		first = false
		writeCanonicalString(c.out, m.key)
		c.out.WriteByte(':')
		if err := c.value(m.start); err != nil {
			return err
		}
	}
	c.out.WriteByte('}')
	return nil
}

// readString decodes the JSON string starting at i and returns it and the index after
// its closing quote. Strings without escapes are taken as they are; the others are
// decoded by encoding/json, so escapes (surrogate pairs included) mean here exactly what
// they mean to every package that later decodes the payload.
func readString(in []byte, i int) (string, int, error) {
	j := i + 1
	escaped := false
	for ; in[j] != '"'; j++ {
		if in[j] == '\\' {
			escaped = true
			j++
		}
	}
	if !escaped {
		return string(in[i+1 : j]), j + 1, nil
	}
	var s string
	if err := json.Unmarshal(in[i:j+1], &s); err != nil {
		return "", 0, err
	}
	return s, j + 1, nil
}

// skipValue returns the index just past the (valid) JSON value starting at i.
func skipValue(in []byte, i int) int {
	switch in[i] {
	case '"':
		for j := i + 1; ; j++ {
			switch in[j] {
			case '\\':
				j++
			case '"':
				return j + 1
			}
		}
	case '{', '[':
		depth := 0
		for j := i; ; j++ {
			switch in[j] {
			case '"':
				j = skipValue(in, j) - 1
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return j + 1
				}
			}
		}
	}
	j := i
	for j < len(in) && !isDelimiter(in[j]) {
		j++
	}
	return j
}

func isDelimiter(b byte) bool {
	switch b {
	case ',', '}', ']', ' ', '\t', '\n', '\r':
		return true
	}
	return false
}

func skipSpace(in []byte, i int) int {
	for i < len(in) && (in[i] == ' ' || in[i] == '\t' || in[i] == '\n' || in[i] == '\r') {
		i++
	}
	return i
}

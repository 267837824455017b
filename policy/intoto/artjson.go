package intoto

import (
	"encoding/json"
	"errors"
	"fmt"
	"unicode/utf8"
)

// Links of real builds record tens of thousands of artifacts, and reflection-based JSON
// decoding of map[string]map[string]string costs most of a verification. artifactField
// decodes a link's materials or products ({"path": {"alg": "hex", ...}, ...}) straight into
// the rule engine's index with one pass and few allocations. encoding/json has already
// checked the syntax of the bytes it hands to UnmarshalJSON; this parser still checks every
// bound, so no input can make it panic.

// artifactField is materials or products as decoded from a link.
type artifactField struct {
	set  *artifactSet
	null bool
}

func (f *artifactField) UnmarshalJSON(b []byte) error {
	p := artParser{b: b}
	if err := f.parse(&p); err != nil {
		return err
	}
	if p.ws(); p.i != len(p.b) {
		return errArtifacts
	}
	return nil
}

// parse reads the field's value at the parser's position.
func (f *artifactField) parse(p *artParser) error {
	p.ws()
	if p.lit("null") {
		f.null, f.set = true, emptySet()
		return nil
	}
	set, err := p.artifacts()
	if err != nil {
		return err
	}
	f.set = set
	return nil
}

func emptySet() *artifactSet { return &artifactSet{index: map[string]int32{}} }

type artParser struct {
	b []byte
	i int
}

var errArtifacts = errors.New("artifacts must be an object of {\"<path>\": {\"<algorithm>\": \"<hex digest>\"}}")

func (p *artParser) ws() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

func (p *artParser) lit(s string) bool {
	if len(p.b)-p.i >= len(s) && string(p.b[p.i:p.i+len(s)]) == s {
		p.i += len(s)
		return true
	}
	return false
}

func (p *artParser) byte(c byte) bool {
	p.ws()
	if p.i < len(p.b) && p.b[p.i] == c {
		p.i++
		return true
	}
	return false
}

func (p *artParser) artifacts() (*artifactSet, error) {
	set := emptySet()
	if !p.byte('{') {
		return nil, errArtifacts
	}
	if p.byte('}') {
		return set, nil
	}
	for {
		path, err := p.str(false)
		if err != nil {
			return nil, err
		}
		if !p.byte(':') {
			return nil, errArtifacts
		}
		d, err := p.digest()
		if err != nil {
			return nil, fmt.Errorf("artifact %q: %w", path, err)
		}
		if i, dup := set.index[path]; dup { // JSON's last value wins, in Go and in Python
			set.hashes[i] = d
		} else {
			if len(set.paths) >= MaxArtifacts {
				return nil, fmt.Errorf("more than %d artifacts", MaxArtifacts)
			}
			set.index[path] = int32(len(set.paths))
			set.paths = append(set.paths, path)
			set.hashes = append(set.hashes, d)
		}
		if p.byte('}') {
			return set, nil
		}
		if !p.byte(',') {
			return nil, errArtifacts
		}
	}
}

func (p *artParser) digest() (digest, error) {
	var d digest
	if !p.byte('{') {
		return d, errors.New("hash object must be an object of {\"<algorithm>\": \"<hex digest>\"}")
	}
	if p.byte('}') {
		return digest{h: HashObj{}}, nil
	}
	n := 0
	for {
		alg, err := p.str(true)
		if err != nil {
			return d, err
		}
		if !p.byte(':') {
			return d, errArtifacts
		}
		hex, err := p.str(false)
		if err != nil {
			return d, err
		}
		if !isHex(hex) {
			return d, fmt.Errorf("%s digest is not hex", alg)
		}
		if n == 0 {
			d = digest{one: true, alg: alg, hex: hex}
		} else {
			if d.h == nil {
				d.h = HashObj{d.alg: d.hex}
			}
			d.h[alg] = hex
		}
		n++
		if p.byte('}') {
			if d.h != nil { // several entries, possibly one algorithm repeated
				d = digestOf(d.h)
			}
			return d, nil
		}
		if !p.byte(',') {
			return d, errArtifacts
		}
	}
}

// str reads a JSON string. Strings without escapes (nearly all paths and digests) are
// sliced; the rest go through encoding/json so escapes and invalid UTF-8 decode exactly
// as everywhere else.
func (p *artParser) str(intern bool) (string, error) {
	if !p.byte('"') {
		return "", errArtifacts
	}
	start := p.i
	plain := true
	for p.i < len(p.b) {
		c := p.b[p.i]
		switch {
		case c == '"':
			raw := p.b[start:p.i]
			p.i++
			if plain && utf8.Valid(raw) {
				if intern {
					switch string(raw) {
					case "sha256":
						return "sha256", nil
					case "sha512":
						return "sha512", nil
					}
				}
				return string(raw), nil
			}
			var s string
			if err := json.Unmarshal(p.b[start-1:p.i], &s); err != nil {
				return "", err
			}
			return s, nil
		case c == '\\':
			plain = false
			p.i += 2
			continue
		case c < 0x20:
			return "", errors.New("control character in string")
		}
		p.i++
	}
	return "", errArtifacts
}

// digest is a hash object, with the common single-algorithm case unpacked so that
// comparing two artifacts is two string comparisons.
type digest struct {
	one      bool
	alg, hex string
	h        HashObj // set when there is not exactly one algorithm
}

func digestOf(h HashObj) digest {
	if len(h) == 1 {
		for alg, hex := range h {
			return digest{one: true, alg: alg, hex: hex}
		}
	}
	c := make(HashObj, len(h))
	for k, v := range h {
		c[k] = v
	}
	return digest{h: c}
}

func (d digest) hashObj() HashObj {
	if d.one {
		return HashObj{d.alg: d.hex}
	}
	c := make(HashObj, len(d.h))
	for k, v := range d.h {
		c[k] = v
	}
	return c
}

// equal compares as Python compares the two dicts.
func (d digest) equal(o digest) bool {
	if d.one && o.one {
		return d.alg == o.alg && d.hex == o.hex
	}
	return sameHash(d.hashObj(), o.hashObj())
}

package intoto

import (
	"encoding/json"
	"errors"
	"fmt"
)

// decodeLinkDoc decodes a link (or a Statement, or tells a layout apart) in one pass over
// the payload. encoding/json would scan a 10 MiB link three times (validate, skip, decode)
// before the artifact parser sees it; here the top-level object is walked once, the
// artifact maps are parsed in place, and every other member is decoded (and so validated)
// by encoding/json on its own bytes. Member names match exactly, as in Python, not
// case-insensitively as encoding/json would.
func decodeLinkDoc(data []byte, doc *linkDoc) error {
	p := artParser{b: data}
	if !p.byte('{') {
		return errors.New("link is not a JSON object")
	}
	if !p.byte('}') {
		for {
			if err := p.member(doc); err != nil {
				return err
			}
			if p.byte('}') {
				break
			}
			if !p.byte(',') {
				return fmt.Errorf("invalid JSON at byte %d", p.i)
			}
		}
	}
	if p.ws(); p.i != len(p.b) {
		return errors.New("trailing data after the JSON document")
	}
	return nil
}

func (p *artParser) member(doc *linkDoc) error {
	key, err := p.str(false)
	if err != nil {
		return err
	}
	if !p.byte(':') {
		return fmt.Errorf("invalid JSON at byte %d", p.i)
	}
	switch key {
	case "materials":
		return wrapField(key, doc.Materials.parse(p))
	case "products":
		return wrapField(key, doc.Products.parse(p))
	}
	p.ws()
	start := p.i
	if err := p.skipValue(0); err != nil {
		return err
	}
	raw := p.b[start:p.i]
	var target any
	switch key {
	case "_type":
		target = &doc.Type
	case "name":
		target = &doc.Name
	case "command":
		target = &doc.Command
	case "predicateType":
		target = &doc.PredicateType
	case "subject":
		target = &doc.Subject
	case "byproducts":
		doc.Byproducts = json.RawMessage(raw)
	case "environment":
		doc.Environment = json.RawMessage(raw)
	case "predicate":
		doc.Predicate = json.RawMessage(raw)
	}
	if target != nil {
		return wrapField(key, json.Unmarshal(raw, target))
	}
	// Kept raw or unknown (ignored, as Python ignores them): valid JSON all the same.
	if !json.Valid(raw) {
		return fmt.Errorf("member %q is not valid JSON", key)
	}
	return nil
}

func wrapField(key string, err error) error {
	if err != nil {
		return fmt.Errorf("%s: %w", key, err)
	}
	return nil
}

// skipValue moves past one JSON value without validating scalars (the caller decodes or
// validates the bytes it skipped). jsonlimit.Check has bounded the nesting already.
func (p *artParser) skipValue(depth int) error {
	if depth > 128 {
		return errors.New("JSON nests too deeply")
	}
	p.ws()
	if p.i >= len(p.b) {
		return errors.New("unexpected end of JSON")
	}
	switch c := p.b[p.i]; c {
	case '"':
		_, err := p.str(false)
		return err
	case '{', '[':
		closer := byte('}')
		if c == '[' {
			closer = ']'
		}
		p.i++
		if p.byte(closer) {
			return nil
		}
		for {
			if c == '{' {
				if _, err := p.str(false); err != nil {
					return err
				}
				if !p.byte(':') {
					return fmt.Errorf("invalid JSON at byte %d", p.i)
				}
			}
			if err := p.skipValue(depth + 1); err != nil {
				return err
			}
			if p.byte(closer) {
				return nil
			}
			if !p.byte(',') {
				return fmt.Errorf("invalid JSON at byte %d", p.i)
			}
		}
	}
	for p.i < len(p.b) { // number, true, false, null
		switch p.b[p.i] {
		case ',', '}', ']', ' ', '\t', '\n', '\r':
			return nil
		}
		p.i++
	}
	return nil
}

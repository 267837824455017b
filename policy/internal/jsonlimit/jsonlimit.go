// Package jsonlimit decodes JSON from untrusted sources with hard bounds on size and
// nesting depth, so that hostile evidence cannot exhaust memory or the stack.
package jsonlimit

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

const (
	// MaxBytes bounds one JSON document (a layout, link, envelope or statement).
	MaxBytes = 16 << 20
	// MaxDepth bounds nesting; real in-toto metadata stays below 12.
	MaxDepth = 64
)

// Check verifies that data is at most max bytes and nests at most MaxDepth levels. It scans
// bytes only, so it is cheap enough to run before every decode.
func Check(data []byte, max int) error {
	if len(data) > max {
		return fmt.Errorf("document is %d bytes, over the limit of %d", len(data), max)
	}
	depth, inString, escaped := 0, false, false
	for _, c := range data {
		switch {
		case escaped:
			escaped = false
		case inString:
			if c == '\\' {
				escaped = true
			} else if c == '"' {
				inString = false
			}
		case c == '"':
			inString = true
		case c == '{' || c == '[':
			depth++
			if depth > MaxDepth {
				return fmt.Errorf("document nests deeper than %d levels", MaxDepth)
			}
		case c == '}' || c == ']':
			depth--
		}
	}
	return nil
}

// Unmarshal checks data against the bounds, then decodes it into v in place: unlike
// Decode it makes no copy of data (a json.Decoder buffers the whole document again, in
// doubling steps), which matters for untrusted documents of megabytes. Numbers decode as
// float64 into an interface, so use it for targets whose numbers have Go types.
func Unmarshal(data []byte, max int, v any) error {
	if err := Check(data, max); err != nil {
		return err
	}
	err := json.Unmarshal(data, v)
	if se := (*json.SyntaxError)(nil); errors.As(err, &se) && strings.Contains(se.Error(), "after top-level value") {
		return fmt.Errorf("trailing data after the JSON document")
	}
	return err
}

// Decode checks data against the bounds, then decodes it into v. Numbers decode as
// json.Number when v is an interface, so canonical re-encoding sees them exactly.
func Decode(data []byte, max int, v any) error {
	if err := Check(data, max); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return fmt.Errorf("trailing data after the JSON document")
	}
	return nil
}

// Unique reports an error when an object of data (at any depth) names one member twice.
// encoding/json keeps the last of them and other parsers the first, so a document with a
// duplicated member can be read one way when its signature is checked and another way when
// it is used. data must already have passed Check, and be valid JSON (decoded without
// error); it is scanned in place, names compared as encoding/json reads them, with no copy
// of the document (a json.Decoder would buffer all of it again).
func Unique(data []byte) error {
	var stack []map[string]struct{} // one per open object or array (nil)
	name := false                   // the next string is a member name
	for i := 0; i < len(data); i++ {
		switch data[i] {
		case '{':
			stack = append(stack, map[string]struct{}{})
			name = true
		case '[':
			stack = append(stack, nil)
			name = false
		case '}', ']':
			if len(stack) > 0 {
				stack = stack[:len(stack)-1]
			}
			name = false
		case ',':
			name = len(stack) > 0 && stack[len(stack)-1] != nil
		case '"':
			end := stringEnd(data, i)
			if name && len(stack) > 0 && stack[len(stack)-1] != nil {
				n, err := unquote(data[i:end])
				if err != nil {
					return err
				}
				names := stack[len(stack)-1]
				if _, dup := names[n]; dup {
					return fmt.Errorf("member %q appears twice in one object", clip(n))
				}
				names[n] = struct{}{}
				name = false
			}
			i = end - 1
		}
	}
	return nil
}

func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}

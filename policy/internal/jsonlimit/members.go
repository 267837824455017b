package jsonlimit

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"unicode/utf8"
)

// Member is one member of a JSON object: its name, unescaped, and its value as raw JSON,
// which shares the document's memory.
type Member struct {
	Name  string
	Value []byte
}

// Members splits the JSON object data into its members without copying their values, so
// that a document of megabytes (a DSSE envelope's payload, a Metablock's "signed") can be
// looked at member by member for the price of reading it. A name given twice is an error:
// decoders disagree on which one counts. data must already have passed Check.
func Members(data []byte) ([]Member, error) {
	// Validation first, with the decoder's own error (it allocates no copy of data).
	if err := json.Unmarshal(data, &struct{}{}); err != nil {
		return nil, err
	}
	i := skipSpace(data, 0)
	if i >= len(data) || data[i] != '{' {
		return nil, errors.New("not a JSON object")
	}
	var out []Member
	seen := map[string]bool{}
	i = skipSpace(data, i+1)
	for i < len(data) && data[i] != '}' {
		end := stringEnd(data, i)
		name, err := unquote(data[i:end])
		if err != nil {
			return nil, err
		}
		if seen[name] {
			return nil, fmt.Errorf("member %q appears twice in one object", clip(name))
		}
		seen[name] = true
		i = skipSpace(data, end)
		i = skipSpace(data, i+1) // the ':'
		vEnd := valueEnd(data, i)
		out = append(out, Member{Name: name, Value: data[i:vEnd:vEnd]})
		i = skipSpace(data, vEnd)
		if i < len(data) && data[i] == ',' {
			i = skipSpace(data, i+1)
		}
	}
	return out, nil
}

// String returns a JSON string value's content without copying it when it has no escapes,
// as base64 and hex never do; ok is false when raw is not a string.
func String(raw []byte) (s []byte, ok bool) {
	raw = bytes.TrimSpace(raw)
	if len(raw) < 2 || raw[0] != '"' || raw[len(raw)-1] != '"' {
		return nil, false
	}
	if bytes.IndexByte(raw, '\\') < 0 && utf8.Valid(raw) {
		return raw[1 : len(raw)-1], true
	}
	var str string
	if json.Unmarshal(raw, &str) != nil {
		return nil, false
	}
	return []byte(str), true
}

// unquote reads a member name as encoding/json does (escapes decoded, invalid UTF-8 as
// U+FFFD), so that two names are the same member here exactly when they are there.
func unquote(raw []byte) (string, error) {
	if len(raw) < 2 || raw[len(raw)-1] != '"' {
		return "", errors.New("unterminated string")
	}
	if bytes.IndexByte(raw, '\\') < 0 && utf8.Valid(raw) {
		return string(raw[1 : len(raw)-1]), nil
	}
	var s string
	err := json.Unmarshal(raw, &s)
	return s, err
}

func skipSpace(data []byte, i int) int {
	for i < len(data) {
		switch data[i] {
		case ' ', '\t', '\r', '\n':
			i++
		default:
			return i
		}
	}
	return i
}

// stringEnd returns the index just past the string that starts at data[i] (a '"').
func stringEnd(data []byte, i int) int {
	for j := i + 1; j < len(data); j++ {
		switch data[j] {
		case '\\':
			j++
		case '"':
			return j + 1
		}
	}
	return len(data)
}

// valueEnd returns the index just past the value that starts at data[i], in valid JSON.
func valueEnd(data []byte, i int) int {
	if i >= len(data) {
		return i
	}
	switch data[i] {
	case '"':
		return stringEnd(data, i)
	case '{', '[':
		depth := 0
		for j := i; j < len(data); j++ {
			switch data[j] {
			case '"':
				j = stringEnd(data, j) - 1
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return j + 1
				}
			}
		}
		return len(data)
	}
	j := i
	for j < len(data) && bytes.IndexByte([]byte(",}] \t\r\n"), data[j]) < 0 {
		j++
	}
	return j
}

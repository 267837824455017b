package jsonlimit

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

func TestCheck(t *testing.T) {
	deep := strings.Repeat("[", MaxDepth+1) + strings.Repeat("]", MaxDepth+1)
	atLimit := strings.Repeat("[", MaxDepth) + strings.Repeat("]", MaxDepth)
	tests := []struct {
		name, doc string
		max       int
		wantErr   string
	}{
		{"small object", `{"a":[1,2,{"b":"c"}]}`, 100, ""},
		{"depth at the limit", atLimit, 1 << 20, ""},
		{"too deep", deep, 1 << 20, "nests deeper than 64 levels"},
		{"brackets inside strings do not count", `{"a":"` + strings.Repeat("[", 200) + `"}`, 1 << 20, ""},
		{"escaped quote keeps the string open", `{"a":"\"` + strings.Repeat("{", 200) + `"}`, 1 << 20, ""},
		{"over the size limit", `{"a":"bcdef"}`, 5, "over the limit of 5"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Check([]byte(tt.doc), tt.max)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Check: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Check error = %v, want it to contain %q", err, tt.wantErr)
			}
		})
	}
}

func TestDecode(t *testing.T) {
	var v map[string]any
	if err := Decode([]byte(`{"n": 12345678901234567890}`), MaxBytes, &v); err != nil {
		t.Fatal(err)
	}
	// Large integers must survive exactly: canonical JSON re-encodes them.
	if n, ok := v["n"].(json.Number); !ok || n.String() != "12345678901234567890" {
		t.Fatalf("n = %#v, want the exact json.Number", v["n"])
	}
	for _, bad := range []string{`{"a":1} {"b":2}`, `{"a":`, ``} {
		if err := Decode([]byte(bad), MaxBytes, &v); err == nil {
			t.Errorf("Decode(%q) succeeded, want an error", bad)
		}
	}
}

func FuzzDecode(f *testing.F) {
	for _, s := range []string{`{}`, `[[[]]]`, `{"a":"\"["}`, `{"signed":{"_type":"link"}}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var v any
		if err := Decode(data, 1<<16, &v); err != nil {
			return
		}
		// Whatever decodes must have passed the bounds.
		if err := Check(data, 1<<16); err != nil {
			t.Fatalf("Decode accepted a document Check rejects: %v", err)
		}
	})
}

func TestUnique(t *testing.T) {
	for doc, wantErr := range map[string]bool{
		`{"a":1,"b":2}`:                             false,
		`{"a":1,"a":2}`:                             true,
		`{"a":{"b":1},"c":[{"b":1},{"b":2}]}`:       false,
		`{"a":[{"x":1,"x":2}]}`:                     true,
		`{"s":[{"d":{"sha256":"a","sha256":"b"}}]}`: true,
		`{"a":"a","b":{"a":1}}`:                     false,
		`[1,"a",{"a":1},{"a":2}]`:                   false,
		`{"a":[1,2],"b":{},"a":null}`:               true,
	} {
		if err := Unique([]byte(doc)); (err != nil) != wantErr {
			t.Errorf("Unique(%s) = %v; want error %v", doc, err, wantErr)
		}
	}
}

// FuzzUnique: never panics; a document it accepts decodes into a map with as many
// top-level members as the decoder's token stream names.
func FuzzUnique(f *testing.F) {
	for _, s := range []string{`{"a":1,"a":2}`, `{"a":{"b":[{"c":1}]}}`, `[{"a":1},{"a":1}]`, `{"a":"\"a\""}`, `{`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if Check(data, MaxBytes) != nil {
			return
		}
		if Unique(data) != nil {
			return
		}
		var m map[string]json.RawMessage
		if json.Unmarshal(data, &m) != nil {
			return
		}
		dec := json.NewDecoder(bytes.NewReader(data))
		names, depth := 0, 0
		expectKey := false
		for {
			tok, err := dec.Token()
			if err != nil {
				break
			}
			switch tok {
			case json.Delim('{'), json.Delim('['):
				depth++
				expectKey = depth == 1 && tok == json.Delim('{')
				continue
			case json.Delim('}'), json.Delim(']'):
				depth--
			}
			if depth == 1 && expectKey {
				names++
				expectKey = false
			} else if depth == 1 {
				expectKey = true
			}
		}
		if names != len(m) {
			t.Fatalf("accepted %q: %d member names, %d distinct", data, names, len(m))
		}
	})
}

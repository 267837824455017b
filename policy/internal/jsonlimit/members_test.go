package jsonlimit

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

func TestMembers(t *testing.T) {
	tests := []struct {
		name, doc string
		want      []string // name=value
		err       string
	}{
		{"plain", `{"a":1,"b":"x","c":{"d":[1,{"e":"}"}]},"f":null}`, []string{`a=1`, `b="x"`, `c={"d":[1,{"e":"}"}]}`, `f=null`}, ""},
		{"spaces", " { \"a\" : [ ] , \"b\\u0041\" : true } ", []string{`a=[ ]`, `bA=true`}, ""},
		{"empty", `{}`, nil, ""},
		{"escaped quote in value", `{"a":"x\"}","b":2}`, []string{`a="x\"}"`, `b=2`}, ""},
		{"duplicate", `{"a":1,"a":2}`, nil, "appears twice"},
		{"duplicate by escape", `{"a":1,"\u0061":2}`, nil, "appears twice"},
		{"array", `[1]`, nil, "cannot unmarshal"},
		{"invalid", `{"a":}`, nil, "invalid character"},
		{"trailing", `{"a":1} x`, nil, "invalid character"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ms, err := Members([]byte(tt.doc))
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, m := range ms {
				got = append(got, m.Name+"="+string(m.Value))
			}
			if strings.Join(got, "|") != strings.Join(tt.want, "|") {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

// Members agrees with encoding/json on every object it accepts, and refuses only what
// encoding/json refuses or a member given twice.
func FuzzMembers(f *testing.F) {
	for _, s := range []string{`{"a":1}`, `{"payload":"eyJ9","signatures":[{"keyid":"","sig":"AA=="}]}`, `{"a":{"b":[1,"]"]},"c":"\\\""}`, `{"a":1,"a":2}`, `[]`, `{`, ` {"\u00e9":null} `} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if Check(data, MaxBytes) != nil {
			return
		}
		ms, err := Members(data)
		var want map[string]json.RawMessage
		werr := json.Unmarshal(data, &want)
		if err != nil {
			if werr == nil && !strings.Contains(err.Error(), "twice") {
				t.Fatalf("Members refused %q (%v); encoding/json reads it", data, err)
			}
			return
		}
		if werr != nil {
			t.Fatalf("Members read %q; encoding/json refuses it: %v", data, werr)
		}
		if len(ms) != len(want) {
			t.Fatalf("%d members, encoding/json %d", len(ms), len(want))
		}
		for _, m := range ms {
			if w, ok := want[m.Name]; !ok || !bytes.Equal(bytes.TrimSpace(w), m.Value) {
				t.Fatalf("member %q = %q, encoding/json %q", m.Name, m.Value, w)
			}
		}
	})
}

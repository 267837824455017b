package envelope

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
)

// canonicalReference is the obvious implementation (decode, then encode the tree); the
// fast scanner must agree with it on every input.
func canonicalReference(raw []byte) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if len(bytes.TrimLeft(raw[dec.InputOffset():], " \t\r\n")) != 0 {
		return nil, errors.New("trailing data")
	}
	var b bytes.Buffer
	if err := encodeReference(&b, v); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

func encodeReference(b *bytes.Buffer, v any) error {
	switch v := v.(type) {
	case nil:
		b.WriteString("null")
	case bool:
		fmt.Fprint(b, v)
	case string:
		writeCanonicalString(b, v)
	case json.Number:
		n, err := canonicalInt(string(v))
		if err != nil {
			return err
		}
		b.WriteString(n)
	case []any:
		b.WriteByte('[')
		for i, e := range v {
			if i > 0 {
				b.WriteByte(',')
			}
			if err := encodeReference(b, e); err != nil {
				return err
			}
		}
		b.WriteByte(']')
	case map[string]any:
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		b.WriteByte('{')
		for i, k := range keys {
			if i > 0 {
				b.WriteByte(',')
			}
			writeCanonicalString(b, k)
			b.WriteByte(':')
			if err := encodeReference(b, v[k]); err != nil {
				return err
			}
		}
		b.WriteByte('}')
	}
	return nil
}

func checkAgainstReference(t testing.TB, in []byte) {
	got, err := canonicalJSON(in)
	want, werr := canonicalReference(in)
	if !bytesValidUTF8(in) {
		if err == nil {
			t.Fatalf("invalid UTF-8 accepted: %q", in)
		}
		return
	}
	if (err == nil) != (werr == nil) {
		t.Fatalf("canonicalJSON(%q): error %v, reference error %v", in, err, werr)
	}
	if err == nil && !bytes.Equal(got, want) {
		t.Fatalf("canonicalJSON(%q):\n got %q\nwant %q", in, got, want)
	}
}

func bytesValidUTF8(b []byte) bool { return strings.ToValidUTF8(string(b), "\uFFFD") == string(b) }

func TestCanonicalMatchesReference(t *testing.T) {
	for _, in := range []string{
		`{}`, `[]`, `""`, `0`, `-0`, `true`, ` null `, `{"a":{"b":[1,{"c":"\"\\"}]},"a":2}`,
		`{"x":"a\u0000b\u001f","y":"\ud83d\ude00\ud800","z":[ 1 , 2 ,[ ]]}`,
		`{"b":1,"a":1,"b":3,"a":{"k":[true,false,null]}}`,
		"{\"k\":\"\\/\\b\\f\\n\\r\\t\"}\n",
		`{"e":1E2}`, `{"f":-1.5}`, `{"a":1}{}`, `{"a":}`,
	} {
		checkAgainstReference(t, []byte(in))
	}
}

func FuzzCanonicalJSON(f *testing.F) {
	for _, s := range []string{
		`{"a":{"b":[1,{"c":"\"\\"}]},"a":2}`, `{"x":"\u00e9\ud83d\ude00","n":-0,"m":123456789012345678901234}`,
		`[{"b":1,"a":[]},"s\\"]`, `{"k":1.5}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		checkAgainstReference(t, in)
		sameAsCJSON(t, in)
	})
}

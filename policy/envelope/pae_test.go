package envelope

import (
	"bytes"
	"strings"
	"testing"

	"github.com/secure-systems-lab/go-securesystemslib/dsse"
)

func TestPAEVectors(t *testing.T) {
	tests := []struct {
		name, typ, body, want string
	}{
		// The DSSE specification's example (protocol.md).
		{"spec example", "http://example.com/HelloWorld", "hello world", "DSSEv1 29 http://example.com/HelloWorld 11 hello world"},
		{"empty", "", "", "DSSEv1 0  0 "},
		{"empty body", PayloadTypeInToto, "", "DSSEv1 28 application/vnd.in-toto+json 0 "},
		{"spaces are not separators", "a b", "c d e", "DSSEv1 3 a b 5 c d e"},
		{"length is in bytes", "ü", "€", "DSSEv1 2 ü 3 €"},
		{"binary body", "t", "\x00\xff\n", "DSSEv1 1 t 3 \x00\xff\n"},
		{"ten bytes", "0123456789", "0123456789", "DSSEv1 10 0123456789 10 0123456789"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := pae(tt.typ, []byte(tt.body)); string(got) != tt.want {
				t.Errorf("pae(%q, %q) = %q, want %q", tt.typ, tt.body, got, tt.want)
			}
		})
	}
}

// pae must agree byte for byte with go-securesystemslib's, which cosign and in-toto-golang
// sign with.
func TestPAEMatchesSecureSystemsLib(t *testing.T) {
	types := []string{"", "x", PayloadTypeInToto, "http://example.com/HelloWorld", strings.Repeat("t", 1000), "ü €"}
	bodies := [][]byte{nil, {}, []byte("hello world"), []byte("\x00\x01 \xff"), bytes.Repeat([]byte("b"), 99), bytes.Repeat([]byte{0}, 100_001)}
	for _, typ := range types {
		for _, body := range bodies {
			if got, want := pae(typ, body), dsse.PAE(typ, body); !bytes.Equal(got, want) {
				t.Errorf("pae(%q, %d bytes) = %q, dsse.PAE = %q", typ, len(body), clipBytes(got), clipBytes(want))
			}
		}
	}
}

func FuzzPAE(f *testing.F) {
	f.Add("http://example.com/HelloWorld", []byte("hello world"))
	f.Add("", []byte{})
	f.Fuzz(func(t *testing.T, typ string, body []byte) {
		if got, want := pae(typ, body), dsse.PAE(typ, body); !bytes.Equal(got, want) {
			t.Fatalf("pae(%q, %q) = %q, dsse.PAE = %q", typ, body, got, want)
		}
	})
}

func clipBytes(b []byte) []byte {
	if len(b) > 80 {
		return b[:80]
	}
	return b
}

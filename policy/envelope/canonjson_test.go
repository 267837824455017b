package envelope

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"tollgate.dev/tollgate/policy/internal/jsonlimit"
)

// checkAgainstScanner asserts the single-pass canonicalizer and the former scanner agree:
// the same bytes, or both an error.
func checkAgainstScanner(t testing.TB, in []byte) {
	t.Helper()
	got, err := canonicalJSON(in)
	want, werr := canonicalScanReference(in)
	if (err == nil) != (werr == nil) {
		t.Fatalf("canonicalJSON(%q): error %v, scanner error %v", in, err, werr)
	}
	if err == nil && !bytes.Equal(got, want) {
		t.Fatalf("canonicalJSON(%q):\n got %q\nwant %q", in, got, want)
	}
}

var canonicalCases = []string{
	``, ` `, `{}`, `[]`, `""`, `0`, `-0`, `-`, `01`, `1.`, `1e`, `1e+`, `.5`, `+1`, `-01`,
	`1.5`, `1E2`, `-0.0`, `123456789012345678901234567890`, `true`, `truex`, `tru`, `nul`, `null `,
	` { "b" : 1 , "a" : [ 1 , 2 ] } `, "{\"a\":1}\n", `{"a":1}{}`, `{"a":}`, `{"a" 1}`, `{,}`, `{"a":1,}`,
	`[1,]`, `[,1]`, `[1 2]`, `{"a":1 "b":2}`, `{1:2}`, `"unterminated`, `"a\"`, `["a\`,
	`{"b":1,"a":2}`, `{"a":1,"a":2}`, `{"a":1.5,"a":2}`, `{"a":2,"a":1.5}`, `{"b":1.5,"a":[1,2.5]}`,
	`{"b":{"d":1,"c":2},"a":[{"z":0,"y":{"x":1,"w":2}}]}`, `{"a":{"b":1},"a":{"c":1.5}}`,
	`[1.5,{"a":1,"a":2}]`, `{"a":[1,{"b":1e3,"b":0}]}`,
	`"\" \\ \/ \b \f \n \r \t"`, `"\u0022\u005c\u0000\u001f\u00e9\u20ac"`, `"\ud83d\ude00"`,
	`"\ud800"`, `"\udc00\ud800"`, `"\ud800\u0041"`, `"\ud800\ud800\udc00"`, `"\ud800\uzzzz"`, `"\u12"`, `"\x"`,
	`{"\u0062":1,"a":2,"b":3}`, `{"\"":1,"#":2,"\\":3,"]":4}`, `{"é":1,"e":2,"\u00e9":3}`,
	`{"a\u0000":1,"a":2}`, `{"":1,"":2}`, "\"tab\there\"", "\"nl\nhere\"", "\"\x7f\"",
	"\"\xff\"", "{\"\xc3\":1}", "\"\xed\xa0\x80\"", "\"\xef\xbf\xbd\"", "\"ok \xe2\x82\xac\"", "\xef\xbb\xbf{}",
	strings.Repeat("[", jsonlimit.MaxDepth) + strings.Repeat("]", jsonlimit.MaxDepth),
	strings.Repeat("[", jsonlimit.MaxDepth+1) + strings.Repeat("]", jsonlimit.MaxDepth+1),
	strings.Repeat(`{"a":`, jsonlimit.MaxDepth) + "1" + strings.Repeat("}", jsonlimit.MaxDepth),
	strings.Repeat(`{"a":`, jsonlimit.MaxDepth+1) + "1" + strings.Repeat("}", jsonlimit.MaxDepth+1),
}

func TestCanonicalStreamingMatchesScanner(t *testing.T) {
	for _, in := range canonicalCases {
		checkAgainstScanner(t, []byte(in))
	}
}

func TestCanonicalStreamingOutput(t *testing.T) {
	for in, want := range map[string]string{
		` { "b" : [ 1 , -0 ] , "a" : "\u00e9\"" } `: `{"a":"é\"","b":[1,0]}`,
		`{"a":1,"a":{"y":null,"x":true}}`:           `{"a":{"x":true,"y":null}}`,
		`{"a":1.5,"a":2}`:                           `{"a":2}`,
		`"\u0022\u005c\n"`:                          "\"\\\"\\\\\n\"",
		`{"\"":1,"#":2}`:                            `{"\"":1,"#":2}`,
	} {
		got, err := canonicalJSON([]byte(in))
		if err != nil || string(got) != want {
			t.Errorf("canonicalJSON(%s) = %s, %v; want %s", in, got, err, want)
		}
	}
	for in, msg := range map[string]string{
		`{"a":2,"a":1.5}`: "not an integer",
		`[1,`:             "invalid JSON",
		"\"\xff\"":        "not valid UTF-8",
		strings.Repeat("[", jsonlimit.MaxDepth+1) + strings.Repeat("]", jsonlimit.MaxDepth+1): "nests deeper",
	} {
		if _, err := canonicalJSON([]byte(in)); err == nil || !strings.Contains(err.Error(), msg) {
			t.Errorf("canonicalJSON(%.30q) error %v, want %q", in, err, msg)
		}
	}
	if _, err := canonicalJSON(make([]byte, jsonlimit.MaxBytes+1)); err == nil || !strings.Contains(err.Error(), "over the limit") {
		t.Errorf("oversized document: %v", err)
	}
}

// FuzzCanonicalStreamingVsScanner is the differential fuzz target: the single-pass
// canonicalizer against the former validate-then-scan implementation, on arbitrary bytes.
func FuzzCanonicalStreamingVsScanner(f *testing.F) {
	for _, s := range canonicalCases {
		f.Add([]byte(s))
	}
	f.Add(artifactsDoc(50, true))
	f.Fuzz(func(t *testing.T, in []byte) {
		checkAgainstScanner(t, in)
	})
}

// artifactsDoc is a link's "signed" with n products, its keys in order or reversed.
func artifactsDoc(n int, sorted bool) []byte {
	var b bytes.Buffer
	b.WriteString(`{"_type":"link","byproducts":{"return-value":0},"command":["make"],"environment":{},"materials":{},"name":"build","products":{`)
	for i := 0; i < n; i++ {
		j := i
		if !sorted {
			j = n - 1 - i
		}
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `"pkg/dir%03d/file-%07d.go":{"sha256":"%064x"}`, j/1000, j, j)
	}
	b.WriteString(`}}`)
	return b.Bytes()
}

func benchCanonical(b *testing.B, fn func([]byte) ([]byte, error), sorted bool) {
	doc := artifactsDoc(100_000, sorted)
	b.SetBytes(int64(len(doc)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := fn(doc); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCanonical100k: canonical JSON of a link with 100,000 products, with the former
// scanner for comparison.
func BenchmarkCanonical100k(b *testing.B)         { benchCanonical(b, canonicalJSON, true) }
func BenchmarkCanonical100kUnsorted(b *testing.B) { benchCanonical(b, canonicalJSON, false) }
func BenchmarkCanonical100kScanner(b *testing.B)  { benchCanonical(b, canonicalScanReference, true) }

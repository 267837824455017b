package intoto

import (
	"strings"
	"testing"

	"tollgate.dev/tollgate/policy/reason"
)

func TestSubstitute(t *testing.T) {
	params := map[string]string{"V": "1.2", "NAME-x_1": "app"}
	cases := []struct{ in, want, err string }{
		{in: "plain", want: "plain"},
		{in: "app-{V}.tar.gz", want: "app-1.2.tar.gz"},
		{in: "{NAME-x_1}/{V}", want: "app/1.2"},
		{in: "{{literal}}", want: "{literal}"},
		{in: "{{{V}}}", want: "{1.2}"},
		{in: "{MISSING}", err: "layout parameter {MISSING} has no value"},
		{in: "{0}", err: "is not a layout parameter reference"},
		{in: "{}", err: "is not a layout parameter reference"},
		{in: "{V!r}", err: "is not a layout parameter reference"},
		{in: "{V:>5}", err: "is not a layout parameter reference"},
		{in: "a}b", err: "single '}'"},
		{in: "a{b", err: "unclosed '{'"},
	}
	for _, tc := range cases {
		got, err := substitute(tc.in, params)
		switch {
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("substitute(%q) = %q, %v; want error %q", tc.in, got, err, tc.err)
		case tc.err == "" && (err != nil || got != tc.want):
			t.Errorf("substitute(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	bad := []map[string]string{{"": "x"}, {"a b": "x"}, {"a": strings.Repeat("x", MaxParameterBytes+1)}}
	for _, p := range bad {
		if err := checkParameters(p); err == nil || reason.KindOf(err) != reason.Malformed {
			t.Errorf("checkParameters(%v) = %v", p, err)
		}
	}
	many := map[string]string{}
	for i := 0; i <= MaxParameters; i++ {
		many["p"+itoa3(i)] = ""
	}
	if checkParameters(many) == nil {
		t.Error("accepted more than MaxParameters")
	}
}

// Artifacts compare as Python compares the hash dicts: every algorithm, exactly.
func TestDigestEquality(t *testing.T) {
	one := HashObj{"sha256": "ab"}
	two := HashObj{"sha256": "ab", "sha512": "cd"}
	cases := []struct {
		a, b HashObj
		want bool
	}{
		{one, HashObj{"sha256": "ab"}, true},
		{one, HashObj{"sha256": "AB"}, false},
		{one, HashObj{"sha512": "ab"}, false},
		{one, two, false},
		{two, HashObj{"sha512": "cd", "sha256": "ab"}, true},
		{two, HashObj{"sha512": "cd", "sha256": "00"}, false},
		{HashObj{}, HashObj{}, true},
	}
	for _, tc := range cases {
		if got := digestOf(tc.a).equal(digestOf(tc.b)); got != tc.want {
			t.Errorf("%v == %v: %v, want %v", tc.a, tc.b, got, tc.want)
		}
	}
	// The parser must build the same digests as the map constructor.
	var f artifactField
	if err := f.UnmarshalJSON([]byte(`{"a":{"sha512":"cd","sha256":"ab"},"b":{"sha256":"ab"},"c":{},"a2":{"sha256":"00","sha256":"ab"}}`)); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]HashObj{"a": two, "b": one, "c": {}, "a2": one} {
		i, ok := f.set.lookup(path)
		if !ok || !f.set.hashes[i].equal(digestOf(want)) {
			t.Errorf("parsed %q = %+v, want %v", path, f.set.hashes[i], want)
		}
	}
	for _, bad := range []string{`[]`, `{"a":1}`, `{"a":{"sha256":1}}`, `{"a":{"sha256":"zz"}}`, `{"a":{"sha256":"ab"}`, `{"a" {}}`, `{"a":{"x":"ab",}}`, "{\"a\x01\":{}}"} {
		var f artifactField
		if err := f.UnmarshalJSON([]byte(bad)); err == nil {
			t.Errorf("UnmarshalJSON(%q) accepted", bad)
		}
	}
}

func TestCheckImage(t *testing.T) {
	bad := []Image{
		{Digests: []string{"sha256:" + manifestHex}},
		{Digests: []string{"sha256:zz"}, ConfigDigest: "sha256:" + configHex},
		{Digests: []string{manifestHex}, ConfigDigest: "sha256:" + configHex},
		{Digests: make([]string, MaxImageDigests+1), ConfigDigest: "sha256:" + configHex},
	}
	for _, img := range bad {
		if err := checkImage(&img); err == nil || reason.KindOf(err) != reason.Malformed {
			t.Errorf("checkImage(%v) = %v", img, err)
		}
	}
	if err := checkImage(&Image{Digests: []string{"sha256:" + manifestHex, "sha512:" + indexHex}, ConfigDigest: "sha256:" + configHex}); err != nil {
		t.Error(err)
	}
}

func TestSublayoutFileName(t *testing.T) {
	cases := []struct {
		in, step, id string
		ok           bool
	}{
		{"build.abcd1234.link", "build", "abcd1234", true},
		{"a.b.abcd1234.link", "a.b", "abcd1234", true},
		{"build.abcd123.link", "", "", false},
		{"build.abcd1234.json", "", "", false},
		{".abcd1234.link", "", "", false},
	}
	for _, tc := range cases {
		step, id, ok := sublayoutFileName(tc.in)
		if step != tc.step || id != tc.id || ok != tc.ok {
			t.Errorf("sublayoutFileName(%q) = %q %q %v", tc.in, step, id, ok)
		}
	}
}

package intoto

import (
	"encoding/json"
	"os"
	"testing"
)

// testdata/fnmatch_python311.json holds fnmatch.fnmatchcase(name, pattern) as CPython 3.11
// (Debian's /usr/bin/python3, which Python in-toto 1.3.1 runs on) computes it, for edge
// cases of every construct: classes, negation, reversed and trailing ranges, unclosed
// brackets, '*' across '/'.
func TestPatternMatchesPython(t *testing.T) {
	data, err := os.ReadFile("testdata/fnmatch_python311.json")
	if err != nil {
		t.Fatal(err)
	}
	var rows [][3]any
	if err := json.Unmarshal(data, &rows); err != nil {
		t.Fatal(err)
	}
	if len(rows) < 1000 {
		t.Fatalf("only %d rows", len(rows))
	}
	compiled := map[string]*pattern{}
	for _, r := range rows {
		pat, name, want := r[0].(string), r[1].(string), r[2].(bool)
		p := compiled[pat]
		if p == nil {
			p = compilePattern(pat)
			compiled[pat] = p
		}
		if got := p.match(name); got != want {
			t.Errorf("fnmatch(%q, %q) = %v, Python says %v", name, pat, got, want)
		}
		// The generic matcher must agree with the fast paths.
		if got := matchTokens(p.tokens, name); got != want {
			t.Errorf("matchTokens(%q, %q) = %v, Python says %v", name, pat, got, want)
		}
	}
}

package intoto

import (
	"encoding/json"
	"os"
	"testing"

	"tollgate.dev/tollgate/policy/reason"
)

// testdata/rules_python.json holds random rule lists over random materials and products
// (paths with prefixes, backslashes, brackets and non-ASCII; single- and multi-algorithm
// hash objects), each with the verdict of Python in-toto 1.3.1's
// verifylib.verify_item_rules. The Go engine must reach the same verdict on every one.
func TestRulesMatchPython(t *testing.T) {
	data, err := os.ReadFile("testdata/rules_python.json")
	if err != nil {
		t.Fatal(err)
	}
	var cases []struct {
		SrcM   map[string]HashObj `json:"src_m"`
		SrcP   map[string]HashObj `json:"src_p"`
		DstM   map[string]HashObj `json:"dst_m"`
		DstP   map[string]HashObj `json:"dst_p"`
		Rules  [][]string         `json:"rules"`
		Side   string             `json:"side"`
		Result string             `json:"result"`
	}
	if err := json.Unmarshal(data, &cases); err != nil {
		t.Fatal(err)
	}
	if len(cases) < 500 {
		t.Fatalf("only %d cases", len(cases))
	}
	for i, c := range cases {
		links := map[string]*Link{
			"src": newLink("src", nil, c.SrcM, c.SrcP),
			"dst": newLink("dst", nil, c.DstM, c.DstP),
		}
		rules, cerr := compileRules(c.Rules)
		if cerr != nil {
			t.Fatalf("case %d: %v", i, cerr)
		}
		err := verifyItemRules("src", c.Side == "products", rules, links, reason.RuleViolation)
		got := "pass"
		switch {
		case err != nil && reason.KindOf(err) == reason.RuleViolation:
			got = "fail"
		case err != nil:
			got = "error"
		}
		// Python crashing (KeyError) rejects as surely as a rule violation does.
		if got != c.Result && !(c.Result == "error" && got != "pass") {
			t.Errorf("case %d: %s of %v with rules %q: Go %s (%v), Python %s", i, c.Side, map[bool]any{true: c.SrcP, false: c.SrcM}[c.Side == "products"], c.Rules, got, err, c.Result)
		}
	}
}

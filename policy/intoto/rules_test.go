package intoto

import (
	"strings"
	"testing"

	"tollgate.dev/tollgate/policy/reason"
)

func arts(kv ...string) map[string]HashObj {
	m := map[string]HashObj{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = sha(kv[i+1][0])
	}
	return m
}

// TestRules covers each rule's pass and fail through verifyItemRules, with Python's queue
// semantics: rules consume in order, DISALLOW and REQUIRE judge what is left.
func TestRules(t *testing.T) {
	// "src" is the item under test; "dst" the step MATCH rules refer to.
	dst := newLink("dst", nil, arts("lib/a.c", "a", "x.tar.gz", "1"), arts("out/x.tar.gz", "1", "x.tar.gz", "1", "y", "2"))
	cases := []struct {
		name      string
		mat, prod map[string]HashObj
		products  bool
		rules     []string
		fail      string // "" = pass; else substring of the error
		rule      string // rule named by the error
	}{
		{name: "MATCH pass", prod: arts("x.tar.gz", "1"), products: true, rules: []string{"MATCH x.tar.gz WITH PRODUCTS FROM dst", "DISALLOW *"}},
		{name: "MATCH digest differs", prod: arts("x.tar.gz", "9"), products: true, rules: []string{"MATCH * WITH PRODUCTS FROM dst", "DISALLOW *"},
			fail: `digest sha256:39393939`, rule: "MATCH * WITH PRODUCTS FROM dst"},
		{name: "MATCH absent at destination", prod: arts("z", "1"), products: true, rules: []string{"MATCH * WITH PRODUCTS FROM dst", "DISALLOW *"},
			fail: `no matching artifact in products of step "dst"`, rule: "MATCH * WITH PRODUCTS FROM dst"},
		{name: "MATCH wrong side", prod: arts("y", "2"), products: true, rules: []string{"MATCH y WITH MATERIALS FROM dst", "DISALLOW *"},
			fail: `no matching artifact in materials of step "dst"`},
		{name: "MATCH unknown step", prod: arts("y", "2"), products: true, rules: []string{"MATCH y WITH PRODUCTS FROM nowhere", "DISALLOW *"},
			fail: `there is no link of "nowhere"`},
		{name: "MATCH source prefix", mat: arts("vendor/lib/b.c", "a"), rules: []string{"MATCH *.c IN vendor WITH MATERIALS FROM dst", "DISALLOW *"},
			fail: `no artifact "lib/b.c" in materials of step "dst"`},
		{name: "MATCH source prefix pass", mat: arts("vendor/lib/a.c", "a"), rules: []string{"MATCH lib/*.c IN vendor WITH MATERIALS FROM dst", "DISALLOW *"}},
		{name: "MATCH dest prefix pass", mat: arts("x.tar.gz", "1"), rules: []string{"MATCH x.tar.gz WITH PRODUCTS IN out FROM dst", "DISALLOW *"}},
		{name: "MATCH both prefixes pass", mat: arts("in/x.tar.gz", "1"), rules: []string{"MATCH * IN in/ WITH PRODUCTS IN out FROM dst", "DISALLOW *"}},
		{name: "MATCH dest prefix fail", mat: arts("y", "2"), rules: []string{"MATCH y WITH PRODUCTS IN out FROM dst", "DISALLOW y"},
			fail: `no artifact "out/y" in products of step "dst"`},
		{name: "MATCH keywords case-insensitive", mat: arts("y", "2"), rules: []string{"match y with products from dst", "disallow *"}},
		{name: "CREATE pass", mat: arts("a", "1"), prod: arts("a", "1", "new", "2"), products: true, rules: []string{"CREATE new", "ALLOW a", "DISALLOW *"}},
		{name: "CREATE fail", mat: arts("a", "1"), prod: arts("a", "1"), products: true, rules: []string{"CREATE *", "DISALLOW *"},
			fail: "product not allowed", rule: "DISALLOW *"},
		{name: "DELETE pass", mat: arts("a", "1", "gone", "2"), prod: arts("a", "1"), rules: []string{"DELETE gone", "ALLOW a", "DISALLOW *"}},
		{name: "DELETE fail", mat: arts("a", "1"), prod: arts("a", "1"), rules: []string{"DELETE *", "DISALLOW *"}, fail: "material not allowed"},
		{name: "MODIFY pass", mat: arts("a", "1"), prod: arts("a", "2"), products: true, rules: []string{"MODIFY a", "DISALLOW *"}},
		{name: "MODIFY fail", mat: arts("a", "1"), prod: arts("a", "1"), products: true, rules: []string{"MODIFY a", "DISALLOW *"}, fail: `artifact "a"`},
		{name: "ALLOW then DISALLOW", prod: arts("a.txt", "1", "b.bin", "2"), products: true, rules: []string{"ALLOW *.txt", "DISALLOW *"},
			fail: `artifact "b.bin": product not allowed`},
		{name: "DISALLOW pass when nothing matches", prod: arts("a.txt", "1"), products: true, rules: []string{"DISALLOW *.exe"}},
		{name: "DISALLOW counts the rest", prod: arts("a", "1", "b", "2", "c", "3"), products: true, rules: []string{"DISALLOW *"}, fail: "(and 2 more)"},
		{name: "REQUIRE pass", prod: arts("a", "1"), products: true, rules: []string{"REQUIRE a"}},
		{name: "REQUIRE missing", prod: arts("a", "1"), products: true, rules: []string{"REQUIRE b"}, fail: `artifact "b": required product is not among the products`},
		{name: "REQUIRE after consumption", prod: arts("a", "1"), products: true, rules: []string{"ALLOW a", "REQUIRE a"}, fail: "consumed by an earlier rule"},
		{name: "REQUIRE is literal", prod: arts("a", "1"), products: true, rules: []string{"REQUIRE *"}, fail: `artifact "*"`},
		{name: "star crosses slash", prod: arts("d/e/f.c", "1"), products: true, rules: []string{"ALLOW *.c", "DISALLOW *"}},
		{name: "no rules allow all", prod: arts("a", "1"), products: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			src := newLink("src", nil, tc.mat, tc.prod)
			var rs [][]string
			for _, r := range tc.rules {
				rs = append(rs, strings.Fields(r))
			}
			compiled, cerr := compileRules(rs)
			if cerr != nil {
				t.Fatal(cerr)
			}
			err := verifyItemRules("src", tc.products, compiled, map[string]*Link{"src": src, "dst": dst}, reason.RuleViolation)
			if tc.fail == "" {
				if err != nil {
					t.Fatalf("unexpected failure: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("passed, want failure containing %q", tc.fail)
			}
			re := reason.As(err)
			if re.Kind != reason.RuleViolation || re.Step != "src" || !strings.Contains(err.Error(), tc.fail) {
				t.Errorf("error %v (kind %s), want rule violation containing %q", err, re.Kind, tc.fail)
			}
			if tc.rule != "" && re.Rule != tc.rule {
				t.Errorf("rule = %q, want %q", re.Rule, tc.rule)
			}
		})
	}
}

func TestParseRule(t *testing.T) {
	bad := []string{
		"", "ALLOW", "ALLOW a b", "FROB a", "MATCH a", "MATCH a WITH PRODUCTS", "MATCH a WITH THINGS FROM s",
		"MATCH a IN WITH PRODUCTS FROM s", "MATCH a WITH PRODUCTS IN x FROM", "MATCH a IN x WITH PRODUCTS IN y FROM",
	}
	for _, r := range bad {
		if _, err := parseRule(strings.Fields(r)); err == nil || err.Kind != reason.Malformed {
			t.Errorf("parseRule(%q) = %v, want Malformed", r, err)
		}
	}
	good := []string{
		"MATCH a WITH PRODUCTS FROM s", "MATCH a IN p WITH MATERIALS FROM s", "MATCH a WITH products IN q FROM s",
		"match a in p with materials in q from s", "CREATE a", "delete a", "Modify a", "ALLOW a", "DISALLOW a", "REQUIRE a",
	}
	for _, r := range good {
		if _, err := parseRule(strings.Fields(r)); err != nil {
			t.Errorf("parseRule(%q): %v", r, err)
		}
	}
}

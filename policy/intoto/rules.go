package intoto

import (
	"strings"

	"tollgate.dev/tollgate/policy/reason"
)

type ruleKind uint8

const (
	ruleMatch ruleKind = iota
	ruleCreate
	ruleDelete
	ruleModify
	ruleAllow
	ruleDisallow
	ruleRequire
)

var genericRules = map[string]ruleKind{
	"create": ruleCreate, "delete": ruleDelete, "modify": ruleModify,
	"allow": ruleAllow, "disallow": ruleDisallow, "require": ruleRequire,
}

// rule is one compiled artifact rule (in_toto.rulelib.unpack_rule).
type rule struct {
	kind ruleKind
	text string // as written, after parameter substitution
	pat  *pattern
	// MATCH only
	srcPrefix, dstPrefix string
	normSrcPrefix        string // srcPrefix with one trailing '/', as Python normalizes it
	dstProducts          bool
	dstName              string
}

// parseRule mirrors unpack_rule: keywords are case-insensitive, patterns and names keep
// their case, and anything else is a format error.
func parseRule(r []string) (*rule, *reason.Error) {
	ru, err := checkRule(r)
	if err != nil {
		return nil, err
	}
	ru.pat = compilePattern(r[1])
	return ru, nil
}

// checkRule parses a rule without compiling its pattern (layout parsing only validates).
func checkRule(r []string) (*rule, *reason.Error) {
	text := ruleText(r)
	bad := func(format string, args ...any) (*rule, *reason.Error) {
		return nil, malformed(format, args...).ForRule(text)
	}
	if len(r) < 2 {
		return bad("an artifact rule needs a keyword and a pattern")
	}
	lower := make([]string, len(r))
	for i, s := range r {
		lower[i] = strings.ToLower(s)
	}
	ru := &rule{text: text}
	if kind, ok := genericRules[lower[0]]; ok {
		if len(r) != 2 {
			return bad("%s takes exactly one pattern", strings.ToUpper(lower[0]))
		}
		ru.kind = kind
		return ru, nil
	}
	if lower[0] != "match" {
		return bad("unknown rule keyword %q; rules start with MATCH, CREATE, DELETE, MODIFY, ALLOW, DISALLOW or REQUIRE", r[0])
	}
	ru.kind = ruleMatch
	var dstType string
	switch {
	case len(r) == 10 && lower[2] == "in" && lower[4] == "with" && lower[6] == "in" && lower[8] == "from":
		ru.srcPrefix, dstType, ru.dstPrefix, ru.dstName = r[3], lower[5], r[7], r[9]
	case len(r) == 8 && lower[2] == "in" && lower[4] == "with" && lower[6] == "from":
		ru.srcPrefix, dstType, ru.dstName = r[3], lower[5], r[7]
	case len(r) == 8 && lower[2] == "with" && lower[4] == "in" && lower[6] == "from":
		dstType, ru.dstPrefix, ru.dstName = lower[3], r[5], r[7]
	case len(r) == 6 && lower[2] == "with" && lower[4] == "from":
		dstType, ru.dstName = lower[3], r[5]
	default:
		return bad("MATCH rules read: MATCH <pattern> [IN <source-path-prefix>] WITH (MATERIALS|PRODUCTS) [IN <destination-path-prefix>] FROM <step>")
	}
	switch dstType {
	case "materials":
	case "products":
		ru.dstProducts = true
	default:
		return bad("MATCH rules match WITH MATERIALS or WITH PRODUCTS, not %q", dstType)
	}
	if ru.srcPrefix != "" {
		ru.normSrcPrefix = strings.ReplaceAll(pyJoin(ru.srcPrefix, ""), `\`, "/")
	}
	return ru, nil
}

// pyJoin is os.path.join(a, b) on POSIX for two components.
func pyJoin(a, b string) string {
	switch {
	case strings.HasPrefix(b, "/"):
		return b
	case a == "" || strings.HasSuffix(a, "/"):
		return a + b
	}
	return a + "/" + b
}

func sideName(products bool) string {
	if products {
		return "products"
	}
	return "materials"
}

// compileRules compiles a rule list (after substitution).
func compileRules(rules [][]string) ([]*rule, *reason.Error) {
	out := make([]*rule, 0, len(rules))
	for _, r := range rules {
		c, err := parseRule(r)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

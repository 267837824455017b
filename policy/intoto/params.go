package intoto

import (
	"strings"

	"tollgate.dev/tollgate/policy/reason"
)

// Parameter substitution follows Python's str.format(**parameters) as verifylib applies it
// to rules, expected_command and run: "{NAME}" is replaced, "{{" and "}}" are literal
// braces. Python's richer format syntax (positional fields, attributes, conversions,
// format specs) makes no sense in a layout and is rejected, as is a name with no value.
//
// One deliberate difference: Python skips substitution entirely when no parameters are
// passed, leaving "{NAME}" in patterns where it silently matches nothing. We always
// substitute, so a missing value is an error that names the parameter.

func checkParameters(params map[string]string) error {
	if len(params) > MaxParameters {
		return malformed("%d layout parameters, over the limit of %d", len(params), MaxParameters)
	}
	for name, v := range params {
		if !validParamName(name) {
			return malformed("layout parameter name %q is invalid; names use letters, digits, '_' and '-'", name)
		}
		if len(v) > MaxParameterBytes {
			return malformed("layout parameter %q is %d bytes, over the limit of %d", name, len(v), MaxParameterBytes)
		}
	}
	return nil
}

func validParamName(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// substitute formats one stanza.
func substitute(s string, params map[string]string) (string, *reason.Error) {
	if !strings.ContainsAny(s, "{}") {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == '{' && i+1 < len(s) && s[i+1] == '{':
			b.WriteByte('{')
			i += 2
		case c == '}' && i+1 < len(s) && s[i+1] == '}':
			b.WriteByte('}')
			i += 2
		case c == '}':
			return "", malformed("single '}' in %q; write '}}' for a literal brace", s)
		case c == '{':
			end := strings.IndexByte(s[i:], '}')
			if end < 0 {
				return "", malformed("unclosed '{' in %q; write '{{' for a literal brace", s)
			}
			name := s[i+1 : i+end]
			if !validParamName(name) || isDigits(name) {
				return "", malformed("%q is not a layout parameter reference like {NAME}", s[i:i+end+1])
			}
			v, ok := params[name]
			if !ok {
				return "", malformed("layout parameter {%s} has no value; pass it as a parameter", name)
			}
			b.WriteString(v)
			i += end + 1
		default:
			b.WriteByte(c)
			i++
		}
	}
	return b.String(), nil
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func substituteList(list []string, params map[string]string) ([]string, *reason.Error) {
	out := make([]string, len(list))
	for i, s := range list {
		v, err := substitute(s, params)
		if err != nil {
			return nil, err
		}
		out[i] = v
	}
	return out, nil
}

func substituteRules(rules [][]string, params map[string]string) ([][]string, *reason.Error) {
	out := make([][]string, len(rules))
	for i, r := range rules {
		v, err := substituteList(r, params)
		if err != nil {
			return nil, err.ForRule(ruleText(r))
		}
		out[i] = v
	}
	return out, nil
}

// compiledItem is a step or inspection after substitution, with compiled rules.
type compiledItem struct {
	name      string
	command   []string // expected_command or run
	materials []*rule
	products  []*rule
}

func compileItem(name string, command []string, mat, prod [][]string, params map[string]string) (*compiledItem, error) {
	c := &compiledItem{name: name}
	var err *reason.Error
	if c.command, err = substituteList(command, params); err != nil {
		return nil, err.InStep(name)
	}
	for _, side := range []struct {
		in  [][]string
		out *[]*rule
	}{{mat, &c.materials}, {prod, &c.products}} {
		subst, err := substituteRules(side.in, params)
		if err != nil {
			return nil, err.InStep(name)
		}
		if *side.out, err = compileRules(subst); err != nil {
			return nil, err.InStep(name)
		}
	}
	return c, nil
}

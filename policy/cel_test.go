package policy

import (
	"strings"
	"testing"

	"tollgate.dev/tollgate/policy/attest"
)

func TestConditions(t *testing.T) {
	payload := statementPayload(t, attest.PredicateSLSAProvenanceV1, slsaV1(buildType, "https://github.com/acme/builder@v1"))
	st, err := attest.Parse(payload)
	if err != nil {
		t.Fatal(err)
	}
	ss := &signedStatement{st: st}
	vars, err := ss.celVars()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		expr    string
		want    bool
		evalErr string
	}{
		{`predicate.buildDefinition.buildType == "` + buildType + `"`, true, ""},
		{`predicate.buildDefinition.externalParameters.ref.startsWith("refs/heads/")`, true, ""},
		{`provenance.builderId.matches("^https://github.com/acme/")`, true, ""},
		{`provenance.version == "v1" && provenance.parameters.repository == "https://github.com/acme/api"`, true, ""},
		{`provenance.materials.exists(m, m.uri.startsWith("git+https://github.com/acme/"))`, true, ""},
		{`statement.predicateType == "https://slsa.dev/provenance/v1"`, true, ""},
		{`statement.subject.all(s, s.name == "` + testRepo + `")`, true, ""},
		{`has(predicate.runDetails.metadata)`, false, ""},
		{`size(predicate.buildDefinition.resolvedDependencies) == 1`, true, ""},
		{`predicate.buildDefinition.buildType == "x"`, false, ""},
		{`predicate.missing == 1`, false, "no such key"},
		{`predicate.buildDefinition.buildType`, false, "want bool"},
	}
	for _, tt := range tests {
		c, err := compileCondition(tt.expr)
		if err != nil {
			t.Fatalf("compile %q: %v", tt.expr, err)
		}
		got, err := c.eval(vars)
		if tt.evalErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.evalErr) {
				t.Errorf("%s: err = %v, want %q", tt.expr, err, tt.evalErr)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("%s = %v, %v; want %v", tt.expr, got, err, tt.want)
		}
	}
}

func TestConditionNumbers(t *testing.T) {
	st, err := attest.Parse(statementPayload(t, "https://example.com/p", map[string]any{"n": 3, "f": 2.5}))
	if err != nil {
		t.Fatal(err)
	}
	vars, _ := (&signedStatement{st: st}).celVars()
	for _, expr := range []string{`predicate.n == 3`, `predicate.n > 2`, `predicate.f < 3`, `provenance == {}`} {
		c, err := compileCondition(expr)
		if err != nil {
			t.Fatal(err)
		}
		if ok, err := c.eval(vars); !ok || err != nil {
			t.Errorf("%s = %v, %v", expr, ok, err)
		}
	}
}

// A condition must not stall the hook, whatever the predicate holds.
func TestConditionCostLimit(t *testing.T) {
	list := make([]any, 2000)
	for i := range list {
		list[i] = "x"
	}
	st, err := attest.Parse(statementPayload(t, "https://example.com/p", map[string]any{"l": list}))
	if err != nil {
		t.Fatal(err)
	}
	vars, _ := (&signedStatement{st: st}).celVars()
	c, err := compileCondition(`predicate.l.all(a, predicate.l.all(b, a == b))`)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.eval(vars); err == nil || !strings.Contains(err.Error(), "cost") {
		t.Fatalf("err = %v, want a cost limit error", err)
	}
}

func TestConditionTooLong(t *testing.T) {
	if _, err := compileCondition(strings.Repeat("true && ", maxConditionBytes/8+1) + "true"); err == nil {
		t.Fatal("oversized condition compiled")
	}
}

func statementPayload(t testing.TB, predicateType string, predicate any) []byte {
	t.Helper()
	b := statementNamed(t, predicateType, testRepo, []string{manifestDigest}, predicate, signer(t, "ci"))
	envs, err := attest.Unwrap(b)
	if err != nil {
		t.Fatal(err)
	}
	return envs[0].Payload
}

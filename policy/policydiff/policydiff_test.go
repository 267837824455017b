package policydiff

import (
	"fmt"
	"testing"
	"time"

	"tollgate.dev/tollgate/policy"
	"tollgate.dev/tollgate/policy/reason"
)

var (
	verifiedAudit   = policy.Decision{Allowed: true, Outcome: policy.Verified, Mode: policy.Audit, Policy: "api"}
	verified        = policy.Decision{Allowed: true, Outcome: policy.Verified, Mode: policy.Enforce, Policy: "api"}
	exempt          = policy.Decision{Allowed: true, Outcome: policy.Exempt, Policy: "node"}
	unmatched       = policy.Decision{Allowed: true, Outcome: policy.Unmatched}
	unmatchedDenied = policy.Decision{Outcome: policy.Unmatched}
	auditFail       = policy.Decision{Allowed: true, Outcome: policy.AuditFail, Mode: policy.Audit, Policy: "api",
		Reasons: []*reason.Error{reason.New(reason.MissingEvidence, "no provenance")}}
	deniedMissing = policy.Decision{Outcome: policy.Denied, Mode: policy.Enforce, Policy: "api",
		Reasons: []*reason.Error{reason.New(reason.MissingEvidence, "no provenance")}}
	deniedSig = policy.Decision{Outcome: policy.Denied, Mode: policy.Enforce, Policy: "api",
		Reasons: []*reason.Error{reason.New(reason.BadSignature, "signed by an unknown key")}}
	revoked = policy.Decision{Outcome: policy.Denied, Mode: policy.Enforce, Policy: "node",
		Reasons: []*reason.Error{reason.New(reason.Revoked, "digest revoked")}}
)

func TestCompare(t *testing.T) {
	tests := []struct {
		name     string
		old, new *policy.Decision
		want     Change
	}{
		{"verified stays verified", &verified, &verified, Unchanged},
		{"verified under audit, verified enforced", &verifiedAudit, &verified, Unchanged},
		{"verified becomes denied", &verified, &deniedMissing, NewlyDenied},
		{"unmatched allowed becomes denied by a new policy", &unmatched, &deniedMissing, NewlyDenied},
		{"audit failure becomes an enforce denial", &auditFail, &deniedMissing, NewlyDenied},
		{"exempt becomes denied", &exempt, &revoked, NewlyDenied},
		{"denied becomes verified", &deniedMissing, &verified, NewlyAllowed},
		{"unmatched denied becomes exempt", &unmatchedDenied, &exempt, NewlyAllowed},
		{"denied becomes audit failure", &deniedSig, &auditFail, NewlyAllowed},
		{"denied for another reason", &deniedMissing, &deniedSig, Changed},
		{"verified becomes an audit failure (allowed, reported)", &verified, &auditFail, Changed},
		{"exempt becomes verified", &exempt, &verified, Changed},
		{"unmatched stays unmatched", &unmatched, &unmatched, Unchanged},
		{"denied for the same reason", &deniedMissing, &deniedMissing, Unchanged},
		{"no baseline: a denial is newly denied", nil, &deniedSig, NewlyDenied},
		{"no baseline: unmatched is unchanged", nil, &unmatched, Unchanged},
		{"no baseline: an audit failure is a change", nil, &auditFail, Changed},
		{"no baseline: verified is unchanged", nil, &verified, Unchanged},
		{"no baseline: exempt is unchanged", nil, &exempt, Unchanged},
		{"no baseline: a revocation is newly denied", nil, &revoked, NewlyDenied},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Compare(tt.old, tt.new); got != tt.want {
				t.Fatalf("Compare = %s, want %s", got, tt.want)
			}
		})
	}
}

// A reason with the same kind but another message (another key, another missing
// predicate) is a change: the operator has something new to fix.
func TestCompareReasonMessage(t *testing.T) {
	other := deniedMissing
	other.Reasons = []*reason.Error{reason.New(reason.MissingEvidence, "no SBOM")}
	if got := Compare(&deniedMissing, &other); got != Changed {
		t.Fatalf("Compare = %s, want changed", got)
	}
	other.Reasons = []*reason.Error{nil}
	if got := Compare(&deniedMissing, &other); got != Changed {
		t.Fatalf("Compare with a nil reason = %s, want changed", got)
	}
}

// fakeEvaluator answers by the evidence's Version, so the test sees which set decided.
type fakeEvaluator map[string]policy.Decision

func (f fakeEvaluator) Evaluate(_ policy.Request, ev policy.Evidence, _ time.Time) policy.Decision {
	return f[ev.Version]
}

func evidence(version string) policy.Evidence {
	return policy.Evidence{Files: map[string][]byte{"f": []byte(version)}, Version: version}
}

func TestDecide(t *testing.T) {
	e := fakeEvaluator{"": deniedMissing, "good": verified, "bad": deniedSig, "revoked": revoked, "audit": auditFail}
	tests := []struct {
		name string
		evs  []policy.Evidence
		want *policy.Decision
	}{
		{"no sources", nil, &deniedMissing},
		{"only empty sources", []policy.Evidence{{}, {}}, &deniedMissing},
		{"the first that verifies", []policy.Evidence{evidence("bad"), evidence("good")}, &verified},
		{"the first failure when none verifies", []policy.Evidence{evidence("bad"), evidence("audit")}, &deniedSig},
		{"an empty source is skipped", []policy.Evidence{{}, evidence("good")}, &verified},
		{"a revocation stops the search", []policy.Evidence{evidence("revoked"), evidence("good")}, &revoked},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Decide(e, policy.Request{}, tt.evs, time.Now())
			if Compare(tt.want, &got) != Unchanged {
				t.Fatalf("Decide = %+v, want %+v", got, *tt.want)
			}
		})
	}
}

func TestSummary(t *testing.T) {
	var s Summary
	for i := range 8 {
		s.Add(fmt.Sprintf("denied-%d", i), NewlyDenied)
	}
	s.Add("allowed", NewlyAllowed)
	s.Add("same", Unchanged)
	s.Add("other", Changed)
	s.Add("broken", Error)
	if s.Images != 12 || s.NewlyDenied != 8 || s.NewlyAllowed != 1 || s.Unchanged != 1 || s.Changed != 1 || s.Errors != 1 {
		t.Fatalf("counts = %+v", s)
	}
	if ex := s.Examples(NewlyDenied); len(ex) != MaxExamples || ex[0] != "denied-0" {
		t.Fatalf("examples = %q, want the first %d", ex, MaxExamples)
	}
	if ex := s.Examples(Unchanged); len(ex) != 0 {
		t.Fatalf("unchanged images kept as examples: %q", ex)
	}
	if ex := s.Examples(Error); len(ex) != 1 || ex[0] != "broken" {
		t.Fatalf("error examples = %q", ex)
	}
}

//go:build e2e

package e2e

import (
	"testing"
	"time"

	"tollgate.dev/tollgate/daemon/audit"
)

// scenarioRevoked is scenario 17: a signed image that runs is revoked by its manifest
// digest in NodeDefaults. After the reload a new container from it is rejected with the
// revocation's message, counted under reason "revoked"; the container already running is
// reported by the re-check and keeps running. Revoked by its config digest, it is
// rejected even with its repository exempt and break-glass on. Once the revocation is
// lifted, it runs again.
func (g *defaultsGate) scenarioRevoked(t *testing.T) {
	img := g.signed
	running := g.mustRun(t, img.Ref)
	if r := g.lastHook(t, img); r.Outcome != "verified" {
		t.Fatalf("before the revocation: outcome %q, want verified", r.Outcome)
	}

	const why = "CVE-2026-1234: e2e build host compromised"
	gen := metric(g.metrics(t), "tollgate_policy_generation")
	deniedBefore := g.decisions(t, "result=denied", "reason=revoked", "mode=enforce")
	failuresBefore := metric(g.metrics(t), "intoto_verification_failures_total", "reason=revoked")
	g.withDefaults(t, nodeDefaults{revoked: []string{img.Digest}, revokedWhy: why})
	g.mustReject(t, img.Ref, "tollgate: denied", "digest "+img.Digest+" is revoked by NodeDefaults: "+why)
	g.checkHookReason(t, img, "revoked")
	if r := g.lastHook(t, img); r.Outcome != "denied" || r.Mode != "enforce" || len(r.Reasons) != 1 {
		t.Errorf("audit record: outcome=%q mode=%q reasons=%+v; want an enforce denial for the revocation alone",
			r.Outcome, r.Mode, r.Reasons)
	}
	g.checkGrew(t, deniedBefore, 1, "result=denied", "reason=revoked", "mode=enforce")
	if d := metric(g.metrics(t), "intoto_verification_failures_total", "reason=revoked") - failuresBefore; d < 1 {
		t.Errorf(`intoto_verification_failures_total{reason="revoked"} grew by %v, want ≥ 1`, d)
	}

	// The running container is re-decided under the new generation and reported, not stopped.
	g.waitAudit(t, "the re-check of the revoked image's container", 30*time.Second, func(r audit.Record) bool {
		return r.Path == "recheck" && r.Generation == uint64(gen+1) && r.ConfigDigest == img.ConfigDigest &&
			!r.Allowed && len(r.Reasons) > 0 && r.Reasons[0].Kind == "revoked"
	})
	if st, err := g.env.InspectContainer(running); err != nil || st.State != StateRunning {
		t.Errorf("the container that ran before the revocation: %+v %v; want it still running", st, err)
	}

	// By config digest, with its repository exempt and break-glass on: rejected all the same.
	until := time.Now().Add(time.Hour).Truncate(time.Second)
	g.setDefaults(t, nodeDefaults{revoked: []string{img.ConfigDigest}, revokedWhy: why,
		repositories: []string{img.Repository}, breakGlass: until, why: "INC-4243 e2e"})
	g.mustReject(t, img.Ref, "config digest "+img.ConfigDigest+" is revoked by NodeDefaults: "+why,
		"break-glass (until "+until.UTC().Format(time.RFC3339)+") does not apply to a revoked image")

	// Lifted by the next reload: the image runs again.
	g.setDefaults(t, nodeDefaults{})
	g.mustRun(t, img.Ref)
	if r := g.lastHook(t, img); !r.Allowed || r.Outcome != "verified" {
		t.Errorf("after the revocation is lifted: allowed=%v outcome=%q %q; want verified", r.Allowed, r.Outcome, r.Message)
	}
}

//go:build e2e

package e2e

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"tollgate.dev/tollgate/daemon/audit"
)

// scenarioSignedRuns is scenario 1: an image whose layout, links and SLSA provenance
// verify runs, decided by policy app.
func (g *gate) scenarioSignedRuns(t *testing.T) {
	signed := g.signed
	g.pull(t, signed)
	g.mustRun(t, signed.Ref)
	r := g.lastHook(t, signed)
	if !r.Allowed || r.Outcome != "verified" || r.Policy != "app" {
		t.Errorf("audit record: allowed=%v outcome=%q policy=%q, want a verified allowance by policy app", r.Allowed, r.Outcome, r.Policy)
	}
}

// scenarioNoEvidenceRejected is scenario 2: an image with no evidence at all is rejected,
// and the message says so.
func (g *gate) scenarioNoEvidenceRejected(t *testing.T) {
	unsigned := g.unsigned
	g.pull(t, unsigned)
	g.mustReject(t, unsigned.Ref, "tollgate: denied", unsigned.Repository, `policy "app"`, "no in-toto evidence found")
	g.checkHookReason(t, unsigned, "missing_evidence")
}

// scenarioBadEvidenceRejected is scenario 3: a tampered link, a link signed by a key the
// layout does not trust, and an expired layout are each rejected with their own reason.
func (g *gate) scenarioBadEvidenceRejected(t *testing.T) {
	cases := []struct {
		name, repoTag string
		ev            evidence
		want          []string
		kind          string
	}{
		{"tampered-link", "app:tampered", evidence{tamper: true}, []string{`step "build"`, "signature"}, ""},
		{"unauthorized-key", "app:rogue", evidence{linkKey: "rogue"}, []string{`step "build"`, "authorized functionary"}, ""},
		{"expired-layout", "old:1", evidence{}, []string{`policy "old"`, "expired"}, "expired"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			img := g.push(t, c.repoTag, c.name)
			g.attach(t, img, g.makeEvidence(t, img, c.ev))
			g.pull(t, img)
			g.mustReject(t, img.Ref, append([]string{"tollgate: denied"}, c.want...)...)
			if c.kind != "" {
				g.checkHookReason(t, img, c.kind)
			}
		})
	}
}

// scenarioRetagToUnsigned is scenario 4: the tag moves to unsigned content after the
// signed content was verified; the container from the new content is rejected, the one
// from the old keeps running.
func (g *gate) scenarioRetagToUnsigned(t *testing.T) {
	env := g.env
	first := g.pushSigned(t, "app:moving", "moving-signed")
	g.pull(t, first)
	running := g.mustRun(t, first.Ref)
	// The tag moves to content nobody signed; the node pulls it again.
	second := g.push(t, "app:moving", "moving-unsigned")
	if second.ConfigDigest == first.ConfigDigest {
		t.Fatal("re-tagged image has the same config")
	}
	g.pull(t, second)
	g.mustReject(t, first.Ref, "tollgate: denied", "no in-toto evidence found")
	r := g.lastHook(t, second)
	if r.Allowed || r.ConfigDigest != second.ConfigDigest {
		t.Errorf("the decision was not about the new content: %+v", r)
	}
	// The container from the verified content keeps running.
	if st, err := env.InspectContainer(running); err != nil || st.State != StateRunning {
		t.Errorf("container from the verified content: %v %v", st, err)
	}
}

// scenarioAuditMode is scenario 5: in audit mode an unverified container runs, and the
// decision is in the audit log and in /metrics.
func (g *gate) scenarioAuditMode(t *testing.T) {
	img := g.push(t, "audited:1", "audited")
	g.pull(t, img)
	before := g.metrics(t)
	g.mustRun(t, img.Ref)
	r := g.lastHook(t, img)
	if !r.Allowed || r.Mode != "audit" || r.Outcome != "audit_fail" || r.Policy != "audited" {
		t.Errorf("audit record: allowed=%v mode=%q outcome=%q policy=%q, want an audit_fail allowance by policy audited",
			r.Allowed, r.Mode, r.Outcome, r.Policy)
	}
	if len(r.Reasons) == 0 || r.Reasons[0].Kind != "missing_evidence" {
		t.Errorf("audit record reasons %+v, want missing_evidence first", r.Reasons)
	}
	after := g.metrics(t)
	series := []string{"result=audit_fail", "mode=audit"}
	if d := metric(after, "tollgate_decisions_total", series...) - metric(before, "tollgate_decisions_total", series...); d < 1 {
		t.Errorf("tollgate_decisions_total{result=audit_fail,mode=audit} grew by %v, want ≥ 1", d)
	}
}

// scenarioPolicyHotReload is scenario 7: a new policy file flips a decision without a
// restart; a broken file keeps the policies in force and /readyz reports it until it is
// gone.
func (g *gate) scenarioPolicyHotReload(t *testing.T) {
	unsigned := g.unsigned
	img := g.push(t, "late:1", "late")
	g.attach(t, img, g.makeEvidence(t, img, evidence{noLink: true}))
	g.pull(t, img)
	g.mustReject(t, img.Ref, "tollgate: denied", "no policy matches")
	gen := metric(g.metrics(t), "tollgate_policy_generation")

	writeFile(t, filepath.Join(g.policyDir, "late.yaml"), fmt.Sprintf(`apiVersion: tollgate.dev/v1alpha1
kind: ImagePolicy
metadata:
  name: late
spec:
  images: ["%s/e2e/late"]
  attestations:
    - name: provenance
      predicateType: slsa-v1
      keys: [ci.pub]
`, g.host))
	g.waitMetric(t, "tollgate_policy_generation", gen+1, 15*time.Second)
	// The running containers are re-checked under the new generation: the one from
	// the audit scenario still fails (reported, not stopped).
	g.waitAudit(t, "re-check after the reload", 30*time.Second, func(r audit.Record) bool {
		return r.Path == "recheck" && r.Generation == uint64(gen+1) && r.Policy == "audited"
	})
	g.waitMetric(t, "tollgate_recheck_failures_total", 1, 10*time.Second, "mode=audit")
	// The image was not covered when it was pulled, so its evidence may still be on
	// its way: a kubelet retries such a create, and so does this test.
	g.runEventually(t, img.Ref, 20*time.Second)

	// A broken file keeps the policies in force, and /readyz says why.
	errs := metric(g.metrics(t), "tollgate_policy_reload_errors_total")
	writeFile(t, filepath.Join(g.policyDir, "broken.yaml"), "apiVersion: tollgate.dev/v1alpha1\nkind: ImagePolicy\nmetadata: {name: broken}\nspec: {images: [\"x\"], treshold: 1}\n")
	g.waitMetric(t, "tollgate_policy_reload_errors_total", errs+1, 15*time.Second)
	code, body, err := g.get("/readyz")
	if err != nil || code != http.StatusServiceUnavailable || !strings.Contains(body, "broken.yaml") {
		t.Errorf("/readyz with a broken policy file: %d %q %v; want 503 naming broken.yaml", code, body, err)
	}
	if got := metric(g.metrics(t), "tollgate_policy_generation"); got != gen+1 {
		t.Errorf("policy generation %v after a broken file, want %v kept", got, gen+1)
	}
	g.mustRun(t, img.Ref)
	g.mustReject(t, unsigned.Ref, "tollgate: denied")

	if err := os.Remove(filepath.Join(g.policyDir, "broken.yaml")); err != nil {
		t.Fatal(err)
	}
	// Back to the content in force: the error is over, and nothing needs loading.
	g.waitReady(t, 15*time.Second)
	if got := metric(g.metrics(t), "tollgate_policy_generation"); got != gen+1 {
		t.Errorf("policy generation %v once the broken file is gone, want %v", got, gen+1)
	}
	g.mustRun(t, img.Ref)
}

// scenarioPreverificationCache is scenario 8: an image pulled through CRI is pre-verified
// from its image event, so the first create is served from the decision cache.
func (g *gate) scenarioPreverificationCache(t *testing.T) {
	img := g.pushSigned(t, "app:pre", "pre")
	g.pull(t, img) // waits for the preverify record
	pre := g.lastRecord(t, img, "preverify")
	if !pre.Allowed || pre.Outcome != "verified" {
		t.Errorf("pre-verification: allowed=%v outcome=%q, want verified", pre.Allowed, pre.Outcome)
	}
	before := g.metrics(t)
	g.mustRun(t, img.Ref)
	after := g.metrics(t)
	if d := metric(after, "tollgate_cache_hits_total") - metric(before, "tollgate_cache_hits_total"); d < 1 {
		t.Errorf("tollgate_cache_hits_total grew by %v on the first create after pull, want ≥ 1", d)
	}
	if r := g.lastHook(t, img); !r.Cached {
		t.Errorf("first create after pull was not served from the cache: %+v", r)
	}
}

// scenarioMetrics is scenario 11: /metrics shows the decisions of the scenarios before,
// under the documented names.
func (g *gate) scenarioMetrics(t *testing.T) {
	m := g.metrics(t)
	checks := []struct {
		name   string
		labels []string
	}{
		{"tollgate_decisions_total", []string{"result=verified", "mode=enforce", "reason=none"}},
		{"tollgate_decisions_total", []string{"result=denied", "mode=enforce", "reason=missing_evidence"}},
		{"tollgate_decisions_total", []string{"result=denied", "reason=expired"}},
		{"tollgate_decisions_total", []string{"result=audit_fail", "mode=audit"}},
		{"tollgate_decisions_total", []string{"result=unmatched", "reason=no_policy"}},
		{"intoto_verification_failures_total", []string{"reason=missing_evidence"}},
		{"intoto_verification_failures_total", []string{"reason=expired"}},
		{"intoto_missing_attestations_total", nil},
		{"tollgate_decision_duration_seconds_count", []string{"path=hook"}},
		{"tollgate_decision_duration_seconds_count", []string{"path=preverify"}},
		{"tollgate_cache_hits_total", nil},
		{"tollgate_cache_entries", nil},
		{"tollgate_registry_requests_total", []string{"outcome=found"}},
		{"tollgate_registry_requests_total", []string{"outcome=not_found"}},
		{"tollgate_policy_generation", nil},
		{"tollgate_policy_reload_errors_total", nil},
		{"tollgate_nri_connected", nil},
		{"tollgate_layout_expiry_timestamp_seconds", []string{"policy=app"}},
		{"tollgate_build_info", nil},
	}
	for _, c := range checks {
		if v := metric(m, c.name, c.labels...); v <= 0 {
			t.Errorf("%s%v = %v, want > 0", c.name, c.labels, v)
		}
	}
	// The tampered and the unauthorized link fail as their own kinds.
	failures := 0.0
	for _, k := range []string{"bad_signature", "threshold", "rule_violation"} {
		failures += metric(m, "intoto_verification_failures_total", "reason="+k)
	}
	if failures < 2 {
		t.Errorf("intoto_verification_failures_total for bad signatures, thresholds and rules = %v, want ≥ 2", failures)
	}
	for _, name := range []string{"tollgate_nri_disconnects_total", "tollgate_cache_misses_total"} {
		if !hasMetric(m, name) {
			t.Errorf("%s is not exposed", name)
		}
	}
	if exp := metric(m, "tollgate_layout_expiry_timestamp_seconds", "policy=old"); exp <= 0 || exp > float64(time.Now().Unix()) {
		t.Errorf("layout expiry of policy old = %v, want a time in the past", exp)
	}
}

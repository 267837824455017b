package gate

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"tollgate.dev/tollgate/daemon/policydir"
	"tollgate.dev/tollgate/daemon/policystore"
	"tollgate.dev/tollgate/daemon/policytest"
	"tollgate.dev/tollgate/policy"
	"tollgate.dev/tollgate/policy/keys"
	"tollgate.dev/tollgate/policy/policydiff"
)

// A digest revoked in NodeDefaults is denied in the hook with reason "revoked", whatever
// the image's evidence, exemptions or break-glass say; the denial is cached like any other
// and counted under its own reason; no registry fetch is started for it (no evidence can
// change it); running containers of it fail the re-check; and lifting the revocation
// (a new generation) lets the image run again.
func TestRevokedImage(t *testing.T) {
	e := newGateEnv(t, &fakeEval{})
	ci, err := keys.Generate("ed25519", 0)
	must(t, err)
	dir := t.TempDir()
	policytest.PolicyDir(t, dir, ci, policy.Enforce)
	b, err := os.ReadFile(filepath.Join(dir, "defaults.yaml"))
	must(t, err)
	baseline := string(b)
	publish := func(gen uint64, defaults string) {
		t.Helper()
		writeFile(t, filepath.Join(dir, "defaults.yaml"), defaults)
		files, err := policydir.Read(dir, policydir.DefaultLimits)
		must(t, err)
		s, err := policy.Load(files, gen)
		must(t, err)
		e.snap.Store(&policystore.Snapshot{Generation: gen, Policies: s})
	}
	api := imageIn("registry.test/acme", "api")
	writeEvidence(t, e.nodeDir, api.Digests[0], map[string]string{
		"provenance.dsse.json": string(policytest.SignedStatement(t, ci, api.Repository, api.Digests[0]))})
	pause := imageIn("registry.test", "pause") // exempt, and no evidence anywhere

	if text := scrape(t, e.metrics); !strings.Contains(text, `intoto_verification_failures_total{reason="revoked"} 0`) {
		t.Error("the revoked series is not pre-created: an alert on increase() would miss the first revoked image")
	}
	publish(1, baseline)
	if d := e.decide(api); !d.Allowed || d.Outcome != policy.Verified {
		t.Fatalf("before the revocation: %s %q", d.Outcome, d.Message)
	}

	publish(2, `apiVersion: tollgate.dev/v1alpha1
kind: NodeDefaults
spec:
  unmatched: deny
  exemptions:
    repositories: ["registry.test/pause", "registry.test/acme/*"]
  breakGlass: {enabled: true, until: "2026-06-01T13:00:00Z"}
  revoked:
    digests: ["`+api.Digests[0]+`", "`+pause.ConfigDigest+`"]
    reason: "CVE-2026-1234: build host compromised"
`)
	hits := metricValue(t, e.metrics, "tollgate_cache_hits_total")
	for range 2 {
		for _, img := range []policy.Image{api, pause} {
			d := e.decide(img)
			if d.Allowed || d.Outcome != policy.Denied || !policydiff.Revoked(&d) ||
				!strings.Contains(d.Message, "is revoked by NodeDefaults: CVE-2026-1234: build host compromised") ||
				!strings.Contains(d.Message, "break-glass (until 2026-06-01T13:00:00Z) does not apply to a revoked image") {
				t.Errorf("%s: allowed=%v outcome=%s %q; want a revoked denial", img.Ref, d.Allowed, d.Outcome, d.Message)
			}
		}
	}
	if n := metricValue(t, e.metrics, "tollgate_cache_hits_total") - hits; n != 2 {
		t.Errorf("%v of the repeated revoked denials served from the cache, want 2", n)
	}
	for series, want := range map[string]float64{
		`tollgate_decisions_total{mode="enforce",reason="revoked",result="denied"}`: 4,
		`intoto_verification_failures_total{reason="revoked"}`:                      2,
		`intoto_missing_attestations_total`:                                         0,
	} {
		if n := metricValue(t, e.metrics, series); n != want {
			t.Errorf("%s = %v, want %v", series, n, want)
		}
	}
	e.settle()
	if n := e.fetcher.count(); n != 0 {
		t.Errorf("%d registry fetches for revoked images, want 0", n)
	}

	running := listerFunc(func(context.Context) ([]policy.Request, error) {
		return []policy.Request{{Image: api, Namespace: "ns", Pod: "api-0", Container: "api"}}, nil
	})
	if n := NewPreverifier(e.gate, nil, running).recheck(context.Background(), nil); n != 1 {
		t.Errorf("Recheck found %d failing containers, want the revoked one", n)
	}
	if n := metricValue(t, e.metrics, `tollgate_recheck_failures_total{mode="enforce"}`); n != 1 {
		t.Errorf("recheck failures counted %v, want 1 in enforce mode", n)
	}

	publish(3, baseline)
	if d := e.decide(api); !d.Allowed || d.Outcome != policy.Verified {
		t.Errorf("after the revocation is lifted: %s %q", d.Outcome, d.Message)
	}
}

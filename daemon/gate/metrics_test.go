package gate

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"tollgate.dev/tollgate/daemon/metrics"
	"tollgate.dev/tollgate/daemon/policystore"
	"tollgate.dev/tollgate/policy"
)

// Every metric name of docs/dev/BRIEF.md appears on /metrics once the daemon has done each
// kind of work once.
func TestMetricNames(t *testing.T) {
	eval := &fakeEval{expiries: map[string]time.Time{"api": time.Unix(1900000000, 0)}}
	e := newGateEnv(t, eval)
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "p.yaml"), "ok")
	s := policystore.New(dir, policystore.WithMetrics(e.metrics), policystore.WithLoadFunc(func(map[string][]byte, uint64) (policystore.Evaluator, error) { return eval, nil }))
	s.Reload()
	writeFile(t, filepath.Join(dir, "p.yaml"), "broken")
	policystore.New(dir, policystore.WithMetrics(e.metrics), policystore.WithLoadFunc(fakeLoad)).Reload()
	h := metrics.NewHealth("", e.metrics, nil)
	h.SetNRIConnected(true)
	h.SetNRIConnected(false)
	img := testImage("x")
	writeEvidence(t, e.nodeDir, img.Digests[0], map[string]string{"a.link": "bad"})
	e.decide(img)
	e.fetcher.set(img.Digests[0], nil, nil)
	e.gate.Preverify(context.Background(), img)

	text := scrape(t, e.metrics)
	for _, name := range []string{
		"intoto_verification_failures_total{reason=", "intoto_missing_attestations_total",
		`tollgate_decisions_total{mode=`, `tollgate_decision_duration_seconds_bucket{path="hook"`,
		`tollgate_decision_duration_seconds_bucket{path="preverify"`, `le="5e-05"`, `le="2"`,
		"tollgate_cache_hits_total", "tollgate_cache_misses_total", "tollgate_cache_entries",
		`tollgate_registry_requests_total{outcome=`, "tollgate_policy_generation",
		"tollgate_policy_reload_errors_total", "tollgate_nri_connected", "tollgate_nri_disconnects_total",
		`tollgate_layout_expiry_timestamp_seconds{policy="api"} 1.9e+09`, `tollgate_build_info{goversion=`,
	} {
		if !strings.Contains(text, name) {
			t.Errorf("/metrics lacks %s", name)
		}
	}
	for _, forbidden := range []string{"registry.test/", img.Digests[0]} {
		if strings.Contains(text, forbidden) {
			t.Errorf("/metrics leaks an image name or digest: %s", forbidden)
		}
	}
}

func TestRecheckReportsContainersThatNoLongerPass(t *testing.T) {
	e := newGateEnv(t, &fakeEval{})
	good, bad := testImage("good"), testImage("bad")
	writeEvidence(t, e.nodeDir, good.Digests[0], map[string]string{"a.link": "good"})
	writeEvidence(t, e.nodeDir, bad.Digests[0], map[string]string{"a.link": "bad"})
	lister := listerFunc(func(context.Context) ([]policy.Request, error) {
		return []policy.Request{
			{Image: good, Namespace: "ns", Pod: "a", Container: "c"},
			{Image: bad, Namespace: "ns", Pod: "b", Container: "c"},
		}, nil
	})
	if n := NewPreverifier(e.gate, nil, lister).recheck(context.Background(), nil); n != 1 {
		t.Fatalf("Recheck found %d failing containers, want 1", n)
	}
	if n := metricValue(t, e.metrics, `tollgate_recheck_failures_total{mode="enforce"}`); n != 1 {
		t.Errorf("recheck failures counted %v, want 1", n)
	}
}

type listerFunc func(context.Context) ([]policy.Request, error)

func (f listerFunc) RunningContainers(ctx context.Context) ([]policy.Request, error) { return f(ctx) }

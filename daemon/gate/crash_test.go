package gate

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"tollgate.dev/tollgate/daemon/evidence"
	"tollgate.dev/tollgate/daemon/policystore"
	"tollgate.dev/tollgate/policy"
)

// markerEval records whether an evaluation-in-progress marker was on disk while it ran.
type markerEval struct {
	*fakeEval
	dir  string
	seen []string
}

func (m *markerEval) EvaluateContext(_ context.Context, req policy.Request, ev policy.Evidence, now time.Time) policy.Decision {
	found, _ := filepath.Glob(filepath.Join(m.dir, ".evaluating-*"))
	m.seen = append(m.seen, found...)
	return m.fakeEval.Evaluate(req, ev, now)
}

// Issue 12, item 1: evidence the daemon died evaluating is quarantined at the next start,
// reported, counted, and the image refused with a message that says so, without
// evaluating it again nor fetching it again; removing the quarantined directory lets it be
// fetched and evaluated again.
func TestEvidenceThatCrashedTheDaemonIsQuarantined(t *testing.T) {
	eval := &markerEval{fakeEval: &fakeEval{}}
	e := newGateEnv(t, eval.fakeEval)
	eval.dir = e.cacheDir
	e.snap.Store(&policystore.Snapshot{Generation: 1, Policies: eval})
	img := imageIn("registry.test/acme", "api")
	cache := evidence.NewCache(e.cacheDir, evidence.Limits{})
	must(t, cache.Store(img.Repository, img.Digests[0], map[string][]byte{"a.json": []byte("bad")}))

	if _, err := e.gate.Preverify(context.Background(), img); err != nil {
		t.Fatal(err)
	}
	if len(eval.seen) != 1 {
		t.Fatalf("markers on disk during the evaluation: %v, want one", eval.seen)
	}
	if left, _ := filepath.Glob(filepath.Join(e.cacheDir, ".evaluating-*")); len(left) != 0 {
		t.Fatalf("markers left after the evaluation: %v", left)
	}

	// The daemon dies in an evaluation of it (the marker stays), and starts again.
	_, err := cache.Evaluating(img.Repository, img.Digests)
	must(t, err)
	restarted := evidence.NewCache(e.cacheDir, evidence.Limits{})
	crashes, err := restarted.RecoverCrashed()
	must(t, err)
	if len(crashes) != 1 || crashes[0].Repository != img.Repository || crashes[0].Digests[0] != img.Digests[0] {
		t.Fatalf("crashes %+v, want the image's evidence", crashes)
	}
	if n := restarted.Quarantined(); n != 1 {
		t.Errorf("quarantined %d, want 1", n)
	}
	if again, _ := restarted.RecoverCrashed(); len(again) != 0 {
		t.Errorf("reported again at the next start: %+v", again)
	}
	e.snap.Store(&policystore.Snapshot{Generation: 2, Policies: eval}) // nothing decided in memory
	calls, fetches := eval.calls.Load(), e.fetcher.count()
	for range 2 {
		d, err := e.gate.Preverify(context.Background(), img)
		if err == nil || !strings.Contains(err.Error(), "quarantined because evaluating it crashed tollgated") || !strings.Contains(err.Error(), crashes[0].Where) {
			t.Fatalf("err %v, want the crash quarantine named", err)
		}
		if d.Allowed {
			t.Fatalf("allowed: %s", d.Message)
		}
	}
	if n := eval.calls.Load() - calls; n != 2 { // infraDecision's wording only, on no evidence
		t.Errorf("%d evaluations after the crash, want only the two on no evidence", n)
	}
	if n := e.fetcher.count() - fetches; n != 0 {
		t.Errorf("%d registry fetches of evidence that crashed the daemon", n)
	}
}

package gate

import (
	"context"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"tollgate.dev/tollgate/daemon/metrics"
	"tollgate.dev/tollgate/policy"
)

// scrape returns the metrics in the text exposition format.
func scrape(t testing.TB, m *metrics.Metrics) string {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	return rec.Body.String()
}

// metricValue returns the value of one series (name and labels exactly as exposed, labels
// in alphabetical order), or 0 when absent.
func metricValue(t testing.TB, m *metrics.Metrics, series string) float64 {
	t.Helper()
	for _, line := range strings.Split(scrape(t, m), "\n") {
		if rest, ok := strings.CutPrefix(line, series+" "); ok {
			v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			if err != nil {
				t.Fatalf("series %s: %v", series, err)
			}
			return v
		}
	}
	return 0
}

func TestDecideCacheSemantics(t *testing.T) {
	type step struct {
		do        func(e *gateEnv, img policy.Image) // before the decision
		wantAllow bool
		wantCalls int64 // evaluator calls so far
	}
	good := map[string]string{"build.link": "good"}
	bad := map[string]string{"build.link": "bad"}
	tests := []struct {
		name  string
		eval  *fakeEval
		files map[string]string
		steps []step
	}{
		{"hit", &fakeEval{}, good, []step{
			{wantAllow: true, wantCalls: 1},
			{wantAllow: true, wantCalls: 1},
			{wantAllow: true, wantCalls: 1},
		}},
		{"allow TTL expires", &fakeEval{}, good, []step{
			{wantAllow: true, wantCalls: 1},
			{do: func(e *gateEnv, _ policy.Image) { e.clock.Advance(9 * time.Minute) }, wantAllow: true, wantCalls: 1},
			{do: func(e *gateEnv, _ policy.Image) { e.clock.Advance(2 * time.Minute) }, wantAllow: true, wantCalls: 2},
		}},
		{"deny TTL is shorter", &fakeEval{}, bad, []step{
			{wantCalls: 1},
			{do: func(e *gateEnv, _ policy.Image) { e.clock.Advance(20 * time.Second) }, wantCalls: 1},
			{do: func(e *gateEnv, _ policy.Image) { e.clock.Advance(11 * time.Second) }, wantCalls: 2},
		}},
		{"new generation invalidates", &fakeEval{}, good, []step{
			{wantAllow: true, wantCalls: 1},
			{do: func(e *gateEnv, _ policy.Image) { e.setGeneration(2) }, wantAllow: true, wantCalls: 2},
			{wantAllow: true, wantCalls: 2},
		}},
		{"evidence change invalidates", &fakeEval{}, bad, []step{
			{wantCalls: 1},
			{do: func(e *gateEnv, img policy.Image) {
				writeEvidence(e.t, e.nodeDir, img.Digests[0], good)
				// Pre-verification (an image event) re-reads the evidence; the hook then
				// uses the new version's key.
				if _, err := e.gate.Preverify(context.Background(), img); err != nil {
					e.t.Fatal(err)
				}
			}, wantAllow: true, wantCalls: 2},
			{wantAllow: true, wantCalls: 2},
		}},
		{"not cacheable", &fakeEval{noCache: true}, good, []step{
			{wantAllow: true, wantCalls: 1},
			{wantAllow: true, wantCalls: 2},
		}},
		{"ValidUntil in the past", &fakeEval{validUntil: time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)}, good, []step{
			{wantAllow: true, wantCalls: 1},
			{wantAllow: true, wantCalls: 2},
		}},
		{"ValidUntil bounds the TTL", &fakeEval{validUntil: newFakeClock().Now().Add(time.Minute)}, good, []step{
			{wantAllow: true, wantCalls: 1},
			{do: func(e *gateEnv, _ policy.Image) { e.clock.Advance(59 * time.Second) }, wantAllow: true, wantCalls: 1},
			{do: func(e *gateEnv, _ policy.Image) { e.clock.Advance(2 * time.Second) }, wantAllow: true, wantCalls: 2},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newGateEnv(t, tt.eval)
			img := testImage("api")
			writeEvidence(t, e.nodeDir, img.Digests[0], tt.files)
			for i, s := range tt.steps {
				if s.do != nil {
					s.do(e, img)
				}
				d := e.decide(img)
				e.settle()
				if d.Allowed != s.wantAllow {
					t.Fatalf("step %d: allowed = %v, want %v (%s)", i, d.Allowed, s.wantAllow, d.Message)
				}
				if got := tt.eval.calls.Load(); got != s.wantCalls {
					t.Fatalf("step %d: %d evaluations, want %d", i, got, s.wantCalls)
				}
			}
		})
	}
}

func TestDecideCacheCountsHitsAndMisses(t *testing.T) {
	e := newGateEnv(t, &fakeEval{})
	img := testImage("api")
	writeEvidence(t, e.nodeDir, img.Digests[0], map[string]string{"a.link": "good"})
	for range 3 {
		e.decide(img)
	}
	if hits := metricValue(t, e.metrics, "tollgate_cache_hits_total"); hits != 2 {
		t.Errorf("cache hits = %v, want 2", hits)
	}
	if misses := metricValue(t, e.metrics, "tollgate_cache_misses_total"); misses != 1 {
		t.Errorf("cache misses = %v, want 1", misses)
	}
	if n := metricValue(t, e.metrics, "tollgate_cache_entries"); n != 1 {
		t.Errorf("cache entries = %v, want 1", n)
	}
	if n := metricValue(t, e.metrics, `tollgate_decisions_total{mode="enforce",reason="none",result="verified"}`); n != 3 {
		t.Errorf("verified decisions = %v, want 3", n)
	}
}

// A decision made for one digest set is never served for another with the same config
// and reference (the digest set is part of the key, checked exactly).
func TestDecideKeyIncludesDigestSet(t *testing.T) {
	e := newGateEnv(t, &fakeEval{})
	img := testImage("api")
	writeEvidence(t, e.nodeDir, img.Digests[0], map[string]string{"a.link": "good"})
	if d := e.decide(img); !d.Allowed {
		t.Fatal(d.Message)
	}
	other := img
	other.Digests = []string{digestOf("another manifest")}
	e.fetcher.set(other.Digests[0], nil, nil)
	if d := e.decide(other); d.Allowed {
		t.Fatalf("a verdict for another digest set was reused: %s", d.Message)
	}
}

func TestCoalescing(t *testing.T) {
	eval := &fakeEval{delay: 20 * time.Millisecond}
	e := newGateEnv(t, eval)
	var imgs []policy.Image
	for i := range 10 {
		img := testImage("app" + strconv.Itoa(i))
		writeEvidence(t, e.nodeDir, img.Digests[0], map[string]string{"build.link": "good"})
		imgs = append(imgs, img)
	}
	var wg sync.WaitGroup
	start := make(chan struct{})
	errs := make(chan string, 1000)
	for i := range 1000 {
		wg.Go(func() {
			<-start
			img := imgs[i%10]
			var d policy.Decision
			if i%2 == 0 {
				d = e.decide(img)
			} else {
				var err error
				if d, err = e.gate.Preverify(context.Background(), img); err != nil {
					errs <- err.Error()
					return
				}
			}
			if !d.Allowed {
				errs <- d.Message
			}
		})
	}
	close(start)
	wg.Wait()
	close(errs)
	for msg := range errs {
		t.Fatalf("a caller was denied: %s", msg)
	}
	if got := eval.calls.Load(); got != 10 {
		t.Fatalf("1000 concurrent checks of 10 images: %d evaluations, want exactly 10", got)
	}
}

func TestDeadlineDeniesAndCachesNothing(t *testing.T) {
	eval := &fakeEval{delay: 300 * time.Millisecond}
	e := newGateEnv(t, eval)
	img := testImage("slow")
	writeEvidence(t, e.nodeDir, img.Digests[0], map[string]string{"build.link": "good"})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	d := e.gate.Decide(ctx, policy.Request{Image: img, Namespace: "ns", Pod: "pod", Container: "c"})
	if d.Allowed || !strings.Contains(d.Message, "hook deadline") {
		t.Fatalf("slow verification: got allowed=%v %q, want a deadline denial", d.Allowed, d.Message)
	}
	if n := e.gate.CacheLen(); n != 0 {
		t.Fatalf("the deadline denial was cached (%d entries)", n)
	}
	if n := metricValue(t, e.metrics, `tollgate_decisions_total{mode="enforce",reason="deadline_exceeded",result="denied"}`); n != 1 {
		t.Errorf("deadline denials counted %v, want 1", n)
	}
	// The verification went on in the background; its verdict serves the next hook.
	waitFor(t, func() bool { return e.gate.CacheLen() == 1 })
	if d := e.decide(img); !d.Allowed {
		t.Fatalf("after the background verification: %s", d.Message)
	}
	if got := eval.calls.Load(); got != 1 {
		t.Errorf("%d evaluations, want 1", got)
	}
}

// A request the runtime withdraws (containerd cancels the hook) is denied, saying so.
func TestWithdrawnRequestDenies(t *testing.T) {
	e := newGateEnv(t, &fakeEval{delay: 300 * time.Millisecond})
	img := testImage("slow")
	writeEvidence(t, e.nodeDir, img.Digests[0], map[string]string{"build.link": "good"})
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(10*time.Millisecond, cancel)
	d := e.gate.Decide(ctx, policy.Request{Image: img})
	if d.Allowed || !strings.Contains(d.Message, "withdrew the request") {
		t.Fatalf("withdrawn request: allowed=%v %q", d.Allowed, d.Message)
	}
}

func TestFetchErrorIsNotCached(t *testing.T) {
	eval := &fakeEval{}
	e := newGateEnv(t, eval)
	img := testImage("remote")
	e.fetcher.set(img.Digests[0], nil, errRegistryDown)

	if _, err := e.gate.Preverify(context.Background(), img); err == nil || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("Preverify with the registry down: err = %v", err)
	}
	d := e.decide(img)
	if d.Allowed || !strings.Contains(d.Message, "not on the node") {
		t.Fatalf("hook with no local evidence: allowed=%v %q", d.Allowed, d.Message)
	}
	if n := e.gate.CacheLen(); n != 0 {
		t.Fatalf("%d decisions cached after a registry failure, want 0", n)
	}
	waitFor(t, func() bool { return e.gate.idle() })
	if n := metricValue(t, e.metrics, `tollgate_registry_requests_total{outcome="error"}`); n < 2 {
		t.Errorf("registry errors counted %v, want ≥ 2", n)
	}

	// The registry recovers: the next call retries at once, and the verdict is cached.
	e.fetcher.set(img.Digests[0], map[string][]byte{"prov.dsse.json": []byte("good")}, nil)
	before := e.fetcher.count()
	d, err := e.gate.Preverify(context.Background(), img)
	if err != nil || !d.Allowed {
		t.Fatalf("Preverify after recovery: %v %q", err, d.Message)
	}
	if e.fetcher.count() != before+1 {
		t.Errorf("the failed fetch was not retried")
	}
	if d := e.decide(img); !d.Allowed {
		t.Fatalf("hook after pre-verification: %s", d.Message)
	}
	if n := metricValue(t, e.metrics, "tollgate_cache_hits_total"); n != 1 {
		t.Errorf("cache hits %v, want 1", n)
	}
}

// With no pre-verification in flight (a node that starts with images on it, a full
// queue), the hook starts one and waits for it: the first create is not refused.
func TestHookStartsPreverificationAndWaits(t *testing.T) {
	e := newGateEnv(t, &fakeEval{})
	img := testImage("pulled")
	e.fetcher.set(img.Digests[0], map[string][]byte{"prov.dsse.json": []byte("good")}, nil)
	if d := e.decide(img); !d.Allowed || d.Outcome != policy.Verified {
		t.Fatalf("first create, evidence in the registry only: allowed=%v %q", d.Allowed, d.Message)
	}
	if n := e.fetcher.count(); n != 1 {
		t.Errorf("%d registry fetches, want 1", n)
	}
	if d := e.decide(img); !d.Allowed {
		t.Fatalf("second create: %s", d.Message)
	}
	if n := metricValue(t, e.metrics, "tollgate_cache_hits_total"); n != 1 {
		t.Errorf("cache hits %v, want 1 (the second create)", n)
	}
}

func TestMissingEvidenceAuditMode(t *testing.T) {
	e := newGateEnv(t, &fakeEval{mode: policy.Audit})
	img := testImage("audited")
	e.fetcher.set(img.Digests[0], nil, errRegistryDown)
	d := e.decide(img)
	if !d.Allowed || d.Outcome != policy.AuditFail {
		t.Fatalf("audit mode without evidence: allowed=%v outcome=%s", d.Allowed, d.Outcome)
	}
	if n := metricValue(t, e.metrics, `tollgate_decisions_total{mode="audit",reason="evidence_pending",result="audit_fail"}`); n != 1 {
		t.Errorf("audit failure counted %v, want 1", n)
	}
	if n := metricValue(t, e.metrics, "intoto_missing_attestations_total"); n < 1 {
		t.Errorf("missing attestations counted %v, want ≥ 1", n)
	}
}

func TestOutcomesCounted(t *testing.T) {
	tests := []struct {
		name   string
		img    policy.Image
		files  map[string]string
		series string
		allow  bool
	}{
		{"exempt", imageIn("exempt", "x"), nil, `tollgate_decisions_total{mode="enforce",reason="none",result="exempt"}`, true},
		{"break-glass", imageIn("glass", "x"), map[string]string{"a.link": "bad"}, `tollgate_decisions_total{mode="enforce",reason="bad_signature",result="break_glass"}`, true},
		{"denied", testImage("x"), map[string]string{"a.link": "bad"}, `tollgate_decisions_total{mode="enforce",reason="bad_signature",result="denied"}`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newGateEnv(t, &fakeEval{})
			if tt.files != nil {
				writeEvidence(t, e.nodeDir, tt.img.Digests[0], tt.files)
			}
			for range 2 {
				if d := e.decide(tt.img); d.Allowed != tt.allow {
					t.Fatalf("allowed = %v, want %v (%s)", d.Allowed, tt.allow, d.Message)
				}
			}
			if n := metricValue(t, e.metrics, tt.series); n != 2 {
				t.Errorf("%s = %v, want 2", tt.series, n)
			}
		})
	}
}

func TestNoPolicyDenies(t *testing.T) {
	e := newGateEnv(t, &fakeEval{})
	e.snap.Store(nil)
	d := e.decide(testImage("x"))
	if d.Allowed || !strings.Contains(d.Message, "no policy set is loaded") {
		t.Fatalf("no policy: allowed=%v %q", d.Allowed, d.Message)
	}
	if _, err := e.gate.Preverify(context.Background(), testImage("x")); err == nil {
		t.Fatal("Preverify without policies: no error")
	}
}

func TestUnreadableEvidenceDeniesUncached(t *testing.T) {
	e := newGateEnv(t, &fakeEval{})
	img := testImage("huge")
	writeEvidence(t, e.nodeDir, img.Digests[0], map[string]string{"big.link": strings.Repeat("x", 17<<20)})
	d := e.decide(img)
	if d.Allowed || !strings.Contains(d.Message, "over the limit") {
		t.Fatalf("oversized evidence: allowed=%v %q", d.Allowed, d.Message)
	}
	if e.gate.CacheLen() != 0 {
		t.Fatal("an infrastructure error was cached")
	}
	// In audit mode the same failure allows and reports.
	ea := newGateEnv(t, &fakeEval{mode: policy.Audit})
	writeEvidence(t, ea.nodeDir, img.Digests[0], map[string]string{"big.link": strings.Repeat("x", 17<<20)})
	if d := ea.decide(img); !d.Allowed || d.Outcome != policy.AuditFail {
		t.Fatalf("audit mode, unreadable evidence: allowed=%v outcome=%s", d.Allowed, d.Outcome)
	}
}

// The node directory is searched before the disk cache, and a source that verifies stops
// the search even when an earlier one failed.
func TestSourcesInOrder(t *testing.T) {
	e := newGateEnv(t, &fakeEval{})
	img := testImage("ordered")
	writeEvidence(t, e.nodeDir, img.Digests[0], map[string]string{"a.link": "bad"})
	writeCached(t, e.cacheDir, img.Repository, img.Digests[0], map[string]string{"a.link": "good"})
	if d := e.decide(img); !d.Allowed {
		t.Fatalf("the disk cache verifies: %s", d.Message)
	}
}

func waitFor(t testing.TB, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached in 5s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

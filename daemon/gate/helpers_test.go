package gate

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"tollgate.dev/tollgate/daemon/evidence"
	"tollgate.dev/tollgate/daemon/metrics"
	"tollgate.dev/tollgate/daemon/policystore"
	"tollgate.dev/tollgate/policy"
	"tollgate.dev/tollgate/policy/reason"
)

// fakeEval decides by evidence content, and counts how often it was asked:
//   - a file containing "good" verifies;
//   - a file containing "bad" fails with a bad signature;
//   - no evidence fails with missing evidence;
//   - repositories starting with "exempt/" are exempt; "glass/" get break-glass on failure.
//
// Failures are denials in enforce mode, audit failures in audit mode.
type fakeEval struct {
	mode       policy.Mode
	delay      time.Duration
	noCache    bool
	validUntil time.Time
	calls      atomic.Int64
	running    atomic.Int64 // evaluations under way
	peak       atomic.Int64 // most evaluations ever under way at once
	expiries   map[string]time.Time
}

func (f *fakeEval) Evaluate(req policy.Request, ev policy.Evidence, now time.Time) policy.Decision {
	f.calls.Add(1)
	if n := f.running.Add(1); n > f.peak.Load() {
		f.peak.Store(n) // racy max: good enough to see a bound broken by several
	}
	defer f.running.Add(-1)
	if f.delay > 0 {
		time.Sleep(f.delay)
	}
	mode := f.mode
	if mode == "" {
		mode = policy.Enforce
	}
	if strings.HasPrefix(req.Image.Repository, "exempt/") {
		return policy.Decision{Allowed: true, Outcome: policy.Exempt, Mode: policy.Enforce, Cacheable: true, Message: "exempt"}
	}
	d := policy.Decision{Mode: mode, Policy: "p", Cacheable: !f.noCache, ValidUntil: f.validUntil}
	var r *reason.Error
	switch {
	case hasContent(ev, "good"):
		d.Allowed, d.Outcome, d.Message = true, policy.Verified, "verified"
		return d
	case hasContent(ev, "bad"):
		r = reason.New(reason.BadSignature, "bad signature")
	default:
		r = reason.New(reason.MissingEvidence, "no evidence")
	}
	d.Reasons = []*reason.Error{r}
	if mode == policy.Audit {
		d.Allowed, d.Outcome, d.Message = true, policy.AuditFail, "audit: "+r.Error()
	} else {
		d.Outcome, d.Message = policy.Denied, "denied: "+r.Error()
	}
	if strings.HasPrefix(req.Image.Repository, "glass/") {
		d.Allowed, d.Outcome, d.Cacheable = true, policy.BreakGlass, false
	}
	return d
}

func (f *fakeEval) LayoutExpiries() map[string]time.Time { return f.expiries }

func hasContent(ev policy.Evidence, s string) bool {
	for _, b := range ev.Files {
		if strings.Contains(string(b), s) {
			return true
		}
	}
	return false
}

func digestOf(s string) string {
	h := sha256.Sum256([]byte(s))
	return "sha256:" + hex.EncodeToString(h[:])
}

func testImage(name string) policy.Image {
	return policy.Image{
		Ref:          "registry.test/" + name + ":v1",
		Repository:   "registry.test/" + name,
		ConfigDigest: digestOf("config-" + name),
		Digests:      []string{digestOf("manifest-" + name)},
	}
}

func imageIn(repo, name string) policy.Image {
	img := testImage(name)
	img.Repository = repo + "/" + name
	img.Ref = img.Repository + ":v1"
	return img
}

// writeEvidence puts files for digest into an evidence tree rooted at root.
func writeEvidence(t testing.TB, root, digest string, files map[string]string) {
	t.Helper()
	dir := filepath.Join(root, strings.Replace(digest, ":", "/", 1))
	for name, data := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// writeCached puts files for digest, as fetched through repo, into the disk cache rooted at
// root (the layout of the evidence package documentation).
func writeCached(t testing.TB, root, repo, digest string, files map[string]string) {
	t.Helper()
	h := sha256.Sum256([]byte(repo))
	writeEvidence(t, filepath.Join(root, hex.EncodeToString(h[:])), digest, files)
}

// fakeClock is a settable time source.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// fakeFetcher serves evidence from a map, or fails.
type fakeFetcher struct {
	mu     sync.Mutex
	files  map[string]map[string][]byte // digest → files
	byRepo map[string]map[string][]byte // repo + "@" + digest → files, before files
	err    error
	calls  int
	delay  time.Duration
}

func (f *fakeFetcher) Fetch(ctx context.Context, repo string, digests ...string) (map[string][]byte, error) {
	f.mu.Lock()
	f.calls++
	err, delay := f.err, f.delay
	out := map[string][]byte{}
	for _, d := range digests {
		files, ok := f.byRepo[repo+"@"+d]
		if !ok {
			files = f.files[d]
		}
		for n, b := range files {
			out[n] = b
		}
	}
	f.mu.Unlock()
	if delay > 0 {
		time.Sleep(delay)
	}
	if err != nil {
		return nil, err
	}
	return out, nil
}

func (f *fakeFetcher) set(digest string, files map[string][]byte, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.files == nil {
		f.files = map[string]map[string][]byte{}
	}
	if files != nil {
		f.files[digest] = files
	}
	f.err = err
}

// setIn serves files for digest through repo only.
func (f *fakeFetcher) setIn(repo, digest string, files map[string][]byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.byRepo == nil {
		f.byRepo = map[string]map[string][]byte{}
	}
	f.byRepo[repo+"@"+digest] = files
}

func (f *fakeFetcher) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

var errRegistryDown = errors.New("registry.test: connection refused")

// gateEnv is a Gate over temporary evidence directories and a fake evaluator.
type gateEnv struct {
	t        testing.TB
	eval     *fakeEval
	clock    *fakeClock
	nodeDir  string
	cacheDir string
	fetcher  *fakeFetcher
	metrics  *metrics.Metrics
	gate     *Gate
	snap     atomic.Pointer[policystore.Snapshot]
	hook     time.Duration // the hook's deadline in decide (the plugin sets it on ctx)
}

func (e *gateEnv) Current() *policystore.Snapshot { return e.snap.Load() }

// setGeneration publishes the evaluator under a new generation.
func (e *gateEnv) setGeneration(gen uint64) {
	e.snap.Store(&policystore.Snapshot{Generation: gen, Policies: e.eval})
}

func newGateEnv(t testing.TB, eval *fakeEval, opts ...Option) *gateEnv {
	t.Helper()
	e := &gateEnv{t: t, eval: eval, clock: newFakeClock(), nodeDir: t.TempDir(), cacheDir: t.TempDir(),
		fetcher: &fakeFetcher{}, metrics: metrics.New("test"), hook: time.Second}
	e.setGeneration(1)
	cache := evidence.NewCache(e.cacheDir, evidence.Limits{})
	base := []Option{
		WithEvidenceSources(evidence.NewDir("node evidence directory", e.nodeDir, evidence.Limits{}), cache),
		WithRegistry(evidence.NewRegistry(e.fetcher, cache, e.metrics.RegistryRequest)),
		WithClock(e.clock.Now),
		WithMetrics(e.metrics),
		WithTTL(10*time.Minute, 30*time.Second),
	}
	e.gate = New(e, append(base, opts...)...)
	t.Cleanup(e.settle) // registered after TempDir, so it runs before the dirs are removed
	return e
}

// settle waits until the gate's background pre-verifications have ended, so that a test
// counts evaluations at a quiet point and no goroutine writes into its temp dirs after it.
func (e *gateEnv) settle() {
	e.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !e.gate.idle() {
		if time.Now().After(deadline) {
			e.t.Fatal("background pre-verification did not end within 10s")
		}
		time.Sleep(time.Millisecond)
	}
}

func (e *gateEnv) decide(img policy.Image) policy.Decision {
	ctx, cancel := context.WithTimeout(context.Background(), e.hook) // the plugin sets it
	defer cancel()
	return e.gate.Decide(ctx, policy.Request{Image: img, Namespace: "ns", Pod: "pod", Container: "c"})
}

func writeFile(t testing.TB, p, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// fakeLoad accepts any directory whose files do not contain "broken".
func fakeLoad(files map[string][]byte, gen uint64) (policystore.Evaluator, error) {
	for name, b := range files {
		if strings.Contains(string(b), "broken") {
			return nil, errors.New(name + ": line 1: broken policy")
		}
	}
	return &fakeEval{}, nil
}

// idle reports whether no verification, pre-verification or fetch is running (tests).
func (g *Gate) idle() bool {
	return g.verifies.running() == 0 && g.preverifies.running() == 0 && g.fetches.running() == 0
}

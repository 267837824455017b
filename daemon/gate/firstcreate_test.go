package gate

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"tollgate.dev/tollgate/daemon/audit"
	"tollgate.dev/tollgate/policy"
)

// auditLog keeps every audit entry (an AuditSink).
type auditLog struct {
	mu      sync.Mutex
	entries []audit.Entry
}

func (a *auditLog) Log(e audit.Entry) bool {
	a.mu.Lock()
	a.entries = append(a.entries, e)
	a.mu.Unlock()
	return true
}

// count returns the entries on path for the image content config.
func (a *auditLog) count(path, config string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	n := 0
	for _, e := range a.entries {
		if e.Path == path && e.Request.Image.ConfigDigest == config {
			n++
		}
	}
	return n
}

func slowFetch(e *gateEnv, d time.Duration) {
	e.fetcher.mu.Lock()
	e.fetcher.delay = d
	e.fetcher.mu.Unlock()
}

// The first create right after a pull: the pull's pre-verification is still fetching when
// the hook asks; the hook waits for it and answers with its verdict (issue 16).
func TestHookWaitsForThePullsPreverification(t *testing.T) {
	log := &auditLog{}
	e := newGateEnv(t, &fakeEval{}, WithAudit(log))
	img := testImage("pulled")
	e.fetcher.set(img.Digests[0], map[string][]byte{"prov.dsse.json": []byte("good")}, nil)
	slowFetch(e, 100*time.Millisecond) // a registry some way off; well within the 1s deadline
	pulled := make(chan error, 1)
	go func() { _, err := e.gate.Preverify(context.Background(), img); pulled <- err }()
	waitFor(t, func() bool { return e.gate.preverifies.running() == 1 })

	d := e.decide(img)
	if !d.Allowed || d.Outcome != policy.Verified {
		t.Fatalf("first create after the pull: allowed=%v %q", d.Allowed, d.Message)
	}
	if err := <-pulled; err != nil {
		t.Fatal(err)
	}
	if n := e.fetcher.count(); n != 1 {
		t.Errorf("%d registry fetches, want 1 (the hook joins the pull's)", n)
	}
	if n := log.count(PathPreverify, img.ConfigDigest); n != 1 {
		t.Errorf("%d pre-verification records, want 1", n)
	}
	if n := metricValue(t, e.metrics, `tollgate_decisions_total{mode="enforce",reason="none",result="verified"}`); n != 1 {
		t.Errorf("verified hook decisions counted %v, want 1", n)
	}
}

// An unsigned image pulled just now is refused by its verdict, not as "pending": the hook
// waited for the fetch that found nothing.
func TestHookWaitsAndRefusesUnsigned(t *testing.T) {
	e := newGateEnv(t, &fakeEval{})
	img := testImage("unsigned")
	e.fetcher.set(img.Digests[0], nil, nil)
	slowFetch(e, 50*time.Millisecond)
	go func() { _, _ = e.gate.Preverify(context.Background(), img) }()
	waitFor(t, func() bool { return e.gate.preverifies.running() == 1 })
	d := e.decide(img)
	if d.Allowed || d.Outcome != policy.Denied || !strings.Contains(d.Message, "no evidence") || strings.Contains(d.Message, "not on the node yet") {
		t.Fatalf("unsigned image: allowed=%v outcome=%s %q, want the verdict", d.Allowed, d.Outcome, d.Message)
	}
	if n := metricValue(t, e.metrics, `tollgate_decisions_total{mode="enforce",reason="missing_evidence",result="denied"}`); n != 1 {
		t.Errorf("missing-evidence denials counted %v, want 1", n)
	}
	waitFor(t, e.gate.idle)
	if d := e.decide(img); d.Allowed {
		t.Fatal("unsigned image allowed on the second create")
	}
}

// The hook waits no longer than its caller's deadline (the one deadline the plugin sets),
// and answers with how long the fetch has run.
func TestHookWaitBoundedByContext(t *testing.T) {
	e := newGateEnv(t, &fakeEval{})
	e.hook = time.Minute
	img := testImage("far")
	e.fetcher.set(img.Digests[0], map[string][]byte{"prov.dsse.json": []byte("good")}, nil)
	slowFetch(e, time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	d := e.gate.Decide(ctx, policy.Request{Image: img})
	if d.Allowed || !strings.Contains(d.Message, "has been fetching it from the registry for") {
		t.Fatalf("allowed=%v %q, want pending with the time taken", d.Allowed, d.Message)
	}
	if n := e.gate.CacheLen(); n != 0 {
		t.Errorf("the pending answer was cached (%d entries)", n)
	}
	// The pre-verification went on; its verdict serves the retry.
	waitFor(t, e.gate.idle)
	if d := e.decide(img); !d.Allowed {
		t.Fatalf("retry after the pre-verification: %s", d.Message)
	}
}

// containerd records one pull under three names, and announces each: the content is
// pre-verified once (one fetch, one audit record), and every name's create is served from
// that verdict. A new policy generation pre-verifies it again, once.
func TestOnePreverificationPerContent(t *testing.T) {
	log := &auditLog{}
	eval := &fakeEval{}
	e := newGateEnv(t, eval, WithAudit(log))
	img := testImage("app")
	e.fetcher.set(img.Digests[0], map[string][]byte{"prov.dsse.json": []byte("good")}, nil)
	slowFetch(e, 20*time.Millisecond)
	names := []string{img.Ref, img.Repository + "@" + img.Digests[0], img.Repository + ":latest"}
	as := func(ref string) policy.Image { n := img; n.Ref = ref; return n }

	var wg sync.WaitGroup
	for _, ref := range names { // the three image events, at once
		wg.Go(func() {
			if d, err := e.gate.Preverify(context.Background(), as(ref)); err != nil || !d.Allowed {
				t.Errorf("Preverify %s: %v %q", ref, err, d.Message)
			}
		})
	}
	wg.Wait()
	for _, ref := range names { // late events (a re-pull) find the verdict
		if _, err := e.gate.Preverify(context.Background(), as(ref)); err != nil {
			t.Fatal(err)
		}
	}
	if n := e.fetcher.count(); n != 1 {
		t.Errorf("%d registry fetches, want 1", n)
	}
	if n := log.count(PathPreverify, img.ConfigDigest); n != 1 {
		t.Errorf("%d pre-verification records for one content, want 1", n)
	}
	if n := eval.calls.Load(); n > 2 {
		t.Errorf("%d evaluations, want at most 2 (no evidence, then the fetched evidence)", n)
	}
	for _, ref := range names {
		if d := e.decide(as(ref)); !d.Allowed {
			t.Fatalf("create by %s: %s", ref, d.Message)
		}
	}
	if n := metricValue(t, e.metrics, "tollgate_cache_hits_total"); n != float64(len(names)) {
		t.Errorf("cache hits %v, want %d: every name shares the content's verdict", n, len(names))
	}

	e.setGeneration(2)
	for _, ref := range names {
		if _, err := e.gate.Preverify(context.Background(), as(ref)); err != nil {
			t.Fatal(err)
		}
	}
	if n := log.count(PathPreverify, img.ConfigDigest); n != 2 {
		t.Errorf("%d pre-verification records after a policy reload, want 2 (one per generation)", n)
	}
}

// Without a repository the policy reads the name, so names stay apart in the key.
func TestImageKeyKeepsNameWithoutRepository(t *testing.T) {
	a := policy.Image{Ref: "registry.test/a:v1", ConfigDigest: digestOf("c"), Digests: []string{digestOf("m")}}
	b := a
	b.Ref = "registry.test/b:v1"
	if makeImageKey(&a, 1) == makeImageKey(&b, 1) {
		t.Error("two names without a repository share a key")
	}
	a.Repository, b.Repository = "registry.test/a", "registry.test/a"
	if makeImageKey(&a, 1) != makeImageKey(&b, 1) {
		t.Error("two names of one repository's content have different keys")
	}
}

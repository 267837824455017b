package gate

import (
	"context"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"tollgate.dev/tollgate/daemon/evidence"
	"tollgate.dev/tollgate/daemon/policystore"
	"tollgate.dev/tollgate/daemon/policytest"
	"tollgate.dev/tollgate/policy"
	"tollgate.dev/tollgate/policy/keys"
)

// orderLog records the order of background calls across fakes.
type orderLog struct {
	mu     sync.Mutex
	events []string
}

func (o *orderLog) add(e string) {
	o.mu.Lock()
	o.events = append(o.events, e)
	o.mu.Unlock()
}

func (o *orderLog) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return strings.Join(o.events, ",")
}

type fakeImageLister struct {
	log   *orderLog
	imgs  []policy.Image
	calls atomic.Int64
}

func (l *fakeImageLister) List(context.Context) ([]policy.Image, error) {
	l.calls.Add(1)
	l.log.add("images")
	return l.imgs, nil
}

type fakeContainerLister struct {
	log  *orderLog
	reqs []policy.Request
}

func (l *fakeContainerLister) RunningContainers(context.Context) ([]policy.Request, error) {
	l.log.add("containers")
	return l.reqs, nil
}

// An image already on the node that a reloaded policy newly covers is pre-verified under
// the new generation (its evidence fetched), so its first create after the reload is
// allowed from the cache; the running containers are re-checked after the images are
// queued. Start-up (generation 1) does not re-check: the plugin audits what runs.
func TestReloadPreverifiesNodeImages(t *testing.T) {
	dir := t.TempDir()
	ci, err := keys.Generate("ed25519", 0)
	if err != nil {
		t.Fatal(err)
	}
	// Generation 1: no ImagePolicy, unmatched images are allowed.
	writeFile(t, filepath.Join(dir, "defaults.yaml"), `apiVersion: tollgate.dev/v1alpha1
kind: NodeDefaults
metadata: {name: node}
spec:
  unmatched: allow
`)
	legacy := imageIn("registry.test/acme", "legacy")
	fetcher := &fakeFetcher{}
	fetcher.set(legacy.Digests[0], map[string][]byte{"att.dsse.json": policytest.SignedStatement(t, ci, legacy.Repository, legacy.Digests[0])}, nil)
	store := policystore.New(dir)
	cache := evidence.NewCache(t.TempDir(), evidence.Limits{})
	g := New(store, WithEvidenceSources(cache), WithRegistry(evidence.NewRegistry(fetcher, cache, nil)))
	order := &orderLog{}
	images := &fakeImageLister{log: order, imgs: []policy.Image{legacy}}
	// The image is on the node but runs nowhere yet (pre-pulled): only pre-verification
	// can fetch its evidence before its first container.
	pause := imageIn("registry.test", "pause")
	pre := NewPreverifier(g, images, &fakeContainerLister{log: order, reqs: []policy.Request{{Image: pause, Namespace: "kube-system", Pod: "p", Container: "pause"}}})
	store.OnChange(pre.PolicyChanged)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { pre.Run(ctx) })
	defer func() {
		cancel()
		wg.Wait()
	}()
	if _, err := store.Reload(); err != nil {
		t.Fatal(err)
	}
	pre.preverifyImages(ctx, "start-up") // what the image watcher's first listing does
	waitFor(t, func() bool { return images.calls.Load() == 1 && pre.queueLen() == 0 })
	decide := func() policy.Decision {
		return g.Decide(context.Background(), policy.Request{Image: legacy, Namespace: "prod", Pod: "legacy-1", Container: "app"})
	}
	if dec := decide(); !dec.Allowed || dec.Outcome != policy.Unmatched {
		t.Fatalf("generation 1, no policy for the image: allowed=%v outcome=%s %q", dec.Allowed, dec.Outcome, dec.Message)
	}
	if n := fetcher.count(); n != 0 {
		t.Fatalf("%d registry fetches for an image no policy covers, want 0", n)
	}

	// Generation 2 covers registry.test/acme/*: the image on the node is pre-verified again.
	policytest.PolicyDir(t, dir, ci, policy.Enforce)
	if _, err := store.Reload(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return isCached(g, legacy) })
	if dec := decide(); !dec.Allowed || dec.Outcome != policy.Verified {
		t.Fatalf("first create after the reload: allowed=%v outcome=%s %q", dec.Allowed, dec.Outcome, dec.Message)
	}
	waitFor(t, func() bool { return strings.Count(order.String(), "containers") == 1 })
	if got := order.String(); got != "images,images,containers" {
		t.Errorf("background calls %q, want images,images,containers (start-up listing; after the reload, images then containers)", got)
	}
}

// isCached reports whether the hook would serve img from the cache right now.
func isCached(g *Gate, img policy.Image) bool {
	snap := g.policies.Current()
	ik := makeImageKey(&img, snap.Generation)
	ie, ok := g.index.get(ik.evidenceHash(), img.Repository, img.Digests)
	if !ok {
		return false
	}
	_, ok = g.cache.get(&cacheKey{imageKey: ik, evidence: ie.version}, img.Digests, g.clock().UnixNano())
	return ok
}

// queueLen is the number of images queued or being handed to a worker.
func (p *Preverifier) queueLen() int {
	p.queue.mu.Lock()
	defer p.queue.mu.Unlock()
	return len(p.queue.pending)
}

// Re-queueing after a reload waits for room instead of dropping, and never queues an image
// twice.
func TestPreverifyImagesBoundedAndDeduplicated(t *testing.T) {
	e := newGateEnv(t, &fakeEval{})
	p := NewPreverifier(e.gate, nil, nil)
	a, b := testImage("a"), testImage("b")
	p.PreverifyAsync(a) // already queued: the listing must not queue it again
	p.images = &fakeImageLister{log: &orderLog{}, imgs: []policy.Image{a, b, a, b}}
	p.preverifyImages(context.Background(), "test")
	if n := len(p.queue.ch); n != 2 {
		t.Fatalf("%d images queued, want 2", n)
	}
	// A full queue: a listing waits (and gives up with its context), PreverifyAsync drops.
	for i := range preverifyQueue - 2 {
		p.PreverifyAsync(testImage("fill-" + strings.Repeat("x", i)))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	p.images = &fakeImageLister{log: &orderLog{}, imgs: []policy.Image{testImage("late")}}
	p.preverifyImages(ctx, "test")
	if p.queueLen() != preverifyQueue {
		t.Errorf("%d images pending, want %d (the one that found no room is forgotten)", p.queueLen(), preverifyQueue)
	}
}

package daemon

import (
	"context"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

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
// queued. Start-up (generation 1) lists the images once, and does not re-check.
func TestReloadPreverifiesNodeImages(t *testing.T) {
	root := t.TempDir()
	cfg := DefaultConfig()
	cfg.PolicyDir = filepath.Join(root, "policy")
	cfg.EvidenceDir = filepath.Join(root, "evidence")
	cfg.CacheDir = filepath.Join(root, "cache")
	cfg.AuditLog = ""
	cfg.Listen = "127.0.0.1:0"
	ci, err := keys.Generate("ed25519", 0)
	if err != nil {
		t.Fatal(err)
	}
	// Generation 1: no ImagePolicy, unmatched images are allowed.
	writeFile(t, filepath.Join(cfg.PolicyDir, "defaults.yaml"), `apiVersion: tollgate.dev/v1alpha1
kind: NodeDefaults
metadata: {name: node}
spec:
  unmatched: allow
`)
	legacy := imageIn("registry.test/acme", "legacy")
	fetcher := &fakeFetcher{}
	fetcher.set(legacy.Digests[0], map[string][]byte{"att.dsse.json": signedStatement(t, ci, legacy.Repository, legacy.Digests[0])}, nil)
	d, err := New(cfg, WithFetcher(fetcher), WithWatchOptions(WatchOptions{Debounce: 20 * time.Millisecond, Poll: 100 * time.Millisecond}))
	if err != nil {
		t.Fatal(err)
	}
	order := &orderLog{}
	images := &fakeImageLister{log: order, imgs: []policy.Image{legacy}}
	d.SetImageLister(images)
	// The image is on the node but runs nowhere yet (pre-pulled): only pre-verification
	// can fetch its evidence before its first container.
	pause := imageIn("registry.test", "pause")
	d.SetContainerLister(&fakeContainerLister{log: order, reqs: []policy.Request{{Image: pause, Namespace: "kube-system", Pod: "p", Container: "pause"}}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	defer func() {
		cancel()
		<-done
	}()
	waitFor(t, func() bool { return images.calls.Load() == 1 && d.queueLen() == 0 })
	decide := func() policy.Decision {
		return d.Gate().Decide(context.Background(), policy.Request{Image: legacy, Namespace: "prod", Pod: "legacy-1", Container: "app"})
	}
	if dec := decide(); !dec.Allowed || dec.Outcome != policy.Unmatched {
		t.Fatalf("generation 1, no policy for the image: allowed=%v outcome=%s %q", dec.Allowed, dec.Outcome, dec.Message)
	}
	if n := fetcher.count(); n != 0 {
		t.Fatalf("%d registry fetches for an image no policy covers, want 0", n)
	}

	// Generation 2 covers registry.test/acme/*: the image on the node is pre-verified again.
	realPolicyDir(t, cfg.PolicyDir, ci, policy.Enforce)
	waitFor(t, func() bool { return d.Policies().Current().Generation == 2 })
	waitFor(t, func() bool { return isCached(d.Gate(), legacy) })
	if dec := decide(); !dec.Allowed || dec.Outcome != policy.Verified {
		t.Fatalf("first create after the reload: allowed=%v outcome=%s %q", dec.Allowed, dec.Outcome, dec.Message)
	}
	waitFor(t, func() bool { return strings.Count(order.String(), "containers") == 1 })
	if got := order.String(); got != "images,images,containers" {
		t.Errorf("background calls %q, want images,images,containers (start-up listing; after the reload, images then containers)", got)
	}
}

// queueLen is the number of images queued or being handed to a worker.
func (d *Daemon) queueLen() int {
	d.queue.mu.Lock()
	defer d.queue.mu.Unlock()
	return len(d.queue.pending)
}

// Re-queueing after a reload waits for room instead of dropping, and never queues an image
// twice.
func TestPreverifyImagesBoundedAndDeduplicated(t *testing.T) {
	cfg := DefaultConfig()
	root := t.TempDir()
	cfg.PolicyDir, cfg.EvidenceDir, cfg.CacheDir, cfg.AuditLog = filepath.Join(root, "p"), filepath.Join(root, "e"), filepath.Join(root, "c"), ""
	d, err := New(cfg, WithPolicyLoader(fakeLoad))
	if err != nil {
		t.Fatal(err)
	}
	a, b := testImage("a"), testImage("b")
	d.PreverifyAsync(a) // already queued: the listing must not queue it again
	d.SetImageLister(&fakeImageLister{log: &orderLog{}, imgs: []policy.Image{a, b, a, b}})
	d.preverifyImages(context.Background(), "test")
	if n := len(d.queue.ch); n != 2 {
		t.Fatalf("%d images queued, want 2", n)
	}
	// A full queue: a listing waits (and gives up with its context), PreverifyAsync drops.
	for i := range preverifyQueue - 2 {
		d.PreverifyAsync(testImage("fill-" + strings.Repeat("x", i)))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	d.SetImageLister(&fakeImageLister{log: &orderLog{}, imgs: []policy.Image{testImage("late")}})
	d.preverifyImages(ctx, "test")
	if d.queueLen() != preverifyQueue {
		t.Errorf("%d images pending, want %d (the one that found no room is forgotten)", d.queueLen(), preverifyQueue)
	}
}

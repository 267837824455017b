package gate

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"tollgate.dev/tollgate/daemon/policystore"
	"tollgate.dev/tollgate/policy"
)

// ContainerLister lists the running containers, with their images resolved from
// containerd's stores, for the re-check after a policy reload. daemon/ctrd.Client
// implements it.
type ContainerLister interface {
	RunningContainers(ctx context.Context) ([]policy.Request, error)
}

// ImageLister lists the node's images (with the digests bound to each config, from
// containerd's content store) for pre-verification after a policy reload. daemon/ctrd.Client
// implements it.
type ImageLister interface {
	List(ctx context.Context) ([]policy.Image, error)
}

// Bounds of the work done outside the hook.
const (
	maxRecheck        = 10_000 // running containers re-checked after one reload
	maxListedImages   = 2_000  // images queued after one reload
	preverifyQueue    = 1024   // images waiting for pre-verification
	preverifyWorkers  = 2
	backgroundTimeout = 60 * time.Second
)

// Preverifier does the gate's work outside the NRI hook: it pre-verifies the images
// containerd adds (PreverifyAsync, fed by image events), and after each policy reload it
// pre-verifies every image on the node again under the new policies, then re-checks the
// running containers. Run runs its workers.
type Preverifier struct {
	gate       *Gate
	images     ImageLister
	containers ContainerLister
	log        *zap.Logger
	queue      preverifyQueueState
	recheckCh  chan struct{}
	// base is the policy set the last re-check compared against (start-up's until the
	// first reload): the next re-check reports what changed since.
	base atomic.Pointer[policystore.Snapshot]
}

// NewPreverifier returns a Preverifier for g. images and containers may be nil: then a
// reload neither re-queues the node's images nor re-checks what runs.
func NewPreverifier(g *Gate, images ImageLister, containers ContainerLister) *Preverifier {
	p := &Preverifier{gate: g, images: images, containers: containers, log: g.log, recheckCh: make(chan struct{}, 1)}
	p.queue.init()
	return p
}

// Run runs the pre-verification workers and the re-checker until ctx is done.
func (p *Preverifier) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for range preverifyWorkers {
		wg.Go(func() { p.worker(ctx) })
	}
	wg.Go(func() { p.rechecker(ctx) })
	wg.Wait()
}

// PolicyChanged runs after each new policy generation (the store's OnChange): old
// decisions are already unreachable (their key holds the generation); free them. After a
// reload (not at start-up), the re-checker pre-verifies every image on the node again
// under the new policies, then re-checks what runs.
func (p *Preverifier) PolicyChanged(s *policystore.Snapshot) {
	go p.gate.cache.purge(s.Generation)
	p.base.CompareAndSwap(nil, s) // the first set: what the first reload is compared with
	if s.Generation > 1 {         // generation 1 is start-up: the plugin audits existing containers itself
		select {
		case p.recheckCh <- struct{}{}:
		default: // a re-check is pending already and will see this generation
		}
	}
}

// preverifyQueueState holds images waiting for pre-verification, each at most once.
type preverifyQueueState struct {
	ch      chan queuedImage
	mu      sync.Mutex
	pending map[string]bool
}

func (q *preverifyQueueState) init() {
	q.ch = make(chan queuedImage, preverifyQueue)
	q.pending = map[string]bool{}
}

// queuedImage is an image waiting for pre-verification. One queued by a policy reload's
// pass (pass set) is logged at debug level and counted in the pass's summary line.
type queuedImage struct {
	img  policy.Image
	pass *reloadPass
}

func queueKey(img *policy.Image) string {
	return img.ConfigDigest + "|" + img.Repository + "|" + strings.Join(img.Digests, ",")
}

// PreverifyAsync queues img for pre-verification (fetching its evidence if the node lacks
// it) and returns at once; the same image queued twice is verified once. When the queue is
// full the image is dropped: the first container that needs it starts the fetch anyway.
// It fits daemon/ctrd.Client.Watch's callback.
func (p *Preverifier) PreverifyAsync(img policy.Image) {
	if !p.enqueue(context.Background(), queuedImage{img: img}, false) {
		p.log.Debug("pre-verification queue full; image left to the hook", zap.String("image", img.Name()))
	}
}

// enqueue queues img for the pre-verification workers unless it is queued already. If
// wait, it waits for room until ctx is done; otherwise a full queue drops img. It reports
// whether img is queued.
func (p *Preverifier) enqueue(ctx context.Context, img queuedImage, wait bool) bool {
	k := queueKey(&img.img)
	p.queue.mu.Lock()
	if p.queue.pending[k] {
		p.queue.mu.Unlock()
		return true // queued before, outside the pass: its outcome is not the pass's
	}
	img.pass.add()
	p.queue.pending[k] = true
	p.queue.mu.Unlock()
	if wait {
		select {
		case p.queue.ch <- img:
			return true
		case <-ctx.Done():
		}
	} else {
		select {
		case p.queue.ch <- img:
			return true
		default:
		}
	}
	p.queue.mu.Lock()
	delete(p.queue.pending, k)
	p.queue.mu.Unlock()
	img.pass.end(nil)
	return false
}

func (p *Preverifier) worker(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case q := <-p.queue.ch:
			img := q.img
			p.queue.mu.Lock()
			delete(p.queue.pending, queueKey(&img))
			p.queue.mu.Unlock()
			cctx, cancel := context.WithTimeout(ctx, backgroundTimeout)
			if q.pass != nil {
				cctx = withSummary(cctx)
			}
			_, err := p.gate.Preverify(cctx, img)
			cancel()
			if ctx.Err() != nil {
				err = nil // stopping: not a failure to report
			}
			lvl := zap.WarnLevel
			if q.pass != nil {
				lvl = zap.DebugLevel // counted in the reload's summary line
				q.pass.end(err)
			}
			if err != nil {
				p.log.Log(lvl, "pre-verification failed", zap.String("image", img.Name()),
					zap.Strings("digests", img.Digests), zap.Error(err))
			}
		}
	}
}

// preverifyImages queues every image on the node (at most maxListedImages), waiting for
// room in the queue rather than dropping: it runs outside any hook, at start-up (so that
// the first pod starts are served from the cache) and after each policy reload (an image
// that no policy covered had no evidence fetched; one that a new policy covers needs it
// before its next container starts). why names the occasion in logs.
// Each image's decision (and failure) is logged at debug level: the reload's re-check logs
// one summary line, with the pass it returns.
func (p *Preverifier) preverifyImages(ctx context.Context, why string) *reloadPass {
	pass := &reloadPass{}
	lctx, cancel := context.WithTimeout(ctx, backgroundTimeout)
	imgs, err := p.images.List(lctx)
	cancel()
	if err != nil {
		p.log.Warn("pre-verification: cannot list the node's images", zap.String("after", why), zap.Error(err))
		return pass
	}
	if len(imgs) > maxListedImages {
		p.log.Warn("pre-verification: too many images, queueing the first ones", zap.String("after", why),
			zap.Int("images", len(imgs)), zap.Int("queued", maxListedImages))
		imgs = imgs[:maxListedImages]
	}
	for _, img := range imgs {
		if !p.enqueue(ctx, queuedImage{img: img, pass: pass}, true) {
			return pass // ctx is done
		}
		pass.queued++
	}
	p.log.Debug("pre-verification: images queued", zap.String("after", why), zap.Int("images", len(imgs)))
	return pass
}

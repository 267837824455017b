package daemon

import (
	"context"
	"strings"
	"sync"

	"go.uber.org/zap"

	"tollgate.dev/tollgate/policy"
)

// preverifyQueueState holds images waiting for pre-verification, each at most once.
type preverifyQueueState struct {
	ch      chan policy.Image
	mu      sync.Mutex
	pending map[string]bool
}

func (q *preverifyQueueState) init() {
	q.ch = make(chan policy.Image, preverifyQueue)
	q.pending = map[string]bool{}
}

func queueKey(img *policy.Image) string {
	return img.ConfigDigest + "|" + img.Repository + "|" + strings.Join(img.Digests, ",")
}

// PreverifyAsync queues img for pre-verification (fetching its evidence if the node lacks
// it) and returns at once; the same image queued twice is verified once. When the queue is
// full the image is dropped: the first container that needs it starts the fetch anyway.
// It fits daemon/ctrd.Client.Watch's callback.
func (d *Daemon) PreverifyAsync(img policy.Image) {
	if !d.enqueue(context.Background(), img, false) {
		d.log.Debug("pre-verification queue full; image left to the hook", zap.String("image", img.Ref))
	}
}

// enqueue queues img for the pre-verification workers unless it is queued already. If
// wait, it waits for room until ctx is done; otherwise a full queue drops img. It reports
// whether img is queued.
func (d *Daemon) enqueue(ctx context.Context, img policy.Image, wait bool) bool {
	k := queueKey(&img)
	d.queue.mu.Lock()
	if d.queue.pending[k] {
		d.queue.mu.Unlock()
		return true
	}
	d.queue.pending[k] = true
	d.queue.mu.Unlock()
	if wait {
		select {
		case d.queue.ch <- img:
			return true
		case <-ctx.Done():
		}
	} else {
		select {
		case d.queue.ch <- img:
			return true
		default:
		}
	}
	d.queue.mu.Lock()
	delete(d.queue.pending, k)
	d.queue.mu.Unlock()
	return false
}

func (d *Daemon) preverifyWorker(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case img := <-d.queue.ch:
			d.queue.mu.Lock()
			delete(d.queue.pending, queueKey(&img))
			d.queue.mu.Unlock()
			cctx, cancel := context.WithTimeout(ctx, backgroundTimeout)
			if _, err := d.gate.Preverify(cctx, img); err != nil && ctx.Err() == nil {
				d.log.Warn("pre-verification failed", zap.String("image", img.Ref),
					zap.Strings("digests", img.Digests), zap.Error(err))
			}
			cancel()
		}
	}
}

// preverifyImages queues every image on the node (at most maxStartupImages), waiting for
// room in the queue rather than dropping: it runs outside any hook, at start-up (so that
// the first pod starts are served from the cache) and after each policy reload (an image
// that no policy covered had no evidence fetched; one that a new policy covers needs it
// before its next container starts). why names the occasion in logs.
func (d *Daemon) preverifyImages(ctx context.Context, why string) {
	lctx, cancel := context.WithTimeout(ctx, backgroundTimeout)
	imgs, err := d.images.List(lctx)
	cancel()
	if err != nil {
		d.log.Warn("pre-verification: cannot list the node's images", zap.String("after", why), zap.Error(err))
		return
	}
	if len(imgs) > maxStartupImages {
		d.log.Warn("pre-verification: too many images, queueing the first ones", zap.String("after", why),
			zap.Int("images", len(imgs)), zap.Int("queued", maxStartupImages))
		imgs = imgs[:maxStartupImages]
	}
	for _, img := range imgs {
		if !d.enqueue(ctx, img, true) {
			return // ctx is done
		}
	}
	d.log.Debug("pre-verification: images queued", zap.String("after", why), zap.Int("images", len(imgs)))
}

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
	k := queueKey(&img)
	d.queue.mu.Lock()
	if d.queue.pending[k] {
		d.queue.mu.Unlock()
		return
	}
	d.queue.pending[k] = true
	d.queue.mu.Unlock()
	select {
	case d.queue.ch <- img:
	default:
		d.queue.mu.Lock()
		delete(d.queue.pending, k)
		d.queue.mu.Unlock()
		d.log.Debug("pre-verification queue full; image left to the hook", zap.String("image", img.Ref))
	}
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

// preverifyImages queues the node's images at start-up, so that the first pod starts are
// served from the cache.
func (d *Daemon) preverifyImages(ctx context.Context) {
	lctx, cancel := context.WithTimeout(ctx, backgroundTimeout)
	imgs, err := d.images.List(lctx)
	cancel()
	if err != nil {
		d.log.Warn("start-up pre-verification: cannot list images", zap.Error(err))
		return
	}
	if len(imgs) > maxStartupImages {
		imgs = imgs[:maxStartupImages]
	}
	for _, img := range imgs {
		if ctx.Err() != nil {
			return
		}
		// Wait for room rather than drop: this runs once, outside any hook.
		k := queueKey(&img)
		d.queue.mu.Lock()
		dup := d.queue.pending[k]
		d.queue.pending[k] = true
		d.queue.mu.Unlock()
		if dup {
			continue
		}
		select {
		case d.queue.ch <- img:
		case <-ctx.Done():
			return
		}
	}
}

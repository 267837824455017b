package gate

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// reloadPass follows the pre-verifications a policy reload queued, so that the reload's
// one summary line counts those that failed (a registry down fails every image that needs
// a fetch) instead of logging a line per image.
type reloadPass struct {
	queued int // images queued
	wg     sync.WaitGroup
	errs   atomic.Int64
	first  atomic.Pointer[error]
}

// add counts one image queued for the pass; each add is matched by one end.
func (r *reloadPass) add() {
	if r != nil {
		r.wg.Add(1)
	}
}

// end records how one of the pass's pre-verifications ended (err: an infrastructure
// failure).
func (r *reloadPass) end(err error) {
	if r == nil {
		return
	}
	if err != nil {
		r.errs.Add(1)
		r.first.CompareAndSwap(nil, &err)
	}
	r.wg.Done()
}

// wait waits for the pass's pre-verifications to end, at most until ctx is done or limit
// passes: the summary is logged either way, with what has ended.
func (r *reloadPass) wait(ctx context.Context, limit time.Duration) {
	if r == nil {
		return
	}
	done := make(chan struct{})
	go func() { r.wg.Wait(); close(done) }()
	t := time.NewTimer(limit)
	defer t.Stop()
	select {
	case <-done:
	case <-ctx.Done():
	case <-t.C:
	}
}

// firstErr is the first pre-verification failure of the pass, or nil.
func (r *reloadPass) firstErr() error {
	if r == nil {
		return nil
	}
	if p := r.first.Load(); p != nil {
		return *p
	}
	return nil
}

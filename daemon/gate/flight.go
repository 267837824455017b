package gate

import (
	"fmt"
	"sync"
	"time"
)

// flights coalesces identical work: while a call for a key runs, callers asking for the
// same key wait for it instead of starting their own. The work runs in its own goroutine,
// detached from every caller, so a hook that stops waiting at its deadline leaves the
// verification to finish (and be cached) for the next caller.
type flights[K comparable, V any] struct {
	mu  sync.Mutex
	m   map[K]*flight[V]
	seq uint64
}

type flight[V any] struct {
	done    chan struct{}
	val     V
	seq     uint64
	started time.Time // so that a caller that stops waiting can say how long it has run
}

// do returns the running flight for key, or starts fn as a new one. A flight that began
// before minSeq is not joined: callers that need work to see state they just changed pass
// the seq that mark returned after the change.
func (f *flights[K, V]) do(key K, minSeq uint64, fn func() V, onPanic func(any) V) *flight[V] {
	f.mu.Lock()
	if c, ok := f.m[key]; ok && c.seq >= minSeq {
		f.mu.Unlock()
		return c
	}
	if f.m == nil {
		f.m = make(map[K]*flight[V])
	}
	f.seq++
	c := &flight[V]{done: make(chan struct{}), seq: f.seq, started: time.Now()}
	f.m[key] = c
	f.mu.Unlock()
	go func() {
		defer func() {
			if r := recover(); r != nil {
				c.val = onPanic(r)
			}
			f.mu.Lock()
			if f.m[key] == c {
				delete(f.m, key)
			}
			f.mu.Unlock()
			close(c.done)
		}()
		c.val = fn()
	}()
	return c
}

// join returns the flight running for key, or nil.
func (f *flights[K, V]) join(key K) *flight[V] {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.m[key]
}

// mark returns a sequence number that only flights started from now on reach.
func (f *flights[K, V]) mark() uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.seq + 1
}

func panicError(r any) error { return fmt.Errorf("internal error: %v", r) }

func (f *flights[K, V]) running() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.m)
}

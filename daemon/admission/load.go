package admission

import (
	"context"
	"fmt"
	"sync/atomic"

	"golang.org/x/sync/semaphore"
)

// Bounds on the reviews in flight. A review is held whole while it is decoded and
// checked: its body (up to --max-request-bytes) and the decoded object, which costs a few
// times the body. Without a bound, a burst of large reviews multiplies that.
const (
	// maxConcurrentReviews bounds the reviews decoded and checked at once.
	maxConcurrentReviews = 32
	// maxWaitingReviews bounds the reviews waiting for room; past it one is refused at once.
	maxWaitingReviews = 4 * maxConcurrentReviews
	// reviewMemoryFactor is what one body byte costs while the review is held: the body
	// itself and the decoded AdmissionReview with its object.
	reviewMemoryFactor = 4
	// defaultReviewMemory is the memory all reviews in flight may hold together, at least
	// one review of --max-request-bytes.
	defaultReviewMemory = 64 << 20
)

// errOverloaded: no room for a review before its deadline.
type errOverloaded struct{ reviews, waiting int64 }

func (e errOverloaded) Error() string {
	return fmt.Sprintf("overloaded: %d reviews in flight and %d waiting; the API server applies the webhook's failurePolicy", e.reviews, e.waiting)
}

// loadGate admits reviews within a count and a memory budget, first come first served.
type loadGate struct {
	slots    *semaphore.Weighted
	memory   *semaphore.Weighted
	budget   int64
	maxWait  int64
	inFlight atomic.Int64
	waiting  atomic.Int64
}

func newLoadGate(slots int, budget int64, maxWait int) *loadGate {
	return &loadGate{slots: semaphore.NewWeighted(int64(slots)), memory: semaphore.NewWeighted(budget),
		budget: budget, maxWait: int64(maxWait)}
}

// reviewBudget is the memory budget for a webhook accepting reviews of maxRequest bytes.
func reviewBudget(maxRequest int64) int64 {
	return max(defaultReviewMemory, reviewMemoryFactor*maxRequest)
}

// admit waits for room for a review whose body is at most size bytes, until ctx ends, and
// returns the function that gives the room back. It refuses at once when too many reviews
// already wait.
func (g *loadGate) admit(ctx context.Context, size int64) (func(), error) {
	if g.waiting.Add(1) > g.maxWait {
		g.waiting.Add(-1)
		return nil, g.overloaded()
	}
	defer g.waiting.Add(-1)
	if err := g.slots.Acquire(ctx, 1); err != nil {
		return nil, g.overloaded()
	}
	need := min(reviewMemoryFactor*size, g.budget)
	if err := g.memory.Acquire(ctx, need); err != nil {
		g.slots.Release(1)
		return nil, g.overloaded()
	}
	g.inFlight.Add(1)
	return func() {
		g.inFlight.Add(-1)
		g.memory.Release(need)
		g.slots.Release(1)
	}, nil
}

func (g *loadGate) overloaded() error {
	return errOverloaded{reviews: g.inFlight.Load(), waiting: g.waiting.Load()}
}

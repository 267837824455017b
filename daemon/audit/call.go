package audit

import (
	"context"
	"sync"
)

// Call holds the record of one hook call while it is being decided, so that the one who
// answers the runtime writes it, once, with what the runtime was told. The decider fills
// it; the caller (the NRI plugin) closes it when it answers, and may change what it says:
// a decision that came too late for the runtime was never the runtime's answer.
type Call struct {
	mu     sync.Mutex
	entry  Entry
	filled bool
	closed bool
}

type callKey struct{}

// WithCall returns ctx carrying a fresh Call. A decider that finds it (CallFrom) fills it
// instead of writing its record itself.
func WithCall(ctx context.Context) (context.Context, *Call) {
	c := &Call{}
	return context.WithValue(ctx, callKey{}, c), c
}

// CallFrom returns the Call ctx carries, or nil.
func CallFrom(ctx context.Context) *Call {
	c, _ := ctx.Value(callKey{}).(*Call)
	return c
}

// Fill stores the decider's record of the call. It reports false when the call was already
// answered without it (the caller stopped waiting): the record is then the caller's.
func (c *Call) Fill(e Entry) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return false
	}
	c.entry, c.filled = e, true
	return true
}

// Close returns the decider's record, if it filled one, and refuses later fills.
func (c *Call) Close() (Entry, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	return c.entry, c.filled
}

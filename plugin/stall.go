package plugin

import (
	"context"
	"sync"
	"time"
)

// stallClock notices when tollgated itself did not run: stopped (SIGSTOP, a debugger), or
// starved of CPU. A request containerd sent meanwhile waited unread in the socket, and its
// deadline as ttrpc hands it to the plugin counts only from the moment it was read: only
// the stall tells that containerd's own deadline is nearer, or gone.
type stallClock struct {
	every time.Duration

	mu      sync.Mutex
	last    time.Time // the last tick
	gapEnd  time.Time // when the last stall was noticed
	gapLen  time.Duration
	running bool
}

func newStallClock(every time.Duration) *stallClock { return &stallClock{every: every} }

// run ticks until ctx is done.
func (s *stallClock) run(ctx context.Context) {
	t := time.NewTicker(s.every)
	defer t.Stop()
	s.mu.Lock()
	s.last, s.running = time.Now(), true
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.running = false
		s.mu.Unlock()
	}()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := time.Now()
		s.mu.Lock()
		if gap := now.Sub(s.last); gap > 2*s.every {
			s.gapEnd, s.gapLen = now, gap-s.every
		}
		s.last = now
		s.mu.Unlock()
	}
}

// stalled is how long tollgated did not run just before at: the stall in progress when
// at came (the clock has not ticked since), or one that ended just before it. Zero when the
// clock is not running.
func (s *stallClock) stalled(at time.Time) time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.running {
		return 0
	}
	var d time.Duration
	if gap := at.Sub(s.last) - s.every; gap > s.every {
		d = gap
	}
	if !s.gapEnd.IsZero() && at.Sub(s.gapEnd) <= 2*s.every && s.gapLen > d {
		d = s.gapLen
	}
	return d
}

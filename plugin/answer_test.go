package plugin

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"tollgate.dev/tollgate/daemon/audit"
	"tollgate.dev/tollgate/policy"
)

// recorder collects the records the plugin hands over.
type recorder struct {
	mu   sync.Mutex
	recs []audit.Entry
}

func (r *recorder) answer(e audit.Entry) {
	r.mu.Lock()
	r.recs = append(r.recs, e)
	r.mu.Unlock()
}

func (r *recorder) all() []audit.Entry {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]audit.Entry(nil), r.recs...)
}

// fillingDecider decides like the gate: it fills the call's record instead of writing one.
type fillingDecider struct {
	fakeDecider
	rejected chan bool // one per decision: whether its Fill came after the plugin had answered
}

func (f *fillingDecider) Decide(ctx context.Context, req policy.Request) policy.Decision {
	d := f.fakeDecider.Decide(ctx, req)
	if c := audit.CallFrom(ctx); c != nil {
		ok := c.Fill(audit.Entry{Path: "hook", Request: req, Decision: d, Cached: true, Generation: 7})
		f.rejected <- !ok
	}
	return d
}

// withStall makes the stall clock report that tollgated did not run for d before each
// request: a SIGSTOP the test process cannot undergo itself.
func withStall(d time.Duration) Option {
	return func(p *Plugin) { p.stalled = func(time.Time) time.Duration { return d } }
}

// Every hook call ends in exactly one record of what containerd was told: the decider's
// when it decided in time; the plugin's own when the identity was unknown or the deadline
// passed (the decider's late record is refused); and "no answer" when the answer was ready
// after containerd's deadline, even if the decision allowed.
func TestEveryHookCallRecordedOnce(t *testing.T) {
	slow := func() time.Duration { return 300 * time.Millisecond }
	tests := []struct {
		name        string
		decision    policy.Decision
		delay       func() time.Duration
		resolver    Resolver
		opts        []Option
		wantCreate  bool
		wantOutcome string
		wantDecided string
		wantMsg     string
		wantFill    bool // the decider's record was taken
	}{
		{name: "allowed in time", decision: allow, resolver: fakeResolver{},
			wantCreate: true, wantOutcome: "verified", wantFill: true},
		{name: "denied in time", resolver: fakeResolver{},
			decision:    policy.Decision{Outcome: policy.Denied, Mode: policy.Enforce, Message: "tollgate: denied x: no evidence"},
			wantOutcome: "denied", wantMsg: "no evidence", wantFill: true},
		{name: "identity unknown", decision: allow, resolver: fakeResolver{err: errors.New("containerd: image not found")},
			wantOutcome: "denied", wantMsg: "cannot establish the image identity"},
		{name: "plugin deadline", decision: allow, delay: slow, resolver: fakeResolver{},
			opts:        []Option{WithDeadline(50 * time.Millisecond)},
			wantOutcome: "denied", wantMsg: "no decision within the hook deadline", wantFill: true},
		{name: "allowed after containerd gave up", decision: allow, resolver: fakeResolver{},
			opts:        []Option{withStall(5 * time.Second)},
			wantOutcome: audit.OutcomeNoAnswer, wantDecided: "verified", wantMsg: "stopped or starved for 5s", wantFill: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sock := filepath.Join(t.TempDir(), "nri.sock")
			rt := startRuntime(t, sock, nil, nil)
			dec := &fillingDecider{rejected: make(chan bool, 4)}
			dec.decision, dec.delay = tt.decision, tt.delay
			var rec recorder
			c := startPlugin(t, sock, dec, tt.resolver, append(tt.opts, WithAnswerFunc(rec.answer))...)
			wait(t, c.up, "connect")
			rt.settle()
			err := rt.create("ghcr.io/acme/api:1.0", testConfig, nil)
			if (err == nil) != tt.wantCreate {
				t.Fatalf("create error %v, want created=%v", err, tt.wantCreate)
			}
			late := false
			if r, _ := tt.resolver.(fakeResolver); r.err == nil { // the decider was asked
				select { // a decision still running must not add a record
				case late = <-dec.rejected:
				case <-time.After(5 * time.Second):
					t.Fatal("the decider never finished")
				}
			}
			recs := rec.all()
			if len(recs) != 1 {
				t.Fatalf("%d records, want exactly 1: %+v", len(recs), recs)
			}
			r := audit.NewRecord(recs[0])
			if r.Outcome != tt.wantOutcome || r.Allowed != tt.wantCreate || r.Decided != tt.wantDecided {
				t.Errorf("record outcome=%s allowed=%v decided=%q, want %s %v %q", r.Outcome, r.Allowed, r.Decided, tt.wantOutcome, tt.wantCreate, tt.wantDecided)
			}
			if !strings.Contains(r.Message, tt.wantMsg) {
				t.Errorf("record message %q lacks %q", r.Message, tt.wantMsg)
			}
			if r.Container != "api" || r.Pod != "api-7d9f" || r.ConfigDigest != testConfig {
				t.Errorf("record names %s/%s %s, want the container", r.Pod, r.Container, r.ConfigDigest)
			}
			if tt.wantFill != recs[0].Cached {
				t.Errorf("record is the decider's: %v, want %v", recs[0].Cached, tt.wantFill)
			}
			if err != nil && tt.wantOutcome == audit.OutcomeNoAnswer && !strings.Contains(err.Error(), "no answer reached containerd") {
				t.Errorf("late allowance answered %q, want a denial saying so", err)
			}
			if late {
				t.Error("the decider's record was refused though the plugin waited for it")
			}
		})
	}
}

// The stall clock measures a stop of the process: a gap between ticks.
func TestStallClock(t *testing.T) {
	s := newStallClock(10 * time.Millisecond)
	if d := s.stalled(time.Now()); d != 0 {
		t.Fatalf("stopped clock reports %v", d)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go s.run(ctx)
	time.Sleep(30 * time.Millisecond)
	s.mu.Lock()
	running := s.running
	s.mu.Unlock()
	if !running {
		t.Fatal("clock not running")
	}
	// A request read 2s after the last tick (the process was stopped meanwhile).
	s.mu.Lock()
	last := s.last
	s.mu.Unlock()
	if d := s.stalled(last.Add(2 * time.Second)); d < 1900*time.Millisecond {
		t.Errorf("stall before a request read 2s after the last tick: %v", d)
	}
	cancel()
	// The clock ticked first after the stop: the gap it saw counts for a request just after.
	now := time.Now()
	h := &stallClock{every: 10 * time.Millisecond, running: true, last: now, gapEnd: now, gapLen: 3 * time.Second}
	if d := h.stalled(now.Add(time.Millisecond)); d != 3*time.Second {
		t.Errorf("stall just after a noticed gap: %v, want 3s", d)
	}
	// Long after it, with the clock ticking since, there is none.
	later := now.Add(time.Second)
	h.last = later.Add(-5 * time.Millisecond)
	if d := h.stalled(later); d != 0 {
		t.Errorf("stall long after a noticed gap: %v, want 0", d)
	}
}

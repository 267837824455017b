package gate

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"tollgate.dev/tollgate/daemon/audit"
	"tollgate.dev/tollgate/policy"
)

type memSink struct {
	mu      sync.Mutex
	entries []audit.Entry
}

func (s *memSink) Log(e audit.Entry) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.entries = append(s.entries, e)
	return true
}

func (s *memSink) all() []audit.Entry {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]audit.Entry(nil), s.entries...)
}

// A hook call whose caller answers containerd itself (the plugin) is recorded by the
// caller, once, with what containerd was told: the gate fills the call instead of writing,
// and Answered writes what the caller hands back, counting answers containerd never got.
func TestHookRecordWrittenOnceByTheAnswer(t *testing.T) {
	sink := &memSink{}
	e := newGateEnv(t, &fakeEval{}, WithAudit(sink), WithNodeName("node-1"))
	img := testImage("late")
	writeEvidence(t, e.nodeDir, img.Digests[0], map[string]string{"a.link": "good"})

	ctx, call := audit.WithCall(context.Background())
	d := e.gate.Decide(ctx, policy.Request{Image: img, Container: "c"})
	if !d.Allowed {
		t.Fatalf("not allowed: %s", d.Message)
	}
	if n := len(sink.all()); n != 0 {
		t.Fatalf("the gate wrote %d records itself, want 0: the caller writes the one record", n)
	}
	rec, ok := call.Close()
	if !ok || rec.Decision.Outcome != policy.Verified || rec.Generation != 1 || rec.Path != PathHook {
		t.Fatalf("call record %+v (filled %v)", rec, ok)
	}
	// The answer was ready after containerd's deadline.
	rec.Unanswered = "no answer reached containerd in time"
	e.gate.Answered(rec)
	got := sink.all()
	if len(got) != 1 {
		t.Fatalf("%d records, want 1", len(got))
	}
	r := audit.NewRecord(got[0])
	if r.Outcome != audit.OutcomeNoAnswer || r.Allowed || r.Decided != "verified" || r.Node != "node-1" {
		t.Errorf("record outcome=%s allowed=%v decided=%s node=%s", r.Outcome, r.Allowed, r.Decided, r.Node)
	}
	if n := metricValue(t, e.metrics, "tollgate_hook_unanswered_total"); n != 1 {
		t.Errorf("tollgate_hook_unanswered_total = %v, want 1", n)
	}

	// Without a call (tests, other callers), Decide writes its record itself, once.
	e.gate.Decide(context.Background(), policy.Request{Image: img, Container: "c"})
	if n := len(sink.all()); n != 2 {
		t.Errorf("%d records after a direct Decide, want 2", n)
	}
}

// Issue 12, item 1: verifications running at once are bounded, whatever the number of
// images asking: each may hold its evidence several times over while parsing it.
func TestVerificationsRunningAtOnceAreBounded(t *testing.T) {
	eval := &fakeEval{delay: 50 * time.Millisecond}
	e := newGateEnv(t, eval, WithVerifyConcurrency(2))
	var wg sync.WaitGroup
	for i := range 8 {
		img := testImage(fmt.Sprintf("many-%d", i))
		writeEvidence(t, e.nodeDir, img.Digests[0], map[string]string{"a.link": "good"})
		wg.Go(func() {
			if d, err := e.gate.Preverify(context.Background(), img); err != nil || !d.Allowed {
				t.Errorf("%s: allowed=%v err=%v", img.Ref, d.Allowed, err)
			}
		})
	}
	wg.Wait()
	if p := eval.peak.Load(); p > 2 {
		t.Errorf("%d evaluations ran at once, want at most 2", p)
	}
	if n := eval.calls.Load(); n != 8 {
		t.Errorf("%d evaluations, want 8", n)
	}
}

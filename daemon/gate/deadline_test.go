package gate

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"tollgate.dev/tollgate/daemon/policystore"
	"tollgate.dev/tollgate/policy"
)

// stallEval is an evaluation that runs until its context is done (hostile evidence that
// would take longer than the verify timeout), then answers what it had: an allowance.
type stallEval struct {
	*fakeEval // Evaluate, on no evidence: how the gate words an infrastructure failure
	stalled   *atomic.Int64
}

func (s stallEval) EvaluateContext(ctx context.Context, req policy.Request, ev policy.Evidence, now time.Time) policy.Decision {
	s.stalled.Add(1)
	<-ctx.Done()
	return policy.Decision{Allowed: true, Outcome: policy.Verified, Mode: policy.Enforce, Cacheable: true, Message: "verified"}
}

// Issue 12, item 1: the evaluation runs under the verify timeout, and one stopped there is
// an infrastructure error: not a verdict, not cached, evaluated again next time.
func TestEvaluationStopsAtVerifyTimeout(t *testing.T) {
	eval := stallEval{&fakeEval{}, &atomic.Int64{}}
	e := newGateEnv(t, eval.fakeEval, WithVerifyTimeout(50*time.Millisecond))
	e.snap.Store(&policystore.Snapshot{Generation: 1, Policies: eval})
	img := testImage("api")
	writeEvidence(t, e.nodeDir, img.Digests[0], map[string]string{"a.json": "good"})
	for i := 1; i <= 2; i++ {
		d, err := e.gate.Preverify(context.Background(), img)
		if err == nil || !strings.Contains(err.Error(), "stopped at its deadline") {
			t.Fatalf("try %d: err %v, want the evaluation stopped at its deadline", i, err)
		}
		if d.Allowed || d.Outcome == policy.Verified {
			t.Fatalf("try %d: a stopped evaluation became a verdict: %s %q", i, d.Outcome, d.Message)
		}
		if n := eval.stalled.Load(); n != int64(i) {
			t.Fatalf("try %d: %d evaluations: a stopped one was cached", i, n)
		}
	}
}

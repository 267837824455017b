package policy

import (
	"context"
	"errors"
	"strings"
	"testing"

	"tollgate.dev/tollgate/policy/attest"
	"tollgate.dev/tollgate/policy/hostiletest"
)

// Issue 12, item 1: an evaluation takes a context and stops at its deadline; what it says
// then is an infrastructure failure (never cacheable, Stopped), not a verdict on the
// evidence, whatever the evidence is.
func TestEvaluateStopsAtDeadline(t *testing.T) {
	d, good := scenario(t, testNow.AddDate(1, 0, 0))
	s := mustLoad(t, d)
	if dec := s.EvaluateContext(context.Background(), testRequest(), Evidence{Files: good}, testNow); !dec.Allowed {
		t.Fatalf("good evidence, no deadline: %s", dec.Message)
	}
	hostile := hostiletest.Evidence(hostiletest.Spec{Digest: manifestDigest, PredicateType: attest.PredicateSLSAProvenanceV1,
		Steps: []string{"build"}, KeyIDs: []string{signer(t, "ci").ID, signer(t, "build").ID}, BlobBytes: 1 << 20, TotalBytes: 4 << 20})
	for name, files := range map[string]map[string][]byte{"good": good, "hostile": hostile} {
		for _, cause := range []error{context.DeadlineExceeded, context.Canceled} {
			ctx, cancel := context.WithCancelCause(context.Background())
			cancel(cause)
			dec := s.EvaluateContext(ctx, testRequest(), Evidence{Files: files}, testNow)
			if dec.Allowed || dec.Cacheable || !dec.Stopped() {
				t.Errorf("%s evidence, %v: allowed=%v cacheable=%v stopped=%v: %s", name, cause, dec.Allowed, dec.Cacheable, dec.Stopped(), dec.Message)
			}
			if !strings.Contains(dec.Message, "stopped at its deadline") || !errors.Is(dec.Reasons[0], ErrStopped) {
				t.Errorf("%s evidence: message does not say the evaluation was stopped: %s", name, dec.Message)
			}
		}
	}
}

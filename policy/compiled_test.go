package policy

import (
	"sync"
	"testing"
	"time"

	"tollgate.dev/tollgate/policy/reason"
)

// Layouts are compiled once at Load; one Set then serves concurrent decisions on different
// evidence (run with -race), each checking expiry against its own time.
func TestEvaluateConcurrentOnCompiledLayouts(t *testing.T) {
	d, good := scenario(t, testNow.Add(time.Hour))
	s := mustLoad(t, d)
	missing := map[string][]byte{}
	for k, v := range good {
		missing[k] = v
	}
	for k := range missing {
		if len(k) > 5 && k[:5] == "test." {
			delete(missing, k)
		}
	}
	var wg sync.WaitGroup
	errs := make(chan string, 32)
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 10; j++ {
				if dec := s.Evaluate(testRequest(), Evidence{Files: good}, testNow); dec.Outcome != Verified {
					errs <- "good evidence: " + dec.Message
					return
				}
				if dec := s.Evaluate(testRequest(), Evidence{Files: missing}, testNow); dec.Allowed || len(dec.Reasons) == 0 || dec.Reasons[0].Kind != reason.MissingEvidence {
					errs <- "evidence without the test link: " + dec.Message
					return
				}
				if dec := s.Evaluate(testRequest(), Evidence{Files: good}, testNow.Add(2*time.Hour)); dec.Allowed || dec.Reasons[0].Kind != reason.Expired {
					errs <- "after the layout expired: " + dec.Message
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Fatal(e)
	}
}

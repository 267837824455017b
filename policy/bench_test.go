package policy

import (
	"testing"
	"time"
)

// BenchmarkEvaluate is a cold decision: a 3-step layout with an image inspection, three
// links and a SLSA v1 Statement with a CEL condition, parsed and verified from bytes.
// Design target: ≤ 1 ms.
func BenchmarkEvaluate(b *testing.B) {
	d, ev := scenario(b, testNow.Add(time.Hour))
	s := mustLoad(b, d)
	req := testRequest()
	evidence := Evidence{Files: ev}
	if dec := s.Evaluate(req, evidence, testNow); !dec.Allowed || dec.Outcome != Verified {
		b.Fatalf("scenario does not verify: %s", dec.Message)
	}
	b.ReportAllocs()
	for b.Loop() {
		if dec := s.Evaluate(req, evidence, testNow); !dec.Allowed {
			b.Fatal(dec.Message)
		}
	}
}

// BenchmarkEvaluateUnmatched is the cheapest path: no policy matches, the default decides.
func BenchmarkEvaluateUnmatched(b *testing.B) {
	d, _ := scenario(b, testNow.Add(time.Hour))
	s := mustLoad(b, d)
	req := testRequest()
	req.Image.Repository = "quay.io/other/app"
	b.ReportAllocs()
	for b.Loop() {
		s.Evaluate(req, Evidence{}, testNow)
	}
}

func BenchmarkLoad(b *testing.B) {
	d, _ := scenario(b, testNow.Add(time.Hour))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Load(d, 1); err != nil {
			b.Fatal(err)
		}
	}
}

// Package benchcpu adds the process CPU time per operation to benchmarks. On a shared
// machine wall time measures the neighbours as much as the code; CPU time (user+system,
// all threads, GC included) much less, so docs/performance.md judges targets by it.
package benchcpu

import "testing"

// Report starts counting; the function it returns, deferred, adds a "cpu-ns/op" metric.
func Report(b *testing.B) func() {
	start := processCPU()
	return func() {
		if cpu := processCPU() - start; cpu > 0 {
			b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/op")
		}
	}
}

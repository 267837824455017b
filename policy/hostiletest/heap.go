package hostiletest

import (
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// HeapGrowth runs f and returns the most the Go heap grew above its size before f, and
// the bytes f allocated in all, both from runtime/metrics. The heap is
// /memory/classes/heap/objects:bytes (live objects and garbage not yet swept), sampled
// every 50µs while f runs with the collector set to run at 10% growth, so that it stays
// close to what f holds live at once; the figure is then an upper bound of that, up to the
// 10%. Run nothing else meanwhile: everything the process allocates counts.
func HeapGrowth(f func()) (peak, allocated uint64) {
	defer debug.SetGCPercent(debug.SetGCPercent(10))
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}, {Name: "/gc/heap/allocs:bytes"}}
	runtime.GC()
	metrics.Read(s)
	base, allocs := s[0].Value.Uint64(), s[1].Value.Uint64()
	top := base
	done := make(chan struct{})
	sampled := make(chan uint64)
	go func() {
		top := base
		one := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
		tick := time.NewTicker(50 * time.Microsecond)
		defer tick.Stop()
		for {
			metrics.Read(one)
			top = max(top, one[0].Value.Uint64())
			select {
			case <-done:
				sampled <- top
				return
			case <-tick.C:
			}
		}
	}()
	f()
	close(done)
	top = max(top, <-sampled)
	metrics.Read(s)
	top = max(top, s[0].Value.Uint64())
	return top - base, s[1].Value.Uint64() - allocs
}

// MiB renders bytes in MiB, for test logs.
func MiB(n uint64) float64 { return float64(n) / (1 << 20) }

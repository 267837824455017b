//go:build unix

package intoto

import (
	"syscall"
	"time"
)

// processCPU is the CPU time (user+system, all threads, GC included) used so far. The
// benchmarks report it per operation next to wall time, because on a shared machine wall
// time measures the neighbours as much as the code.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

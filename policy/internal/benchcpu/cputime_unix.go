//go:build unix

package benchcpu

import (
	"syscall"
	"time"
)

// processCPU is the CPU time (user+system, all threads, GC included) used so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

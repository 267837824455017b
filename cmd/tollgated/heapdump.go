package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"syscall"
	"time"

	"go.uber.org/zap"
)

// heapDumps writes a heap profile of the daemon into dir each time the process gets
// SIGUSR1, for `go tool pprof` (docs/operations.md, "Sizing"): what holds the memory of a
// node's tollgated, read from the real process, with nothing served on the network. It
// returns when ctx is done.
func heapDumps(ctx context.Context, dir string, log *zap.Logger) error {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGUSR1)
	defer signal.Stop(ch)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-ch:
			if path, err := writeHeapProfile(dir); err != nil {
				log.Warn("heap profile (SIGUSR1) not written", zap.Error(err))
			} else {
				log.Info("heap profile written (SIGUSR1)", zap.String("path", path))
			}
		}
	}
}

// writeHeapProfile collects garbage first, so the profile's in-use figures are the live
// heap, and writes it to a new file in dir (under a temporary name until it is complete).
func writeHeapProfile(dir string) (string, error) {
	runtime.GC()
	path := filepath.Join(dir, fmt.Sprintf("tollgated-heap-%d-%s.pb.gz", os.Getpid(), time.Now().UTC().Format("20060102T150405.000")))
	f, err := os.OpenFile(path+".tmp", os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return "", err
	}
	err = pprof.Lookup("heap").WriteTo(f, 0)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(path+".tmp", path)
	}
	if err != nil {
		os.Remove(path + ".tmp")
		return "", fmt.Errorf("heap profile %s: %w", path, err)
	}
	return path, nil
}

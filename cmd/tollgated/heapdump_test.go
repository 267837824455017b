package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"
)

// A SIGUSR1 leaves one gzipped heap profile in the directory; a directory that cannot be
// written is logged, and the daemon goes on.
func TestHeapDumpOnSIGUSR1(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- heapDumps(ctx, dir, zap.NewNop()) }()
	time.Sleep(100 * time.Millisecond) // signal.Notify has run
	if err := syscall.Kill(os.Getpid(), syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	var found []string
	for deadline := time.Now().Add(10 * time.Second); len(found) == 0 && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
		found, _ = filepath.Glob(filepath.Join(dir, "tollgated-heap-*.pb.gz"))
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if len(found) != 1 {
		t.Fatalf("profiles written: %v, want one", found)
	}
	raw, err := os.ReadFile(found[0])
	if err != nil {
		t.Fatal(err)
	}
	zr, err := gzip.NewReader(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("%s: not gzip: %v", found[0], err)
	}
	if b, err := io.ReadAll(zr); err != nil || len(b) == 0 {
		t.Fatalf("%s: %d bytes, %v", found[0], len(b), err)
	}
	if _, err := writeHeapProfile(filepath.Join(dir, "missing")); err == nil {
		t.Error("a profile into a missing directory: no error")
	}
}

//go:build e2e

package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"sync"
	"testing"
	"time"
)

// session is the testing.TB the e2e harness asks for, outside `go test`. Logs go to a file
// (the human output stays clean); Fatal and Skip end the demo through a panic that main
// recovers; cleanups run once, last registered first, as in a test.
//
// The embedded testing.TB is nil. It is there only because testing.TB has an unexported
// method; every method the harness can call is defined below, so it is never used.
type session struct {
	testing.TB

	log      io.Writer
	ctx      context.Context
	mu       sync.Mutex
	failed   bool
	skipped  bool
	cleanups []func()
	once     sync.Once
}

// stop is what Fatal and Skip panic with; main recovers it and reports msg.
type stop struct{ msg string }

func newSession(ctx context.Context, log io.Writer) *session {
	return &session{log: log, ctx: ctx}
}

func (s *session) Logf(format string, args ...any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	fmt.Fprintf(s.log, "%s %s\n", time.Now().UTC().Format("15:04:05.000"), fmt.Sprintf(format, args...))
}

func (s *session) Log(args ...any) { s.Logf("%s", fmt.Sprint(args...)) }

func (s *session) Fail() {
	s.mu.Lock()
	s.failed = true
	s.mu.Unlock()
}

func (s *session) Failed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.failed
}

func (s *session) Error(args ...any) { s.Fail(); s.Log(args...) }

func (s *session) Errorf(format string, args ...any) { s.Fail(); s.Logf(format, args...) }

func (s *session) FailNow() { s.Fail(); panic(stop{"failed"}) }

func (s *session) Fatal(args ...any) { s.Fatalf("%s", fmt.Sprint(args...)) }

func (s *session) Fatalf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	s.Fail()
	s.Logf("FATAL: %s", msg)
	panic(stop{msg})
}

// Skip ends the demo too: the harness skips when a tool is missing, which for the demo is
// a failure (main sets TOLLGATE_REQUIRE_TOOLS=1, so the harness says so itself).
func (s *session) Skip(args ...any) { s.Skipf("%s", fmt.Sprint(args...)) }

func (s *session) Skipf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	s.mu.Lock()
	s.skipped, s.failed = true, true
	s.mu.Unlock()
	s.Logf("SKIP: %s", msg)
	panic(stop{msg})
}

func (s *session) SkipNow() { s.Skipf("skipped") }

func (s *session) Skipped() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.skipped
}

func (s *session) Helper()      {}
func (s *session) Name() string { return "demo" }

func (s *session) Cleanup(f func()) {
	s.mu.Lock()
	s.cleanups = append(s.cleanups, f)
	s.mu.Unlock()
}

// runCleanups runs the registered cleanups once, newest first. A cleanup that fails
// (Fatal, panic) does not keep the older ones from running.
func (s *session) runCleanups() {
	s.once.Do(func() {
		for {
			s.mu.Lock()
			n := len(s.cleanups)
			if n == 0 {
				s.mu.Unlock()
				return
			}
			f := s.cleanups[n-1]
			s.cleanups = s.cleanups[:n-1]
			s.mu.Unlock()
			func() {
				defer func() {
					if r := recover(); r != nil {
						s.Fail()
						s.Logf("cleanup: %v", r)
					}
				}()
				f()
			}()
		}
	})
}

func (s *session) TempDir() string {
	d, err := os.MkdirTemp("", "tollgate-demo-")
	if err != nil {
		s.Fatalf("TempDir: %v", err)
	}
	s.Cleanup(func() { _ = os.RemoveAll(d) })
	return d
}

func (s *session) ArtifactDir() string { return s.TempDir() }

func (s *session) Setenv(key, value string) {
	old, had := os.LookupEnv(key)
	_ = os.Setenv(key, value)
	s.Cleanup(func() {
		if had {
			_ = os.Setenv(key, old)
		} else {
			_ = os.Unsetenv(key)
		}
	})
}

func (s *session) Chdir(dir string) {
	old, err := os.Getwd()
	if err != nil {
		s.Fatalf("Chdir: %v", err)
	}
	if err := os.Chdir(dir); err != nil {
		s.Fatalf("Chdir: %v", err)
	}
	s.Cleanup(func() { _ = os.Chdir(old) })
}

func (s *session) Attr(key, value string)   { s.Logf("attr %s=%s", key, value) }
func (s *session) Context() context.Context { return s.ctx }
func (s *session) Output() io.Writer        { return s.log }

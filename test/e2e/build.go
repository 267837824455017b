//go:build e2e

package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

var (
	buildMu    sync.Mutex
	buildCache = map[string]string{}
)

// BuildBinary builds a main package of this module (e.g. "./cmd/tollgated" or
// "./test/e2e/fakeplugin") once per test process, static, into <repo>/.cache/e2e-bin, and
// returns the binary's path. A build failure fails the test. It builds as `make build`
// does (the Makefile's GOTAGS and -s -w), so the tests, and the memory benchmark above
// all, run the binary that ships: its size is most of tollgated's resident memory.
func BuildBinary(t testing.TB, pkg string) string {
	t.Helper()
	buildMu.Lock()
	defer buildMu.Unlock()
	if p, ok := buildCache[pkg]; ok {
		return p
	}
	root, err := RepoRoot()
	if err != nil {
		t.Fatalf("e2e: %v", err)
	}
	out := filepath.Join(root, ".cache", "e2e-bin", filepath.Base(pkg))
	// Build beside the target and rename: another test process may be running the old one.
	tmp := fmt.Sprintf("%s.tmp-%d", out, os.Getpid())
	cmd := exec.Command("go", "build", "-trimpath", "-tags", "grpcnotrace", "-ldflags", "-s -w", "-o", tmp, pkg)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("e2e: go build %s: %v\n%s", pkg, err, msg)
	}
	if err := os.Rename(tmp, out); err != nil {
		t.Fatalf("e2e: %v", err)
	}
	buildCache[pkg] = out
	return out
}

// BuildCLI builds the tollgate CLI (./cmd/tollgate) as BuildBinary does.
func BuildCLI(t testing.TB) string {
	t.Helper()
	return BuildBinary(t, "./cmd/tollgate")
}

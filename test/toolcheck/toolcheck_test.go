package toolcheck

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// recorder is a testing.TB that notes how a helper ended the test instead of ending it.
type recorder struct {
	testing.TB
	skipped, failed bool
	msg             string
}

func (r *recorder) Helper() {}

func (r *recorder) Skipf(format string, args ...any) {
	r.skipped, r.msg = true, fmt.Sprintf(format, args...)
	runtime.Goexit()
}

func (r *recorder) Fatalf(format string, args ...any) {
	r.failed, r.msg = true, fmt.Sprintf(format, args...)
	runtime.Goexit()
}

// call runs f on its own goroutine, as the testing package runs a test, so that
// runtime.Goexit in Skipf/Fatalf ends only f.
func call(t *testing.T, f func(testing.TB)) *recorder {
	r := &recorder{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		f(r)
	}()
	<-done
	return r
}

func writeTool(t *testing.T, dir, name string, mode os.FileMode) string {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte("#!/bin/sh\necho hi\n"), mode); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestFindOrder(t *testing.T) {
	root := t.TempDir()
	binDir := filepath.Join(root, "bin")
	cacheBin := filepath.Join(root, ".cache", "bin")
	pathDir := filepath.Join(root, "path")
	work := filepath.Join(root, "pkg", "sub")
	if err := os.MkdirAll(work, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Chdir(work)
	t.Setenv("PATH", pathDir)

	inPath := writeTool(t, pathDir, "tg-tool", 0o755)
	t.Setenv(BinEnv, "")
	if p, err := Find("tg-tool"); err != nil || p != inPath {
		t.Fatalf("PATH only: Find = %q, %v; want %q", p, err, inPath)
	}
	inCache := writeTool(t, cacheBin, "tg-tool", 0o755)
	if p, err := Find("tg-tool"); err != nil || p != inCache {
		t.Fatalf(".cache/bin above the working directory: Find = %q, %v; want %q", p, err, inCache)
	}
	inBin := writeTool(t, binDir, "tg-tool", 0o755)
	t.Setenv(BinEnv, binDir)
	if p, err := Find("tg-tool"); err != nil || p != inBin {
		t.Fatalf("$%s: Find = %q, %v; want %q", BinEnv, p, err, inBin)
	}

	// A file that is not executable, or a directory, is not the tool.
	writeTool(t, binDir, "tg-data", 0o644)
	if err := os.MkdirAll(filepath.Join(cacheBin, "tg-data"), 0o755); err != nil {
		t.Fatal(err)
	}
	if p, err := Find("tg-data"); err == nil {
		t.Fatalf("non-executable file and directory: Find = %q, want an error", p)
	}
	if _, err := Find("tg-absent"); err == nil || !strings.Contains(err.Error(), "tg-absent not found") {
		t.Fatalf("missing tool: err = %v", err)
	}
}

func TestRequireMissing(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	t.Setenv(BinEnv, "")
	t.Chdir(t.TempDir())
	for _, tc := range []struct {
		env        string
		skip, fail bool
	}{
		{env: "", skip: true},
		{env: "0", skip: true},
		{env: "1", fail: true},
	} {
		t.Setenv(RequireEnv, tc.env)
		r := call(t, func(tb testing.TB) { Require(tb, "tg-absent") })
		if r.skipped != tc.skip || r.failed != tc.fail {
			t.Errorf("%s=%q: skipped=%v failed=%v, want %v %v (%s)", RequireEnv, tc.env, r.skipped, r.failed, tc.skip, tc.fail, r.msg)
		}
		if !strings.Contains(r.msg, "tg-absent not found") {
			t.Errorf("%s=%q: message %q does not name the tool", RequireEnv, tc.env, r.msg)
		}
	}
}

func TestRequireFound(t *testing.T) {
	dir := t.TempDir()
	want := writeTool(t, dir, "tg-tool", 0o755)
	t.Setenv(BinEnv, dir)
	t.Setenv(RequireEnv, "1")
	var got string
	r := call(t, func(tb testing.TB) { got = Require(tb, "tg-tool") })
	if r.skipped || r.failed || got != want {
		t.Fatalf("Require = %q (skipped=%v failed=%v %s), want %q", got, r.skipped, r.failed, r.msg, want)
	}
	if out := Run(t, "", nil, nil, got); string(out) != "hi\n" {
		t.Fatalf("Run output %q", out)
	}
}

func TestUnavailableMessage(t *testing.T) {
	t.Setenv(RequireEnv, "")
	r := call(t, func(tb testing.TB) { Unavailable(tb, "no %s here", "units") })
	if !r.skipped || !strings.HasPrefix(r.msg, "no units here") || !strings.Contains(r.msg, RequireEnv+"=1") {
		t.Fatalf("skipped=%v msg=%q", r.skipped, r.msg)
	}
}

func TestRunFailure(t *testing.T) {
	r := call(t, func(tb testing.TB) { Run(tb, "", nil, nil, "sh", "-c", "echo oops >&2; exit 3") })
	if !r.failed || !strings.Contains(r.msg, "oops") {
		t.Fatalf("failed=%v msg=%q: want a failure quoting stderr", r.failed, r.msg)
	}
}

// TestPythonInToto runs the real check: it passes where Debian's in-toto is installed and
// is skipped (or fails under TOLLGATE_REQUIRE_TOOLS=1) elsewhere, like its callers.
func TestPythonInToto(t *testing.T) {
	RequirePythonInToto(t)
	out := Run(t, "", nil, nil, Python, "-c", "import in_toto; print('ok')")
	if strings.TrimSpace(string(out)) != "ok" {
		t.Fatalf("python output %q", out)
	}
}

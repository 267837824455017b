package deploy

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
)

// repoRoot is the module root, two levels above this file's directory.
func repoRoot(t *testing.T) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("cannot locate test source")
	}
	return filepath.Dir(filepath.Dir(file))
}

// tool finds an external binary in $TOLLGATE_TOOLS_BIN, the repository's .cache/bin, or PATH.
// Missing, it skips the test, or fails it when TOLLGATE_REQUIRE_TOOLS=1 (CI).
func tool(t *testing.T, name string) string {
	t.Helper()
	dirs := []string{os.Getenv("TOLLGATE_TOOLS_BIN"), filepath.Join(repoRoot(t), ".cache", "bin")}
	for _, d := range dirs {
		if d == "" {
			continue
		}
		p := filepath.Join(d, name)
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return p
		}
	}
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	msg := name + " not found in $TOLLGATE_TOOLS_BIN, .cache/bin or PATH; run test/tools/install-k8s-tools.sh"
	if os.Getenv("TOLLGATE_REQUIRE_TOOLS") == "1" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// run executes a tool and returns its stdout, failing the test with stderr on error.
func run(t *testing.T, bin string, args ...string) []byte {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %v: %v\n%s", filepath.Base(bin), args, err, stderr.String())
	}
	return stdout.Bytes()
}

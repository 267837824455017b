package envelope

import (
	"bytes"
	"encoding/base64"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// Interop tests run the real Python in-toto 1.3.1 (Debian's, under /usr/bin/python3) and
// cosign. A missing tool skips the test unless TOLLGATE_REQUIRE_TOOLS=1, as in CI.

const (
	pythonBin = "/usr/bin/python3"
	keygenBin = "/usr/bin/in-toto-keygen"
)

func requireTool(t testing.TB, path string) {
	t.Helper()
	if _, err := os.Stat(path); err == nil {
		return
	}
	if os.Getenv("TOLLGATE_REQUIRE_TOOLS") == "1" {
		t.Fatalf("%s is required (TOLLGATE_REQUIRE_TOOLS=1) but missing; run make tools", path)
	}
	t.Skipf("%s is missing (Debian package in-toto); set TOLLGATE_REQUIRE_TOOLS=1 to make this a failure", path)
}

func requirePython(t testing.TB) {
	t.Helper()
	requireTool(t, keygenBin)
	requireTool(t, "/usr/bin/in-toto-run")
	requireTool(t, pythonBin)
}

// findTool looks in $TOLLGATE_TOOLS_BIN, PATH, then the repository's .cache/bin.
func findTool(t testing.TB, name string) string {
	t.Helper()
	if dir := os.Getenv("TOLLGATE_TOOLS_BIN"); dir != "" {
		if p := filepath.Join(dir, name); isFile(p) {
			return p
		}
	}
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	if wd, err := os.Getwd(); err == nil {
		for d := wd; d != filepath.Dir(d); d = filepath.Dir(d) {
			if p := filepath.Join(d, ".cache", "bin", name); isFile(p) {
				return p
			}
		}
	}
	if os.Getenv("TOLLGATE_REQUIRE_TOOLS") == "1" {
		t.Fatalf("%s is required (TOLLGATE_REQUIRE_TOOLS=1) but not found; run make tools", name)
	}
	t.Skipf("%s not found in $TOLLGATE_TOOLS_BIN, PATH or .cache/bin; run make tools", name)
	return ""
}

func isFile(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular()
}

// run executes a command in dir with stdin and returns stdout, failing the test on error.
func run(t testing.TB, dir string, stdin []byte, env []string, name string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Stdin = bytes.NewReader(stdin)
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %v: %v\nstderr:\n%s", name, args, err, stderr.String())
	}
	return stdout.Bytes()
}

func readFile(t testing.TB, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

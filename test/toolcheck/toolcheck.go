// Package toolcheck finds the external programs that tests run against (cosign, Python
// in-toto, docker-registry, kustomize, systemd-analyze, ...) and decides what a missing
// one means: on a developer's machine the test is skipped; when TOLLGATE_REQUIRE_TOOLS=1
// (CI, `make check`) it fails, so that a broken tool install cannot pass as green.
//
// It is imported by _test.go files only.
package toolcheck

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

const (
	// RequireEnv set to "1" turns a missing tool into a test failure.
	RequireEnv = "TOLLGATE_REQUIRE_TOOLS"
	// BinEnv names a directory searched before anything else (the Makefile sets it to
	// .cache/bin, where test/tools/install.sh builds cosign, containerd, crictl, ...).
	BinEnv = "TOLLGATE_TOOLS_BIN"
)

// Python in-toto 1.3.1 is Debian's package and runs on the system interpreter; a python3
// found first in PATH (pyenv, a virtualenv) usually lacks it, so these paths are absolute.
const (
	Python       = "/usr/bin/python3"
	InTotoRun    = "/usr/bin/in-toto-run"
	InTotoVerify = "/usr/bin/in-toto-verify"
	InTotoKeygen = "/usr/bin/in-toto-keygen"
)

// Required reports whether a missing tool is a failure (TOLLGATE_REQUIRE_TOOLS=1).
func Required() bool { return os.Getenv(RequireEnv) == "1" }

// Unavailable ends t because something it needs is missing: a skip, or a failure when
// TOLLGATE_REQUIRE_TOOLS=1. format describes what is missing.
func Unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if Required() {
		t.Fatalf("%s (required: %s=1)", msg, RequireEnv)
	}
	t.Skipf("%s; set %s=1 to make this a failure", msg, RequireEnv)
}

// Find returns the path of the executable name, looking in $TOLLGATE_TOOLS_BIN, then in
// the .cache/bin of the working directory or one above it (the repository's), then in
// PATH. The pinned builds come first so that an older copy in PATH does not shadow them.
func Find(name string) (string, error) {
	var dirs []string
	if d := os.Getenv(BinEnv); d != "" {
		dirs = append(dirs, d)
	}
	if wd, err := os.Getwd(); err == nil {
		for d := wd; ; d = filepath.Dir(d) {
			dirs = append(dirs, filepath.Join(d, ".cache", "bin"))
			if d == filepath.Dir(d) {
				break
			}
		}
	}
	for _, d := range dirs {
		if p := filepath.Join(d, name); isExecutable(p) {
			return p, nil
		}
	}
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	return "", fmt.Errorf("%s not found in $%s, .cache/bin or PATH (make tools, or test/tools/install*.sh, installs it)", name, BinEnv)
}

// Require returns the path of the executable name (see Find), or ends t as Unavailable.
func Require(t testing.TB, name string) string {
	t.Helper()
	p, err := Find(name)
	if err != nil {
		Unavailable(t, "%v", err)
	}
	return p
}

// RequirePythonInToto ends t as Unavailable unless Python in-toto's CLIs are installed
// and the system python3 can import in_toto and securesystemslib.
func RequirePythonInToto(t testing.TB) {
	t.Helper()
	if err := pythonInToto(); err != nil {
		Unavailable(t, "Python in-toto (Debian package in-toto): %v", err)
	}
}

// pythonInToto checks once per test binary: starting Python is slow.
var pythonInToto = sync.OnceValue(func() error {
	for _, p := range []string{Python, InTotoRun, InTotoVerify, InTotoKeygen} {
		if !isExecutable(p) {
			return fmt.Errorf("%s is missing", p)
		}
	}
	out, err := exec.Command(Python, "-c", "import in_toto, securesystemslib").CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s cannot import in_toto: %v\n%s", Python, err, out)
	}
	return nil
})

// Run executes name with args in dir (empty: the working directory), with stdin and the
// environment plus env, and returns its standard output. A failure fails t with the
// command's standard error.
func Run(t testing.TB, dir string, stdin []byte, env []string, name string, args ...string) []byte {
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

func isExecutable(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0
}

//go:build e2e

package e2e

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// requireEnvVar makes a missing tool a failure instead of a skip (CI sets it to 1).
const requireEnvVar = "TOLLGATE_REQUIRE_TOOLS"

// Tools are the external programs the suite drives, as absolute paths.
type Tools struct {
	Containerd string
	Shim       string // containerd-shim-runc-v2; its directory goes first on containerd's PATH
	Ctr        string
	Crictl     string
	Runc       string
}

// FindTool looks for an executable in $TOLLGATE_TOOLS_BIN, then <repo>/.cache/bin (where
// test/tools/install.sh puts it), then PATH, then /usr/sbin and /sbin (runc lives there on
// Debian and sudo's PATH may lack them).
func FindTool(name string) (string, error) {
	var dirs []string
	if d := os.Getenv("TOLLGATE_TOOLS_BIN"); d != "" {
		dirs = append(dirs, d)
	}
	if root, err := RepoRoot(); err == nil {
		dirs = append(dirs, filepath.Join(root, ".cache", "bin"))
	}
	for _, d := range dirs {
		p := filepath.Join(d, name)
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	if p, err := exec.LookPath(name); err == nil {
		return filepath.Abs(p)
	}
	for _, d := range []string{"/usr/local/sbin", "/usr/sbin", "/sbin"} {
		p := filepath.Join(d, name)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not found in $TOLLGATE_TOOLS_BIN, .cache/bin or PATH (run `make tools` or `bash test/tools/install.sh` as root)", name)
}

// RepoRoot is the directory of the go.mod above the working directory.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}

// Unavailable skips the test, or fails it when TOLLGATE_REQUIRE_TOOLS=1, because
// something the environment needs is missing.
func Unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if os.Getenv(requireEnvVar) == "1" {
		t.Fatalf("%s (%s=1, so this is a failure)", msg, requireEnvVar)
	}
	t.Skipf("%s (set %s=1 to make this a failure)", msg, requireEnvVar)
}

// RequireTools finds every tool the environment needs, or skips/fails the test.
func RequireTools(t testing.TB) Tools {
	t.Helper()
	if os.Geteuid() != 0 {
		Unavailable(t, "the e2e suite runs containerd and must run as root")
	}
	var tl Tools
	for _, f := range []struct {
		name string
		dst  *string
	}{
		{"containerd", &tl.Containerd},
		{"containerd-shim-runc-v2", &tl.Shim},
		{"ctr", &tl.Ctr},
		{"crictl", &tl.Crictl},
		{"runc", &tl.Runc},
	} {
		p, err := FindTool(f.name)
		if err != nil {
			Unavailable(t, "%v", err)
		}
		*f.dst = p
	}
	return tl
}

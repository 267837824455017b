// Package launch hands a tollgate command line to the full CLI, tollgate-full.
//
// The tollgate binary links only the offline verifier (package verify) so that it starts
// in a few milliseconds; every other command lives in tollgate-full, which links the
// registry client, the policy engine and the link recorder. tollgate replaces itself with
// tollgate-full (execve), so exit codes, signals and standard streams are tollgate-full's
// own, exactly as if the user had run it.
package launch

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
)

// Full is the file name of the full CLI.
const Full = "tollgate-full"

// Find locates tollgate-full: next to the running executable first, so that an install
// is self-contained and never picks up another version from PATH, then on PATH.
func Find() (string, error) {
	if self, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(self), Full)
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	p, err := exec.LookPath(Full)
	if err != nil {
		return "", fmt.Errorf("this command needs %s, which is installed next to tollgate; "+
			"it is neither beside %s nor on PATH (install both binaries: make build, or go install ./cmd/...)",
			Full, selfPath())
	}
	return p, nil
}

// Exec replaces this process with tollgate-full running args. It returns only on
// failure.
func Exec(args []string) error {
	path, err := Find()
	if err != nil {
		return err
	}
	err = syscall.Exec(path, append([]string{Full}, args...), os.Environ())
	return fmt.Errorf("running %s: %w", path, err)
}

func selfPath() string {
	if self, err := os.Executable(); err == nil {
		return self
	}
	return "the tollgate executable"
}

package toolcheck

import (
	"os"
	"path/filepath"
	"testing"
)

// SharedEnv names the directory of shared test data (real Sigstore bundles, trusted roots,
// the Sigstore conformance suite). By default it is ../shared beside the repository root;
// a git worktree elsewhere sets it.
const SharedEnv = "TOLLGATE_SHARED_DIR"

// SharedDir returns the directory sub of the shared test data (see SharedEnv), or ends t
// as Unavailable when it is absent. The data is read where it lies, never copied into the
// repository.
func SharedDir(t testing.TB, sub string) string {
	t.Helper()
	base := os.Getenv(SharedEnv)
	if base == "" {
		root, err := moduleRoot()
		if err != nil {
			Unavailable(t, "shared test data: %v", err)
		}
		base = filepath.Join(filepath.Dir(root), "shared")
	}
	dir := filepath.Join(base, filepath.FromSlash(sub))
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		Unavailable(t, "shared test data %s is absent (set %s to the shared directory)", dir, SharedEnv)
	}
	return dir
}

// moduleRoot finds the directory holding go.mod, from the working directory up.
func moduleRoot() (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := wd; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d, nil
		}
		if d == filepath.Dir(d) {
			return "", os.ErrNotExist
		}
	}
}

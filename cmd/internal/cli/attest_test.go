package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// attest --out creates the file's directory, as run --out-dir does.
func TestAttestOutCreatesDirectory(t *testing.T) {
	t.Chdir(t.TempDir())
	must(t, "keygen", "ci", "--type", "ed25519")
	ref := "registry.example/acme/app@sha256:" + strings.Repeat("cd", 32)
	out := filepath.Join("evidence", "nested", "app.slsa.dsse.json")
	must(t, "attest", "--image", ref, "--predicate-type", "slsa-v0.2", "--builder-id", "https://ci.example",
		"--key", "ci", "--out", out)
	fi, err := os.Stat(filepath.Dir(out))
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); !fi.IsDir() || perm&^0o755 != 0 {
		t.Errorf("created %s with mode %v, want a directory of at most 0755", filepath.Dir(out), fi.Mode())
	}
	must(t, "verify", "--attestation", out, "--key", "ci.pub", "--predicate-type", "slsa-v0.2")

	// A parent that cannot be created is an input error (exit 2), not a crash.
	write(t, "file", "x")
	if r := tg(t, "attest", "--image", ref, "--predicate-type", "slsa-v0.2", "--builder-id", "https://ci.example",
		"--key", "ci", "--out", filepath.Join("file", "sub", "a.json")); r.code == 0 || !strings.Contains(r.stderr, "file/sub") {
		t.Errorf("--out under a regular file: %s", r)
	}
}

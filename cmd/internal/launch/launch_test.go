package launch

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The executable-adjacent lookup is exercised by cmd/tollgate's tests, which build the
// pair; here, the PATH fallback and the error without either.
func TestFindOnPath(t *testing.T) {
	dir := t.TempDir()
	want := filepath.Join(dir, Full)
	t.Setenv("PATH", dir)
	if _, err := Find(); err == nil || !strings.Contains(err.Error(), "neither beside") {
		t.Fatalf("Find with no %s anywhere: %v", Full, err)
	}
	if err := os.WriteFile(want, []byte("#!/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Find(); err == nil {
		t.Fatalf("Find accepted a %s that is not executable", Full)
	}
	if err := os.Chmod(want, 0o755); err != nil {
		t.Fatal(err)
	}
	if got, err := Find(); err != nil || got != want {
		t.Fatalf("Find = %q, %v; want %q", got, err, want)
	}
}

package envelope

import (
	"os"
	"testing"
)

// Interop tests run the real Python in-toto 1.3.1 (Debian's, under /usr/bin/python3) and
// cosign, found by test/toolcheck: a missing tool skips the test unless
// TOLLGATE_REQUIRE_TOOLS=1, as in CI.

func readFile(t testing.TB, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

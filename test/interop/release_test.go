//go:build interop

package interop

import (
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"tollgate.dev/tollgate/test/toolcheck"
)

// TestExampleRelease runs examples/release/release.sh end to end: Tollgate's own release
// (`make build` recorded as a link, the image built and pushed to a loopback registry by
// deploy/image, SLSA provenance, attach) and a final `tollgate verify --image` against a
// node policy, which must say verified for the very digest deploy/image pushed.
// It runs `make build`, so it rewrites bin/ in the checkout, as `make interop` does.
func TestExampleRelease(t *testing.T) {
	for _, tool := range []string{"bash", "make", "git", "go"} {
		if _, err := exec.LookPath(tool); err != nil {
			toolcheck.Unavailable(t, "%s not found: examples/release/release.sh needs it", tool)
		}
	}
	bin := tollgateBin(t)
	work := t.TempDir()
	cmd := exec.Command("bash", filepath.Join("..", "..", "examples", "release", "release.sh"))
	cmd.Env = append(cmd.Environ(), "TOLLGATE="+bin, "WORK="+work, "VERSION=v0.0.0-interop")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("release.sh: %v\n%s", err, out)
	}
	pushed := regexp.MustCompile(`(?m)^pushed (127\.0\.0\.1:\d+/tollgate-dev/tollgate@sha256:[0-9a-f]{64})$`).FindSubmatch(out)
	if pushed == nil {
		t.Fatalf("release.sh did not report the pushed digest:\n%s", out)
	}
	if !strings.Contains(string(out), "tollgate: verified "+string(pushed[1])+": ") {
		t.Fatalf("release.sh did not end with %s verified:\n%s", pushed[1], out)
	}
	for _, pattern := range []string{"build.*.link", "publish.*.link"} {
		if m, _ := filepath.Glob(filepath.Join(work, "links", pattern)); len(m) != 1 {
			t.Errorf("links/%s: found %v, want one link", pattern, m)
		}
	}
}

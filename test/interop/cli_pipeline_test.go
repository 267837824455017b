//go:build interop

package interop

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestExamplePipeline runs examples/pipeline/pipeline.sh end to end: keys, layout, three
// recorded steps, an image pushed to a loopback registry, provenance, attach, and a final
// `tollgate verify --image` that must say verified.
func TestExamplePipeline(t *testing.T) {
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("bash not found")
	}
	bin := tollgateBin(t)
	cmd := exec.Command("bash", filepath.Join("..", "..", "examples", "pipeline", "pipeline.sh"))
	cmd.Env = append(cmd.Environ(), "TOLLGATE="+bin, "WORK="+t.TempDir())
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("pipeline.sh: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "tollgate: verified ") {
		t.Fatalf("pipeline.sh did not end verified:\n%s", out)
	}
}

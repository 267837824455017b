package policy_test

import (
	"bytes"
	"os/exec"
	"strings"
	"testing"
)

// The offline verifier (tollgate verify) links only the packages below, and its
// whole-process time is a DESIGN §7 target (≥ 25× faster than Python's in-toto-verify;
// see docs/performance.md). Most of that time is process start-up, which grows with what
// the binary links: package initialisation (protobuf descriptor registration above all,
// CEL's environment, YAML) and the pages it touches. These dependencies belong to other
// paths (the daemon, the CLI's registry and policy commands) and must not creep in here:
// predicates are decoded by package predicate, DSSE's PAE is our own so that
// go-securesystemslib/dsse does not bring in golang.org/x/crypto/ssh.
var offlineVerifyPackages = []string{
	"tollgate.dev/tollgate/policy/attest",
	"tollgate.dev/tollgate/policy/cosign",
	"tollgate.dev/tollgate/policy/envelope",
	"tollgate.dev/tollgate/policy/intoto",
	"tollgate.dev/tollgate/policy/keys",
	"tollgate.dev/tollgate/policy/reason",
	"tollgate.dev/tollgate/policy/internal/jsonlimit",
}

// heavyDependencies are import path prefixes (a path or anything under it).
var heavyDependencies = []string{
	"google.golang.org/protobuf",
	"github.com/in-toto/attestation",
	"cel.dev",
	"github.com/google/cel-go",
	"golang.org/x/crypto/ssh",
	"github.com/google/go-containerregistry",
	"go.yaml.in",
}

func TestOfflineVerifyDependencies(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command in PATH:", err)
	}
	// One line per package of the closure: its path, then its direct (non-test) imports.
	args := append([]string{"list", "-deps", "-f", "{{.ImportPath}}{{range .Imports}} {{.}}{{end}}"}, offlineVerifyPackages...)
	cmd := exec.Command(goTool, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.Bytes())
	}
	imports := map[string][]string{}
	for line := range strings.Lines(string(out)) {
		f := strings.Fields(line)
		if len(f) > 0 {
			imports[f[0]] = f[1:]
		}
	}
	for _, root := range offlineVerifyPackages {
		if _, ok := imports[root]; !ok {
			t.Errorf("go list did not report %s", root)
			continue
		}
		// Breadth first, so each reported chain is a shortest one.
		via := map[string]string{root: ""}
		queue := []string{root}
		for len(queue) > 0 {
			p := queue[0]
			queue = queue[1:]
			if heavy(p) {
				t.Errorf("%s depends on %s: %s", root, p, chain(via, p))
				continue
			}
			for _, q := range imports[p] {
				if _, seen := via[q]; !seen {
					via[q] = p
					queue = append(queue, q)
				}
			}
		}
	}
}

func heavy(path string) bool {
	for _, prefix := range heavyDependencies {
		if path == prefix || strings.HasPrefix(path, prefix+"/") {
			return true
		}
	}
	return false
}

// chain renders the import path from the root to p.
func chain(via map[string]string, p string) string {
	var c []string
	for ; p != ""; p = via[p] {
		c = append(c, p)
	}
	for i, j := 0, len(c)-1; i < j; i, j = i+1, j-1 {
		c[i], c[j] = c[j], c[i]
	}
	return strings.Join(c, " -> ")
}

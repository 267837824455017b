//go:build e2e

package e2e

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestPreview runs `tollgate preview --containerd` against a real containerd with images
// pulled through CRI and a container running: a policy change that requires another
// builder in app's provenance would newly deny the signed image, whose container runs,
// and the preview says so (and why) before the change is rolled out; the image the
// current policies already deny is unchanged. Read offline from a node evidence directory,
// the preview says the same without a registry.
func TestPreview(t *testing.T) {
	env := Start(t)
	g := newGate(t, env)
	g.pod = env.RunPod(t, "preview")
	signed := g.pushSigned(t, "app:signed", "signed")
	unsigned := g.push(t, "app:unsigned", "unsigned")
	env.MustPull(t, signed.Ref)
	env.MustPull(t, unsigned.Ref)
	running := g.mustRun(t, signed.Ref)

	// The change under review: app's provenance must now come from another builder.
	newDir := filepath.Join(g.workDir, "new-policies")
	ents, err := os.ReadDir(g.policyDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		copyFile(t, filepath.Join(g.policyDir, e.Name()), filepath.Join(newDir, e.Name()))
	}
	app := strings.Replace(string(readFile(t, filepath.Join(newDir, "app.yaml"))), builderID, "https://ci.other.example/builder", 1)
	writeFile(t, filepath.Join(newDir, "app.yaml"), app)

	args := []string{"preview", "--policy-dir", newDir, "--compare", g.policyDir, "--containerd", env.Socket}
	out, code := g.cliExit(t, append(args, "--insecure-registry", g.host, "-o", "json")...)
	if code != 1 {
		t.Fatalf("preview of a change that denies a running image: exit %d, want 1\n%s", code, out)
	}
	checkPreview(t, out, running, signed.ConfigDigest, unsigned.ConfigDigest)
	text, code := g.cliExit(t, append(args, "--insecure-registry", g.host)...)
	if code != 1 || !strings.Contains(text, "NEWLY DENIED "+signed.Ref) || !strings.Contains(text, "running: "+running) {
		t.Errorf("text preview: exit %d\n%s", code, text)
	}
	t.Logf("preview:\n%s", text)

	// On the node with no registry: the node evidence directory holds what the registry did.
	evDir := filepath.Join(g.workDir, "node-evidence")
	g.tollgate(t, "fetch", "--image", signed.DigestRef(), "--insecure-registry", g.host,
		"--out", filepath.Join(evDir, strings.Replace(signed.Digest, ":", "/", 1)))
	out, code = g.cliExit(t, append(args, "--offline", "--evidence-dir", evDir, "--cache-dir", g.cacheDir, "-o", "json")...)
	if code != 1 {
		t.Fatalf("offline preview: exit %d, want 1\n%s", code, out)
	}
	checkPreview(t, out, running, signed.ConfigDigest, unsigned.ConfigDigest)

	// The policies in force compared with themselves: nothing changes, exit 0.
	if out, code := g.cliExit(t, "preview", "--policy-dir", g.policyDir, "--compare", g.policyDir,
		"--containerd", env.Socket, "--insecure-registry", g.host); code != 0 {
		t.Errorf("no change: exit %d, want 0\n%s", code, out)
	}
}

// checkPreview checks the JSON preview: the signed image newly denied by its provenance
// condition, with its running container; the unsigned one denied before and after.
func checkPreview(t *testing.T, out, running, signedConfig, unsignedConfig string) {
	t.Helper()
	var rep struct {
		Summary struct{ NewlyDenied, Errors int }
		Images  []struct {
			ConfigDigest string
			Containers   []string
			Change       string
			Error        string
			After        *struct {
				Reasons []struct{ Kind string }
			}
		}
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("preview JSON: %v\n%s", err, out)
	}
	seen := 0
	for _, img := range rep.Images {
		switch img.ConfigDigest {
		case signedConfig:
			seen++
			if img.Change != "newly-denied" || len(img.Containers) != 1 || img.Containers[0] != running || img.After == nil ||
				len(img.After.Reasons) == 0 || img.After.Reasons[0].Kind != "condition_failed" {
				t.Errorf("signed image: %+v", img)
			}
		case unsignedConfig:
			seen++
			if img.Change != "unchanged" || len(img.Containers) != 0 {
				t.Errorf("unsigned image: %+v", img)
			}
		}
	}
	if seen != 2 || rep.Summary.NewlyDenied != 1 || rep.Summary.Errors != 0 {
		t.Errorf("preview: %d of the 2 images seen, summary %+v\n%s", seen, rep.Summary, out)
	}
}

// cliExit runs the CLI and returns its standard output and exit status.
func (g *gate) cliExit(t *testing.T, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(g.cli, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return stdout.String(), 0
	case errors.As(err, &ee):
		if stderr.Len() > 0 {
			t.Logf("tollgate %s: stderr: %s", args[0], stderr.String())
		}
		return stdout.String(), ee.ExitCode()
	}
	t.Fatalf("tollgate %s: %v", strings.Join(args, " "), err)
	return "", 0
}

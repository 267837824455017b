package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// heavy are packages the tollgate binary must not link: each adds start-up cost (package
// initialisers, page faults) to every offline verification, which DESIGN §7 holds to 25×
// faster than in-toto-verify as a whole process. They belong in tollgate-full.
var heavy = []string{
	"google.golang.org/protobuf/",
	"cel.dev/",
	"github.com/google/cel-go",
	"github.com/google/go-containerregistry/",
	"github.com/in-toto/in-toto-golang/",
	"github.com/in-toto/attestation/",
	"golang.org/x/crypto/ssh",
	"go.yaml.in/",
	"sigs.k8s.io/yaml",
	"github.com/spf13/cobra",
	"go.uber.org/zap",
	"tollgate.dev/tollgate/daemon",
	"tollgate.dev/tollgate/cmd/internal/cli",
}

func goTool(t *testing.T) string {
	t.Helper()
	g, err := exec.LookPath("go")
	if err != nil {
		t.Skip("needs the go tool")
	}
	return g
}

func TestLinksOnlyTheVerifier(t *testing.T) {
	out, err := exec.Command(goTool(t), "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	for _, dep := range strings.Fields(string(out)) {
		for _, h := range heavy {
			if strings.HasPrefix(dep, h) {
				t.Errorf("tollgate links %s; keep it in tollgate-full (cmd/internal/cli)", dep)
			}
		}
	}
}

// binaries builds tollgate and tollgate-full into one directory, as an install has them.
func binaries(t *testing.T) string {
	t.Helper()
	g := goTool(t)
	dir := t.TempDir()
	for _, pkg := range []string{".", "../tollgate-full"} {
		cmd := exec.Command(g, "build", "-o", dir+"/", pkg)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go build %s: %v\n%s", pkg, err, out)
		}
	}
	return dir
}

type run struct {
	code           int
	stdout, stderr string
}

func runIn(t *testing.T, wd, bin string, args ...string) run {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Dir = wd
	cmd.Env = []string{"PATH=/nonexistent", "HOME=" + wd}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("running %s: %v", bin, err)
	}
	return run{code: cmd.ProcessState.ExitCode(), stdout: out.String(), stderr: errb.String()}
}

// TestHandsOtherCommandsToTollgateFull runs the installed pair: every command works
// through tollgate; offline verification keeps working without tollgate-full (it runs in
// tollgate's own process); anything else then fails with an error that names the fix.
func TestHandsOtherCommandsToTollgateFull(t *testing.T) {
	bin := binaries(t)
	tg, full := filepath.Join(bin, "tollgate"), filepath.Join(bin, "tollgate-full")
	wd := t.TempDir()

	if a, b := runIn(t, wd, tg, "version"), runIn(t, wd, full, "version"); a != b || a.code != 0 {
		t.Errorf("tollgate version %+v, tollgate-full version %+v", a, b)
	}
	if r := runIn(t, wd, tg, "verify", "--help"); r.code != 0 || !strings.Contains(r.stdout, "--layout-keys") {
		t.Errorf("verify --help through tollgate: %+v", r)
	}
	if r := runIn(t, wd, tg, "keygen", "owner", "--type", "ed25519"); r.code != 0 {
		t.Fatalf("keygen through tollgate: %+v", r)
	}
	write := func(name, data string) {
		if err := os.WriteFile(filepath.Join(wd, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("layout.yaml", "expires: 24h\nsteps:\n  - name: build\n    functionaries: [owner.pub]\n    products: [ALLOW *]\n")
	if r := runIn(t, wd, tg, "layout", "create", "--from", "layout.yaml", "--key", "owner", "--out", "root.layout"); r.code != 0 {
		t.Fatalf("layout create through tollgate: %+v", r)
	}
	write("out", "built\n")
	if r := runIn(t, wd, tg, "run", "-n", "build", "-k", "owner", "-p", "out", "-d", "links", "--no-command"); r.code != 0 {
		t.Fatalf("run through tollgate: %+v", r)
	}
	verify := []string{"verify", "--layout", "root.layout", "--layout-keys", "owner.pub", "--link-dir", "links"}
	withFull := runIn(t, wd, tg, verify...)
	if withFull.code != 0 || !strings.HasSuffix(withFull.stdout, "VERIFIED\n") {
		t.Fatalf("verify: %+v", withFull)
	}

	if err := os.Remove(full); err != nil {
		t.Fatal(err)
	}
	if r := runIn(t, wd, tg, verify...); r != withFull {
		t.Errorf("verify without tollgate-full: %+v, want %+v", r, withFull)
	}
	r := runIn(t, wd, tg, "version")
	if r.code != 2 || !strings.Contains(r.stderr, "tollgate-full") || !strings.Contains(r.stderr, "PATH") {
		t.Errorf("version without tollgate-full: %+v", r)
	}
}

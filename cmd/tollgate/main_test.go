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

func goTool(t *testing.T) string {
	t.Helper()
	g, err := exec.LookPath("go")
	if err != nil {
		t.Skip("needs the go tool")
	}
	return g
}

// binary builds tollgate as an install has it: one file, nothing beside it.
func binary(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	cmd := exec.Command(goTool(t), "build", "-o", dir+"/", ".")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return filepath.Join(dir, "tollgate")
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

// TestOneBinary runs the installed CLI alone, with nothing on PATH: every command of a
// pipeline works from the one binary (`go install .../cmd/tollgate` is a whole install).
func TestOneBinary(t *testing.T) {
	tg := binary(t)
	wd := t.TempDir()

	if r := runIn(t, wd, tg, "version"); r.code != 0 || !strings.HasPrefix(r.stdout, "tollgate ") {
		t.Errorf("version: %+v", r)
	}
	if r := runIn(t, wd, tg, "verify", "--help"); r.code != 0 || !strings.Contains(r.stdout, "--layout-keys") {
		t.Errorf("verify --help: %+v", r)
	}
	if r := runIn(t, wd, tg, "keygen", "owner", "--type", "ed25519"); r.code != 0 {
		t.Fatalf("keygen: %+v", r)
	}
	write := func(name, data string) {
		if err := os.WriteFile(filepath.Join(wd, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("layout.yaml", "expires: 24h\nsteps:\n  - name: build\n    functionaries: [owner.pub]\n    products: [ALLOW *]\n")
	if r := runIn(t, wd, tg, "layout", "create", "--from", "layout.yaml", "--key", "owner", "--out", "root.layout"); r.code != 0 {
		t.Fatalf("layout create: %+v", r)
	}
	write("out", "built\n")
	if r := runIn(t, wd, tg, "run", "-n", "build", "-k", "owner", "-p", "out", "-d", "links", "--no-command"); r.code != 0 {
		t.Fatalf("run: %+v", r)
	}
	verify := []string{"verify", "--layout", "root.layout", "--layout-keys", "owner.pub", "--link-dir", "links"}
	if r := runIn(t, wd, tg, verify...); r.code != 0 || !strings.HasSuffix(r.stdout, "VERIFIED\n") {
		t.Fatalf("verify: %+v", r)
	}
	// A link changed after signing fails verification (exit 1), as a sentence.
	links, err := filepath.Glob(filepath.Join(wd, "links", "build.*.link"))
	if err != nil || len(links) != 1 {
		t.Fatalf("links: %v %v", links, err)
	}
	data, err := os.ReadFile(links[0])
	if err != nil {
		t.Fatal(err)
	}
	write(filepath.Join("links", filepath.Base(links[0])), strings.Replace(string(data), "build", "built", 1))
	if r := runIn(t, wd, tg, verify...); r.code != 1 || !strings.Contains(r.stdout, "FAILED") {
		t.Errorf("verify of a tampered link: %+v", r)
	}
	if r := runIn(t, wd, tg, "bogus"); r.code != 2 || !strings.Contains(r.stderr, "bogus") {
		t.Errorf("unknown command: %+v", r)
	}
}

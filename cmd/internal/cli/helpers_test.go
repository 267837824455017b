package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// result is one in-process run of the CLI.
type result struct {
	code           int
	stdout, stderr string
}

func (r result) String() string {
	return "exit " + strconv.Itoa(r.code) + "\nstdout:\n" + r.stdout + "\nstderr:\n" + r.stderr
}

// tg runs tollgate with args in-process, with environ as its whole environment.
func tgEnv(t *testing.T, environ []string, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	code := Run(context.Background(), args, strings.NewReader(""), &out, &errb, environ)
	return result{code: code, stdout: out.String(), stderr: errb.String()}
}

func tg(t *testing.T, args ...string) result { t.Helper(); return tgEnv(t, nil, args...) }

// must runs tollgate and fails the test unless it exits 0.
func must(t *testing.T, args ...string) result {
	t.Helper()
	r := tg(t, args...)
	if r.code != 0 {
		t.Fatalf("tollgate %s: %s", strings.Join(args, " "), r)
	}
	return r
}

func write(t *testing.T, path, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

// pipelineLayout is a three-step supply chain: build (alice, ed25519) packs foo.py, test
// (bob, ecdsa) lists the tarball, package (carol, rsa) wraps it.
const pipelineLayout = `expires: 8760h
readme: three steps
steps:
  - name: build
    functionaries: [alice.pub]
    expected_command: [tar, czf, foo.tar.gz, foo.py]
    materials: [ALLOW foo.py, DISALLOW *]
    products: [CREATE foo.tar.gz, ALLOW foo.py, DISALLOW *]
  - name: test
    functionaries: [bob.pub]
    expected_command: sh -c "tar tzf foo.tar.gz > report.txt"
    materials: [MATCH foo.tar.gz WITH PRODUCTS FROM build, DISALLOW *]
    products: [CREATE report.txt, ALLOW foo.tar.gz, DISALLOW *]
  - name: package
    threshold: 1
    functionaries: [carol.pub]
    materials: [MATCH foo.tar.gz WITH PRODUCTS FROM build, DISALLOW *]
    products: [CREATE release.tar, ALLOW foo.tar.gz, DISALLOW *]
`

// pipeline is a working directory with keys, a signed layout and the three links.
type pipeline struct {
	dir, links string
}

// newPipeline makes keys (carol's encrypted), the layout and all three links, in a temp
// directory that becomes the working directory.
func newPipeline(t *testing.T) *pipeline {
	t.Helper()
	p := &pipeline{dir: t.TempDir()}
	t.Chdir(p.dir)
	p.links = filepath.Join(p.dir, "links")
	must(t, "keygen", "owner", "--type", "rsa", "--bits", "2048")
	must(t, "keygen", "alice", "--type", "ed25519")
	must(t, "keygen", "bob", "--type", "ecdsa")
	must(t, "keygen", "mallory", "--type", "ed25519")
	if r := tgEnv(t, []string{"CAROL_PASS=s3cret"}, "keygen", "carol", "--type", "rsa", "--bits", "2048", "--passphrase-env", "CAROL_PASS"); r.code != 0 {
		t.Fatal(r)
	}
	write(t, "layout.yaml", pipelineLayout)
	must(t, "layout", "create", "--from", "layout.yaml", "--key", "owner", "--out", "root.layout")
	write(t, "foo.py", "print('hello')\n")
	must(t, "run", "-n", "build", "-k", "alice", "-m", "foo.py", "-p", "foo.py", "foo.tar.gz", "-d", "links", "--", "tar", "czf", "foo.tar.gz", "foo.py")
	must(t, "run", "-n", "test", "-k", "bob", "-t", "ecdsa", "-m", "foo.tar.gz", "-p", "foo.tar.gz", "report.txt", "-d", "links", "--", "sh", "-c", "tar tzf foo.tar.gz > report.txt")
	if r := tgEnv(t, []string{"CAROL_PASS=s3cret"}, "run", "-n", "package", "-k", "carol", "--passphrase-env", "CAROL_PASS",
		"-m", "foo.tar.gz", "-p", "foo.tar.gz", "release.tar", "-d", "links", "--", "tar", "cf", "release.tar", "foo.tar.gz"); r.code != 0 {
		t.Fatal(r)
	}
	return p
}

func (p *pipeline) linkFile(t *testing.T, step string) string {
	t.Helper()
	m, _ := filepath.Glob(filepath.Join(p.links, step+".*.link"))
	if len(m) != 1 {
		t.Fatalf("links for %s: %v", step, m)
	}
	return m[0]
}

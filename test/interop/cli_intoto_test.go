//go:build interop

package interop

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"tollgate.dev/tollgate/test/toolcheck"
)

// The CLI half of the interop suite: the tollgate binary, built once from this checkout,
// against Python in-toto 1.3.1 and cosign.

var (
	tollgateOnce sync.Once
	tollgatePath string
	tollgateErr  error
)

// tollgateBin builds cmd/tollgate into a temporary directory (once per test binary) and
// returns its path.
func tollgateBin(t *testing.T) string {
	t.Helper()
	tollgateOnce.Do(func() {
		dir, err := os.MkdirTemp("", "tollgate-interop-")
		if err != nil {
			tollgateErr = err
			return
		}
		tollgatePath = filepath.Join(dir, "tollgate")
		cmd := exec.Command("go", "build", "-o", dir+string(filepath.Separator), "./cmd/tollgate")
		cmd.Dir = filepath.Join("..", "..")
		if out, err := cmd.CombinedOutput(); err != nil {
			tollgateErr = errors.New(string(out))
		}
	})
	if tollgateErr != nil {
		t.Fatalf("building tollgate: %v", tollgateErr)
	}
	return tollgatePath
}

// tollgate runs the CLI in dir and returns its exit code and combined output.
func tollgate(t *testing.T, dir string, env []string, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command(tollgateBin(t), args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return 0, out.String()
	case errors.As(err, &exit):
		return exit.ExitCode(), out.String()
	}
	t.Fatalf("tollgate %s: %v", strings.Join(args, " "), err)
	return -1, ""
}

func mustTollgate(t *testing.T, dir string, env []string, args ...string) string {
	t.Helper()
	code, out := tollgate(t, dir, env, args...)
	if code != 0 {
		t.Fatalf("tollgate %s: exit %d\n%s", strings.Join(args, " "), code, out)
	}
	return out
}

// cliLayout is standardSteps written as a tollgate layout description.
const cliLayout = `expires: 720h
readme: interop
steps:
  - name: build
    functionaries: [alice.pub]
    expected_command: tar czf foo.tar.gz foo.py
    materials: [ALLOW foo.py, DISALLOW *]
    products: [CREATE foo.tar.gz, ALLOW foo.py, DISALLOW *]
  - name: test
    functionaries: [bob.pub]
    expected_command: [sh, -c, tar tzf foo.tar.gz > report.txt]
    materials: [MATCH foo.tar.gz WITH PRODUCTS FROM build, DISALLOW *]
    products: [CREATE report.txt, ALLOW foo.tar.gz, DISALLOW *]
  - name: package
    functionaries: [carol.pub]
    expected_command: tar cf release.tar foo.tar.gz
    materials: [MATCH foo.tar.gz WITH PRODUCTS FROM build, DISALLOW *]
    products: [CREATE release.tar, ALLOW foo.tar.gz, DISALLOW *]
`

// TestCLIInTotoVerifyAcceptsTollgate: in-toto-verify accepts a layout from `tollgate layout
// create` with links from `tollgate run`, for rsa, ed25519 and ecdsa functionaries, with
// keys made by `tollgate keygen` and by `in-toto-keygen`, as Metablocks (in-toto 1.3.1 reads no DSSE).
func TestCLIInTotoVerifyAcceptsTollgate(t *testing.T) {
	toolcheck.RequirePythonInToto(t)
	types := map[string]string{"owner": "rsa", "alice": "ed25519", "bob": "ecdsa", "carol": "rsa"}
	for _, tc := range []struct{ name, keygen string }{{"tollgate keys", "tollgate"}, {"in-toto-keygen keys", "python"}} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			for name, typ := range types {
				if tc.keygen == "tollgate" {
					args := []string{"keygen", name, "--type", typ}
					if typ == "rsa" {
						args = append(args, "--bits", "2048")
					}
					mustTollgate(t, dir, nil, args...)
					continue
				}
				args := []string{"-t", typ}
				if typ == "rsa" {
					args = append(args, "-b", "2048")
				}
				cmd := exec.Command(toolcheck.InTotoKeygen, append(args, name)...)
				cmd.Dir = dir
				if out, err := cmd.CombinedOutput(); err != nil {
					t.Fatalf("in-toto-keygen: %v\n%s", err, out)
				}
			}
			writeFile(t, filepath.Join(dir, "layout.yaml"), []byte(cliLayout))
			mustTollgate(t, dir, nil, "layout", "create", "--from", "layout.yaml", "--key", "owner", "--out", "root.layout")
			writeFile(t, filepath.Join(dir, "foo.py"), []byte("print('hello')\n"))
			run := func(step, key string, args ...string) {
				mustTollgate(t, dir, nil, append([]string{"run", "-n", step, "-k", key, "-d", "links"}, args...)...)
			}
			run("build", "alice", "-m", "foo.py", "-p", "foo.py", "foo.tar.gz", "--", "tar", "czf", "foo.tar.gz", "foo.py")
			run("test", "bob", "-m", "foo.tar.gz", "-p", "foo.tar.gz", "report.txt", "--", "sh", "-c", "tar tzf foo.tar.gz > report.txt")
			run("package", "carol", "-m", "foo.tar.gz", "-p", "foo.tar.gz", "release.tar", "--", "tar", "cf", "release.tar", "foo.tar.gz")

			cmd := exec.Command(toolcheck.InTotoVerify, "-l", "root.layout", "-k", "owner.pub", "--link-dir", "links")
			cmd.Dir = dir
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("in-toto-verify rejected tollgate's layout and links: %v\n%s", err, out)
			}
			mustTollgate(t, dir, nil, "verify", "-l", "root.layout", "-k", "owner.pub", "-d", "links")

			// Both reject a tampered product.
			writeFile(t, filepath.Join(dir, "foo.tar.gz"), []byte("evil"))
			mustTollgate(t, dir, nil, "run", "-n", "package", "-k", "carol", "-d", "links", "-m", "foo.tar.gz", "-p", "foo.tar.gz", "release.tar", "--", "tar", "cf", "release.tar", "foo.tar.gz")
			cmd = exec.Command(toolcheck.InTotoVerify, "-l", "root.layout", "-k", "owner.pub", "--link-dir", "links")
			cmd.Dir = dir
			if out, err := cmd.CombinedOutput(); err == nil {
				t.Fatalf("in-toto-verify accepted a tampered chain\n%s", out)
			}
			if code, out := tollgate(t, dir, nil, "verify", "-l", "root.layout", "-k", "owner.pub", "-d", "links"); code != 1 {
				t.Fatalf("tollgate verify: exit %d, want 1\n%s", code, out)
			}
		})
	}
}

// TestCLIVerifiesPythonMetadata: `tollgate verify` accepts a layout and links made by
// Python in-toto, and rejects them once a link is tampered with.
func TestCLIVerifiesPythonMetadata(t *testing.T) {
	e := newPyEnv(t)
	links := filepath.Join(e.dir, "links")
	layoutPath := e.layout(filepath.Join(e.dir, "root.layout"), "2099-01-01T00:00:00Z", standardSteps())
	e.runStandardSteps(links)
	out := mustTollgate(t, e.work, nil, "verify", "--layout", layoutPath, "--layout-keys", e.key("owner")+".pub", "--link-dir", links)
	if !strings.Contains(out, "VERIFIED") {
		t.Errorf("report: %s", out)
	}
	mustTollgate(t, e.work, nil, "layout", "show", layoutPath)
	f := onlyLink(t, links, "test")
	data, err := os.ReadFile(f)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, f, bytes.Replace(data, []byte(`"return-value": 0`), []byte(`"return-value": 1`), 1))
	if code, out := tollgate(t, e.work, nil, "verify", "-l", layoutPath, "-k", e.key("owner")+".pub", "-d", links); code != 1 || !strings.Contains(out, "test") {
		t.Fatalf("tampered Python link: exit %d\n%s", code, out)
	}
}

// TestCLIEncryptedKeygenReadByPython: in-toto-run signs with a passphrase-protected key
// from `tollgate keygen`, under the keyid tollgate printed, for every key type.
func TestCLIEncryptedKeygenReadByPython(t *testing.T) {
	toolcheck.RequirePythonInToto(t)
	dir := t.TempDir()
	for _, typ := range []string{"ed25519", "ecdsa", "rsa"} {
		args := []string{"keygen", typ, "--type", typ, "--passphrase-env", "PW"}
		if typ == "rsa" {
			args = append(args, "--bits", "2048")
		}
		id := strings.TrimSpace(strings.SplitN(mustTollgate(t, dir, []string{"PW=pass phrase"}, args...), "\n", 2)[0])
		if len(id) != 64 {
			t.Fatalf("keyid %q", id)
		}
		cmd := exec.Command(toolcheck.InTotoRun, "-n", "s"+typ, "-k", typ, "-t", typ, "-P", "pass phrase", "--", "true")
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("in-toto-run with tollgate's encrypted %s key: %v\n%s", typ, err, out)
		}
		if _, err := os.Stat(filepath.Join(dir, "s"+typ+"."+id[:8]+".link")); err != nil {
			t.Errorf("in-toto-run signed %s under another keyid: %v", typ, err)
		}
	}
}

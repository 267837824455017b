package cli

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
)

func TestRunInspections(t *testing.T) {
	t.Chdir(t.TempDir())
	must(t, "keygen", "owner")
	must(t, "keygen", "alice")
	write(t, "layout.yaml", `expires: 1h
steps:
  - name: build
    functionaries: [alice.pub]
    products: [CREATE foo.tar.gz, ALLOW foo.py, DISALLOW *]
inspections:
  - name: untar
    run: tar xzf foo.tar.gz -C unpacked
    materials: [MATCH foo.tar.gz WITH PRODUCTS FROM build, ALLOW *]
    products: [MATCH foo.py IN unpacked WITH PRODUCTS FROM build, ALLOW *]
`)
	if r := tg(t, "layout", "create", "-f", "layout.yaml", "-k", "owner", "-o", "root.layout"); r.code != 2 {
		t.Fatalf("inspection without --allow-inspections: %s", r)
	}
	must(t, "layout", "create", "-f", "layout.yaml", "-k", "owner", "-o", "root.layout", "--allow-inspections")
	write(t, "foo.py", "print(1)\n")
	write(t, "unpacked/.keep", "")
	must(t, "run", "-n", "build", "-k", "alice", "-p", "foo.py", "foo.tar.gz", "-d", "links", "--", "tar", "czf", "foo.tar.gz", "foo.py")
	verify := []string{"verify", "-l", "root.layout", "-k", "owner.pub", "-d", "links"}
	r := tg(t, verify...)
	if r.code != 1 || !strings.Contains(r.stdout, "never runs inspection commands") {
		t.Fatalf("without --run-inspections: %s", r)
	}
	r = must(t, append(verify, "--run-inspections")...)
	if !strings.Contains(r.stdout, "UNSAFE") || !strings.Contains(r.stdout, "VERIFIED") {
		t.Errorf("with --run-inspections: %s", r)
	}
	// A failing inspection command fails verification, as in in-toto-verify.
	write(t, "foo.tar.gz", "not a tarball")
	if r := tg(t, append(verify, "--run-inspections")...); r.code != 1 {
		t.Errorf("failing inspection: %s", r)
	}
}

func TestPromptPassphrase(t *testing.T) {
	t.Chdir(t.TempDir())
	run := func(stdin string, args ...string) result {
		var out, errb bytes.Buffer
		code := Run(context.Background(), args, strings.NewReader(stdin), &out, &errb, nil)
		return result{code, out.String(), errb.String()}
	}
	if r := run("pw\n", "keygen", "k", "--prompt"); r.code != 0 {
		t.Fatal(r)
	}
	if r := run("pw\n", "run", "-n", "s", "-k", "k", "--prompt", "-x"); r.code != 0 {
		t.Fatal(r)
	}
	if r := run("", "run", "-n", "s", "-k", "k", "--prompt", "-x"); r.code != 2 {
		t.Errorf("no passphrase on stdin: %s", r)
	}
}

func TestAttestOffline(t *testing.T) {
	t.Chdir(t.TempDir())
	must(t, "keygen", "ci", "--type", "ecdsa")
	must(t, "keygen", "alice")
	digest := "sha256:" + strings.Repeat("ab", 32)
	ref := "registry.example/acme/app@" + digest
	must(t, "run", "-n", "build", "-k", "alice", "-d", ".", "--", "true")
	cases := []struct {
		name, predicateType string
		extra               []string
		want                string
	}{
		{"slsa v1", "slsa-v1", []string{"--builder-id", "https://ci.example", "--source-uri", "git+https://example.com/app", "--source-digest", "gitCommit:abc",
			"--material", "pkg:golang/go@sha256:" + strings.Repeat("1", 64), "--started-on", "2026-01-01T00:00:00Z", "--finished-on", "2026-01-01T00:01:00Z"}, "https://slsa.dev/provenance/v1"},
		{"slsa v0.2", "slsa-v0.2", []string{"--builder-id", "https://ci.example"}, "https://slsa.dev/provenance/v0.2"},
		{"link", "link", []string{"--predicate", "LINK"}, "https://in-toto.io/attestation/link/v0.3"},
		{"custom", "https://example.com/review/v1", []string{"--predicate", "review.json"}, "https://example.com/review/v1"},
	}
	write(t, "review.json", `{"approved": true}`)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			args := []string{"attest", "--image", ref, "--predicate-type", tc.predicateType, "--key", "ci", "--out", "att.json"}
			for _, a := range tc.extra {
				if a == "LINK" {
					a = readLinkName(t)
				}
				args = append(args, a)
			}
			must(t, args...)
			var env struct{ Payload string }
			if err := json.Unmarshal([]byte(readString(t, "att.json")), &env); err != nil {
				t.Fatal(err)
			}
			payload, _ := base64.StdEncoding.DecodeString(env.Payload)
			if !strings.Contains(string(payload), `"predicateType":"`+tc.want+`"`) || !strings.Contains(string(payload), `"name":"registry.example/acme/app"`) {
				t.Errorf("statement: %s", payload)
			}
			must(t, "verify", "--attestation", "att.json", "--key", "ci.pub", "--predicate-type", tc.predicateType, "--image-digest", digest)
		})
	}
	for _, bad := range [][]string{
		{"attest", "--image", ref, "--key", "ci", "--started-on", "yesterday"},
		{"attest", "--image", ref, "--key", "ci", "--source-digest", "abc"},
		{"attest", "--image", ref, "--key", "ci", "--predicate-type", "link"},
		{"attest", "--image", ref, "--key", "ci", "--predicate-type", "https://x/y", "--predicate", "nope.json"},
		{"attest", "--image", ref, "--key", "ci"}, // SLSA v1 outside CI without --source-uri
		{"attest", "--image", ref},
	} {
		if r := tg(t, bad...); r.code != 2 {
			t.Errorf("%v: %s (want exit 2)", bad, r)
		}
	}
}

func readLinkName(t *testing.T) string {
	t.Helper()
	m, _ := filepath.Glob("build.*.link")
	if len(m) != 1 {
		t.Fatalf("build links: %v", m)
	}
	return m[0]
}

func TestLayoutParameters(t *testing.T) {
	t.Chdir(t.TempDir())
	must(t, "keygen", "owner")
	must(t, "keygen", "alice")
	write(t, "layout.yaml", "expires: 1h\nparameters: [ARTIFACT]\nsteps:\n  - name: build\n    functionaries: [alice.pub]\n    products: [\"CREATE {ARTIFACT}\", DISALLOW *]\n")
	must(t, "layout", "create", "-f", "layout.yaml", "-k", "owner", "-o", "root.layout")
	write(t, "app.bin", "x")
	must(t, "run", "-n", "build", "-k", "alice", "-p", "app.bin", "-x", "-d", "links")
	verify := []string{"verify", "-l", "root.layout", "-k", "owner.pub", "-d", "links"}
	must(t, append(verify, "--param", "ARTIFACT=app.bin")...)
	if r := tg(t, append(verify, "--param", "ARTIFACT=other.bin")...); r.code != 1 {
		t.Errorf("wrong parameter value: %s", r)
	}
	if r := tg(t, verify...); r.code == 0 || !strings.Contains(r.stdout+r.stderr, "ARTIFACT") {
		t.Errorf("missing parameter: %s", r)
	}
}

// TestCommandTree: a command line naming a subcommand builds only that one, and every
// other command line (help, an unknown command) sees the whole tree.
func TestCommandTree(t *testing.T) {
	for _, c := range commands {
		root := newRoot(&env{}, []string{c.name, "--help"})
		if sub := root.Commands(); len(sub) != 1 || sub[0].Name() != c.name {
			t.Errorf("%s: built %d commands", c.name, len(sub))
		}
	}
	help := tg(t, "--help")
	for _, c := range commands {
		if help.code != 0 || !strings.Contains(help.stdout, "  "+c.name+" ") {
			t.Errorf("tollgate --help does not list %s:\n%s", c.name, help)
		}
	}
	if r := tg(t, "help", "verify"); r.code != 0 || !strings.Contains(r.stdout, "--layout-keys") {
		t.Errorf("tollgate help verify:\n%s", r)
	}
	if r := tg(t, "verfiy"); r.code != 2 || !strings.Contains(r.stderr, "verify") {
		t.Errorf("a misspelt command does not suggest the right one:\n%s", r)
	}
}

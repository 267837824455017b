package cli

import (
	"bytes"
	"os"
	"strings"
	"testing"
	"time"

	"tollgate.dev/tollgate/cmd/internal/verify"
)

// TestFastVerifyMatchesCLI holds the tollgate binary's in-process verify (verify.Fast) to
// the full CLI: for every command line Fast takes, both give the same exit code, standard
// output and standard error; every other command line Fast must leave to the full CLI.
func TestFastVerifyMatchesCLI(t *testing.T) {
	newPipeline(t)
	at := "--at=" + time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	base := []string{"verify", "--layout", "root.layout", "--layout-keys", "owner.pub", "--link-dir", "links"}
	with := func(extra ...string) []string { return append(append([]string{}, base...), extra...) }
	cases := []struct {
		name    string
		args    []string
		handled bool
		code    int
	}{
		{"verified", base, true, 0},
		{"json", with("-o", "json", at), true, 0},
		{"short flags and nargs", []string{"verify", "-l", "root.layout", "-k", "owner.pub", "alice.pub", "--layout-threshold", "1", "-d", "links"}, true, 0},
		{"wrong layout key", []string{"verify", "-l", "root.layout", "-k", "alice.pub", "-d", "links"}, true, 1},
		{"expired at", with("--at", "2999-01-01T00:00:00Z"), true, 1},
		{"missing layout", []string{"verify", "-l", "nope.layout", "-k", "owner.pub"}, true, 2},
		{"link dir is a file", with("-d", "foo.py"), true, 2},
		{"bad image digest", with("--image-digest", "sha256:zz"), true, 2},
		{"bad --at", with("--at", "yesterday"), true, 2},
		{"attestation without key", []string{"verify", "--attestation", "links/x.json"}, true, 2},
		{"help", []string{"verify", "--help"}, false, 0},
		{"unknown flag", with("--bogus"), false, 2},
		{"positional", with("extra"), false, 2},
		{"bad output", with("-o", "yaml"), false, 2},
		{"nothing to verify", []string{"verify"}, false, 2},
		{"online", []string{"verify", "--image", "registry.invalid/a:1", "--policy-dir", "."}, false, 2},
		{"run inspections", with("--run-inspections"), false, 0},
		{"another command", []string{"version"}, false, 0},
		{"no command", nil, false, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code, handled := verify.Fast(tc.args, &out, &errb, time.Now)
			if handled != tc.handled {
				t.Fatalf("Fast handled = %v, want %v (exit %d)\n%s%s", handled, tc.handled, code, out.String(), errb.String())
			}
			if !handled {
				if out.Len()+errb.Len() > 0 {
					t.Errorf("Fast wrote output for a command line it left alone:\n%s%s", out.String(), errb.String())
				}
				return
			}
			full := tg(t, tc.args...)
			if full.code != tc.code {
				t.Fatalf("full CLI: exit %d, want %d\n%s", full.code, tc.code, full)
			}
			fast := result{code: code, stdout: out.String(), stderr: errb.String()}
			if fast != full {
				t.Errorf("Fast and the full CLI differ.\nFast: %s\nfull: %s", fast, full)
			}
		})
	}
}

// TestFastVerifyReadsTamperedLinks is a failure the fast path must see on its own: a link
// changed after signing.
func TestFastVerifyReadsTamperedLinks(t *testing.T) {
	p := newPipeline(t)
	f := p.linkFile(t, "build")
	data, err := os.ReadFile(f)
	if err != nil {
		t.Fatal(err)
	}
	write(t, f, strings.Replace(string(data), `"return-value":0`, `"return-value":7`, 1))
	var out, errb bytes.Buffer
	code, handled := verify.Fast([]string{"verify", "-l", "root.layout", "-k", "owner.pub", "-d", "links"}, &out, &errb, time.Now)
	if !handled || code != 1 || !strings.Contains(out.String(), `FAILED (bad_signature)`) {
		t.Fatalf("tampered link: handled=%v exit %d\n%s%s", handled, code, out.String(), errb.String())
	}
}

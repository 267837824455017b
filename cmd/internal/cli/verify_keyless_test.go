package cli

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"tollgate.dev/tollgate/test/toolcheck"
)

// Keyless verify's usage and input errors exit 2 and say what to give; outcomes on real
// bundles are in test/interop (the conformance suite).
func TestVerifyKeylessUsage(t *testing.T) {
	dir := t.TempDir()
	root := filepath.Join(dir, "root.json")
	write(t, root, "not json")
	bundle := filepath.Join(dir, "b.json")
	write(t, bundle, `{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json"}`)
	for _, tc := range []struct {
		name string
		args []string
		msg  string
	}{
		{"no bundle", []string{"--trusted-root", root, "--certificate-identity", "a"}, "--attestation (with --key, or with --trusted-root"},
		{"no trusted root", []string{"--attestation", bundle, "--certificate-identity", "a"}, "needs --trusted-root"},
		{"issuer alone", []string{"--attestation", bundle, "--trusted-root", root, "--certificate-oidc-issuer", "i"}, "needs --certificate-identity"},
		{"no signer", []string{"--attestation", bundle, "--trusted-root", root}, "give the signer"},
		{"both exact and regexp", []string{"--attestation", bundle, "--trusted-root", root, "--certificate-identity", "a", "--certificate-identity-regexp", "a.*"}, "not both"},
		{"bad regexp", []string{"--attestation", bundle, "--trusted-root", root, "--certificate-identity-regexp", "("}, "regular expression"},
		{"artifact and digest", []string{"--attestation", bundle, "--trusted-root", root, "--certificate-identity", "a", "--artifact", root, "--image-digest", "sha256:" + strings.Repeat("a", 64)}, "not both"},
		{"bad digest", []string{"--attestation", bundle, "--trusted-root", root, "--certificate-identity", "a", "--image-digest", "sha256:zz"}, "--image-digest"},
		{"unreadable trusted root", []string{"--attestation", bundle, "--trusted-root", filepath.Join(dir, "missing.json"), "--certificate-identity", "a"}, "trusted root"},
		{"malformed trusted root", []string{"--attestation", bundle, "--trusted-root", root, "--certificate-identity", "a"}, "not valid JSON"},
		{"online form", []string{"--image", "r.example/a:1", "--policy-dir", dir, "--trusted-root", root}, "--policy-dir"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := tg(t, append([]string{"verify"}, tc.args...)...)
			if r.code != 2 || !strings.Contains(r.stderr+r.stdout, tc.msg) {
				t.Fatalf("want exit 2 naming %q: %s", tc.msg, r)
			}
		})
	}
}

// TestVerifyKeylessReport: exit 0 with the signer named, exit 1 refused with both
// identities named, and the JSON report.
func TestVerifyKeylessReport(t *testing.T) {
	shared := toolcheck.SharedDir(t, "fixtures/sigstore")
	root := filepath.Join(shared, "roots", "public-good.trusted_root.json")
	bundle := filepath.Join(shared, "real", "conda-attestation.sigstore.json")
	san := "https://github.com/prefix-dev/sigstore-example/.github/workflows/action.yaml@refs/heads/main"
	const iss = "https://token.actions.githubusercontent.com"
	digest := "sha256:54303491a8418fbed24344b513546182c29b43bf282ceb433af65e2299f9271f"
	r := must(t, "verify", "--attestation", bundle, "--trusted-root", root, "--certificate-identity", san,
		"--certificate-oidc-issuer", iss, "--image-digest", digest, "-o", "json")
	var rep keylessReport
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil || !rep.Verified || len(rep.Bundles) != 1 ||
		rep.Bundles[0].Subject != san || rep.Bundles[0].Issuer != iss || rep.Bundles[0].TrustedRoot == "" {
		t.Fatalf("report %v: %s", err, r)
	}
	r = tg(t, "verify", "--attestation", bundle, "--trusted-root", root, "--certificate-identity", san+"x",
		"--certificate-oidc-issuer", iss, "--image-digest", digest)
	if r.code != 1 || !strings.Contains(r.stdout, `signed by subject "`+san+`"`) || !strings.Contains(r.stdout, `not subject "`+san+`x"`) {
		t.Fatalf("other identity: %s", r)
	}
	r = tg(t, "verify", "--attestation", bundle, "--trusted-root", root, "--certificate-identity", san,
		"--certificate-oidc-issuer", iss, "--image-digest", "sha256:"+strings.Repeat("1", 64))
	if r.code != 1 || !strings.Contains(r.stdout, "not over digest") {
		t.Fatalf("other digest: %s", r)
	}
}

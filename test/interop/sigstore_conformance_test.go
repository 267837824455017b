//go:build interop

package interop

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"tollgate.dev/tollgate/test/toolcheck"
)

// The Sigstore client conformance suite's bundle-verify cases (sigstore-conformance), read
// from the shared fixtures and run through the built `tollgate verify`: a case whose
// folder ends in "_fail" must be refused, every other must verify. The protocol is the
// suite's README: optional artifact (else ../a.txt), identity, issuer, key.pub and
// trusted_root.json (else the pinned public-good root).
const (
	conformanceIdentity = "https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/.github/workflows/extremely-dangerous-oidc-beacon.yml@refs/heads/main"
	conformanceIssuer   = "https://token.actions.githubusercontent.com"
)

func TestSigstoreConformance(t *testing.T) {
	shared := toolcheck.SharedDir(t, "fixtures/sigstore")
	suite := filepath.Join(shared, "conformance", "bundle-verify")
	entries, err := os.ReadDir(suite)
	if err != nil {
		toolcheck.Unavailable(t, "conformance suite: %v", err)
	}
	publicGood := filepath.Join(shared, "roots", "public-good.trusted_root.json")
	cases := 0
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		cases++
		name, dir := e.Name(), filepath.Join(suite, e.Name())
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			args := conformanceArgs(dir, suite, publicGood)
			code, out := tollgate(t, dir, nil, args...)
			wantFail := strings.HasSuffix(name, "_fail")
			switch {
			case wantFail && code == 0:
				t.Fatalf("verified, want refused\n%s", out)
			case !wantFail && code != 0:
				t.Fatalf("exit %d, want verified\n%s", code, out)
			case code != 0 && code != 1 && code != 2:
				t.Fatalf("exit %d (want 1 refused or 2 input error)\n%s", code, out)
			}
		})
	}
	if cases != 70 {
		t.Errorf("the suite has %d cases, want 70 (the README's count)", cases)
	}
}

func conformanceArgs(dir, suite, publicGood string) []string {
	exists := func(p string) bool { _, err := os.Stat(filepath.Join(dir, p)); return err == nil }
	read := func(p string) string {
		b, _ := os.ReadFile(filepath.Join(dir, p))
		return strings.TrimSpace(string(b))
	}
	root := publicGood
	if exists("trusted_root.json") {
		root = filepath.Join(dir, "trusted_root.json")
	}
	artifact := filepath.Join(suite, "a.txt")
	if exists("artifact") {
		artifact = filepath.Join(dir, "artifact")
	}
	args := []string{"verify", "--attestation", filepath.Join(dir, "bundle.sigstore.json"),
		"--trusted-root", root, "--artifact", artifact}
	if exists("key.pub") {
		return append(args, "--key", filepath.Join(dir, "key.pub"))
	}
	identity, issuer := conformanceIdentity, conformanceIssuer
	if exists("identity") {
		identity = read("identity")
	}
	if exists("issuer") {
		issuer = read("issuer")
	}
	return append(args, "--certificate-identity", identity, "--certificate-oidc-issuer", issuer)
}

// TestSigstoreRealBundles runs the real bundles of the shared fixtures (GitHub's instance
// for a private repository, public good) through `tollgate verify` with the outcomes the
// fixtures' README gives.
func TestSigstoreRealBundles(t *testing.T) {
	shared := toolcheck.SharedDir(t, "fixtures/sigstore")
	real := filepath.Join(shared, "real")
	github := filepath.Join(shared, "roots", "github.trusted_root.json")
	public := filepath.Join(shared, "roots", "public-good.trusted_root.json")
	conda := "https://github.com/prefix-dev/sigstore-example/.github/workflows/action.yaml@refs/heads/main"
	for _, tc := range []struct {
		name string
		args []string
		want int
	}{
		{"github private repository", []string{"--attestation", "github-private-attestation.sigstore.json", "--trusted-root", github, "--trusted-root", public,
			"--certificate-identity", "https://dotcom.releases.github.com"}, 0},
		{"github bundle without GitHub's root", []string{"--attestation", "github-private-attestation.sigstore.json", "--trusted-root", public,
			"--certificate-identity", "https://dotcom.releases.github.com"}, 1},
		{"cosign v3 blob", []string{"--attestation", "cosign-v3-blob.sigstore.json", "--trusted-root", public,
			"--certificate-identity", "w.vollprecht@gmail.com", "--artifact", "cosign-v3-blob.txt"}, 0},
		{"conda", []string{"--attestation", "conda-attestation.sigstore.json", "--trusted-root", public,
			"--certificate-identity", conda, "--certificate-oidc-issuer", conformanceIssuer, "--artifact", "signed-package-2.1.0-hb0f4dca_0.conda"}, 0},
		{"conda other SAN", []string{"--attestation", "conda-attestation.sigstore.json", "--trusted-root", public,
			"--certificate-identity", conda + "x", "--certificate-oidc-issuer", conformanceIssuer, "--artifact", "signed-package-2.1.0-hb0f4dca_0.conda"}, 1},
		{"conda unanchored regexp", []string{"--attestation", "conda-attestation.sigstore.json", "--trusted-root", public,
			"--certificate-identity-regexp", "https://github.com/prefix-dev/", "--certificate-oidc-issuer", conformanceIssuer}, 1},
		{"conda regexp", []string{"--attestation", "conda-attestation.sigstore.json", "--trusted-root", public,
			"--certificate-identity-regexp", "https://github.com/prefix-dev/.*", "--certificate-oidc-issuer", conformanceIssuer}, 0},
		{"dsse v0.1", []string{"--attestation", "dsse.sigstore.json", "--trusted-root", public, "--certificate-identity", "brian@dehamer.com"}, 0},
		{"dsse two signatures", []string{"--attestation", "dsse-2sigs.sigstore.json", "--trusted-root", public, "--certificate-identity", "brian@dehamer.com"}, 1},
		{"rekor v2 log not in the root", []string{"--attestation", "conda-attestation-rekor2.sigstore.json", "--trusted-root", public,
			"--certificate-identity", "jku@goto.fi", "--artifact", "signed-package-2.1.0-hb0f4dca_0.conda"}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out := tollgate(t, real, nil, append([]string{"verify"}, tc.args...)...)
			if code != tc.want {
				t.Fatalf("exit %d, want %d\n%s", code, tc.want, out)
			}
		})
	}
}

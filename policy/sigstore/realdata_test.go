package sigstore_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"tollgate.dev/tollgate/policy/reason"
	"tollgate.dev/tollgate/policy/sigstore"
	"tollgate.dev/tollgate/test/toolcheck"
)

// TestRealBundles verifies real bundles (GitHub's instance for a private repository, the
// public-good instance) against the pinned trusted roots, with the outcomes the shared
// fixtures' README gives.
func TestRealBundles(t *testing.T) {
	dir := toolcheck.SharedDir(t, "fixtures/sigstore")
	read := func(p string) []byte {
		b, err := os.ReadFile(filepath.Join(dir, p))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	public, err := sigstore.ParseTrustedRoots(read("roots/public-good.trusted_root.json"))
	if err != nil {
		t.Fatal(err)
	}
	github, err := sigstore.ParseTrustedRoots(read("roots/github.trusted_root.json"))
	if err != nil {
		t.Fatal(err)
	}
	if !github.Instances()[0].GitHub || public.Instances()[0].GitHub {
		t.Fatalf("GitHub's instance not told apart: github=%v public=%v", github.Instances()[0].GitHub, public.Instances()[0].GitHub)
	}
	both := sigstore.Join(public, github)
	exact := func(san, iss string) *sigstore.Identity {
		id, err := sigstore.NewIdentity(sigstore.Identity{Subject: sigstore.Exact(san), Issuer: sigstore.Exact(iss)})
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	const gha = "https://token.actions.githubusercontent.com"
	conda := "https://github.com/prefix-dev/sigstore-example/.github/workflows/action.yaml@refs/heads/main"
	for _, tc := range []struct {
		name, bundle, artifact string
		id                     *sigstore.Identity
		wantInstance           string
		wantKind               reason.Kind // "" = verified
		wantMsg                string
	}{
		{"github private", "github-private-attestation.sigstore.json", "", exact("https://dotcom.releases.github.com", ""), "github", "", ""},
		{"cosign v3 blob", "cosign-v3-blob.sigstore.json", "cosign-v3-blob.txt", mustSAN(t, "w.vollprecht@gmail.com"), "fulcio.sigstore.dev", "", ""},
		{"conda", "conda-attestation.sigstore.json", "signed-package-2.1.0-hb0f4dca_0.conda", exact(conda, gha), "fulcio.sigstore.dev", "", ""},
		{"conda other SAN", "conda-attestation.sigstore.json", "signed-package-2.1.0-hb0f4dca_0.conda",
			exact(strings.Replace(conda, "main", "dev", 1), gha), "", reason.BadSignature, `signed by subject "` + conda},
		{"dsse v0.1", "dsse.sigstore.json", "", mustSAN(t, "brian@dehamer.com"), "fulcio.sigstore.dev", "", ""},
		{"dsse two signatures", "dsse-2sigs.sigstore.json", "", mustSAN(t, "brian@dehamer.com"), "", reason.BadSignature, "exactly one signature"},
		{"rekor v2 log not in root", "conda-attestation-rekor2.sigstore.json", "signed-package-2.1.0-hb0f4dca_0.conda", mustSAN(t, "jku@goto.fi"), "", reason.BadSignature, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			art := sigstore.Unbound()
			if tc.artifact != "" {
				art = sigstore.Bytes(read("real/" + tc.artifact))
			}
			v, id, err := both.Verify(read("real/"+tc.bundle), art, sigstore.Policy{Identities: []*sigstore.Identity{tc.id}})
			if tc.wantKind == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				if v.Instance != tc.wantInstance || id != tc.id {
					t.Fatalf("verified by %q as %v, want %q", v.Instance, id, tc.wantInstance)
				}
				return
			}
			if err == nil {
				t.Fatalf("verified, want %s", tc.wantKind)
			}
			if k := reason.KindOf(err); k != tc.wantKind || !strings.Contains(err.Error(), tc.wantMsg) {
				t.Fatalf("got %s: %v; want %s containing %q", k, err, tc.wantKind, tc.wantMsg)
			}
		})
	}
}

func mustSAN(t *testing.T, san string) *sigstore.Identity {
	t.Helper()
	id, err := sigstore.NewIdentity(sigstore.Identity{Subject: sigstore.Exact(san)})
	if err != nil {
		t.Fatal(err)
	}
	return id
}

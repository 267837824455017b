package sigstore_test

import (
	"os"
	"path/filepath"
	"testing"

	"tollgate.dev/tollgate/policy/sigstore"
	"tollgate.dev/tollgate/test/toolcheck"
)

// BenchmarkVerifyKeyless is the cold verification of one real keyless bundle (a public-good
// DSSE attestation with its artifact digest): parse the bundle, verify chain, SCT, log
// entry, timestamp, signature and binding, and match the identity. Nothing is cached
// between iterations but the parsed trusted root, as on a node.
func BenchmarkVerifyKeyless(b *testing.B) {
	dir := toolcheck.SharedDir(b, "fixtures/sigstore")
	read := func(p string) []byte {
		data, err := os.ReadFile(filepath.Join(dir, p))
		if err != nil {
			b.Fatal(err)
		}
		return data
	}
	roots, err := sigstore.ParseTrustedRoots(read("roots/public-good.trusted_root.json"))
	if err != nil {
		b.Fatal(err)
	}
	bundle := read("real/conda-attestation.sigstore.json")
	art, err := sigstore.Digest("sha256:54303491a8418fbed24344b513546182c29b43bf282ceb433af65e2299f9271f")
	if err != nil {
		b.Fatal(err)
	}
	id, err := sigstore.NewIdentity(sigstore.Identity{
		Subject: sigstore.Exact("https://github.com/prefix-dev/sigstore-example/.github/workflows/action.yaml@refs/heads/main"),
		Issuer:  sigstore.Exact("https://token.actions.githubusercontent.com"),
	})
	if err != nil {
		b.Fatal(err)
	}
	pol := sigstore.Policy{Identities: []*sigstore.Identity{id}}
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := roots.Verify(bundle, art, pol); err != nil {
			b.Fatal(err)
		}
	}
}

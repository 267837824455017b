package sigstore_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha512"
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

// BenchmarkPeerP384Verify is the peer for BenchmarkVerifyKeyless, measured in the same
// run: one ECDSA P-384 signature check, the unit cost that dominates a public-good bundle
// (Fulcio's intermediate and root are P-384 keys, so the chain alone costs two, and Go's
// P-384 has no assembly fast path). The ratio says how many such checks one bundle costs.
func BenchmarkPeerP384Verify(b *testing.B) {
	key, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	digest := sha512.Sum384([]byte("payload"))
	sig, err := ecdsa.SignASN1(rand.Reader, key, digest[:])
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if !ecdsa.VerifyASN1(&key.PublicKey, digest[:], sig) {
			b.Fatal("no verify")
		}
	}
}

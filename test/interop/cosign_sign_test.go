//go:build interop

package interop

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"tollgate.dev/tollgate/policy/keys"
)

// signaturePolicy writes a policy directory whose one ImagePolicy requires that images of
// repo are signed (cosign sign, the .sig image) by the key in pub.
func signaturePolicy(t *testing.T, dir, repo string, pub []byte) string {
	t.Helper()
	policyDir := filepath.Join(dir, "sig-policy")
	if err := os.MkdirAll(filepath.Join(policyDir, "keys"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(policyDir, "keys", "release.pub"), pub)
	writeFile(t, filepath.Join(policyDir, "app.yaml"), []byte(`apiVersion: tollgate.dev/v1alpha1
kind: ImagePolicy
metadata: {name: app}
spec:
  images: ["`+repo+`"]
  signatures:
    - name: release
      keys: [keys/release.pub]
`))
	return policyDir
}

// TestCLIVerifyImageAcceptsCosignSign: `tollgate verify --image` accepts an image the real
// `cosign sign --key` signed (its .sig image on a loopback registry), and refuses an unsigned
// image, an image signed by another key, and a signature copied onto another image.
func TestCLIVerifyImageAcceptsCosignSign(t *testing.T) {
	f := newCosignFixture(t)
	signed, unsigned, copied := f.repo+":signed", f.repo+":unsigned", f.repo+":copied"
	signedDigest := cosignPushImage(t, signed)
	cosignPushImage(t, unsigned)
	copiedDigest := cosignPushImage(t, copied)
	f.run(t, "sign", "--key", "cosign.key", "--tlog-upload=false", "--allow-insecure-registry", "--yes", f.repo+"@"+signedDigest.String())
	// cosign's own check, so that a failure below is ours.
	f.run(t, "verify", "--key", "cosign.pub", "--insecure-ignore-tlog", "--allow-insecure-registry", f.repo+"@"+signedDigest.String())

	pub, err := os.ReadFile(filepath.Join(f.dir, "cosign.pub"))
	if err != nil {
		t.Fatal(err)
	}
	policyDir := signaturePolicy(t, f.dir, f.repo, pub)
	verify := func(ref string) (int, string) {
		return tollgate(t, f.dir, f.env, "verify", "--image", ref, "--policy-dir", policyDir, "--insecure-registry", f.host())
	}
	if code, out := verify(signed); code != 0 || !strings.Contains(out, "tollgate: verified") {
		t.Fatalf("cosign-signed image: exit %d\n%s", code, out)
	}
	if code, out := verify(unsigned); code != 1 || !strings.Contains(out, `signature "release": the image has no cosign signature`) {
		t.Errorf("unsigned image: exit %d\n%s", code, out)
	}

	// Another key: the same image is refused under a policy trusting only that key.
	other, err := keys.Generate("ecdsa", 0)
	if err != nil {
		t.Fatal(err)
	}
	otherPub, err := other.MarshalPublic()
	if err != nil {
		t.Fatal(err)
	}
	otherDir := filepath.Join(f.dir, "other")
	if err := os.MkdirAll(otherDir, 0o755); err != nil {
		t.Fatal(err)
	}
	otherPolicy := signaturePolicy(t, otherDir, f.repo, otherPub)
	if code, out := tollgate(t, f.dir, f.env, "verify", "--image", signed, "--policy-dir", otherPolicy, "--insecure-registry", f.host()); code != 1 ||
		!strings.Contains(out, "verifies with the trusted keys") {
		t.Errorf("image signed by another key: exit %d\n%s", code, out)
	}

	// cosign's signature image copied to another image's .sig tag: the payload names the
	// first image's digest, so it signs nothing here.
	sigTag := func(d string) string { return f.repo + ":" + strings.Replace(d, ":", "-", 1) + ".sig" }
	src, err := name.ParseReference(sigTag(signedDigest.String()), name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	dst, err := name.ParseReference(sigTag(copiedDigest.String()), name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	sigImage, err := remote.Image(src)
	if err != nil {
		t.Fatalf("read cosign's signature image: %v", err)
	}
	if err := remote.Write(dst, sigImage); err != nil {
		t.Fatal(err)
	}
	if code, out := verify(copied); code != 1 || !strings.Contains(out, signedDigest.String()) || !strings.Contains(out, "not the image") {
		t.Errorf("a signature of another image: exit %d\n%s", code, out)
	}
}

// TestCLIVerifyCosignBlobBundles: the older bundle format of `cosign attest-blob --bundle`
// verifies with `tollgate verify --attestation` and the cosign key, bound to the blob's
// digest, and that of `cosign sign-blob --bundle` with --artifact; another artifact, another
// digest and a tampered bundle are refused.
func TestCLIVerifyCosignBlobBundles(t *testing.T) {
	f := newCosignFixture(t)
	blob := []byte("a release artifact\n")
	writeFile(t, filepath.Join(f.dir, "artifact.bin"), blob)
	sum := sha256.Sum256(blob)
	digest := "sha256:" + hex.EncodeToString(sum[:])
	writeFile(t, filepath.Join(f.dir, "full.json"), []byte(`{"buildDefinition":{"buildType":"https://tollgate.dev/interop",`+
		`"externalParameters":{"source":"git+https://example.com/app"}},"runDetails":{"builder":{"id":"https://tollgate.dev/ci"}}}`))
	f.run(t, "attest-blob", "--key", "cosign.key", "--tlog-upload=false", "--type", "slsaprovenance1", "--predicate", "full.json",
		"--bundle", "att.bundle", "--yes", "artifact.bin")
	data, err := os.ReadFile(filepath.Join(f.dir, "att.bundle"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(data), `"base64Signature"`) || strings.Contains(string(data), "mediaType") {
		t.Fatalf("cosign wrote a bundle of another format:\n%.300s", data)
	}
	out := mustTollgate(t, f.dir, f.env, "verify", "--attestation", "att.bundle", "--key", "cosign.pub", "--predicate-type", "slsa-v1", "--image-digest", digest)
	if !strings.Contains(out, "VERIFIED") || !strings.Contains(out, "1 accepted") {
		t.Errorf("attest-blob bundle: %s", out)
	}
	if code, out := tollgate(t, f.dir, f.env, "verify", "--attestation", "att.bundle", "--key", "cosign.pub", "--predicate-type", "slsa-v1",
		"--image-digest", "sha256:"+strings.Repeat("0", 64)); code != 1 {
		t.Errorf("attest-blob bundle for another digest: exit %d\n%s", code, out)
	}
	// cosign sign-blob --bundle: a signature over the blob, verified with the key against
	// --artifact (the key is the trust: no trusted root, no log).
	f.run(t, "sign-blob", "--key", "cosign.key", "--tlog-upload=false", "--bundle", "sig.bundle", "--yes", "artifact.bin")
	out = mustTollgate(t, f.dir, f.env, "verify", "--attestation", "sig.bundle", "--key", "cosign.pub", "--artifact", "artifact.bin")
	if !strings.Contains(out, "verified: sig.bundle") {
		t.Errorf("sign-blob bundle: %s", out)
	}
	writeFile(t, filepath.Join(f.dir, "other.bin"), []byte("another artifact\n"))
	if code, out := tollgate(t, f.dir, f.env, "verify", "--attestation", "sig.bundle", "--key", "cosign.pub", "--artifact", "other.bin"); code != 1 || !strings.Contains(out, "REFUSED") {
		t.Errorf("sign-blob bundle over another artifact: exit %d\n%s", code, out)
	}

	tampered := strings.Replace(string(data), `"base64Signature":"`, `"base64Signature":"eyJ`, 1)
	writeFile(t, filepath.Join(f.dir, "tampered.bundle"), []byte(tampered))
	if code, out := tollgate(t, f.dir, f.env, "verify", "--attestation", "tampered.bundle", "--key", "cosign.pub"); code == 0 {
		t.Errorf("tampered bundle accepted: %s", out)
	}
}

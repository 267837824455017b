package policy

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/sigstore/sigstore-go/pkg/testing/ca"

	"tollgate.dev/tollgate/policy/cosign"
	"tollgate.dev/tollgate/policy/cosign/cosigntest"
	"tollgate.dev/tollgate/policy/reason"
)

// Keyless cosign v2 signatures and attestations through Load and Evaluate: a Sigstore made
// in the test (sigstore-go's testing CA, Rekor and CT log) signs the way cosign v2 does,
// its trust material is a TrustedRoot document, and the cosign annotations travel as
// cosign.Layer files, as the registry fetch stores them.

const (
	ghIssuer   = "https://token.actions.githubusercontent.com"
	releaseSAN = "https://github.com/acme/api/.github/workflows/release.yml@refs/heads/main"
	otherSAN   = "https://github.com/acme/other/.github/workflows/release.yml@refs/heads/main"
)

func virtualRoot(t *testing.T, vs *ca.VirtualSigstore) []byte {
	t.Helper()
	data, err := cosigntest.TrustedRoot(vs)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// cosignKeyless returns the annotations cosign v2 writes beside a keyless signature.
func cosignKeyless(t *testing.T, vs *ca.VirtualSigstore, ent *ca.TestEntity, sig []byte) map[string]string {
	t.Helper()
	ann, err := cosigntest.Annotations(vs, ent, sig)
	if err != nil {
		t.Fatal(err)
	}
	return ann
}

func keylessSig(t *testing.T, vs *ca.VirtualSigstore, san, digest string) []byte {
	t.Helper()
	p, err := (&cosign.Payload{DockerReference: testRepo, ManifestDigest: digest}).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	ent, err := vs.Sign(san, ghIssuer, p)
	if err != nil {
		t.Fatal(err)
	}
	sc, err := ent.SignatureContent()
	if err != nil {
		t.Fatal(err)
	}
	ann := cosignKeyless(t, vs, ent, sc.MessageSignatureContent().Signature())
	b, err := cosign.MarshalLayer(cosign.MediaTypeSimpleSigning, ann, p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func keylessDir(t *testing.T, vs *ca.VirtualSigstore, spec string) dir {
	return dir{
		"roots/test.json": virtualRoot(t, vs),
		"roots.yaml": []byte("apiVersion: tollgate.dev/v1alpha1\nkind: TrustedRoot\nmetadata: {name: test}\nspec:\n  files: [roots/test.json]\n" +
			// A private instance: its CA embeds no SCTs; the log entry and its time are required.
			"  requirements: {signedCertificateTimestamps: 0, transparencyLogEntries: 1, observerTimestamps: 1, signedTimestamps: 0}\n"),
		"api.yaml": []byte(`apiVersion: tollgate.dev/v1alpha1
kind: ImagePolicy
metadata: {name: api}
spec:
  images: ["ghcr.io/acme/*"]
` + spec),
	}
}

func TestKeylessCosignSignature(t *testing.T) {
	vs, err := ca.NewVirtualSigstore()
	if err != nil {
		t.Fatal(err)
	}
	release := "  signatures:\n    - name: release\n      identities:\n        - {issuer: \"" + ghIssuer + "\", subject: \"" + releaseSAN + "\"}\n"
	now := time.Now()
	evalWith := func(t *testing.T, spec string, files map[string][]byte) Decision {
		return mustLoad(t, keylessDir(t, vs, spec)).Evaluate(testRequest(), Evidence{Files: files}, now)
	}
	good := keylessSig(t, vs, releaseSAN, manifestDigest)
	wantDecision(t, evalWith(t, release, map[string][]byte{"s.cosign.json": good}), true, Verified, "")

	// Signed by another workflow: refused, naming who signed and who was required.
	d := evalWith(t, release, map[string][]byte{"s.cosign.json": keylessSig(t, vs, otherSAN, manifestDigest)})
	wantDecision(t, d, false, Denied, reason.BadSignature, `signature "release"`, otherSAN, releaseSAN)

	// The signature of another image, and a payload altered after signing.
	d = evalWith(t, release, map[string][]byte{"s.cosign.json": keylessSig(t, vs, releaseSAN, otherDigest)})
	wantDecision(t, d, false, Denied, reason.BindingMismatch, otherDigest)
	var l cosign.Layer
	if err := json.Unmarshal(good, &l); err != nil {
		t.Fatal(err)
	}
	// The payload of another image, under this signature's annotations (the layer file
	// itself is consistent: only the signature over it is wrong).
	p, _ := (&cosign.Payload{DockerReference: "evil.example/api", ManifestDigest: manifestDigest}).Marshal()
	tampered, err := cosign.MarshalLayer(cosign.MediaTypeSimpleSigning, l.Annotations, p)
	if err != nil {
		t.Fatal(err)
	}
	d = evalWith(t, release, map[string][]byte{"s.cosign.json": tampered})
	wantDecision(t, d, false, Denied, "*", `signature "release"`, "not over the artifact")

	// Another Sigstore's signature: the trusted root does not vouch for it.
	vs2, err := ca.NewVirtualSigstore()
	if err != nil {
		t.Fatal(err)
	}
	d = evalWith(t, release, map[string][]byte{"s.cosign.json": keylessSig(t, vs2, releaseSAN, manifestDigest)})
	wantDecision(t, d, false, Denied, "*", `signature "release"`)

	// A key-signed requirement is not met by a keyless signature, nor the reverse.
	dk := keylessDir(t, vs, "  signatures:\n    - name: release\n      keys: [keys/rel1.pub]\n")
	dk.key(t, "rel1")
	d = mustLoad(t, dk).Evaluate(testRequest(), Evidence{Files: map[string][]byte{"s.cosign.json": good}}, now)
	wantDecision(t, d, false, Denied, reason.BadSignature, "verifies with the trusted keys")
	d = evalWith(t, release, map[string][]byte{"s.cosign.json": cosignSig(t, manifestDigest, signer(t, "rel1"))})
	wantDecision(t, d, false, Denied, reason.BadSignature, "is keyless")

	// One key and one identity, threshold 2: both must have signed.
	both := keylessDir(t, vs, release+"      keys: [keys/rel1.pub]\n      threshold: 2\n")
	both.key(t, "rel1")
	set := mustLoad(t, both)
	d = set.Evaluate(testRequest(), Evidence{Files: map[string][]byte{"s.cosign.json": good}}, now)
	wantDecision(t, d, false, Denied, reason.Threshold, "0 distinct trusted keys and 1 distinct trusted identities, 2 required")
	d = set.Evaluate(testRequest(), Evidence{Files: map[string][]byte{"s.cosign.json": good, "k.cosign.json": cosignSig(t, manifestDigest, signer(t, "rel1"))}}, now)
	wantDecision(t, d, true, Verified, "")
}

// A cosign v2 keyless attestation (.att layer: envelope, certificate and Rekor bundle in
// annotations) meets an attestation requirement with identities.
func TestKeylessCosignAttestation(t *testing.T) {
	vs, err := ca.NewVirtualSigstore()
	if err != nil {
		t.Fatal(err)
	}
	st := `{"_type":"https://in-toto.io/Statement/v1","subject":[{"name":"api","digest":{"sha256":"` + strings.TrimPrefix(manifestDigest, "sha256:") + `"}}],"predicateType":"https://slsa.dev/provenance/v1","predicate":{"buildDefinition":{"buildType":"x","externalParameters":{}},"runDetails":{"builder":{"id":"b"}}}}`
	ent, err := vs.Attest(releaseSAN, ghIssuer, []byte(st))
	if err != nil {
		t.Fatal(err)
	}
	sc, err := ent.SignatureContent()
	if err != nil {
		t.Fatal(err)
	}
	env, err := json.Marshal(sc.EnvelopeContent().RawEnvelope())
	if err != nil {
		t.Fatal(err)
	}
	layer, err := cosign.MarshalLayer(cosign.MediaTypeDSSE, cosignKeyless(t, vs, ent, nil), env)
	if err != nil {
		t.Fatal(err)
	}
	spec := func(san string) string {
		return "  attestations:\n    - name: provenance\n      predicateType: slsa-v1\n      identities:\n        - {issuer: \"" + ghIssuer + "\", subject: \"" + san + "\"}\n"
	}
	now := time.Now()
	d := mustLoad(t, keylessDir(t, vs, spec(releaseSAN))).Evaluate(testRequest(), Evidence{Files: map[string][]byte{"a.cosign.json": layer}}, now)
	wantDecision(t, d, true, Verified, "")
	d = mustLoad(t, keylessDir(t, vs, spec(otherSAN))).Evaluate(testRequest(), Evidence{Files: map[string][]byte{"a.cosign.json": layer}}, now)
	wantDecision(t, d, false, Denied, "*", releaseSAN, otherSAN)
}

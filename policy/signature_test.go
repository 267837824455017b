package policy

import (
	"encoding/base64"
	"strings"
	"testing"

	"tollgate.dev/tollgate/policy/cosign"
	"tollgate.dev/tollgate/policy/keys"
	"tollgate.dev/tollgate/policy/reason"
)

const signedPolicy = `apiVersion: tollgate.dev/v1alpha1
kind: ImagePolicy
metadata:
  name: api
spec:
  images: ["ghcr.io/acme/*"]
  signatures:
    - name: release
      keys: [keys/rel1.pub, keys/rel2.pub]
      threshold: THRESHOLD
`

// cosignSig is a `.sig` layer file signing digest with s, as the registry fetch stores it.
func cosignSig(t testing.TB, digest string, s *keys.Signer) []byte {
	t.Helper()
	p, err := (&cosign.Payload{DockerReference: testRepo, ManifestDigest: digest}).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	sig, err := s.Sign(p)
	if err != nil {
		t.Fatal(err)
	}
	b, err := cosign.MarshalLayer(cosign.MediaTypeSimpleSigning, map[string]string{cosign.AnnotationSignature: base64.StdEncoding.EncodeToString(sig)}, p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func signedDir(t testing.TB, threshold string) dir {
	d := dir{}
	d.key(t, "rel1")
	d.key(t, "rel2")
	d["api.yaml"] = []byte(strings.Replace(signedPolicy, "THRESHOLD", threshold, 1))
	return d
}

func TestSignatureRequirement(t *testing.T) {
	rel1, rel2, other := signer(t, "rel1"), signer(t, "rel2"), signer(t, "other")
	cases := []struct {
		name      string
		threshold string
		files     map[string][]byte
		allowed   bool
		kind      reason.Kind
		parts     []string
	}{
		{"signed by one of two", "1", map[string][]byte{"a.sig.json": cosignSig(t, manifestDigest, rel1)}, true, "", nil},
		{"signed by both", "2", map[string][]byte{"a.sig.json": cosignSig(t, manifestDigest, rel1), "b.sig.json": cosignSig(t, manifestDigest, rel2)}, true, "", nil},
		{"same signer twice is below threshold", "2", map[string][]byte{"a.sig.json": cosignSig(t, manifestDigest, rel1), "b.sig.json": cosignSig(t, manifestDigest, rel1)},
			false, reason.Threshold, []string{`signature "release"`, "signed by 1 distinct trusted keys and 0 distinct trusted identities, 2 required"}},
		{"unsigned", "1", map[string][]byte{}, false, reason.MissingEvidence, []string{`signature "release"`, "no cosign signature"}},
		{"wrong key", "1", map[string][]byte{"a.sig.json": cosignSig(t, manifestDigest, other)}, false, reason.BadSignature, []string{"none of the 1 cosign signature(s)"}},
		{"wrong digest", "1", map[string][]byte{"a.sig.json": cosignSig(t, otherDigest, rel1)}, false, reason.BindingMismatch, []string{otherDigest, "not the image", manifestDigest}},
		{"a good signature beside a broken one", "1", map[string][]byte{"a.sig.json": []byte(`{"mediaType":"application/vnd.dev.cosign.simplesigning.v1+json","digest":"sha256:00","size":1,"data":"AA=="}`), "b.sig.json": cosignSig(t, manifestDigest, rel2)}, true, "", nil},
		{"only a broken signature", "1", map[string][]byte{"a.sig.json": []byte(`{"mediaType":"application/vnd.dev.cosign.simplesigning.v1+json","digest":"sha256:00","size":1,"data":"AA=="}`)}, false, reason.MissingEvidence, []string{"no cosign signature"}},
		{"an attestation is no signature", "1", map[string][]byte{"p.json": statement(t, "https://slsa.dev/provenance/v1", []string{manifestDigest}, slsaV1(buildType, "b"), rel1)}, false, reason.MissingEvidence, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := evaluate(t, signedDir(t, c.threshold), c.files)
			if c.allowed {
				wantDecision(t, d, true, Verified, "")
				return
			}
			wantDecision(t, d, false, Denied, c.kind, c.parts...)
		})
	}
}

// A signature requirement beside an attestation requirement: both must hold, and a
// missing attestation does not hide the signature's own verdict.
func TestSignatureWithAttestation(t *testing.T) {
	d := signedDir(t, "1")
	d.key(t, "ci")
	d["api.yaml"] = append(d["api.yaml"], []byte(`  attestations:
    - name: provenance
      predicateType: slsa-v1
      keys: [keys/ci.pub]
`)...)
	sig := cosignSig(t, manifestDigest, signer(t, "rel1"))
	prov := statement(t, "https://slsa.dev/provenance/v1", []string{manifestDigest}, slsaV1(buildType, "b"), signer(t, "ci"))
	wantDecision(t, evaluate(t, d, map[string][]byte{"s.json": sig, "p.json": prov}), true, Verified, "")
	dec := evaluate(t, d, map[string][]byte{"p.json": prov})
	wantDecision(t, dec, false, Denied, reason.MissingEvidence, `signature "release"`)
	dec = evaluate(t, d, map[string][]byte{"s.json": sig})
	wantDecision(t, dec, false, Denied, reason.MissingEvidence, `attestation "provenance"`)
}

func TestLoadSignatures(t *testing.T) {
	for name, c := range map[string]struct{ spec, want string }{
		"no name":          {"  signatures:\n    - keys: [keys/rel1.pub]\n", "name is required"},
		"no keys":          {"  signatures:\n    - name: s\n", "at least one public key"},
		"threshold > keys": {"  signatures:\n    - name: s\n      keys: [keys/rel1.pub]\n      threshold: 2\n", "threshold 2"},
		"twice":            {"  signatures:\n    - name: s\n      keys: [keys/rel1.pub]\n    - name: s\n      keys: [keys/rel1.pub]\n", "used twice"},
		"unknown field":    {"  signatures:\n    - name: s\n      keys: [keys/rel1.pub]\n      identity: x\n", "identity"},
		"missing key":      {"  signatures:\n    - name: s\n      keys: [keys/none.pub]\n", "not in the policy directory"},
	} {
		t.Run(name, func(t *testing.T) {
			d := dir{}
			d.key(t, "rel1")
			d["x.yaml"] = []byte("apiVersion: tollgate.dev/v1alpha1\nkind: ImagePolicy\nmetadata:\n  name: p\nspec:\n  images: [a/b]\n" + c.spec)
			_, err := Load(d, 1)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Load: %v, want an error saying %q", err, c.want)
			}
		})
	}
}

package cosign

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"strings"
	"testing"

	"github.com/sigstore/sigstore-go/pkg/bundle"
	"github.com/sigstore/sigstore-go/pkg/testing/ca"
	"github.com/sigstore/sigstore-go/pkg/tlog"
	"github.com/sigstore/sigstore-go/pkg/verify"

	"tollgate.dev/tollgate/policy/reason"
)

// These tests answer whether sigstore-go v1.3.0 verifies cosign v2 keyless material once
// SigstoreBundle restates it: a Sigstore made in the test (sigstore-go's testing CA, its
// Rekor and TSA) signs the way cosign v2 does, the annotations are written as cosign
// writes them, and sigstore-go's own verifier judges the bundle.

const (
	testIssuer = "https://token.actions.githubusercontent.com"
	testSAN    = "https://github.com/acme/app/.github/workflows/release.yml@refs/heads/main"
)

// keylessAnnotations writes what cosign v2 puts beside a keyless signature: the leaf
// certificate, the chain, and the Rekor bundle with its SET.
func keylessAnnotations(t *testing.T, vs *ca.VirtualSigstore, ent *ca.TestEntity, sig []byte) map[string]string {
	t.Helper()
	vc, err := ent.VerificationContent()
	if err != nil {
		t.Fatal(err)
	}
	leaf := vc.(*bundle.Certificate).Certificate()
	entries, err := ent.TlogEntries()
	if err != nil || len(entries) != 1 {
		t.Fatalf("tlog entries %v %v", entries, err)
	}
	logID, err := vs.RekorLogID()
	if err != nil {
		t.Fatal(err)
	}
	e := entries[0]
	rp := tlog.RekorPayload{Body: e.Body(), IntegratedTime: e.IntegratedTime().Unix(), LogIndex: e.LogIndex(), LogID: logID}
	set, err := vs.RekorSignPayload(rp)
	if err != nil {
		t.Fatal(err)
	}
	rb, err := json.Marshal(map[string]any{"SignedEntryTimestamp": set, "Payload": rp})
	if err != nil {
		t.Fatal(err)
	}
	return map[string]string{
		AnnotationSignature:   base64.StdEncoding.EncodeToString(sig),
		AnnotationCertificate: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leaf.Raw})),
		AnnotationBundle:      string(rb),
	}
}

// sigstoreVerify verifies a bundle with sigstore-go against vs, requiring the log entry
// and the identity.
func sigstoreVerify(t *testing.T, vs *ca.VirtualSigstore, data []byte, art verify.ArtifactPolicyOption, san string) error {
	t.Helper()
	var b bundle.Bundle
	if err := b.UnmarshalJSON(data); err != nil {
		return err
	}
	v, err := verify.NewVerifier(vs, verify.WithTransparencyLog(1), verify.WithIntegratedTimestamps(1))
	if err != nil {
		t.Fatal(err)
	}
	id, err := verify.NewShortCertificateIdentity(testIssuer, "", san, "")
	if err != nil {
		t.Fatal(err)
	}
	_, err = v.Verify(&b, verify.NewPolicy(art, verify.WithCertificateIdentity(id)))
	return err
}

func TestSignatureSigstoreBundle(t *testing.T) {
	vs, err := ca.NewVirtualSigstore()
	if err != nil {
		t.Fatal(err)
	}
	payload := payloadFor(t, imageDigest)
	ent, err := vs.Sign(testSAN, testIssuer, payload)
	if err != nil {
		t.Fatal(err)
	}
	sc, err := ent.SignatureContent()
	if err != nil {
		t.Fatal(err)
	}
	ann := keylessAnnotations(t, vs, ent, sc.MessageSignatureContent().Signature())
	layer, err := MarshalLayer(MediaTypeSimpleSigning, ann, payload)
	if err != nil {
		t.Fatal(err)
	}
	sig, err := parseSig(layer)
	if err != nil {
		t.Fatal(err)
	}
	data, err := sig.SigstoreBundle()
	if err != nil {
		t.Fatal(err)
	}
	if err := sigstoreVerify(t, vs, data, verify.WithArtifact(bytes.NewReader(sig.Raw)), testSAN); err != nil {
		t.Fatalf("sigstore-go refuses the restated cosign signature: %v\n%s", err, data)
	}

	// Refusals, each by sigstore-go: another identity, another payload, a forged SET,
	// a signature by another certificate.
	if err := sigstoreVerify(t, vs, data, verify.WithArtifact(bytes.NewReader(sig.Raw)), "https://github.com/evil/app/.github/workflows/x.yml@refs/heads/main"); err == nil {
		t.Error("accepted under another identity")
	}
	if err := sigstoreVerify(t, vs, data, verify.WithArtifact(bytes.NewReader(payloadFor(t, otherDigest))), testSAN); err == nil {
		t.Error("accepted for another payload")
	}
	forged := map[string]string{}
	for k, v := range ann {
		forged[k] = v
	}
	var rb map[string]any
	_ = json.Unmarshal([]byte(ann[AnnotationBundle]), &rb)
	set, _ := base64.StdEncoding.DecodeString(rb["SignedEntryTimestamp"].(string))
	set[len(set)/2] ^= 1
	rb["SignedEntryTimestamp"] = set
	b, _ := json.Marshal(rb)
	forged[AnnotationBundle] = string(b)
	if err := sigstoreVerify(t, vs, bundleOf(t, MediaTypeSimpleSigning, forged, payload), verify.WithArtifact(bytes.NewReader(payload)), testSAN); err == nil {
		t.Error("accepted a forged SET")
	}
	other, err := vs.Sign(testSAN, testIssuer, payload)
	if err != nil {
		t.Fatal(err)
	}
	swapped := keylessAnnotations(t, vs, other, nil)
	swapped[AnnotationSignature] = ann[AnnotationSignature] // our signature, their certificate and log entry
	if err := sigstoreVerify(t, vs, bundleOf(t, MediaTypeSimpleSigning, swapped, payload), verify.WithArtifact(bytes.NewReader(payload)), testSAN); err == nil {
		t.Error("accepted a signature under another certificate")
	}
}

func bundleOf(t *testing.T, mediaType string, ann map[string]string, blob []byte) []byte {
	t.Helper()
	data, err := MarshalLayer(mediaType, ann, blob)
	if err != nil {
		t.Fatal(err)
	}
	l, err := ParseLayer(data)
	if err != nil {
		t.Fatal(err)
	}
	if mediaType == MediaTypeDSSE {
		b, err := l.SigstoreBundle()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	s, err := SignatureFromLayer(l)
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.SigstoreBundle()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestAttestationSigstoreBundle(t *testing.T) {
	vs, err := ca.NewVirtualSigstore()
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte("app"))
	statement := []byte(`{"_type":"https://in-toto.io/Statement/v1","subject":[{"name":"app","digest":{"sha256":"` + hexOf(sum[:]) + `"}}],"predicateType":"https://slsa.dev/provenance/v1","predicate":{}}`)
	ent, err := vs.Attest(testSAN, testIssuer, statement)
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
	ann := keylessAnnotations(t, vs, ent, nil)
	delete(ann, AnnotationSignature) // an .att layer carries its signature in the envelope
	data := bundleOf(t, MediaTypeDSSE, ann, env)
	if err := sigstoreVerify(t, vs, data, verify.WithArtifactDigest("sha256", sum[:]), testSAN); err != nil {
		t.Fatalf("sigstore-go refuses the restated cosign attestation: %v\n%s", err, data)
	}
	other := sha256.Sum256([]byte("other"))
	if err := sigstoreVerify(t, vs, data, verify.WithArtifactDigest("sha256", other[:]), testSAN); err == nil {
		t.Error("accepted for another subject")
	}
}

func hexOf(b []byte) string {
	const digits = "0123456789abcdef"
	out := make([]byte, 0, 2*len(b))
	for _, c := range b {
		out = append(out, digits[c>>4], digits[c&15])
	}
	return string(out)
}

func TestSigstoreBundleRefusals(t *testing.T) {
	payload := payloadFor(t, imageDigest)
	cert := "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
	good := `{"SignedEntryTimestamp":"AA==","Payload":{"body":"` + base64.StdEncoding.EncodeToString([]byte(`{"apiVersion":"0.0.1","kind":"hashedrekord"}`)) + `","integratedTime":1,"logIndex":2,"logID":"abcd"}}`
	for name, c := range map[string]struct {
		ann  map[string]string
		kind reason.Kind
		want string
	}{
		"key-signed":       {map[string]string{}, reason.MissingEvidence, "signed with a key"},
		"cert not PEM":     {map[string]string{AnnotationCertificate: "nope"}, reason.Malformed, "not a PEM certificate"},
		"cert a key":       {map[string]string{AnnotationCertificate: "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"}, reason.Malformed, "not a PEM certificate"},
		"bundle not JSON":  {map[string]string{AnnotationCertificate: cert, AnnotationBundle: "{"}, reason.Malformed, "not cosign's Rekor bundle"},
		"body not base64":  {map[string]string{AnnotationCertificate: cert, AnnotationBundle: strings.Replace(good, `"body":"`, `"body":"%`, 1)}, reason.Malformed, "not base64"},
		"body no kind":     {map[string]string{AnnotationCertificate: cert, AnnotationBundle: strings.Replace(good, base64.StdEncoding.EncodeToString([]byte(`{"apiVersion":"0.0.1","kind":"hashedrekord"}`)), base64.StdEncoding.EncodeToString([]byte(`{"apiVersion":"0.0.1"}`)), 1)}, reason.Malformed, "names no kind"},
		"log ID not hex":   {map[string]string{AnnotationCertificate: cert, AnnotationBundle: strings.Replace(good, "abcd", "xyz", 1)}, reason.Malformed, "not hex"},
		"no SET":           {map[string]string{AnnotationCertificate: cert, AnnotationBundle: strings.Replace(good, `"AA=="`, `""`, 1)}, reason.Malformed, "no SignedEntryTimestamp"},
		"timestamp broken": {map[string]string{AnnotationCertificate: cert, AnnotationTimestamp: "{}"}, reason.Malformed, "RFC 3161"},
	} {
		t.Run(name, func(t *testing.T) {
			c.ann[AnnotationSignature] = "AA=="
			s, err := parseSig(mustLayer(t, MediaTypeSimpleSigning, c.ann, payload))
			if err != nil {
				t.Fatal(err)
			}
			_, err = s.SigstoreBundle()
			if reason.KindOf(err) != c.kind || err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("SigstoreBundle: %v, want %s saying %q", err, c.kind, c.want)
			}
		})
	}
	l, _ := ParseLayer(mustLayer(t, MediaTypeSimpleSigning, nil, payload))
	if _, err := l.SigstoreBundle(); reason.KindOf(err) != reason.Malformed {
		t.Errorf("Layer.SigstoreBundle of a .sig layer: %v", err)
	}
}

func mustLayer(t *testing.T, mediaType string, ann map[string]string, blob []byte) []byte {
	t.Helper()
	b, err := MarshalLayer(mediaType, ann, blob)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// cosign sign-blob --bundle (older format), keyless: base64Signature, cert (base64 PEM),
// rekorBundle. Restated, sigstore-go verifies it against the blob.
func TestBlobBundleSigstoreBundle(t *testing.T) {
	vs, err := ca.NewVirtualSigstore()
	if err != nil {
		t.Fatal(err)
	}
	blob := []byte("release.tar.gz contents")
	ent, err := vs.Sign(testSAN, testIssuer, blob)
	if err != nil {
		t.Fatal(err)
	}
	sc, err := ent.SignatureContent()
	if err != nil {
		t.Fatal(err)
	}
	ann := keylessAnnotations(t, vs, ent, nil)
	data := blobBundle(sc.MessageSignatureContent().Signature(), ann[AnnotationCertificate], ann[AnnotationBundle])
	bb, err := ParseBlobBundle(data)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(blob)
	sb, err := bb.SigstoreBundle(sum[:])
	if err != nil {
		t.Fatal(err)
	}
	if err := sigstoreVerify(t, vs, sb, verify.WithArtifact(bytes.NewReader(blob)), testSAN); err != nil {
		t.Fatalf("sigstore-go refuses the restated sign-blob bundle: %v", err)
	}
	if err := sigstoreVerify(t, vs, sb, verify.WithArtifact(bytes.NewReader([]byte("another blob"))), testSAN); err == nil {
		t.Error("accepted for another blob")
	}
	if _, err := bb.SigstoreBundle(nil); reason.KindOf(err) != reason.Malformed {
		t.Errorf("no artifact digest: %v", err)
	}
	keyed, err := ParseBlobBundle(blobBundle([]byte("sig"), "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n", ""))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := keyed.SigstoreBundle(sum[:]); reason.KindOf(err) != reason.MissingEvidence || !strings.Contains(err.Error(), "signed with a key") {
		t.Errorf("key-signed bundle: %v", err)
	}
}

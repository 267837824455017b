package cosign

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"strings"
	"testing"

	"tollgate.dev/tollgate/policy/envelope"
	"tollgate.dev/tollgate/policy/keys"
	"tollgate.dev/tollgate/policy/reason"
)

func digestOf(s string) string {
	h := sha256.Sum256([]byte(s))
	return "sha256:" + hex.EncodeToString(h[:])
}

var (
	imageDigest = digestOf("manifest")
	otherDigest = digestOf("other")
)

var signerCache = map[string]*keys.Signer{}

// signer returns a cached ECDSA P-256 key, the kind `cosign generate-key-pair` makes.
func signer(t testing.TB, name string) *keys.Signer {
	t.Helper()
	if s, ok := signerCache[name]; ok {
		return s
	}
	s, err := keys.Generate("ecdsa", 0)
	if err != nil {
		t.Fatal(err)
	}
	signerCache[name] = s
	return s
}

func payloadFor(t testing.TB, digest string) []byte {
	t.Helper()
	b, err := (&Payload{DockerReference: "registry.test/app", ManifestDigest: digest}).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// sigLayer is a `.sig` layer file: payload signed by s, with extra annotations.
func sigLayer(t testing.TB, payload []byte, s *keys.Signer, extra map[string]string) []byte {
	t.Helper()
	sig, err := s.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	ann := map[string]string{AnnotationSignature: base64.StdEncoding.EncodeToString(sig)}
	for k, v := range extra {
		ann[k] = v
	}
	b, err := MarshalLayer(MediaTypeSimpleSigning, ann, payload)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func parseSig(data []byte) (*Signature, error) {
	l, err := ParseLayer(data)
	if err != nil {
		return nil, err
	}
	return SignatureFromLayer(l)
}

func TestSignatureVerifies(t *testing.T) {
	s := signer(t, "release")
	data := sigLayer(t, payloadFor(t, imageDigest), s, map[string]string{AnnotationCertificate: "PEM"})
	if !IsLayer(data) {
		t.Fatal("IsLayer: false for a layer file")
	}
	sig, err := parseSig(data)
	if err != nil {
		t.Fatal(err)
	}
	if !sig.BoundTo(otherDigest, strings.ToUpper(imageDigest[:7])+imageDigest[7:]) {
		t.Error("not bound to its manifest digest")
	}
	if sig.BoundTo(otherDigest) {
		t.Error("bound to another digest")
	}
	if sig.Payload.DockerReference != "registry.test/app" || string(sig.Keyless.Certificate) != "PEM" {
		t.Errorf("payload %+v keyless %+v", sig.Payload, sig.Keyless)
	}
	k, err := sig.Verify([]*keys.Key{signer(t, "other").Key, s.Key})
	if err != nil || k.ID != s.ID {
		t.Fatalf("Verify: %v, %v", k, err)
	}
}

func TestSignatureRefusals(t *testing.T) {
	s := signer(t, "release")
	good := payloadFor(t, imageDigest)
	sigB64 := func(p []byte) string {
		b, err := s.Sign(p)
		if err != nil {
			t.Fatal(err)
		}
		return base64.StdEncoding.EncodeToString(b)
	}
	layer := func(mt string, ann map[string]string, blob []byte) []byte {
		l := Layer{MediaType: mt, Annotations: ann, Data: blob, Size: int64(len(blob))}
		h := sha256.Sum256(blob)
		l.Digest = "sha256:" + hex.EncodeToString(h[:])
		b, _ := json.Marshal(l)
		return b
	}
	tampered := []byte(strings.Replace(string(good), "registry.test", "registry.evil", 1))
	cases := []struct {
		name  string
		data  []byte
		keys  []*keys.Key
		kind  reason.Kind
		parts []string
	}{
		{"wrong key", sigLayer(t, good, s, nil), []*keys.Key{signer(t, "other").Key}, reason.BadSignature, []string{"none of the 1 trusted keys"}},
		{"tampered payload", layer(MediaTypeSimpleSigning, map[string]string{AnnotationSignature: sigB64(good)}, tampered), []*keys.Key{s.Key}, reason.BadSignature, nil},
		{"missing signature annotation", layer(MediaTypeSimpleSigning, nil, good), nil, reason.Malformed, []string{"no " + AnnotationSignature}},
		{"signature not base64", layer(MediaTypeSimpleSigning, map[string]string{AnnotationSignature: "%%%"}, good), nil, reason.Malformed, []string{"not base64"}},
		{"wrong payload type", sigLayer(t, []byte(strings.Replace(string(good), SignatureType, "other", 1)), s, nil), nil, reason.Malformed, []string{"payload type"}},
		{"no digest", sigLayer(t, []byte(`{"critical":{"type":"cosign container image signature","image":{}}}`), s, nil), nil, reason.Malformed, []string{"no docker-manifest-digest"}},
		{"bad digest", sigLayer(t, payloadFor(t, "sha256:abc"), s, nil), nil, reason.Malformed, []string{"not sha256"}},
		{"no critical", sigLayer(t, []byte(`{"optional":{}}`), s, nil), nil, reason.Malformed, []string{"no critical"}},
		{"payload not JSON", sigLayer(t, []byte(`nope`), s, nil), nil, reason.Malformed, []string{"not JSON"}},
		{"unknown descriptor field (control)", []byte(strings.Replace(string(sigLayer(t, good, s, nil)), `"size"`, `"x":1,"size"`, 1)), []*keys.Key{s.Key}, "", nil},
		{"attestation layer", layer(MediaTypeDSSE, nil, []byte(`{}`)), nil, reason.Malformed, []string{"not a cosign signature"}},
		{"other media type", layer("text/plain", nil, good), nil, reason.Malformed, []string{"media type"}},
		{"not JSON", []byte(`{"mediaType":`), nil, reason.Malformed, []string{"not a JSON OCI descriptor"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			sig, err := parseSig(c.data)
			if err == nil && c.keys != nil {
				_, err = sig.Verify(c.keys)
			}
			if c.kind == "" { // a control: must pass
				if err != nil {
					t.Fatalf("unexpected error %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("accepted")
			}
			if reason.KindOf(err) != c.kind {
				t.Errorf("kind %s, want %s: %v", reason.KindOf(err), c.kind, err)
			}
			for _, p := range c.parts {
				if !strings.Contains(err.Error(), p) {
					t.Errorf("error %q does not say %q", err, p)
				}
			}
		})
	}
}

func TestParseLayerIntegrity(t *testing.T) {
	good := sigLayer(t, payloadFor(t, imageDigest), signer(t, "release"), nil)
	var l Layer
	if err := json.Unmarshal(good, &l); err != nil {
		t.Fatal(err)
	}
	mutate := map[string]func(l *Layer){
		"digest of other data": func(l *Layer) { l.Digest = otherDigest },
		"sha512 digest":        func(l *Layer) { l.Digest = "sha512:" + strings.Repeat("a", 128) },
		"size too small":       func(l *Layer) { l.Size-- },
		"no data":              func(l *Layer) { l.Data = nil; l.Size = 0 },
		"huge annotation":      func(l *Layer) { l.Annotations = map[string]string{"x": strings.Repeat("a", MaxAnnotationBytes+1)} },
		"too many annotations": func(l *Layer) {
			l.Annotations = map[string]string{}
			for i := 0; i <= maxAnnotations; i++ {
				l.Annotations[strings.Repeat("k", i+1)] = "v"
			}
		},
	}
	for name, m := range mutate {
		t.Run(name, func(t *testing.T) {
			c := l
			m(&c)
			b, _ := json.Marshal(c)
			if _, err := ParseLayer(b); reason.KindOf(err) != reason.Malformed {
				t.Fatalf("ParseLayer: %v, want a malformed error", err)
			}
		})
	}
	big := make([]byte, MaxLayerBytes+1)
	if _, err := MarshalLayer(MediaTypeSimpleSigning, nil, big); err == nil {
		t.Error("MarshalLayer accepted an oversized blob")
	}
	for _, notLayer := range []string{`{"payloadType":"x","payload":"","signatures":[]}`, `{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json"}`, `[]`, ``} {
		if IsLayer([]byte(notLayer)) {
			t.Errorf("IsLayer(%s) = true", notLayer)
		}
	}
}

func TestKeylessAnnotations(t *testing.T) {
	ann := map[string]string{AnnotationCertificate: "cert", AnnotationChain: "chain", AnnotationBundle: `{"SignedEntryTimestamp":"AA=="}`, AnnotationTimestamp: "ts"}
	b, err := MarshalLayer(MediaTypeDSSE, ann, []byte(`{"payloadType":"application/vnd.in-toto+json","payload":"e30=","signatures":[{"sig":"AA=="}]}`))
	if err != nil {
		t.Fatal(err)
	}
	l, err := ParseLayer(b)
	if err != nil {
		t.Fatal(err)
	}
	k := l.Keyless()
	if k.Empty() || string(k.Certificate) != "cert" || string(k.Chain) != "chain" || string(k.Timestamp) != "ts" || !strings.Contains(string(k.RekorBundle), "SignedEntryTimestamp") {
		t.Errorf("Keyless() = %+v", k)
	}
	if !(Keyless{}).Empty() {
		t.Error("zero Keyless not empty")
	}
}

// blobBundle writes cosign's older bundle the way `cosign sign-blob/attest-blob --bundle`
// does: base64Signature, cert (base64 PEM), rekorBundle when logged.
func blobBundle(sig []byte, cert string, rekor string) []byte {
	m := map[string]any{"base64Signature": base64.StdEncoding.EncodeToString(sig)}
	if cert != "" {
		m["cert"] = base64.StdEncoding.EncodeToString([]byte(cert))
	}
	if rekor != "" {
		m["rekorBundle"] = json.RawMessage(rekor)
	}
	b, _ := json.Marshal(m)
	return b
}

func TestBlobBundle(t *testing.T) {
	s := signer(t, "release")
	artifact := []byte("the artifact")
	sig, err := s.Sign(artifact)
	if err != nil {
		t.Fatal(err)
	}
	signBlob := blobBundle(sig, "", `{"SignedEntryTimestamp":"AA==","Payload":{"body":"e30=","integratedTime":1,"logIndex":2,"logID":"ab"}}`)
	if !IsBlobBundle(signBlob) {
		t.Fatal("IsBlobBundle false")
	}
	b, err := ParseBlobBundle(signBlob)
	if err != nil {
		t.Fatal(err)
	}
	if b.Envelope != nil || len(b.RekorBundle) == 0 {
		t.Fatalf("sign-blob bundle read as %+v", b)
	}
	if k, err := b.VerifyBlob(artifact, []*keys.Key{s.Key}); err != nil || k.ID != s.ID {
		t.Fatalf("VerifyBlob: %v %v", k, err)
	}
	if _, err := b.VerifyBlob([]byte("another artifact"), []*keys.Key{s.Key}); reason.KindOf(err) != reason.BadSignature {
		t.Errorf("other artifact: %v", err)
	}
	if _, err := b.VerifyBlob(artifact, []*keys.Key{signer(t, "other").Key}); reason.KindOf(err) != reason.BadSignature {
		t.Errorf("wrong key: %v", err)
	}

	env := envelope.NewDSSE(envelope.PayloadTypeInToto, []byte(`{"_type":"https://in-toto.io/Statement/v1"}`))
	if err := env.Sign(s); err != nil {
		t.Fatal(err)
	}
	raw, err := env.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := s.MarshalPublic()
	ab, err := ParseBlobBundle(blobBundle(raw, string(pub), ""))
	if err != nil {
		t.Fatal(err)
	}
	if ab.Envelope == nil || string(ab.Cert) != string(pub) {
		t.Fatalf("attest-blob bundle read as %+v", ab)
	}
	if _, err := ab.Envelope.Verify([]*keys.Key{s.Key}, 1); err != nil {
		t.Errorf("envelope does not verify: %v", err)
	}
	if _, err := ab.VerifyBlob(artifact, []*keys.Key{s.Key}); reason.KindOf(err) != reason.Malformed {
		t.Errorf("VerifyBlob on an attestation: %v", err)
	}

	for name, bad := range map[string]string{
		"no signature":       `{"cert":""}`,
		"empty signature":    `{"base64Signature":""}`,
		"signature not b64":  `{"base64Signature":"%%"}`,
		"cert not b64":       `{"base64Signature":"AA==","cert":"%%"}`,
		"JSON not DSSE":      string(blobBundle([]byte(`{"signed":{"_type":"link"},"signatures":[]}`), "", "")),
		"JSON broken":        string(blobBundle([]byte(`{"payload":`), "", "")),
		"not JSON":           `{`,
		"signature a number": `{"base64Signature":1}`,
	} {
		if _, err := ParseBlobBundle([]byte(bad)); reason.KindOf(err) != reason.Malformed {
			t.Errorf("%s: %v, want a malformed error", name, err)
		}
	}
}

package cosign

import (
	"encoding/base64"
	"testing"
)

func FuzzParseLayer(f *testing.F) {
	s := signer(f, "release")
	f.Add(sigLayer(f, payloadFor(f, imageDigest), s, nil))
	f.Add(sigLayer(f, payloadFor(f, imageDigest), s, map[string]string{AnnotationCertificate: "c", AnnotationBundle: "{}"}))
	f.Add([]byte(`{"mediaType":"application/vnd.dsse.envelope.v1+json","digest":"sha256:00","size":1,"data":"AA=="}`))
	f.Add([]byte(`{"mediaType":`))
	f.Add(sigLayer(f, payloadFor(f, imageDigest), s, map[string]string{AnnotationCertificate: "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
		AnnotationBundle:    `{"SignedEntryTimestamp":"AA==","Payload":{"body":"eyJhcGlWZXJzaW9uIjoiMC4wLjEiLCJraW5kIjoiaGFzaGVkcmVrb3JkIn0=","integratedTime":1,"logIndex":2,"logID":"abcd"}}`,
		AnnotationTimestamp: `{"SignedRFC3161Timestamp":"AA=="}`}))
	f.Fuzz(func(t *testing.T, data []byte) {
		l, err := ParseLayer(data)
		if err != nil {
			return
		}
		if len(l.Data) == 0 || int64(len(l.Data)) != l.Size || len(l.Data) > MaxLayerBytes {
			t.Fatalf("accepted an inconsistent layer %+v", l)
		}
		if sig, err := SignatureFromLayer(l); err == nil {
			if !sig.BoundTo(sig.Payload.ManifestDigest) || len(sig.Sig) == 0 {
				t.Fatalf("signature not bound to its own digest: %+v", sig.Payload)
			}
			_, _ = sig.Verify(nil)
			_, _ = sig.SigstoreBundle()
		}
		_, _ = l.SigstoreBundle()
		_ = l.Keyless().Empty()
	})
}

func FuzzParsePayload(f *testing.F) {
	f.Add(payloadFor(f, imageDigest))
	f.Add([]byte(`{"critical":{"identity":{"docker-reference":"r"},"image":{"docker-manifest-digest":"sha256:` + imageDigest[7:] + `"},"type":"cosign container image signature"},"optional":{"a":"b"}}`))
	f.Add([]byte(`{"critical":null}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := ParsePayload(data)
		if err != nil {
			return
		}
		if !validDigest(p.ManifestDigest) {
			t.Fatalf("accepted digest %q", p.ManifestDigest)
		}
	})
}

func FuzzParseBlobBundle(f *testing.F) {
	f.Add(blobBundle([]byte("sig"), "cert", `{"SignedEntryTimestamp":"AA=="}`))
	f.Add(blobBundle([]byte(`{"payloadType":"application/vnd.in-toto+json","payload":"e30=","signatures":[{"sig":"AA=="}]}`), "", ""))
	f.Add([]byte(`{"base64Signature":"` + base64.StdEncoding.EncodeToString([]byte("{")) + `"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := ParseBlobBundle(data)
		if err != nil {
			return
		}
		if len(b.Signature) == 0 {
			t.Fatal("accepted a bundle without a signature")
		}
		_, _ = b.VerifyBlob(nil, nil)
		_, _ = b.SigstoreBundle(make([]byte, 32))
	})
}

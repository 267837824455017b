package sigstore

import (
	"testing"
)

// FuzzParseTrustedRoots: any bytes give trusted roots or an error, never a panic.
func FuzzParseTrustedRoots(f *testing.F) {
	f.Add([]byte(`{"mediaType":"application/vnd.dev.sigstore.trustedroot+json;version=0.1"}`))
	f.Add([]byte("{}\n{}\n"))
	f.Add([]byte(`{"mediaType":"application/vnd.dev.sigstore.trustedroot+json;version=0.1","certificateAuthorities":[{"certChain":{"certificates":[{"rawBytes":"MIIB"}]}}]}`))
	f.Add([]byte(`[1]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		roots, err := ParseTrustedRoots(data)
		if err == nil && len(roots.Instances()) == 0 {
			t.Fatal("no error and no instance")
		}
	})
}

// FuzzVerifyBundle: any bytes as a bundle are refused or verified, never a panic, and
// hostile input never verifies against a trust root it was not signed for.
func FuzzVerifyBundle(f *testing.F) {
	vs, err := virtualSigstore()
	if err != nil {
		f.Fatal(err)
	}
	roots := instanceOf(vs, "virtual", privateReq)
	f.Add([]byte(`{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json"}`))
	f.Add([]byte(`{"mediaType":"application/vnd.dev.sigstore.bundle+json;version=0.1","verificationMaterial":{"publicKey":{"hint":"x"}},"messageSignature":{"messageDigest":{"algorithm":"SHA2_256","digest":"AA=="},"signature":"AA=="}}`))
	f.Add([]byte(`{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json","verificationMaterial":{"certificate":{"rawBytes":"MIIB"}},"dsseEnvelope":{"payload":"e30=","payloadType":"application/vnd.in-toto+json","signatures":[{"sig":"AA=="}]}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		if v, err := roots.VerifyBundle(data, Unbound(), nil); err == nil {
			t.Fatalf("hostile bundle verified: %+v", v)
		}
	})
}

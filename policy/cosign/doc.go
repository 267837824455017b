// Package cosign reads the formats cosign (v2) stores signatures and attestations in,
// so that policy can verify them offline:
//
//   - Layer: one layer of a cosign `.sig` or `.att` image as an OCI descriptor whose
//     `data` field holds the layer's bytes. cosign keeps the signature of a `.sig`
//     layer, and the keyless certificate, chain and Rekor bundle of both kinds, in the
//     layer's annotations, not in the blob; the registry fetch writes each such layer
//     as one self-contained evidence file in this form, and an operator can write the
//     same file by hand (an OCI descriptor with `data` is an OCI image-spec 1.1 form).
//   - the simple-signing payload of `cosign sign`, bound to one manifest digest, and the
//     signature over it (Signature);
//   - the blob bundle of `cosign sign-blob --bundle` and `cosign attest-blob --bundle`
//     without --new-bundle-format (BlobBundle).
//
// Nothing here reaches a key, a trusted root or the network: parsing checks structure
// and bounds, Signature.Verify checks one signature against the keys it is given.
package cosign

// Media types and annotation keys as cosign v2 writes them (its pkg/oci/static and
// pkg/types; checked against v2.6).
const (
	// MediaTypeSimpleSigning is the layer media type of a `.sig` image.
	MediaTypeSimpleSigning = "application/vnd.dev.cosign.simplesigning.v1+json"
	// MediaTypeDSSE is the layer media type of an `.att` image.
	MediaTypeDSSE = "application/vnd.dsse.envelope.v1+json"

	AnnotationSignature   = "dev.cosignproject.cosign/signature"
	AnnotationCertificate = "dev.sigstore.cosign/certificate"
	AnnotationChain       = "dev.sigstore.cosign/chain"
	AnnotationBundle      = "dev.sigstore.cosign/bundle"
	AnnotationTimestamp   = "dev.sigstore.cosign/rfc3161timestamp"

	// SignatureType is the critical.type of every cosign image signature payload.
	SignatureType = "cosign container image signature"
)

// Bounds. A simple-signing payload is a few hundred bytes (more with `-a` annotations);
// a certificate chain a few kilobytes.
const (
	MaxLayerBytes      = 1 << 20
	MaxAnnotationBytes = 64 << 10
	maxAnnotations     = 64
)

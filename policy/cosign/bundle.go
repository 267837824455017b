package cosign

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"strconv"

	"tollgate.dev/tollgate/policy/internal/jsonlimit"
	"tollgate.dev/tollgate/policy/reason"
)

// MediaTypeBundleV01 is the Sigstore bundle version that SigstoreBundle writes: v0.1 is
// the one whose log entries may prove inclusion by a signed entry timestamp alone, which
// is all a cosign v2 Rekor bundle holds.
const MediaTypeBundleV01 = "application/vnd.dev.sigstore.bundle+json;version=0.1"

// rekorBundle is cosign's dev.sigstore.cosign/bundle annotation (its bundle.RekorBundle):
// a signed entry timestamp (SET) over the log entry's body, time, index and log ID.
type rekorBundle struct {
	SignedEntryTimestamp []byte `json:"SignedEntryTimestamp"`
	Payload              struct {
		Body           string `json:"body"` // base64 of the canonicalized entry
		IntegratedTime int64  `json:"integratedTime"`
		LogIndex       int64  `json:"logIndex"`
		LogID          string `json:"logID"` // hex
	} `json:"Payload"`
}

// rfc3161 is cosign's dev.sigstore.cosign/rfc3161timestamp annotation.
type rfc3161 struct {
	SignedRFC3161Timestamp []byte `json:"SignedRFC3161Timestamp"`
}

// SigstoreBundle restates a keyless cosign image signature as a Sigstore bundle v0.1
// (a message signature over the payload bytes), so that a Sigstore verifier checks the
// certificate, the log entry's SET and any timestamp as it checks any bundle. Nothing is
// verified here; the bundle says only what the annotations said, and the artifact to bind
// it to is s.Raw.
func (s *Signature) SigstoreBundle() ([]byte, error) {
	sum := sha256.Sum256(s.Raw)
	content := map[string]any{"messageSignature": map[string]any{
		"messageDigest": map[string]any{"algorithm": "SHA2_256", "digest": sum[:]},
		"signature":     s.Sig,
	}}
	return s.Keyless.bundle(content)
}

// SigstoreBundle restates a keyless cosign v2 attestation layer (a DSSE envelope with
// the certificate and Rekor bundle in its annotations) as a Sigstore bundle v0.1.
func (l *Layer) SigstoreBundle() ([]byte, error) {
	if l.MediaType != MediaTypeDSSE {
		return nil, reason.New(reason.Malformed, "layer %s is %s, not a cosign attestation (%s)", reason.Clip(l.Digest), reason.Clip(l.MediaType), MediaTypeDSSE)
	}
	if err := jsonlimit.Check(l.Data, MaxLayerBytes); err != nil || !json.Valid(l.Data) {
		return nil, reason.New(reason.Malformed, "cosign attestation layer %s is not a JSON envelope", reason.Clip(l.Digest))
	}
	return l.Keyless().bundle(map[string]any{"dsseEnvelope": json.RawMessage(l.Data)})
}

// bundle wraps content (messageSignature or dsseEnvelope) with the verification material.
func (k Keyless) bundle(content map[string]any) ([]byte, error) {
	leaf, err := leafDER(k.Certificate)
	if err != nil {
		return nil, err
	}
	vm := map[string]any{"x509CertificateChain": map[string]any{"certificates": []any{map[string]any{"rawBytes": leaf}}}}
	if len(k.RekorBundle) > 0 {
		e, err := tlogEntry(k.RekorBundle)
		if err != nil {
			return nil, err
		}
		vm["tlogEntries"] = []any{e}
	} else {
		vm["tlogEntries"] = []any{}
	}
	if len(k.Timestamp) > 0 {
		var ts rfc3161
		if err := json.Unmarshal(k.Timestamp, &ts); err != nil || len(ts.SignedRFC3161Timestamp) == 0 {
			return nil, reason.New(reason.Malformed, "annotation %s is not cosign's RFC 3161 timestamp", AnnotationTimestamp)
		}
		vm["timestampVerificationData"] = map[string]any{"rfc3161Timestamps": []any{map[string]any{"signedTimestamp": ts.SignedRFC3161Timestamp}}}
	}
	b := map[string]any{"mediaType": MediaTypeBundleV01, "verificationMaterial": vm}
	for key, v := range content {
		b[key] = v
	}
	return json.Marshal(b)
}

// leafDER returns the DER of the first certificate of a PEM annotation.
func leafDER(p []byte) ([]byte, error) {
	if len(p) == 0 {
		return nil, reason.New(reason.MissingEvidence, "cosign signature has no certificate (annotation %s): it was signed with a key", AnnotationCertificate)
	}
	block, _ := pem.Decode(p)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, reason.New(reason.Malformed, "annotation %s is not a PEM certificate", AnnotationCertificate)
	}
	return block.Bytes, nil
}

// tlogEntry restates cosign's Rekor bundle as a bundle's transparency log entry with an
// inclusion promise. The entry's kind and version are the body's own.
func tlogEntry(raw []byte) (map[string]any, error) {
	var rb rekorBundle
	if err := jsonlimit.Decode(raw, MaxAnnotationBytes, &rb); err != nil {
		return nil, reason.New(reason.Malformed, "annotation %s is not cosign's Rekor bundle", AnnotationBundle).Wrap(err)
	}
	body, err := base64.StdEncoding.DecodeString(rb.Payload.Body)
	if err != nil || len(body) == 0 {
		return nil, reason.New(reason.Malformed, "annotation %s: the log entry body is not base64", AnnotationBundle)
	}
	var kv struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
	}
	if err := json.NewDecoder(bytes.NewReader(body)).Decode(&kv); err != nil || kv.Kind == "" || kv.APIVersion == "" {
		return nil, reason.New(reason.Malformed, "annotation %s: the log entry body names no kind and apiVersion", AnnotationBundle)
	}
	logID, err := hex.DecodeString(rb.Payload.LogID)
	if err != nil || len(logID) == 0 {
		return nil, reason.New(reason.Malformed, "annotation %s: logID %q is not hex", AnnotationBundle, reason.Clip(rb.Payload.LogID))
	}
	if len(rb.SignedEntryTimestamp) == 0 {
		return nil, reason.New(reason.Malformed, "annotation %s has no SignedEntryTimestamp", AnnotationBundle)
	}
	return map[string]any{
		"logIndex":          strconv.FormatInt(rb.Payload.LogIndex, 10),
		"logId":             map[string]any{"keyId": logID},
		"kindVersion":       map[string]any{"kind": kv.Kind, "version": kv.APIVersion},
		"integratedTime":    strconv.FormatInt(rb.Payload.IntegratedTime, 10),
		"inclusionPromise":  map[string]any{"signedEntryTimestamp": rb.SignedEntryTimestamp},
		"canonicalizedBody": body,
	}, nil
}

// SigstoreBundle restates a keyless blob bundle (its cert a Fulcio certificate) as a
// Sigstore bundle v0.1: a message signature over the artifact whose SHA-256 digest is
// artifactSHA256 (sign-blob), or the DSSE envelope (attest-blob; the digest is unused).
// A bundle signed with a key has no certificate: verify it with the key (VerifyBlob, or
// the envelope's signatures).
func (b *BlobBundle) SigstoreBundle(artifactSHA256 []byte) ([]byte, error) {
	if block, _ := pem.Decode(b.Cert); block != nil && block.Type != "CERTIFICATE" {
		return nil, reason.New(reason.MissingEvidence, "the cosign bundle was signed with a key (its cert field holds a %s), not by a Sigstore certificate", reason.Clip(block.Type))
	}
	k := Keyless{Certificate: b.Cert, RekorBundle: b.RekorBundle}
	if b.Envelope != nil {
		return k.bundle(map[string]any{"dsseEnvelope": json.RawMessage(b.Signature)})
	}
	if len(artifactSHA256) != sha256.Size {
		return nil, reason.New(reason.Malformed, "a cosign blob signature is bound to its artifact: give the artifact's SHA-256 digest")
	}
	return k.bundle(map[string]any{"messageSignature": map[string]any{
		"messageDigest": map[string]any{"algorithm": "SHA2_256", "digest": artifactSHA256},
		"signature":     b.Signature,
	}})
}

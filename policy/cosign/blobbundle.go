package cosign

import (
	"bytes"
	"encoding/base64"
	"encoding/json"

	"tollgate.dev/tollgate/policy/envelope"
	"tollgate.dev/tollgate/policy/internal/jsonlimit"
	"tollgate.dev/tollgate/policy/keys"
	"tollgate.dev/tollgate/policy/reason"
)

// BlobBundle is cosign's own bundle file, written by `cosign sign-blob --bundle` and
// `cosign attest-blob --bundle` without --new-bundle-format:
//
//	{"base64Signature":"…","cert":"…","rekorBundle":{"SignedEntryTimestamp":"…","Payload":{…}}}
//
// For sign-blob, base64Signature is the signature over the blob; for attest-blob it is
// the whole DSSE envelope. cert is the base64 of a PEM certificate (keyless) or of the
// signer's PEM public key (attest-blob --key); rekorBundle is there when the entry went
// to a transparency log.
type BlobBundle struct {
	// Signature is the decoded base64Signature.
	Signature []byte
	// Envelope is the DSSE envelope an attest-blob bundle carries; nil for sign-blob.
	Envelope *envelope.Signed
	// Cert is the decoded cert field (PEM), if any. It is not trusted: keys come from the
	// node, identities from a trusted root.
	Cert []byte
	// RekorBundle is the raw rekorBundle object, if any.
	RekorBundle []byte
}

type blobBundleJSON struct {
	Base64Signature *string         `json:"base64Signature"`
	Cert            string          `json:"cert"`
	RekorBundle     json.RawMessage `json:"rekorBundle"`
}

// IsBlobBundle reports whether data is meant as a cosign blob bundle: a JSON object with
// a base64Signature.
func IsBlobBundle(data []byte) bool {
	if jsonlimit.Check(data, jsonlimit.MaxBytes) != nil {
		return false
	}
	var b blobBundleJSON
	return json.Unmarshal(data, &b) == nil && b.Base64Signature != nil
}

// ParseBlobBundle reads a cosign blob bundle.
func ParseBlobBundle(data []byte) (*BlobBundle, error) {
	var b blobBundleJSON
	if err := jsonlimit.Decode(data, jsonlimit.MaxBytes, &b); err != nil {
		return nil, reason.New(reason.Malformed, "cosign bundle is not JSON").Wrap(err)
	}
	if b.Base64Signature == nil || *b.Base64Signature == "" {
		return nil, reason.New(reason.Malformed, "cosign bundle has no base64Signature")
	}
	sig, err := base64.StdEncoding.DecodeString(*b.Base64Signature)
	if err != nil {
		return nil, reason.New(reason.Malformed, "cosign bundle base64Signature is not base64").Wrap(err)
	}
	out := &BlobBundle{Signature: sig}
	if b.Cert != "" {
		if out.Cert, err = base64.StdEncoding.DecodeString(b.Cert); err != nil {
			return nil, reason.New(reason.Malformed, "cosign bundle cert is not base64").Wrap(err)
		}
	}
	if len(b.RekorBundle) > 0 && !bytes.Equal(bytes.TrimSpace(b.RekorBundle), []byte("null")) {
		out.RekorBundle = b.RekorBundle
	}
	// attest-blob signs with a DSSE signer, whose "signature" is the envelope itself.
	if t := bytes.TrimSpace(sig); len(t) > 0 && t[0] == '{' {
		env, err := envelope.Parse(sig)
		if err != nil {
			return nil, reason.New(reason.Malformed, "cosign bundle base64Signature holds JSON that is not a DSSE envelope").Wrap(err)
		}
		if env.Format != envelope.DSSE {
			return nil, reason.New(reason.Malformed, "cosign bundle base64Signature holds a Metablock, not a DSSE envelope")
		}
		out.Envelope = env
	}
	return out, nil
}

// VerifyBlob checks a sign-blob bundle's signature over artifact against trusted keys and
// returns the key that made it.
func (b *BlobBundle) VerifyBlob(artifact []byte, trusted []*keys.Key) (*keys.Key, error) {
	if b.Envelope != nil {
		return nil, reason.New(reason.Malformed, "the cosign bundle holds an attestation (attest-blob), not a signature over a blob")
	}
	if len(trusted) == 0 {
		return nil, reason.New(reason.BadSignature, "no trusted key to verify the cosign blob signature with")
	}
	for _, k := range trusted {
		if k.Verify(artifact, b.Signature) == nil {
			return k, nil
		}
	}
	return nil, reason.New(reason.BadSignature, "cosign blob signature verifies with none of the %d trusted keys", len(trusted))
}

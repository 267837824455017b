package cosign

import (
	"encoding/base64"
	"encoding/json"
	"strings"

	"tollgate.dev/tollgate/policy/internal/jsonlimit"
	"tollgate.dev/tollgate/policy/keys"
	"tollgate.dev/tollgate/policy/reason"
)

// Payload is a simple-signing payload as `cosign sign` writes it:
//
//	{"critical":{"identity":{"docker-reference":"registry/repo"},
//	  "image":{"docker-manifest-digest":"sha256:…"},
//	  "type":"cosign container image signature"},"optional":{…}}
//
// Only the manifest digest binds the signature to content; the docker-reference is the
// repository the signer named, which an image may be copied away from, so it is shown,
// never trusted.
type Payload struct {
	DockerReference string
	ManifestDigest  string
	Optional        map[string]any
}

type payloadJSON struct {
	Critical *struct {
		Identity *struct {
			DockerReference string `json:"docker-reference"`
		} `json:"identity"`
		Image *struct {
			DockerManifestDigest string `json:"docker-manifest-digest"`
		} `json:"image"`
		Type string `json:"type"`
	} `json:"critical"`
	Optional map[string]any `json:"optional"`
}

// ParsePayload reads a simple-signing payload. The type must be cosign's and the digest a
// sha256 digest; anything else is malformed, since a payload that names no digest binds
// the signature to nothing.
func ParsePayload(data []byte) (*Payload, error) {
	var p payloadJSON
	if err := jsonlimit.Decode(data, MaxLayerBytes, &p); err != nil {
		return nil, reason.New(reason.Malformed, "simple-signing payload is not JSON").Wrap(err)
	}
	switch {
	case p.Critical == nil:
		return nil, reason.New(reason.Malformed, "simple-signing payload has no critical section")
	case p.Critical.Type != SignatureType:
		return nil, reason.New(reason.Malformed, "simple-signing payload type is %q, not %q", reason.Clip(p.Critical.Type), SignatureType)
	case p.Critical.Image == nil || p.Critical.Image.DockerManifestDigest == "":
		return nil, reason.New(reason.Malformed, "simple-signing payload names no docker-manifest-digest")
	}
	dg := p.Critical.Image.DockerManifestDigest
	if !validDigest(dg) {
		return nil, reason.New(reason.Malformed, "simple-signing payload digest %q is not sha256:<64 hex digits>", reason.Clip(dg))
	}
	out := &Payload{ManifestDigest: dg, Optional: p.Optional}
	if p.Critical.Identity != nil {
		out.DockerReference = p.Critical.Identity.DockerReference
	}
	return out, nil
}

func validDigest(d string) bool {
	alg, h, ok := strings.Cut(d, ":")
	if !ok || alg != "sha256" || len(h) != 64 {
		return false
	}
	for i := 0; i < len(h); i++ {
		c := h[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// Signature is one cosign image signature: the payload bytes exactly as signed, the
// parsed payload, the signature over them, and any keyless material.
type Signature struct {
	Raw     []byte // the signed bytes (the layer blob)
	Payload *Payload
	Sig     []byte
	Keyless Keyless
}

// SignatureFromLayer reads the signature a `.sig` layer carries: its blob is the payload,
// its dev.cosignproject.cosign/signature annotation the base64 signature over it.
func SignatureFromLayer(l *Layer) (*Signature, error) {
	if l.MediaType != MediaTypeSimpleSigning {
		return nil, reason.New(reason.Malformed, "layer %s is %s, not a cosign signature (%s)", reason.Clip(l.Digest), reason.Clip(l.MediaType), MediaTypeSimpleSigning)
	}
	b64, ok := l.Annotations[AnnotationSignature]
	if !ok || b64 == "" {
		return nil, reason.New(reason.Malformed, "cosign signature layer %s has no %s annotation", reason.Clip(l.Digest), AnnotationSignature)
	}
	sig, err := base64.StdEncoding.DecodeString(b64)
	if err != nil || len(sig) == 0 {
		return nil, reason.New(reason.Malformed, "cosign signature layer %s: annotation %s is not base64", reason.Clip(l.Digest), AnnotationSignature)
	}
	p, err := ParsePayload(l.Data)
	if err != nil {
		return nil, err
	}
	return &Signature{Raw: l.Data, Payload: p, Sig: sig, Keyless: l.Keyless()}, nil
}

// BoundTo reports whether the signed manifest digest is one of digests (the manifest and
// index digests proven to lead to the image's config).
func (s *Signature) BoundTo(digests ...string) bool {
	for _, d := range digests {
		if strings.EqualFold(d, s.Payload.ManifestDigest) {
			return true
		}
	}
	return false
}

// Verify returns the first of trusted whose signature over the payload verifies, as
// cosign verifies with --key: the signature is over the payload bytes (SHA-256 for
// ECDSA P-256 and RSA keys, ed25519 over the bytes). One signature has one signer.
func (s *Signature) Verify(trusted []*keys.Key) (*keys.Key, error) {
	if len(trusted) == 0 {
		return nil, reason.New(reason.BadSignature, "no trusted key to verify the cosign signature with")
	}
	for _, k := range trusted {
		if k.Verify(s.Raw, s.Sig) == nil {
			return k, nil
		}
	}
	return nil, reason.New(reason.BadSignature, "cosign signature over %s verifies with none of the %d trusted keys", s.Payload.ManifestDigest, len(trusted))
}

// Marshal encodes a simple-signing payload for ref and digest as cosign does (used by
// tests and by tools that sign the way cosign signs).
func (p *Payload) Marshal() ([]byte, error) {
	v := map[string]any{
		"critical": map[string]any{
			"identity": map[string]any{"docker-reference": p.DockerReference},
			"image":    map[string]any{"docker-manifest-digest": p.ManifestDigest},
			"type":     SignatureType,
		},
		"optional": p.Optional,
	}
	return json.Marshal(v)
}

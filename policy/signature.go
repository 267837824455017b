package policy

import (
	"bytes"
	"fmt"
	"strings"

	"tollgate.dev/tollgate/policy/cosign"
	"tollgate.dev/tollgate/policy/keys"
	"tollgate.dev/tollgate/policy/reason"
)

// maxImageSignatures bounds the cosign image signatures one decision looks at (cosign
// itself reads at most 100 from a `.sig` image).
const maxImageSignatures = 128

// signatureReq is one "this image is signed by" requirement: cosign image signatures
// (the `.sig` image) by threshold distinct keys, each over a simple-signing payload that
// names a manifest digest containerd proved leads to the image's config.
type signatureReq struct {
	name      string
	keys      []*keys.Key
	threshold int
}

// imageSignature is a cosign image signature found in the evidence.
type imageSignature struct {
	sig    *cosign.Signature
	source string
}

// addSignature files a cosign `.sig` layer; the same signature stored twice counts once.
func (c *classified) addSignature(name string, l *cosign.Layer) error {
	s, err := cosign.SignatureFromLayer(l)
	if err != nil {
		return err
	}
	for _, o := range c.signatures {
		if bytes.Equal(o.sig.Sig, s.Sig) && bytes.Equal(o.sig.Raw, s.Raw) {
			return nil
		}
	}
	if len(c.signatures) >= maxImageSignatures {
		return fmt.Errorf("more than %d cosign image signatures; not reading more", maxImageSignatures)
	}
	c.signatures = append(c.signatures, &imageSignature{sig: s, source: name})
	return nil
}

func (l *loader) compileSignatures(specs []signatureSpec, errs []error) ([]*signatureReq, []error) {
	if len(specs) > maxSignaturesPerPolicy {
		return nil, append(errs, fmt.Errorf("spec.signatures has %d entries, over the limit of %d", len(specs), maxSignaturesPerPolicy))
	}
	var out []*signatureReq
	seen := map[string]bool{}
	for i := range specs {
		s := &specs[i]
		if s.Name == "" {
			errs = append(errs, fmt.Errorf("spec.signatures[%d]: name is required", i))
			continue
		}
		if seen[s.Name] {
			errs = append(errs, fmt.Errorf("spec.signatures[%d]: name %q is used twice", i, s.Name))
			continue
		}
		seen[s.Name] = true
		ks, err := l.loadKeys(s.Keys)
		if err != nil {
			errs = append(errs, fmt.Errorf("spec.signatures[%d] %q: %v", i, s.Name, err))
			continue
		}
		th := s.Threshold
		if th == 0 {
			th = 1
		}
		if th < 1 || th > len(ks) {
			errs = append(errs, fmt.Errorf("spec.signatures[%d] %q: threshold %d must be between 1 and the %d distinct keys", i, s.Name, s.Threshold, len(ks)))
			continue
		}
		out = append(out, &signatureReq{name: s.Name, keys: ks, threshold: th})
	}
	return out, errs
}

// check looks for threshold distinct trusted keys among the signatures bound to the
// image. When there are too few, the message says what was found instead: no signature,
// signatures of other content, signatures by other keys, or too few signers.
func (r *signatureReq) check(img Image, evd *classified) *reason.Error {
	var signers []*keys.Key
	var other []string // digests signed that are not the image's
	bound := 0
	for _, s := range evd.signatures {
		if !s.sig.BoundTo(img.Digests...) {
			if len(other) < 3 {
				other = append(other, s.sig.Payload.ManifestDigest)
			}
			continue
		}
		bound++
		if !evd.budget.Spend(len(r.keys)) {
			return reason.New(reason.Malformed, "signature %q: the evidence needs more than %d signature checks; not checking further signatures", r.name, maxSignatureChecks)
		}
		k, err := s.sig.Verify(r.keys)
		if err != nil {
			continue
		}
		if !containsKey(signers, k) {
			signers = append(signers, k)
		}
		if len(signers) >= r.threshold {
			return nil
		}
	}
	switch {
	case len(evd.signatures) == 0:
		return reason.New(reason.MissingEvidence, "signature %q: the image has no cosign signature (no `.sig` image in the registry, no signature file in the evidence)", r.name)
	case bound == 0:
		return reason.New(reason.BindingMismatch, "signature %q: %d cosign signature(s) sign %s, not the image (%s)",
			r.name, len(evd.signatures), strings.Join(other, ", "), clipList(img.Digests, 3))
	case len(signers) == 0:
		return reason.New(reason.BadSignature, "signature %q: none of the %d cosign signature(s) of the image verifies with the trusted keys (%s)",
			r.name, bound, keyList(r.keys))
	}
	return reason.New(reason.Threshold, "signature %q: signed by %d of the %d distinct trusted keys required (%s)",
		r.name, len(signers), r.threshold, keyList(signers))
}

func containsKey(list []*keys.Key, k *keys.Key) bool {
	for _, o := range list {
		if o == k || o.ID == k.ID {
			return true
		}
	}
	return false
}

func keyList(ks []*keys.Key) string {
	s := make([]string, 0, len(ks))
	for _, k := range ks {
		s = append(s, k.String())
	}
	return clipList(s, 4)
}

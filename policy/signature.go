package policy

import (
	"bytes"
	"fmt"
	"strings"

	"tollgate.dev/tollgate/policy/cosign"
	"tollgate.dev/tollgate/policy/keys"
	"tollgate.dev/tollgate/policy/reason"
	"tollgate.dev/tollgate/policy/sigstore"
)

// maxImageSignatures bounds the cosign image signatures one decision looks at (cosign
// itself reads at most 100 from a `.sig` image).
const maxImageSignatures = 128

// signatureReq is one "this image is signed by" requirement: cosign image signatures
// (the `.sig` image) by threshold distinct keys, each over a simple-signing payload that
// names a manifest digest containerd proved leads to the image's config.
type signatureReq struct {
	name       string
	keys       []*keys.Key
	identities []*sigstore.Identity
	rootNames  []string        // as written; empty: every TrustedRoot
	roots      map[string]bool // instance names this requirement trusts (resolved after Load)
	trust      *keylessTrust   // every instance of the Set
	threshold  int
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
	return compileNamed("spec.signatures", specs, maxSignaturesPerPolicy, func(s *signatureSpec) string { return s.Name }, l.compileSignature, errs)
}

// compileNamed compiles a list of named requirements (field, at most limit of them): each
// needs a name, used once in the list. Every problem is added to errs.
func compileNamed[S, R any](field string, specs []S, limit int, name func(*S) string, compile func(*S) (R, error), errs []error) ([]R, []error) {
	if len(specs) > limit {
		return nil, append(errs, fmt.Errorf("%s has %d entries, over the limit of %d", field, len(specs), limit))
	}
	var out []R
	seen := map[string]bool{}
	for i := range specs {
		n := name(&specs[i])
		if n == "" {
			errs = append(errs, fmt.Errorf("%s[%d]: name is required", field, i))
			continue
		}
		if seen[n] {
			errs = append(errs, fmt.Errorf("%s[%d]: name %q is used twice", field, i, n))
			continue
		}
		seen[n] = true
		r, err := compile(&specs[i])
		if err != nil {
			errs = append(errs, fmt.Errorf("%s[%d] %q: %v", field, i, n, err))
			continue
		}
		out = append(out, r)
	}
	return out, errs
}

func (l *loader) compileSignature(s *signatureSpec) (*signatureReq, error) {
	r := &signatureReq{name: s.Name, rootNames: s.TrustedRoots}
	if len(s.Keys) == 0 && len(s.Identities) == 0 {
		return nil, fmt.Errorf("keys or identities must name at least one public key file or keyless identity")
	}
	if len(s.TrustedRoots) > 0 && len(s.Identities) == 0 {
		return nil, fmt.Errorf("trustedRoots applies to keyless identities, and there are none")
	}
	var err error
	if len(s.Keys) > 0 {
		if r.keys, err = l.loadKeys(s.Keys); err != nil {
			return nil, err
		}
	}
	if r.identities, err = compileIdentities(s.Identities); err != nil {
		return nil, err
	}
	r.threshold = s.Threshold
	if r.threshold == 0 {
		r.threshold = 1
	}
	if n := len(r.keys) + len(r.identities); r.threshold < 1 || r.threshold > n {
		return nil, fmt.Errorf("threshold %d must be between 1 and the %d distinct keys and identities", s.Threshold, n)
	}
	return r, nil
}

// check looks for threshold distinct trusted keys among the signatures bound to the
// image. When there are too few, the message says what was found instead: no signature,
// signatures of other content, signatures by other keys, or too few signers.
func (r *signatureReq) check(img Image, evd *classified) *reason.Error {
	var signers []*keys.Key
	ids := map[*sigstore.Identity]bool{}
	var other []string // digests signed that are not the image's
	var refusal *reason.Error
	bound := 0
	for _, s := range evd.signatures {
		if !s.sig.BoundTo(img.Digests...) {
			if len(other) < 3 {
				other = append(other, s.sig.Payload.ManifestDigest)
			}
			continue
		}
		bound++
		if len(r.keys) > 0 {
			if !evd.budget.Spend(len(r.keys)) {
				return reason.New(reason.Malformed, "signature %q: the evidence needs more than %d signature checks; not checking further signatures", r.name, maxSignatureChecks)
			}
			if k, err := s.sig.Verify(r.keys); err == nil && !containsKey(signers, k) {
				signers = append(signers, k)
			}
		}
		if len(r.identities) > 0 && !s.sig.Keyless.Empty() {
			id, err := r.keyless(s, evd)
			if err != nil {
				if refusal == nil {
					refusal = err
				}
			} else {
				ids[id] = true
			}
		}
		if len(signers)+len(ids) >= r.threshold {
			return nil
		}
	}
	switch {
	case len(evd.signatures) == 0:
		return reason.New(reason.MissingEvidence, "signature %q: the image has no cosign signature (no `.sig` image in the registry, no signature file in the evidence)", r.name)
	case bound == 0:
		return reason.New(reason.BindingMismatch, "signature %q: %d cosign signature(s) sign %s, not the image (%s)",
			r.name, len(evd.signatures), strings.Join(other, ", "), clipList(img.Digests, 3))
	case len(signers)+len(ids) > 0:
		return reason.New(reason.Threshold, "signature %q: signed by %d distinct trusted keys and %d distinct trusted identities, %d required",
			r.name, len(signers), len(ids), r.threshold)
	case refusal != nil:
		return refusal
	case len(r.keys) == 0:
		return reason.New(reason.BadSignature, "signature %q: none of the %d cosign signature(s) of the image is keyless (a Fulcio certificate with a Rekor bundle)", r.name, bound)
	}
	return reason.New(reason.BadSignature, "signature %q: none of the %d cosign signature(s) of the image verifies with the trusted keys (%s)",
		r.name, bound, keyList(r.keys))
}

// keyless verifies a keyless cosign signature (its certificate and Rekor bundle restated
// as a Sigstore bundle) against the trusted roots, bound to its payload bytes, and returns
// the trusted identity that signed it.
func (r *signatureReq) keyless(s *imageSignature, evd *classified) (*sigstore.Identity, *reason.Error) {
	where := fmt.Sprintf("signature %q: cosign signature %q", r.name, s.source)
	if !evd.budget.Spend(bundleCost) {
		return nil, reason.New(reason.Malformed, "%s: the evidence needs more than %d signature checks", where, maxSignatureChecks)
	}
	data, err := s.sig.SigstoreBundle()
	if err != nil {
		return nil, prefixMsg(where, reason.As(err))
	}
	// Bound to the payload bytes (a message signature cannot verify unbound), so not
	// through the Set's memo of unbound DSSE bundles.
	v, err := r.trust.roots.VerifyBundle(data, sigstore.Bytes(s.sig.Raw), nil)
	if err != nil {
		return nil, prefixMsg(where, reason.As(err))
	}
	if !r.roots[v.Instance] {
		return nil, reason.New(reason.BadSignature, "%s is vouched for by trusted root %q, which this signature requirement does not trust", where, v.Instance)
	}
	id, err := v.Match(r.identities...)
	if err != nil {
		return nil, prefixMsg(where, reason.As(err))
	}
	return id, nil
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

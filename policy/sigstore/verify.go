package sigstore

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/sigstore/sigstore-go/pkg/bundle"
	"github.com/sigstore/sigstore-go/pkg/root"
	"github.com/sigstore/sigstore-go/pkg/verify"
	sigsig "github.com/sigstore/sigstore/pkg/signature"

	"tollgate.dev/tollgate/policy/envelope"
	"tollgate.dev/tollgate/policy/internal/jsonlimit"
	"tollgate.dev/tollgate/policy/reason"
)

// MaxBundleBytes bounds one bundle. Real bundles are 4 to 20 KiB; the DSSE payload of a
// large provenance Statement stays well under this.
const MaxBundleBytes = jsonlimit.MaxBytes

// Artifact is what a bundle must be bound to: the artifact's bytes, its digest, or
// nothing (a DSSE Statement whose subjects the caller binds itself).
type Artifact struct {
	data      []byte
	hasData   bool
	algorithm string
	digest    []byte
	text      string
}

// Bytes binds a bundle to an artifact's content.
func Bytes(data []byte) Artifact { return Artifact{data: data, hasData: true, text: "the artifact"} }

// Digest binds a bundle to an artifact digest ("sha256:<hex>", also sha384 and sha512):
// a Statement must name it as a subject, a message signature must be over it.
func Digest(d string) (Artifact, error) {
	alg, hexDigest, ok := strings.Cut(d, ":")
	want := map[string]int{"sha256": 32, "sha384": 48, "sha512": 64}[alg]
	raw, err := hex.DecodeString(hexDigest)
	if !ok || want == 0 || err != nil || len(raw) != want {
		return Artifact{}, reason.New(reason.Malformed, "digest %q is not sha256:, sha384: or sha512: with its hex digits", reason.Clip(d))
	}
	return Artifact{algorithm: alg, digest: raw, text: "digest " + d}, nil
}

// Unbound leaves the binding to the caller: only a DSSE bundle verifies this way, and its
// Statement's subjects must then be checked against the content (policy does this for
// images).
func Unbound() Artifact { return Artifact{} }

func (a Artifact) option() verify.ArtifactPolicyOption {
	switch {
	case a.hasData:
		return verify.WithArtifact(bytes.NewReader(a.data))
	case a.digest != nil:
		return verify.WithArtifactDigest(a.algorithm, a.digest)
	}
	return verify.WithoutArtifactUnsafe()
}

// Verified is a bundle whose cryptography checked out against one instance: the signer is
// known, but not yet judged against a policy (see Match).
type Verified struct {
	// Instance names the trusted root that vouched for the bundle.
	Instance string
	Signer   Signer
	// Envelope is the verified DSSE envelope (nil for a message signature): its payload
	// is the Statement the caller binds and evaluates.
	Envelope *envelope.Signed
	// Timestamps are the verified times of signing (log entries, timestamp authorities).
	Timestamps []time.Time
}

// Keys are public keys trusted to sign key-based bundles (the bundle names no
// certificate, only a key hint).
type Keys []crypto.PublicKey

// VerifyBundle checks a bundle's cryptography against the trusted roots: the certificate
// chain up to an instance's CA at a verified time of signing, the proofs that instance
// requires (SCTs, log entries, timestamps), the signature over the DSSE payload or the
// artifact, and the binding to art. A bundle signed with a key (no certificate) verifies
// only against keys, with the log and timestamp proofs of the instance whose log holds
// it. It does not judge who signed: call Match.
func (t *TrustedRoots) VerifyBundle(data []byte, art Artifact, keys Keys) (*Verified, error) {
	b, err := ParseBundle(data)
	if err != nil {
		return nil, err
	}
	return t.verifyParsed(b, art, keys)
}

// ParseBundle reads a Sigstore bundle (v0.1 to v0.3), bounded, and checks its shape.
func ParseBundle(data []byte) (*bundle.Bundle, error) {
	if len(data) > MaxBundleBytes {
		return nil, reason.New(reason.Malformed, "Sigstore bundle is %d bytes, over the limit of %d", len(data), MaxBundleBytes)
	}
	if err := jsonlimit.Check(data, MaxBundleBytes); err != nil {
		return nil, reason.New(reason.Malformed, "Sigstore bundle").Wrap(err)
	}
	var b bundle.Bundle
	if err := b.UnmarshalJSON(data); err != nil {
		return nil, reason.New(reason.Malformed, "not a Sigstore bundle").Wrap(err)
	}
	return &b, nil
}

// verifyParsed verifies a parsed bundle (or, in tests, any signed entity).
func (t *TrustedRoots) verifyParsed(b verify.SignedEntity, art Artifact, keys Keys) (*Verified, error) {
	if len(t.Instances()) == 0 {
		return nil, reason.New(reason.BadSignature, "no Sigstore trusted root is configured")
	}
	vc, err := b.VerificationContent()
	if err != nil {
		return nil, reason.New(reason.Malformed, "Sigstore bundle").Wrap(err)
	}
	sc, err := b.SignatureContent()
	if err != nil {
		return nil, reason.New(reason.Malformed, "Sigstore bundle").Wrap(err)
	}
	if sc.EnvelopeContent() == nil && !art.hasData && art.digest == nil {
		return nil, reason.New(reason.MissingEvidence, "the bundle holds a message signature, which verifies only against the artifact or its digest")
	}
	leaf := vc.Certificate()
	if leaf == nil {
		if vc.PublicKey() == nil {
			return nil, reason.New(reason.Malformed, "Sigstore bundle has neither a certificate nor a public key")
		}
		return t.verifyWithKeys(b, art, keys, vc.PublicKey().Hint())
	}
	candidates := t.issuing(leaf)
	if len(candidates) == 0 {
		return nil, reason.New(reason.BadSignature, "the certificate was issued by %q, a CA in no trusted root (%s)",
			reason.Clip(leaf.Issuer.String()), t.names())
	}
	var first error
	for _, in := range candidates {
		v, err := in.verify(b, art, in.root, in.Requirements)
		if err == nil {
			return v, nil
		}
		if first == nil {
			first = err
		}
	}
	return nil, first
}

// issuing returns the instances one of whose CAs holds the certificate that issued leaf.
func (t *TrustedRoots) issuing(leaf *x509.Certificate) []*Instance {
	var out []*Instance
	for _, in := range t.instances {
		for _, ca := range in.root.FulcioCertificateAuthorities() {
			f, ok := ca.(*root.FulcioCertificateAuthority)
			if !ok {
				continue
			}
			if issuedBy(leaf, f.Root) || anyIssued(leaf, f.Intermediates) {
				out = append(out, in)
				break
			}
		}
	}
	return out
}

func anyIssued(leaf *x509.Certificate, certs []*x509.Certificate) bool {
	for _, c := range certs {
		if issuedBy(leaf, c) {
			return true
		}
	}
	return false
}

// issuedBy compares names only; the chain itself is sigstore-go's to verify. A bundle's
// chain may carry intermediates the trusted root lacks, so the root's subject counts too.
func issuedBy(leaf, ca *x509.Certificate) bool {
	return ca != nil && bytes.Equal(leaf.RawIssuer, ca.RawSubject)
}

func (t *TrustedRoots) names() string {
	var n []string
	for _, in := range t.instances {
		n = append(n, in.Name)
	}
	return strings.Join(n, ", ")
}

// verifyWithKeys verifies a key-signed bundle: the signature against each trusted key in
// turn, and the log proofs against the instances. SCTs belong to certificates only.
func (t *TrustedRoots) verifyWithKeys(b verify.SignedEntity, art Artifact, keys Keys, hint string) (*Verified, error) {
	if len(keys) == 0 {
		return nil, reason.New(reason.BadSignature, "the bundle is signed with a key (hint %q), and no key is trusted here", reason.Clip(hint))
	}
	var first error
	for _, k := range keys {
		ver, err := sigsig.LoadDefaultVerifier(k)
		if err != nil {
			return nil, reason.New(reason.Malformed, "trusted key").Wrap(err)
		}
		km := root.NewTrustedPublicKeyMaterial(func(string) (root.TimeConstrainedVerifier, error) {
			return root.NewExpiringKey(ver, time.Time{}, time.Time{}), nil
		})
		for _, in := range t.instances {
			req := in.Requirements
			req.SCTs = 0
			v, err := in.verify(b, art, root.TrustedMaterialCollection{km, in.root}, req)
			if err == nil {
				v.Signer = Signer{KeyHint: hint}
				return v, nil
			}
			if first == nil {
				first = err
			}
		}
	}
	return nil, first
}

func (r Requirements) options() []verify.VerifierOption {
	var o []verify.VerifierOption
	if r.SCTs > 0 {
		o = append(o, verify.WithSignedCertificateTimestamps(r.SCTs))
	}
	if r.TransparencyLog > 0 {
		o = append(o, verify.WithTransparencyLog(r.TransparencyLog))
	}
	if r.ObserverTimestamps > 0 {
		o = append(o, verify.WithObserverTimestamps(r.ObserverTimestamps))
	}
	if r.SignedTimestamps > 0 {
		o = append(o, verify.WithSignedTimestamps(r.SignedTimestamps))
	}
	// The predicate is not needed here: the caller reads the verified payload itself.
	return append(o, verify.WithoutStatementPredicate())
}

func (in *Instance) verify(b verify.SignedEntity, art Artifact, tm root.TrustedMaterial, req Requirements) (*Verified, error) {
	v, err := verify.NewVerifier(tm, req.options()...)
	if err != nil {
		return nil, reason.New(reason.Malformed, "trusted root %q: requirements %s", in.Name, req).Wrap(err)
	}
	res, err := v.Verify(b, verify.NewPolicy(art.option(), verify.WithoutIdentitiesUnsafe()))
	if err != nil {
		return nil, classify(in.Name, req, art, err)
	}
	out := &Verified{Instance: in.Name}
	if res.Signature != nil && res.Signature.Certificate != nil {
		c := res.Signature.Certificate
		out.Signer = Signer{Subject: c.SubjectAlternativeName, Issuer: c.Extensions.Issuer,
			Extensions: c.Extensions, CertificateIssuer: c.CertificateIssuer}
	}
	for _, ts := range res.VerifiedTimestamps {
		out.Timestamps = append(out.Timestamps, ts.Timestamp)
	}
	if sc, err := b.SignatureContent(); err == nil && sc.EnvelopeContent() != nil {
		raw := sc.EnvelopeContent().RawEnvelope()
		payload, err := base64.StdEncoding.DecodeString(raw.Payload)
		if err != nil {
			return nil, reason.New(reason.Malformed, "DSSE payload is not base64").Wrap(err)
		}
		out.Envelope = &envelope.Signed{Format: envelope.DSSE, PayloadType: raw.PayloadType, Payload: payload}
	}
	return out, nil
}

// classify turns sigstore-go's error into a reason an operator can act on.
func classify(instance string, req Requirements, art Artifact, err error) *reason.Error {
	msg := err.Error()
	var certErr x509.CertificateInvalidError
	switch {
	case errors.As(err, &certErr) && certErr.Reason == x509.Expired,
		strings.Contains(msg, "certificate is no longer valid"), strings.Contains(msg, "certificate is not valid yet"),
		strings.Contains(msg, "outside certificate validity"), strings.Contains(msg, "outside of certificate validity"):
		return reason.New(reason.Expired, "the certificate was not valid at the verified time of signing (trusted root %q)", instance).Wrap(err)
	case strings.Contains(msg, "digest") && (strings.Contains(msg, "does not match") || strings.Contains(msg, "do not match")),
		strings.Contains(msg, "artifact does not match"):
		return reason.New(reason.BindingMismatch, "the bundle is not over %s (trusted root %q)", art.text, instance).Wrap(err)
	case strings.Contains(msg, "threshold not met"), strings.Contains(msg, "not enough"):
		return reason.New(reason.BadSignature, "the bundle lacks the proofs trusted root %q requires (%s)", instance, req).Wrap(err)
	}
	return reason.New(reason.BadSignature, "the bundle does not verify against trusted root %q (requiring %s)", instance, req).Wrap(err)
}

// Match returns the first of ids the signer matches. When none does, the error names the
// signer and what was expected: BadSignature for another issuer or subject,
// ConditionFailed when they matched and a certificate claim did not.
func (v *Verified) Match(ids ...*Identity) (*Identity, error) {
	if len(ids) == 0 {
		return nil, reason.New(reason.BadSignature, "no identity is trusted to sign (the bundle is signed by %s)", &v.Signer)
	}
	var whys []string
	claim := false
	for _, id := range ids {
		why, c := id.mismatch(&v.Signer)
		if why == "" {
			return id, nil
		}
		claim = claim || c
		whys = append(whys, why)
	}
	kind := reason.BadSignature
	if claim {
		kind = reason.ConditionFailed
	}
	if len(whys) == 1 {
		return nil, reason.New(kind, "%s", whys[0])
	}
	var want []string
	for _, id := range ids {
		want = append(want, id.Name)
	}
	return nil, reason.New(kind, "signed by %s, which matches none of the %d trusted identities (%s)",
		&v.Signer, len(ids), clipJoin(want, 3))
}

func clipJoin(list []string, n int) string {
	if len(list) <= n {
		return strings.Join(list, "; ")
	}
	return fmt.Sprintf("%s; and %d more", strings.Join(list[:n], "; "), len(list)-n)
}

// Policy is who may sign a bundle: identities (keyless) and keys.
type Policy struct {
	Identities []*Identity
	Keys       Keys
}

// Verify checks a bundle's cryptography (VerifyBundle) and its signer against p: a
// certificate must match one of p's identities, a key-signed bundle one of p's keys.
func (t *TrustedRoots) Verify(data []byte, art Artifact, p Policy) (*Verified, *Identity, error) {
	v, err := t.VerifyBundle(data, art, p.Keys)
	if err != nil {
		return nil, nil, err
	}
	if v.Signer.Subject == "" {
		return v, nil, nil // signed by one of p.Keys
	}
	id, err := v.Match(p.Identities...)
	if err != nil {
		return v, nil, err
	}
	return v, id, nil
}

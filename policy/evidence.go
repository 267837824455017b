package policy

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	"tollgate.dev/tollgate/policy/attest"
	"tollgate.dev/tollgate/policy/cosign"
	"tollgate.dev/tollgate/policy/envelope"
	"tollgate.dev/tollgate/policy/internal/jsonlimit"
	"tollgate.dev/tollgate/policy/intoto"
	"tollgate.dev/tollgate/policy/predicate"
	"tollgate.dev/tollgate/policy/reason"
)

const (
	// maxEvidenceFiles bounds the files of one evidence set that are looked at.
	maxEvidenceFiles = 1024
	// maxMergedSignatures bounds the signatures gathered for one Statement payload.
	maxMergedSignatures = 64
	maxEvidenceWarnings = 16
	// maxSignatureChecks bounds the signature verifications one decision spends on
	// Statements and on the links and sublayouts of its layouts, together. Evidence is
	// untrusted and each check costs tens of microseconds: 1024 files of distinct
	// Statements bound to the image, each with 64 signatures without keyids, would
	// otherwise cost 65,536 checks per trusted key, and 64 such links per layout step
	// 4,096. Real evidence needs a handful (signatures × keys of the few Statements that
	// name the image, about one per accepted link).
	maxSignatureChecks = 4096
)

// classified is an image's evidence sorted by what it is.
type classified struct {
	// links holds links and sublayouts (as parsed envelopes) by path, for
	// intoto.NewLinksFromSigned: each file is parsed once.
	links map[string]*envelope.Signed
	// statements are the parsed Statements, each with the signatures of every envelope
	// that carried the same payload (cosign attaches one envelope per signer).
	statements []*signedStatement
	// signatures are cosign image signatures (`.sig` layers).
	signatures []*imageSignature
	warnings   []string
	// cause says why nothing usable was found, when that is the case.
	cause *reason.Error
	// setAside says why the first envelope set aside unread was (see authority.admit), and
	// unread counts them.
	setAside *reason.Error
	unread   int
	// linkSetAside is why the first Metablock (a link or layout) was set aside.
	linkSetAside *reason.Error

	parsedLinks *intoto.Links // built on first use
	linksErr    error

	// bundles are the Sigstore bundles among the evidence, verified on first use.
	bundles []*bundleEvidence
	// keyless holds each keyless requirement's signers, found on first use.
	keyless map[*attestReq]keylessResult

	// validUntil is when the earliest verification summary accepted so far grows too
	// old (zero: none accepted); it bounds the decision's ValidUntil.
	validUntil time.Time

	// ctx bounds the evaluation; stop is the reason it gave once done.
	ctx  context.Context
	stop *reason.Error

	// budget counts the signature verifications spent so far, on Statements and on the
	// links and sublayouts of every layout: one budget for the whole decision.
	budget *envelope.Budget
}

type signedStatement struct {
	st     *attest.Statement
	env    *envelope.Signed
	source string
	vars   map[string]any // CEL variables, built on first use
	err    error
}

// stopped reports whether the evaluation's context is done, and keeps a reason saying so.
func (c *classified) stopped() bool {
	if c.stop == nil && c.ctx.Err() != nil {
		c.stop = reason.New(reason.Malformed, "evaluation stopped at its deadline").Wrap(ErrStopped)
	}
	return c.stop != nil
}

func (c *classified) usable() bool {
	return len(c.links) > 0 || len(c.statements) > 0 || len(c.signatures) > 0 || len(c.bundles) > 0
}

func (c *classified) warn(format string, args ...any) {
	if len(c.warnings) < maxEvidenceWarnings {
		c.warnings = append(c.warnings, fmt.Sprintf(format, args...))
	}
}

// classify sorts evidence files into links and statements. A file that cannot be read is
// skipped with a warning: evidence comes from registries and pipelines, and one stray file
// must not hide the good ones. If nothing usable remains, cause explains why.
func classify(ctx context.Context, ev Evidence, auth *authority) *classified {
	c := &classified{links: map[string]*envelope.Signed{}, budget: envelope.NewBudget(maxSignatureChecks), ctx: ctx}
	c.budget.StopWhen(ctx.Done())
	paths := make([]string, 0, len(ev.Files))
	for p := range ev.Files {
		paths = append(paths, p)
	}
	sort.Strings(paths) // deterministic warnings and statement order
	if len(paths) > maxEvidenceFiles {
		c.warn("evidence has %d files; only the first %d were read", len(paths), maxEvidenceFiles)
		paths = paths[:maxEvidenceFiles]
	}
	byPayload := map[string]*signedStatement{}
	var firstErr *reason.Error
	for _, p := range paths {
		if c.stopped() {
			break
		}
		data := ev.Files[p]
		if l, isSig, err := signatureLayer(data); isSig {
			if err == nil {
				err = c.addSignature(p, l)
			}
			if err != nil {
				c.warn("evidence %q skipped: %v", p, err)
				if firstErr == nil {
					firstErr = reason.New(reason.Malformed, "evidence %q", p).Wrap(err)
				}
			}
			continue
		}
		bundle, isKeyless := isSigstoreBundle(data), false
		if bundle {
			c.bundles = append(c.bundles, &bundleEvidence{source: p, data: data})
		} else if b := cosignKeylessBundle(data); b != nil {
			// A cosign v2 keyless attestation: its envelope is read below, and its
			// certificate and Rekor bundle, restated, let identities judge the signer.
			c.bundles = append(c.bundles, &bundleEvidence{source: p, data: b})
			isKeyless = true
		}
		envs, plain, err := unwrapFile(data)
		if err != nil && bundle {
			continue // a message signature, kept as a bundle only
		}
		if err != nil {
			c.warn("evidence %q skipped: %v", p, err)
			if firstErr == nil {
				firstErr = reason.New(reason.Malformed, "evidence %q", p).Wrap(err)
			}
			continue
		}
		for i, env := range envs {
			if c.stopped() {
				break
			}
			name := p
			if !plain {
				name = fmt.Sprintf("%s#%d", p, i)
			}
			if err := c.add(auth, name, env, bundle || isKeyless, byPayload); err != nil {
				c.warn("evidence %q skipped: %v", name, err)
				if firstErr == nil {
					firstErr = reason.New(reason.Malformed, "evidence %q", name).Wrap(err)
				}
			}
		}
	}
	if !c.usable() {
		if c.setAside != nil && (firstErr == nil || firstErr.Kind == reason.Malformed) {
			firstErr = c.setAside
		}
		if firstErr != nil {
			c.cause = firstErr
		} else {
			c.cause = reason.New(reason.MissingEvidence, "no in-toto evidence found for the image")
		}
	}
	return c
}

// admit asks auth whether env is read; one set aside is counted and the first is said.
func (c *classified) admit(auth *authority, name string, env *envelope.Signed, fromBundle bool) error {
	err := auth.admit(name, env, fromBundle, c.budget)
	if err == nil {
		return nil
	}
	c.unread++
	budget := errors.Is(err, envelope.ErrBudget)
	if c.setAside == nil || budget && !errors.Is(c.setAside, envelope.ErrBudget) {
		// Fail closed, and say so: what the budget left unchecked may have been the good
		// evidence.
		kind := reason.BadSignature
		switch {
		case budget:
			kind = reason.Malformed
		case errors.Is(err, errNoFunctionary):
			kind = reason.MissingEvidence
		}
		c.setAside = reason.New(kind, "evidence %q set aside unread", name).Wrap(err)
	}
	if env.Format == envelope.Metablock && c.linkSetAside == nil {
		c.linkSetAside = reason.New(reason.BadSignature, "evidence %q set aside unread", name).Wrap(err)
	}
	return err
}

// signatureLayer reads a cosign `.sig` layer file; isSig is false for every other file.
func signatureLayer(data []byte) (l *cosign.Layer, isSig bool, err error) {
	if !cosign.IsLayer(data) {
		return nil, false, nil
	}
	l, err = cosign.ParseLayer(data)
	if err != nil {
		return nil, true, err
	}
	if l.MediaType != cosign.MediaTypeSimpleSigning {
		return nil, false, nil // an attestation layer: unwrapFile reads it
	}
	return l, true, nil
}

// cosignKeylessBundle restates a cosign v2 keyless attestation (an `.att` layer file with
// its certificate and Rekor bundle, or an attest-blob bundle with a certificate) as a
// Sigstore bundle, or returns nil when data is neither.
func cosignKeylessBundle(data []byte) []byte {
	var b []byte
	switch {
	case cosign.IsLayer(data):
		l, err := cosign.ParseLayer(data)
		if err != nil || l.MediaType != cosign.MediaTypeDSSE || l.Keyless().Empty() {
			return nil
		}
		b, _ = l.SigstoreBundle()
	case cosign.IsBlobBundle(data):
		bb, err := cosign.ParseBlobBundle(data)
		if err != nil || bb.Envelope == nil || len(bb.Cert) == 0 {
			return nil
		}
		b, _ = bb.SigstoreBundle(nil)
	}
	return b
}

// unwrapFile returns a file's envelopes, and whether the file is exactly one plain
// envelope (so it can be handed on unchanged).
func unwrapFile(data []byte) ([]*envelope.Signed, bool, error) {
	if s, err := envelope.Parse(data); err == nil {
		return []*envelope.Signed{s}, true, nil
	}
	envs, err := attest.Unwrap(data)
	return envs, false, err
}

// probe is what classification peeks at in a payload before reading it whole.
type probe struct {
	Type          string `json:"_type"`
	PredicateType string `json:"predicateType"`
	Name          string `json:"name"` // a link's step
}

// peek reads a payload's probe; a payload that is not a bounded JSON object gives zero.
func peek(payload []byte) probe {
	var p probe
	if jsonlimit.Check(payload, jsonlimit.MaxBytes) != nil || json.Unmarshal(payload, &p) != nil {
		return probe{}
	}
	return p
}

// add files one envelope of the evidence: set aside unread unless auth admits it (a DSSE
// envelope with another payload type is an error), then as a link or layout when it names
// a step of a layout in force, as a Statement when its predicate type is one a requirement
// or a layout reads.
func (c *classified) add(auth *authority, name string, env *envelope.Signed, fromBundle bool, byPayload map[string]*signedStatement) error {
	if env.Format == envelope.DSSE && env.PayloadType != envelope.PayloadTypeInToto {
		return fmt.Errorf("DSSE payload type %q is not in-toto (%s)", env.PayloadType, envelope.PayloadTypeInToto)
	}
	if c.admit(auth, name, env, fromBundle) != nil {
		return nil
	}
	p := peek(env.Payload)
	switch {
	case p.Type == "link" || p.Type == "layout":
		if why := auth.unused(name, &p); why != "" {
			c.unread++
			return nil
		}
		c.links[name] = env
		return nil
	case attest.IsStatementType(p.Type):
		if why := auth.unused(name, &p); why != "" {
			c.unread++
			return nil
		}
		st, err := attest.FromEnvelope(env) // the CLI reads Statements by the same rules
		if err != nil {
			return err
		}
		if isLinkPredicate(st.PredicateType) {
			// A link predicate is a link too: the layout's steps may consume it.
			c.links[name] = env
		}
		c.addStatement(name, st, env, byPayload)
		return nil
	case p.Type == "":
		return fmt.Errorf("payload is not in-toto metadata (no _type)")
	}
	return fmt.Errorf("payload _type %q is neither a link, a layout nor an in-toto Statement", reason.Clip(p.Type))
}

func isLinkPredicate(t string) bool {
	return t == attest.PredicateLinkV03 || t == attest.PredicateLinkV1
}

func (c *classified) addStatement(name string, st *attest.Statement, env *envelope.Signed, byPayload map[string]*signedStatement) {
	// Keyed by digest, not by the bytes: a key holding the payload would keep a second copy
	// of every Statement, signed or not, alive for the whole decision.
	sum := sha256.Sum256(env.Payload)
	key := env.PayloadType + "\x00" + string(sum[:])
	if prev, ok := byPayload[key]; ok {
		// The same bytes signed again: the signatures count together toward a threshold.
		for _, sig := range env.Signatures {
			if len(prev.env.Signatures) >= maxMergedSignatures {
				break
			}
			if !hasSignature(prev.env.Signatures, sig) {
				prev.env.Signatures = append(prev.env.Signatures, sig)
			}
		}
		return
	}
	merged := &envelope.Signed{Format: env.Format, PayloadType: env.PayloadType, Payload: env.Payload}
	merged.Signatures = append(merged.Signatures, env.Signatures...)
	if len(merged.Signatures) > maxMergedSignatures {
		merged.Signatures = merged.Signatures[:maxMergedSignatures]
	}
	ss := &signedStatement{st: st, env: merged, source: name}
	byPayload[key] = ss
	c.statements = append(c.statements, ss)
}

func hasSignature(list []envelope.Signature, s envelope.Signature) bool {
	for _, o := range list {
		if o.KeyID == s.KeyID && bytes.Equal(o.Sig, s.Sig) {
			return true
		}
	}
	return false
}

// celVars returns the variables conditions see for this statement, computed once.
func (s *signedStatement) celVars() (map[string]any, error) {
	if s.vars != nil || s.err != nil {
		return s.vars, s.err
	}
	stm, err := s.st.Map()
	if err != nil {
		s.err = err
		return nil, err
	}
	prov := map[string]any{}
	if predicate.IsProvenance(s.st.PredicateType) && len(s.st.Predicate) > 0 {
		p, err := predicate.ParseProvenance(s.st.PredicateType, s.st.Predicate)
		if err != nil {
			s.err = err
			return nil, err
		}
		prov = p.Map()
	}
	s.vars = map[string]any{"predicate": stm["predicate"], "statement": stm, "provenance": prov}
	return s.vars, nil
}

package policy

import (
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"tollgate.dev/tollgate/policy/envelope"
	"tollgate.dev/tollgate/policy/reason"
	"tollgate.dev/tollgate/policy/sigstore"
)

// addTrustedRoot loads a TrustedRoot document: Sigstore trust material inline or in files
// of the policy directory (node-local: nothing is fetched), with the requirements its
// instances' bundles must meet.
func (l *loader) addTrustedRoot(where string, d *trustedRootDoc) {
	name := d.Metadata.Name
	ctx := fmt.Sprintf("%s: TrustedRoot %q", where, name)
	if !validName(name) {
		l.fail("%s: TrustedRoot: metadata.name %q must be a lower-case DNS name (letters, digits, '-', '.')", where, name)
		return
	}
	if l.set.roots == nil {
		l.set.roots = map[string]*sigstore.TrustedRoots{}
	}
	if _, dup := l.set.roots[name]; dup {
		l.fail("%s: name already used by another TrustedRoot", ctx)
		return
	}
	if len(l.set.roots) >= maxTrustedRootDocs {
		l.fail("%s: more than %d TrustedRoot documents", ctx, maxTrustedRootDocs)
		return
	}
	if (len(d.Spec.Files) == 0) == (d.Spec.TrustedRoot == "") {
		l.fail("%s: give spec.files or spec.trustedRoot (inline), one of them", ctx)
		return
	}
	var datas [][]byte
	if d.Spec.TrustedRoot != "" {
		datas = append(datas, []byte(d.Spec.TrustedRoot))
	}
	for _, ref := range d.Spec.Files {
		data, p, err := lookup(l.files, ref)
		if err != nil {
			l.fail("%s: %v", ctx, err)
			return
		}
		if len(data) > sigstore.MaxTrustedRootBytes {
			l.fail("%s: %q is %d bytes, over the limit", ctx, p, len(data))
			return
		}
		datas = append(datas, data)
	}
	var parts []*sigstore.TrustedRoots
	for i, data := range datas {
		opts := []sigstore.Option{sigstore.WithName(name)}
		if i > 0 {
			opts[0] = sigstore.WithName(fmt.Sprintf("%s-file%d", name, i+1))
		}
		if d.Spec.Requirements != nil {
			opts = append(opts, sigstore.WithRequirements(*d.Spec.Requirements))
		}
		t, err := sigstore.ParseTrustedRoots(data, opts...)
		if err != nil {
			l.fail("%s: %v", ctx, err)
			return
		}
		parts = append(parts, t)
	}
	l.set.roots[name] = sigstore.Join(parts...)
	l.set.rootOrder = append(l.set.rootOrder, name)
}

// resolveTrustedRoots binds each keyless requirement to the instances it trusts, once
// every document is loaded (a policy may come before the TrustedRoot it names).
func (l *loader) resolveTrustedRoots() {
	all := &keylessTrust{roots: l.set.TrustedRoots()}
	for _, p := range l.set.policies {
		for _, a := range p.attests {
			if len(a.identities) > 0 {
				a.roots, a.trust = l.bindRoots(p, a.label(), a.rootNames), all
			}
		}
		for _, s := range p.sigs {
			if len(s.identities) > 0 {
				s.roots, s.trust = l.bindRoots(p, fmt.Sprintf("signature %q", s.name), s.rootNames), all
			}
		}
	}
}

// bindRoots returns the instance names a requirement (what) with identities trusts: the
// TrustedRoot documents it names, or every one.
func (l *loader) bindRoots(p *imagePolicy, what string, names []string) map[string]bool {
	if len(names) == 0 {
		names = l.set.rootOrder
	}
	if len(names) == 0 {
		l.fail("%s: ImagePolicy %q: %s has identities, and no TrustedRoot document is loaded", p.file, p.name, what)
		return nil
	}
	roots := map[string]bool{}
	for _, n := range names {
		t, ok := l.set.roots[n]
		if !ok {
			l.fail("%s: ImagePolicy %q: %s: no TrustedRoot named %q", p.file, p.name, what, n)
			continue
		}
		for _, in := range t.Instances() {
			roots[in.Name] = true
		}
	}
	return roots
}

func compileIdentities(specs []identitySpec) ([]*sigstore.Identity, error) {
	if len(specs) > maxIdentitiesPerReq {
		return nil, fmt.Errorf("%d identities, over the limit of %d", len(specs), maxIdentitiesPerReq)
	}
	var out []*sigstore.Identity
	seen := map[string]bool{}
	for i := range specs {
		id, err := compileIdentity(&specs[i])
		if err != nil {
			return nil, fmt.Errorf("identities[%d]: %v", i, err)
		}
		if key := identityKey(id); !seen[key] {
			// A repeated identity is one signer: thresholds count distinct identities.
			seen[key] = true
			out = append(out, id)
		}
	}
	return out, nil
}

func compileIdentity(s *identitySpec) (*sigstore.Identity, error) {
	if s.GitHub != nil {
		if s.Issuer != "" || s.IssuerRegexp != "" || s.Subject != "" || s.SubjectRegexp != "" || len(s.Claims)+len(s.ClaimsRegexp) > 0 {
			return nil, fmt.Errorf("github is a shorthand: give it alone")
		}
		g := s.GitHub
		return sigstore.GitHub{Owner: g.Owner, Repo: g.Repo, SignerWorkflow: g.SignerWorkflow, SignerRepo: g.SignerRepo,
			DenySelfHostedRunners: g.DenySelfHostedRunners, Host: g.Host}.Identity()
	}
	if s.Issuer == "" && s.IssuerRegexp == "" {
		// Policies pair an issuer with every subject; only the CLI matches a subject alone.
		return nil, fmt.Errorf("issuer or issuerRegexp is required (the OIDC issuer the certificate names)")
	}
	id := sigstore.Identity{
		Issuer:     sigstore.Value{Exact: s.Issuer, Regexp: s.IssuerRegexp},
		Subject:    sigstore.Value{Exact: s.Subject, Regexp: s.SubjectRegexp},
		Conditions: map[sigstore.Claim]sigstore.Value{},
	}
	for c, v := range s.Claims {
		id.Conditions[sigstore.Claim(c)] = sigstore.Value{Exact: v}
	}
	for c, v := range s.ClaimsRegexp {
		if _, dup := s.Claims[c]; dup {
			return nil, fmt.Errorf("claim %s is in both claims and claimsRegexp", c)
		}
		id.Conditions[sigstore.Claim(c)] = sigstore.Value{Regexp: v}
	}
	return sigstore.NewIdentity(id)
}

// identityKey spells an identity fully, to tell repeats apart.
func identityKey(id *sigstore.Identity) string {
	claims := make([]string, 0, len(id.Conditions))
	for c, v := range id.Conditions {
		claims = append(claims, fmt.Sprintf("%s=%q/%q", c, v.Exact, v.Regexp))
	}
	sort.Strings(claims)
	return fmt.Sprintf("%q/%q %q/%q %v", id.Issuer.Exact, id.Issuer.Regexp, id.Subject.Exact, id.Subject.Regexp, claims)
}

// bundleEvidence is one Sigstore bundle of the evidence. Its cryptography is checked once
// per decision, against every trusted root; each requirement then judges the signer.
type bundleEvidence struct {
	source   string
	data     []byte
	done     bool
	verified *sigstore.Verified
	err      error
}

// bundleCost is what one bundle verification is charged against the decision's signature
// budget: its chain, SCT, log entry, timestamp and signature.
const bundleCost = 8

// keylessTrust is what every keyless requirement of a Set shares: all its trusted roots,
// and the bundles already verified against them.
type keylessTrust struct {
	roots *sigstore.TrustedRoots
	mu    sync.Mutex
	done  map[[sha256.Size]byte]bundleResult
}

// maxCachedBundles bounds the verified-bundle memo of one Set (about 2 KiB each).
const maxCachedBundles = 4096

type bundleResult struct {
	verified *sigstore.Verified
	err      error
}

// verify checks a bundle's cryptography, remembering the outcome for the life of the Set.
// The outcome depends only on the bundle's bytes and the Set's trusted roots (times come
// from the bundle's own verified timestamps, never the clock), so a bundle seen again,
// by another decision or after the decision cache let a verdict go, costs no signature
// check. Budget exhaustion is not remembered: it belongs to one decision.
func (k *keylessTrust) verify(data []byte, budget *envelope.Budget) (*sigstore.Verified, error) {
	sum := sha256.Sum256(data)
	k.mu.Lock()
	r, ok := k.done[sum]
	k.mu.Unlock()
	if ok {
		return r.verified, r.err
	}
	if !budget.Spend(bundleCost) {
		return nil, reason.New(reason.Malformed, "the evidence needs more than %d signature checks", maxSignatureChecks).Wrap(envelope.ErrBudget)
	}
	r.verified, r.err = k.roots.VerifyBundle(data, sigstore.Unbound(), nil)
	k.mu.Lock()
	if k.done == nil || len(k.done) >= maxCachedBundles {
		k.done = map[[sha256.Size]byte]bundleResult{}
	}
	k.done[sum] = r
	k.mu.Unlock()
	return r.verified, r.err
}

// verifiedBundle verifies b once per decision.
func (c *classified) verifiedBundle(b *bundleEvidence, trust *keylessTrust) (*sigstore.Verified, error) {
	if !b.done {
		b.done = true
		b.verified, b.err = trust.verify(b.data, c.budget)
	}
	return b.verified, b.err
}

// isSigstoreBundle peeks at a file's mediaType.
func isSigstoreBundle(data []byte) bool {
	var probe struct {
		MediaType string `json:"mediaType"`
	}
	if len(data) > sigstore.MaxBundleBytes || json.Unmarshal(data, &probe) != nil {
		return false
	}
	return strings.HasPrefix(probe.MediaType, "application/vnd.dev.sigstore.bundle")
}

// keylessSigners returns, per Statement payload (payload type, NUL, payload), the distinct
// identities of a that signed it in a bundle a trusts, and the most telling refusal seen.
func (a *attestReq) keylessSigners(evd *classified, trust *keylessTrust) (map[string]map[*sigstore.Identity]bool, *reason.Error) {
	if len(a.identities) == 0 || len(evd.bundles) == 0 {
		return nil, nil
	}
	out := map[string]map[*sigstore.Identity]bool{}
	var refusal *reason.Error
	for _, b := range evd.bundles {
		v, err := evd.verifiedBundle(b, trust)
		if err != nil {
			if refusal == nil {
				refusal = prefixMsg(fmt.Sprintf("%s: bundle %q", a.label(), b.source), reason.As(err))
			}
			continue
		}
		if v.Envelope == nil || v.Signer.Subject == "" {
			continue // a message signature, or signed with a key (counted by keys)
		}
		if !a.roots[v.Instance] {
			if refusal == nil {
				refusal = reason.New(reason.BadSignature, "%s: bundle %q is vouched for by trusted root %q, which this requirement does not trust",
					a.label(), b.source, v.Instance)
			}
			continue
		}
		id, err := v.Match(a.identities...)
		if err != nil {
			refusal = prefixMsg(fmt.Sprintf("%s: bundle %q", a.label(), b.source), reason.As(err))
			continue
		}
		key := v.Envelope.PayloadType + "\x00" + string(v.Envelope.Payload)
		if out[key] == nil {
			out[key] = map[*sigstore.Identity]bool{}
		}
		out[key][id] = true
	}
	return out, refusal
}

// keylessCount checks that enough distinct keys and identities signed ss: keys over its
// DSSE signatures, identities over the bundles that carry the same payload. It returns
// the failure and its rank (see check).
func (a *attestReq) keylessCount(ss *signedStatement, evd *classified) (*reason.Error, int) {
	where := fmt.Sprintf("%s: statement %q", a.label(), ss.source)
	if evd.keyless == nil {
		evd.keyless = map[*attestReq]keylessResult{}
	}
	kr, ok := evd.keyless[a]
	if !ok {
		kr.signers, kr.refusal = a.keylessSigners(evd, a.trust)
		evd.keyless[a] = kr
	}
	var keyErr *reason.Error
	nKeys := 0
	if len(a.keys) > 0 {
		signers, err := ss.env.Verify(a.keys, 1, envelope.WithBudget(evd.budget))
		if errors.Is(err, envelope.ErrBudget) {
			return reason.New(reason.Malformed, "%s: the evidence needs more than %d signature checks", where, maxSignatureChecks), 5
		}
		if err != nil {
			keyErr = prefixMsg(where, reason.As(err))
		}
		nKeys = len(signers)
	}
	nIDs := len(kr.signers[ss.env.PayloadType+"\x00"+string(ss.env.Payload)])
	switch {
	case nKeys+nIDs >= a.threshold:
		return nil, 0
	case nKeys+nIDs > 0:
		return reason.New(reason.Threshold, "%s: signed by %d distinct trusted keys and %d distinct trusted identities, %d required",
			where, nKeys, nIDs, a.threshold), 3
	case kr.refusal != nil:
		return kr.refusal, 2
	case keyErr != nil:
		return keyErr, 2
	}
	return reason.New(reason.MissingEvidence, "%s: no Sigstore bundle signed it, and no trusted key", where), 2
}

type keylessResult struct {
	signers map[string]map[*sigstore.Identity]bool
	refusal *reason.Error
}

// TrustedRootExpiries returns, for each Sigstore instance the policy trusts, the seconds
// until its newest CA and newest TSA stop being usable, as of now (the daemon exports them
// as tollgate_trusted_root_remaining_seconds, computed at each scrape).
func (s *Set) TrustedRootExpiries(now time.Time) []sigstore.Expiry {
	if s == nil {
		return nil
	}
	return sigstore.Expiries(s.TrustedRoots(), now)
}

package policy

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"tollgate.dev/tollgate/policy/reason"
)

// Evaluate decides req against the set, using ev as evidence and now as the current time.
//
// Order: a revoked digest denies at once, and nothing below overrides that; an exemption
// allows at once; otherwise every ImagePolicy whose globs match the repository must pass
// (none matching: the node default decides). A failure denies in enforce mode and is
// reported but allowed in audit mode. Break-glass, while active, turns a denial (other
// than a revocation) into an allowance that is never cached. Evaluate never panics: an
// internal fault denies, uncached.
func (s *Set) Evaluate(req Request, ev Evidence, now time.Time) Decision {
	return s.EvaluateContext(context.Background(), req, ev, now)
}

// EvaluateContext is Evaluate bounded by ctx: evidence is untrusted and may cost seconds of
// signature checks, so the evaluation looks at ctx between files, envelopes, statements,
// layouts and signature checks, and once ctx is done returns Stopped's decision (denied,
// never cacheable) whatever it had found. The caller treats that as an infrastructure
// failure (see Decision.Stopped), never as a verdict.
func (s *Set) EvaluateContext(ctx context.Context, req Request, ev Evidence, now time.Time) (d Decision) {
	defer func() {
		if ctx.Err() != nil {
			d = stopped(req.Image, ctx)
		}
	}()
	return s.evaluate(ctx, req, ev, now)
}

func (s *Set) evaluate(ctx context.Context, req Request, ev Evidence, now time.Time) (d Decision) {
	defer func() {
		if r := recover(); r != nil {
			err := reason.New(reason.Malformed, "internal error while evaluating policy: %v", r)
			d = Decision{Outcome: Denied, Mode: Enforce, Reasons: []*reason.Error{err},
				Message: fmt.Sprintf("tollgate: denied %s: %v", req.Image.Name(), err)}
		}
	}()
	if s == nil {
		return Decision{Outcome: Denied, Mode: Enforce, Message: "tollgate: denied " + req.Image.Name() + ": no policy loaded"}
	}
	nd := s.defaults
	if nd == nil {
		nd = &nodeDefaults{}
	}
	// First, and final: break-glass stands in for failing verification infrastructure, and
	// neither it nor an exemption or audit mode is a way to run an image known to be bad.
	if what := nd.revocation(req.Image); what != "" {
		return nd.revokedDenial(req.Image, what, now)
	}
	repo, repoErr := repositoryOf(req.Image)
	if why := nd.exemption(req.Image, repo); why != "" {
		return Decision{Allowed: true, Outcome: Exempt, Mode: Enforce, Cacheable: true,
			Message: fmt.Sprintf("tollgate: exempt %s: %s", req.Image.Name(), why)}
	}
	if repoErr != nil {
		// No policy can be said to cover a registry no one can reach; nor can the
		// unmatched default stand in for one.
		r := reason.New(reason.Malformed, "the image's repository cannot be read: %v", repoErr)
		return Decision{Outcome: Denied, Mode: Enforce, Cacheable: true, Reasons: []*reason.Error{r},
			Message: fmt.Sprintf("tollgate: denied %s: %v", req.Image.Name(), r)}
	}
	var matched []*imagePolicy
	for _, p := range s.policies {
		if p.images.match(repo) {
			matched = append(matched, p)
		}
	}
	if len(matched) == 0 {
		d = nd.unmatched(req.Image, repo)
	} else {
		d = s.verify(ctx, matched, req, ev, now)
	}
	if !d.Allowed && nd.breakGlassActive(now) {
		d = breakGlass(d, nd, req.Image)
	}
	return d
}

// revocation returns which of img's digests NodeDefaults revokes ("config digest
// sha256:…" or "digest sha256:…"), or "". It checks the digests an exemption would.
func (nd *nodeDefaults) revocation(img Image) string {
	return listedDigest(nd.revoked, img)
}

// listedDigest returns which of img's digests set holds ("config digest sha256:…" or
// "digest sha256:…"), or "": its config digest, then the manifest and index digests
// proven to lead to it. set holds lower-case digests.
func listedDigest(set map[string]bool, img Image) string {
	if len(set) == 0 {
		return ""
	}
	if img.ConfigDigest != "" && set[strings.ToLower(img.ConfigDigest)] {
		return "config digest " + img.ConfigDigest
	}
	for _, dg := range img.Digests {
		if set[strings.ToLower(dg)] {
			return "digest " + dg
		}
	}
	return ""
}

// revokedDenial denies a revoked image in enforce mode. It is cacheable like any denial:
// the policy generation is part of every cache key, so lifting a revocation takes effect
// at the reload.
func (nd *nodeDefaults) revokedDenial(img Image, what string, now time.Time) Decision {
	r := reason.New(reason.Revoked, "%s is revoked by NodeDefaults", what)
	if nd.revokedReason != "" {
		r = reason.New(reason.Revoked, "%s is revoked by NodeDefaults: %s", what, nd.revokedReason)
	}
	d := Decision{Outcome: Denied, Mode: Enforce, Cacheable: true, Reasons: []*reason.Error{r},
		Message: fmt.Sprintf("tollgate: denied %s: %v", img.Name(), r)}
	if nd.breakGlassActive(now) {
		// Said, so that nobody waits for break-glass to let the image through; and true
		// only while break-glass lasts, which bounds the cached message.
		note := fmt.Sprintf("break-glass (until %s) does not apply to a revoked image",
			nd.breakGlassUntil.UTC().Format(time.RFC3339))
		d.Message += "; " + note
		d.Warnings = []string{note}
		d.ValidUntil = nd.breakGlassUntil
	}
	return d
}

// exemption returns why img is exempt, or "".
func (nd *nodeDefaults) exemption(img Image, repo string) string {
	if what := listedDigest(nd.exemptDigests, img); what != "" {
		return what + " is exempted by NodeDefaults"
	}
	if repo != "" && nd.exemptRepos.match(repo) {
		return "repository " + repo + " is exempted by NodeDefaults"
	}
	return ""
}

func (nd *nodeDefaults) unmatched(img Image, repo string) Decision {
	if nd.allowUnmatched {
		return Decision{Allowed: true, Outcome: Unmatched, Mode: Enforce, Cacheable: true,
			Message: fmt.Sprintf("tollgate: allowed %s: no policy matches repository %q and the node default allows it", img.Name(), repo)}
	}
	r := reason.New(reason.NoPolicy, "no policy matches repository %q and the node default denies it", repo)
	return Decision{Outcome: Unmatched, Mode: Enforce, Cacheable: true, Reasons: []*reason.Error{r},
		Message: fmt.Sprintf("tollgate: denied %s: %v", img.Name(), r)}
}

func breakGlass(d Decision, nd *nodeDefaults, img Image) Decision {
	d.Allowed = true
	d.Outcome = BreakGlass
	d.Cacheable = false
	if d.ValidUntil.IsZero() || nd.breakGlassUntil.Before(d.ValidUntil) {
		d.ValidUntil = nd.breakGlassUntil
	}
	why := ""
	if len(d.Reasons) > 0 {
		why = ": would deny: " + firstReason(d)
	}
	note := ""
	if nd.breakGlassReason != "" {
		note = fmt.Sprintf(", %q", nd.breakGlassReason)
	}
	d.Message = fmt.Sprintf("tollgate: break-glass allowed %s (until %s%s)%s",
		img.Name(), nd.breakGlassUntil.UTC().Format(time.RFC3339), note, why)
	return d
}

// policyResult is the outcome of one matching policy.
type policyResult struct {
	p       *imagePolicy
	reasons []*reason.Error
}

func (s *Set) verify(ctx context.Context, matched []*imagePolicy, req Request, ev Evidence, now time.Time) Decision {
	evd := classify(ctx, ev, authorityOf(matched))
	d := Decision{Cacheable: true, Mode: Audit}
	d.Warnings = append(d.Warnings, evd.warnings...)
	var failedEnforce, failedAudit []policyResult
	var names []string
	for _, p := range matched {
		names = append(names, p.name)
		if p.mode == Enforce {
			d.Mode = Enforce
		}
		// A layout that has already expired bounds nothing: the verdict it causes will not
		// change as time passes.
		if t := p.nextExpiry(now); !t.IsZero() && (d.ValidUntil.IsZero() || t.Before(d.ValidUntil)) {
			d.ValidUntil = t
		}
		reasons, warnings := p.check(req.Image, evd, now)
		d.Warnings = append(d.Warnings, warnings...)
		if len(reasons) == 0 {
			continue
		}
		if p.mode == Enforce {
			failedEnforce = append(failedEnforce, policyResult{p, reasons})
		} else {
			failedAudit = append(failedAudit, policyResult{p, reasons})
		}
	}
	if t := evd.validUntil; !t.IsZero() && (d.ValidUntil.IsZero() || t.Before(d.ValidUntil)) {
		d.ValidUntil = t // an accepted verification summary grows too old then
	}
	for _, r := range append(failedEnforce, failedAudit...) {
		d.Reasons = append(d.Reasons, r.reasons...)
	}
	img := req.Image.Name()
	switch {
	case len(failedEnforce) > 0:
		d.Outcome, d.Mode, d.Policy = Denied, Enforce, policyNames(failedEnforce)
		d.Message = fmt.Sprintf("tollgate: denied %s: policy %q: %v", img, failedEnforce[0].p.name, failedEnforce[0].reasons[0])
	case len(failedAudit) > 0:
		d.Allowed, d.Outcome, d.Mode, d.Policy = true, AuditFail, Audit, policyNames(failedAudit)
		d.Message = fmt.Sprintf("tollgate: allowed in audit mode %s: policy %q: %v", img, failedAudit[0].p.name, failedAudit[0].reasons[0])
	default:
		d.Allowed, d.Outcome, d.Policy = true, Verified, strings.Join(names, ",")
		d.Message = fmt.Sprintf("tollgate: verified %s: policy %s", img, quoteAll(names))
	}
	return d
}

// check verifies one policy's requirements and returns every failure.
func (p *imagePolicy) check(img Image, evd *classified, now time.Time) (reasons []*reason.Error, warnings []string) {
	if !evd.usable() {
		// Nothing to check layouts and attestations against: one reason says why. Each
		// signature requirement still names what it misses.
		if len(p.layouts)+len(p.attests) > 0 {
			reasons = append(reasons, evd.cause)
		}
		return append(reasons, p.checkSignatures(img, evd)...), nil
	}
	for _, l := range p.layouts {
		if evd.stopped() {
			return append(reasons, evd.stop), warnings
		}
		if now.After(l.expires) {
			reasons = append(reasons, reason.New(reason.Expired, "layout %q expired at %s", l.path, l.expires.UTC().Format(time.RFC3339)))
			continue
		}
		w, err := verifyLayout(l, img, evd, now)
		warnings = append(warnings, w...)
		if err != nil {
			reasons = append(reasons, reason.As(err))
		}
	}
	for _, a := range p.attests {
		if evd.stopped() {
			return append(reasons, evd.stop), warnings
		}
		if err := a.check(img, evd, now); err != nil {
			reasons = append(reasons, err)
		}
	}
	return append(reasons, p.checkSignatures(img, evd)...), warnings
}

// checkSignatures verifies the policy's cosign signature requirements.
func (p *imagePolicy) checkSignatures(img Image, evd *classified) (reasons []*reason.Error) {
	for _, s := range p.sigs {
		if err := s.check(img, evd); err != nil {
			reasons = append(reasons, err)
		}
	}
	return reasons
}

func policyNames(rs []policyResult) string {
	names := make([]string, len(rs))
	for i, r := range rs {
		names[i] = r.p.name
	}
	return strings.Join(names, ",")
}

func quoteAll(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = fmt.Sprintf("%q", n)
	}
	return strings.Join(q, ", ")
}

func firstReason(d Decision) string {
	if len(d.Reasons) == 0 {
		return ""
	}
	if d.Policy != "" {
		first, _, _ := strings.Cut(d.Policy, ",")
		return fmt.Sprintf("policy %q: %v", first, d.Reasons[0])
	}
	return d.Reasons[0].Error()
}

// ErrStopped is wrapped by the reason of a decision that was stopped at its deadline
// (Decision.Stopped): an infrastructure failure, never a verdict.
var ErrStopped = errors.New("evaluation stopped at its deadline")

// Stopped reports whether d is an evaluation stopped at its deadline, not a verdict.
func (d *Decision) Stopped() bool {
	return len(d.Reasons) > 0 && errors.Is(d.Reasons[0], ErrStopped)
}

func stopped(img Image, ctx context.Context) Decision {
	r := reason.New(reason.Malformed, "the evaluation of its evidence was stopped at its deadline (%v) before a verdict", context.Cause(ctx)).Wrap(ErrStopped)
	return Decision{Outcome: Denied, Mode: Enforce, Reasons: []*reason.Error{r},
		Message: fmt.Sprintf("tollgate: denied %s: %v", img.Name(), r)}
}

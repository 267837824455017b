package policy

import (
	"fmt"
	"net/url"
	"strings"
	"time"

	"tollgate.dev/tollgate/policy/reason"
	"tollgate.dev/tollgate/policy/vsa"
)

// Bounds on verification summary requirements.
const (
	maxSummariesPerPolicy = 16
	maxPolicyDigests      = 64
	maxSummaryLevels      = 16
	maxSummaryAge         = 366 * 24 * time.Hour
)

// summarySpec requires a SLSA verification summary (VSA v1): a verifier this requirement
// trusts (its keys or keyless identities, threshold of them) says it verified one of the
// image's digests, recently, against a policy whose digest this requirement names, with
// the result PASSED and at least the levels listed.
type summarySpec struct {
	Name string `json:"name"`
	// Verifier is the verifier.id the VSA must carry, exactly.
	Verifier     string         `json:"verifier"`
	Keys         []string       `json:"keys,omitempty"`
	Identities   []identitySpec `json:"identities,omitempty"`
	TrustedRoots []string       `json:"trustedRoots,omitempty"`
	Threshold    int            `json:"threshold,omitempty"`
	// PolicyDigests are the policy digests (sha256:<hex>, as `tollgate policy digest`
	// prints) the VSA may name; PolicyURI, when set, must match as well.
	PolicyDigests []string `json:"policyDigests"`
	PolicyURI     string   `json:"policyURI,omitempty"`
	// MaxAge bounds how old the verification may be (a Go duration: "24h", "90m").
	MaxAge string   `json:"maxAge"`
	Levels []string `json:"levels,omitempty"`
}

func (l *loader) compileSummaries(specs []summarySpec, errs []error) ([]*attestReq, []error) {
	return compileNamed("spec.verificationSummaries", specs, maxSummariesPerPolicy, func(s *summarySpec) string { return s.Name }, l.compileSummary, errs)
}

func (l *loader) compileSummary(s *summarySpec) (*attestReq, error) {
	rule, err := compileRule(s)
	if err != nil {
		return nil, err
	}
	r := &attestReq{name: s.Name, predicateType: vsa.PredicateType, summary: rule, rootNames: s.TrustedRoots}
	if err := l.compileSigners(r, s.Keys, s.Identities, s.Threshold); err != nil {
		return nil, err
	}
	return r, nil
}

// compileRule checks what the requirement asks of a VSA's content.
func compileRule(s *summarySpec) (*vsa.Rule, error) {
	if u, err := url.Parse(s.Verifier); s.Verifier == "" || err != nil || u.Scheme == "" {
		return nil, fmt.Errorf("verifier %q must be the verifier id (a URI) the VSA names", s.Verifier)
	}
	if s.PolicyURI != "" {
		if u, err := url.Parse(s.PolicyURI); err != nil || u.Scheme == "" {
			return nil, fmt.Errorf("policyURI %q is not a URI", s.PolicyURI)
		}
	}
	r := &vsa.Rule{VerifierID: s.Verifier, PolicyURI: s.PolicyURI}
	switch {
	case len(s.PolicyDigests) == 0:
		return nil, fmt.Errorf("policyDigests must name at least one policy digest (sha256:..., from `tollgate policy digest`): a policy URI alone does not say what the policy was")
	case len(s.PolicyDigests) > maxPolicyDigests:
		return nil, fmt.Errorf("policyDigests has %d entries, over the limit of %d", len(s.PolicyDigests), maxPolicyDigests)
	}
	for i, d := range s.PolicyDigests {
		lower := strings.ToLower(d)
		if !validDigest(lower) {
			return nil, fmt.Errorf("policyDigests[%d]: %q is not a digest (sha256:<64 hex digits>)", i, d)
		}
		r.PolicyDigests = append(r.PolicyDigests, lower)
	}
	age, err := time.ParseDuration(s.MaxAge)
	switch {
	case s.MaxAge == "":
		return nil, fmt.Errorf("maxAge is required (for instance \"24h\"): a verification summary speaks for the time it was made")
	case err != nil || age <= 0 || age > maxSummaryAge:
		return nil, fmt.Errorf("maxAge %q must be a duration between 1s and %s (for instance \"24h\")", s.MaxAge, maxSummaryAge)
	}
	r.MaxAge = age
	if len(s.Levels) > maxSummaryLevels {
		return nil, fmt.Errorf("levels has %d entries, over the limit of %d", len(s.Levels), maxSummaryLevels)
	}
	for _, lv := range s.Levels {
		if err := vsa.CheckLevel(lv); err != nil {
			return nil, fmt.Errorf("levels: %v", err)
		}
	}
	r.Levels = s.Levels
	return r, nil
}

// judgeSummary reads ss as a VSA and judges its claims against the requirement's rule,
// once its signers are trusted. An accepted VSA bounds how long the decision holds: it
// stops being young enough at timeVerified + maxAge.
func (a *attestReq) judgeSummary(ss *signedStatement, img Image, evd *classified, now time.Time) *reason.Error {
	where := fmt.Sprintf("%s: statement %q", a.label(), ss.source)
	s, err := vsa.Parse(ss.st.Predicate)
	if err != nil {
		return prefixMsg(where, reason.As(err))
	}
	if err := a.summary.Check(s, img.Digests, now); err != nil {
		return prefixMsg(fmt.Sprintf("%s by verifier %q", where, reason.Clip(s.VerifierID)), err)
	}
	if t := a.summary.ExpiresAt(s.TimeVerified); evd.validUntil.IsZero() || t.Before(evd.validUntil) {
		evd.validUntil = t
	}
	return nil
}

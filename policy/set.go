package policy

import (
	"fmt"
	"strings"
	"time"

	"tollgate.dev/tollgate/policy/attest"
	"tollgate.dev/tollgate/policy/keys"
	"tollgate.dev/tollgate/policy/sigstore"
	"tollgate.dev/tollgate/policy/vsa"
)

// Set is an immutable, versioned view of everything loaded from a policy directory. It is
// safe for concurrent use: nothing in it changes after Load.
type Set struct {
	// Generation is the reload counter the daemon passed to Load; decisions cached under
	// another generation are stale.
	Generation uint64

	policies []*imagePolicy // sorted by name
	defaults *nodeDefaults
	// roots are the TrustedRoot documents by name, rootOrder their names as loaded.
	roots     map[string]*sigstore.TrustedRoots
	rootOrder []string
}

// label names the requirement in messages: attestation "x" or verification summary "x".
func (a *attestReq) label() string {
	if a.summary != nil {
		return fmt.Sprintf("verification summary %q", a.name)
	}
	return fmt.Sprintf("attestation %q", a.name)
}

// TrustedRoots returns every Sigstore instance the policy directory trusts (for metrics).
func (s *Set) TrustedRoots() *sigstore.TrustedRoots {
	var all []*sigstore.TrustedRoots
	for _, n := range s.rootOrder {
		all = append(all, s.roots[n])
	}
	return sigstore.Join(all...)
}

// imagePolicy is one compiled ImagePolicy.
type imagePolicy struct {
	name    string
	file    string
	mode    Mode
	images  globs
	layouts []*layoutReq
	attests []*attestReq // attestations, then verification summaries
	sigs    []*signatureReq
}

// attestReq is one required Statement of a policy: an attestation, or a verification
// summary (summary non-nil), which is an attestation of one predicate type whose claims
// are judged as well.
type attestReq struct {
	name          string
	summary       *vsa.Rule
	predicateType string
	keys          []*keys.Key
	identities    []*sigstore.Identity
	rootNames     []string        // as written; empty: every TrustedRoot
	roots         map[string]bool // instance names this requirement trusts (resolved after Load)
	trust         *keylessTrust   // every instance of the Set, and the bundles verified against them
	threshold     int
	conds         []*condition
}

// nodeDefaults is the compiled NodeDefaults (the zero value is the built-in default).
type nodeDefaults struct {
	file             string
	allowUnmatched   bool
	exemptDigests    map[string]bool
	exemptRepos      globs
	revoked          map[string]bool // lower-case digests
	revokedReason    string
	breakGlass       bool
	breakGlassUntil  time.Time
	breakGlassReason string
}

// Policies returns the names of the loaded ImagePolicies, sorted.
func (s *Set) Policies() []string {
	out := make([]string, 0, len(s.policies))
	for _, p := range s.policies {
		out = append(out, p.name)
	}
	return out
}

// LayoutExpiries returns, for every policy with layouts, the earliest expiry among them
// (the tollgate_layout_expiry_timestamp_seconds metric).
func (s *Set) LayoutExpiries() map[string]time.Time {
	out := map[string]time.Time{}
	for _, p := range s.policies {
		if t := p.earliestExpiry(); !t.IsZero() {
			out[p.name] = t
		}
	}
	return out
}

// BreakGlass reports whether break-glass is enabled, until when, and why. Enabled is the
// configured switch; it allows nothing after until.
func (s *Set) BreakGlass() (enabled bool, until time.Time, reason string) {
	d := s.defaults
	if d == nil {
		return false, time.Time{}, ""
	}
	return d.breakGlass, d.breakGlassUntil, d.breakGlassReason
}

// Revoked reports how many digests NodeDefaults revokes. An image can only be found
// revoked by its digests, so a caller that decides from the repository alone (the
// admission webhook's shortcut for exempt and unmatched images) must not while this is
// non-zero.
func (s *Set) Revoked() int {
	if s == nil || s.defaults == nil {
		return 0
	}
	return len(s.defaults.revoked)
}

func (p *imagePolicy) earliestExpiry() time.Time {
	var t time.Time
	for _, l := range p.layouts {
		if t.IsZero() || l.expires.Before(t) {
			t = l.expires
		}
	}
	return t
}

// nextExpiry is the earliest layout expiry after now (zero if none).
func (p *imagePolicy) nextExpiry(now time.Time) time.Time {
	var t time.Time
	for _, l := range p.layouts {
		if l.expires.After(now) && (t.IsZero() || l.expires.Before(t)) {
			t = l.expires
		}
	}
	return t
}

func (d *nodeDefaults) breakGlassActive(now time.Time) bool {
	return d != nil && d.breakGlass && !now.After(d.breakGlassUntil)
}

// VerifiedProvenance reports whether a Verified decision of this set checked SLSA
// provenance: one of the policies that decided requires a provenance attestation (v1 or
// v0.2) from trusted signers, bound to the image. `tollgate verify --vsa-out` records
// SLSA_BUILD_LEVEL_1 only then.
func (s *Set) VerifiedProvenance(d Decision) bool {
	if d.Outcome != Verified {
		return false
	}
	for _, name := range strings.Split(d.Policy, ",") {
		for _, p := range s.policies {
			if p.name != name {
				continue
			}
			for _, a := range p.attests {
				if a.summary == nil && (a.predicateType == attest.PredicateSLSAProvenanceV1 || a.predicateType == attest.PredicateSLSAProvenanceV02) {
					return true
				}
			}
		}
	}
	return false
}

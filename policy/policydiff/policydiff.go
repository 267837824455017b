// Package policydiff compares what two policy sets decide about the same images: which
// would be newly denied, newly allowed, or decided otherwise, and why. It is pure (decisions
// in, changes out). `tollgate preview` uses it to show what a policy change would do before
// it is rolled out; tollgated's re-check after a policy reload uses it to summarise what the
// reload changed for the running workloads.
//
// It also holds the node's rule for deciding over several evidence sources (Decide), so the
// preview decides exactly as the node does.
package policydiff

import (
	"time"

	"tollgate.dev/tollgate/policy"
	"tollgate.dev/tollgate/policy/reason"
)

// Evaluator decides a request against evidence. *policy.Set implements it.
type Evaluator interface {
	Evaluate(req policy.Request, ev policy.Evidence, now time.Time) policy.Decision
}

// FailedVerification reports whether d came from evidence that did not verify, so that
// other evidence (the next source, the registry) could change it. A revocation did not:
// no evidence changes it.
func FailedVerification(d *policy.Decision) bool {
	switch d.Outcome {
	case policy.Denied, policy.AuditFail, policy.BreakGlass:
		return !Revoked(d)
	}
	return false
}

// Revoked reports whether d is NodeDefaults' denial of a revoked digest.
func Revoked(d *policy.Decision) bool {
	return !d.Allowed && len(d.Reasons) > 0 && d.Reasons[0] != nil && d.Reasons[0].Kind == reason.Revoked
}

// Decide evaluates req against each evidence set in order, as the node does with its
// sources (node evidence directory, then the disk cache of registry fetches): the first
// set whose decision is not a failed verification decides; failing that, the first
// failure. Sets without files are skipped; with no files anywhere, the policy decides on
// no evidence (exemptions, unmatched images and break-glass need none, and a failure says
// which policy wants what).
func Decide(e Evaluator, req policy.Request, evs []policy.Evidence, now time.Time) policy.Decision {
	var d policy.Decision
	found := false
	for _, ev := range evs {
		if len(ev.Files) == 0 {
			continue
		}
		di := e.Evaluate(req, ev, now)
		if !found || !FailedVerification(&di) {
			d, found = di, true
		}
		if !FailedVerification(&di) {
			break
		}
	}
	if !found {
		d = e.Evaluate(req, policy.Evidence{}, now)
	}
	return d
}

// Change is what a policy change does to one image.
type Change string

// Changes, from the most to the least urgent.
const (
	// Error: the image could not be decided under one of the sets (its evidence could not
	// be read or fetched); nothing is known about it.
	Error Change = "error"
	// NewlyDenied: allowed before (or with no earlier set), denied now.
	NewlyDenied Change = "newly-denied"
	// NewlyAllowed: denied before, allowed now.
	NewlyAllowed Change = "newly-allowed"
	// Changed: allowed (or denied) under both, but for another reason: another outcome
	// (verified -> audit failure, exempt -> verified), policy or denial reason.
	Changed Change = "changed"
	// Unchanged: decided the same way for the same reasons.
	Unchanged Change = "unchanged"
)

// Compare says what moving from old to new does. A nil old is the baseline of no policy
// in force: a denial under new is newly denied, an allowance that failed verification
// (audit mode, break-glass) is a change, and any other allowance (verified, exempt,
// unmatched) is unchanged.
func Compare(old, new *policy.Decision) Change {
	if old == nil {
		switch {
		case !new.Allowed:
			return NewlyDenied
		case FailedVerification(new):
			return Changed
		}
		return Unchanged
	}
	switch {
	case old.Allowed && !new.Allowed:
		return NewlyDenied
	case !old.Allowed && new.Allowed:
		return NewlyAllowed
	case !same(old, new):
		return Changed
	}
	return Unchanged
}

// same reports whether two decisions with the same allowance say the same thing: outcome,
// policy and reasons. The mode is not compared: with the same allowance and outcome it
// changes nothing (an image verified under an audit policy is verified under the same
// policy enforced). Messages are not compared either: they name what the caller asked
// about (an image name can differ), and the reasons hold their substance.
func same(a, b *policy.Decision) bool {
	if a.Outcome != b.Outcome || a.Policy != b.Policy || len(a.Reasons) != len(b.Reasons) {
		return false
	}
	for i := range a.Reasons {
		ra, rb := a.Reasons[i], b.Reasons[i]
		if (ra == nil) != (rb == nil) || ra != nil && (ra.Kind != rb.Kind || ra.Error() != rb.Error()) {
			return false
		}
	}
	return true
}

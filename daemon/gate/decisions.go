package gate

import (
	"context"
	"errors"
	"fmt"
	"time"

	"tollgate.dev/tollgate/daemon/policystore"
	"tollgate.dev/tollgate/policy"
	"tollgate.dev/tollgate/policy/policydiff"
	"tollgate.dev/tollgate/policy/reason"
)

// Metric label values of tollgate_decisions_total{reason} that the gate itself decides
// (policy reasons are reason.Kind values).
const (
	reasonDeadline       = "deadline_exceeded"
	reasonPending        = "evidence_pending"
	reasonInfrastructure = "infrastructure_error"
	reasonNoPolicySet    = "no_policy_loaded"
)

// Decision paths, the values of the audit log's "path".
const (
	PathHook      = "hook"
	PathPreverify = "preverify"
	PathRecheck   = "recheck"
)

// This file holds the decisions the daemon makes itself, when the policy cannot decide:
// no policy set, a deadline, evidence still on its way, a disk error. None is cached, and
// none allows in enforce mode.

// failedVerification is policydiff's: d came from evidence that did not verify, so other
// evidence (the next source, the registry) could change it.
func failedVerification(d *policy.Decision) bool { return policydiff.FailedVerification(d) }

// verdictAllows reports whether d is an allowance that earns the allow TTL. An audit
// failure is allowed but is a failure: it keeps the short TTL, so fixed evidence shows soon.
func verdictAllows(d *policy.Decision) bool {
	switch d.Outcome {
	case policy.Verified, policy.Exempt:
		return d.Allowed
	case policy.Unmatched:
		return d.Allowed
	}
	return false
}

func noPolicyDecision(img *policy.Image, cause error) policy.Decision {
	r := reason.New(reason.NoPolicy, "no policy set is loaded on this node")
	if cause != nil {
		r = r.Wrap(cause)
	}
	return policy.Decision{
		Outcome: policy.Denied, Mode: policy.Enforce, Reasons: []*reason.Error{r},
		Message: fmt.Sprintf("tollgate: denied %s: %v", img.Name(), r),
	}
}

// deadlineDecision answers a hook whose ctx ended before the verification did: its
// deadline passed, or the runtime withdrew the request.
func deadlineDecision(ctx context.Context, img *policy.Image, waited time.Duration) policy.Decision {
	why := fmt.Sprintf("verification did not finish within the hook deadline (waited %s)", waited.Round(time.Millisecond))
	if errors.Is(ctx.Err(), context.Canceled) {
		why = "the runtime withdrew the request before verification finished"
	}
	return policy.Decision{
		Outcome: policy.Denied, Mode: policy.Enforce,
		Message: fmt.Sprintf("tollgate: denied %s: %s; it goes on in the background, "+
			"so a retry should be decided from the cache", img.Name(), why),
	}
}

// pendingDecision turns the verdict on no evidence into the hook's answer while
// pre-verification fetches the evidence: enforce denies and says so; audit allows. fail,
// when set, is the last registry fetch for these digests that failed (an air-gapped node, a
// registry down): the message says why the evidence is not coming rather than promising it.
// running, when set, is how long the pre-verification the hook waited for has been running
// without finishing within the hook deadline.
func pendingDecision(img *policy.Image, d policy.Decision, fail *fetchFailure, running time.Duration) policy.Decision {
	why := "in-toto evidence for this image is not on the node yet; pre-verification is fetching it from the registry"
	next := ", retry shortly"
	switch {
	case fail != nil:
		why = fmt.Sprintf("in-toto evidence for this image is not on the node, and the registry could not be reached (%s ago): %s",
			fail.age.Round(time.Second), fail.cause)
		next = "; pre-verification keeps retrying (on an air-gapped node, put the evidence in the node evidence directory)"
	case running > 0:
		why = fmt.Sprintf("in-toto evidence for this image is not on the node yet; pre-verification has been fetching it "+
			"from the registry for %s and did not finish within the hook deadline", running.Round(time.Millisecond))
		next = "; it goes on in the background, retry shortly"
	}
	d.Cacheable = false
	switch d.Outcome {
	case policy.Denied:
		d.Reasons = withMissingEvidence(d.Reasons, why)
		d.Message = fmt.Sprintf("tollgate: denied %s: %s%s%s", img.Name(), why, next, policyNote(&d))
	case policy.AuditFail:
		d.Message = fmt.Sprintf("tollgate: audit: allowed %s: %s%s", img.Name(), why, policyNote(&d))
	}
	return d
}

// withMissingEvidence makes sure rs says evidence is missing, once: the policy, asked with
// no evidence, usually says so itself (and names what it wanted), and then rs is kept as is.
func withMissingEvidence(rs []*reason.Error, why string) []*reason.Error {
	for _, r := range rs {
		if r != nil && r.Kind == reason.MissingEvidence {
			return rs
		}
	}
	return append([]*reason.Error{reason.New(reason.MissingEvidence, "%s", why)}, rs...)
}

// infraDecision answers when evidence could not be read (an infrastructure error). The
// policy, asked with no evidence, says whether the image needs any and in which mode; an
// enforce policy denies with the error, an audit policy allows and reports it.
func (g *Gate) infraDecision(req *policy.Request, snap *policystore.Snapshot, err error) policy.Decision {
	d := snap.Policies.Evaluate(policy.Request{Image: req.Image}, policy.Evidence{}, g.clock())
	if !failedVerification(&d) {
		return d // exempt or unmatched: evidence would not have mattered
	}
	d.Cacheable = false
	r := reason.New(reason.MissingEvidence, "cannot check evidence").Wrap(err)
	d.Reasons = []*reason.Error{r}
	switch {
	case d.Outcome == policy.AuditFail:
		d.Message = fmt.Sprintf("tollgate: audit: allowed %s: %v%s", req.Image.Name(), r, policyNote(&d))
	case d.Allowed: // break-glass
	default:
		d.Outcome, d.Allowed = policy.Denied, false
		d.Message = fmt.Sprintf("tollgate: denied %s: %v%s", req.Image.Name(), r, policyNote(&d))
	}
	return d
}

func policyNote(d *policy.Decision) string {
	if d.Policy == "" {
		return ""
	}
	return fmt.Sprintf(" (policy %q)", d.Policy)
}

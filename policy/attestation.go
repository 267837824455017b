package policy

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"tollgate.dev/tollgate/policy/envelope"
	"tollgate.dev/tollgate/policy/reason"
)

// check finds a Statement that satisfies the requirement: the right predicate type, bound
// to the image, signed by enough distinct trusted keys, and meeting every condition. When
// none does, the failure of the candidate that got furthest is returned, so the operator
// reads the most specific reason (a failed condition over a missing signature over a
// digest mismatch).
func (a *attestReq) check(img Image, evd *classified, now time.Time) *reason.Error {
	var best *reason.Error
	bestRank := -1
	consider := func(err *reason.Error, rank int) {
		if rank > bestRank {
			best, bestRank = err, rank
		}
	}
	found := 0
	for _, ss := range evd.statements {
		if evd.stopped() {
			return evd.stop
		}
		if ss.st.PredicateType != a.predicateType {
			continue
		}
		found++
		if !ss.st.BoundTo(img.Digests...) {
			consider(reason.New(reason.BindingMismatch, "%s: statement %q names %s, not the image (%s)",
				a.label(), ss.source, clipList(ss.st.SubjectDigests(), 3), clipList(img.Digests, 3)), 1)
			continue
		}
		if len(a.identities) > 0 {
			if err, rank := a.keylessCount(ss, evd); err != nil {
				consider(err, rank)
				continue
			}
			if err := a.accept(ss, img, evd, now); err != nil {
				consider(err, 4)
				continue
			}
			return nil
		}
		if _, err := ss.env.Verify(a.keys, a.threshold, envelope.WithBudget(evd.budget)); err != nil {
			if errors.Is(err, envelope.ErrBudget) {
				// Fail closed: what remains unchecked cannot be trusted, and checking it all
				// would let hostile evidence stall the node.
				consider(reason.New(reason.Malformed, "%s: statement %q: the evidence needs more than %d signature checks; not checking further statements",
					a.label(), ss.source, maxSignatureChecks), 5)
				break
			}
			e := reason.As(err)
			rank := 2
			if e.Kind == reason.Threshold {
				rank = 3
			}
			consider(prefixMsg(fmt.Sprintf("%s: statement %q", a.label(), ss.source), e), rank)
			continue
		}
		if err := a.accept(ss, img, evd, now); err != nil {
			consider(err, 4)
			continue
		}
		return nil
	}
	if found == 0 && evd.setAside != nil {
		// What was set aside may have been the Statement: say why it was not read.
		return prefixMsg(fmt.Sprintf("attestation %q: no statement of type %s signed by a trusted key found for the image; %d envelopes set aside unread, the first",
			a.name, a.predicateType, evd.unread), evd.setAside)
	}
	if found == 0 {
		return reason.New(reason.MissingEvidence, "%s: no statement of type %s found for the image", a.label(), a.predicateType)
	}
	return best
}

// accept judges a Statement whose signers the requirement trusts: a verification
// summary's claims, or an attestation's conditions.
func (a *attestReq) accept(ss *signedStatement, img Image, evd *classified, now time.Time) *reason.Error {
	if a.summary != nil {
		return a.judgeSummary(ss, img, evd, now)
	}
	return a.conditions(ss)
}

func (a *attestReq) conditions(ss *signedStatement) *reason.Error {
	if len(a.conds) == 0 {
		return nil
	}
	vars, err := ss.celVars()
	if err != nil {
		return reason.New(reason.Malformed, "%s: statement %q", a.label(), ss.source).Wrap(err)
	}
	for _, c := range a.conds {
		ok, err := c.eval(vars)
		if err != nil {
			return reason.New(reason.ConditionFailed, "%s: condition %q could not be evaluated", a.label(), c.src).Wrap(err)
		}
		if !ok {
			return reason.New(reason.ConditionFailed, "%s: condition %q is false", a.label(), c.src)
		}
	}
	return nil
}

// prefixMsg returns a copy of e whose message starts with where.
func prefixMsg(where string, e *reason.Error) *reason.Error {
	c := *e
	if c.Msg == "" {
		c.Msg = where
	} else {
		c.Msg = where + ": " + c.Msg
	}
	return &c
}

func clipList(list []string, n int) string {
	if len(list) == 0 {
		return "no digest"
	}
	if len(list) <= n {
		return strings.Join(list, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(list[:n], ", "), len(list)-n)
}

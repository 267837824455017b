// Package reason gives every verification failure a type and a sentence.
//
// Metrics count failures by Kind; the deny message that reaches kubectl and crictl is the
// Error's text. Keeping both in one value means the two can never drift apart.
package reason

import (
	"errors"
	"fmt"
	"strings"
)

// Kind classifies why verification failed. Values are stable: they are metric labels.
type Kind string

const (
	MissingEvidence Kind = "missing_evidence" // no link, statement or signature was found
	BadSignature    Kind = "bad_signature"    // a signature did not verify against any trusted key
	Threshold       Kind = "threshold"        // fewer distinct trusted signers than required
	RuleViolation   Kind = "rule_violation"   // an artifact rule of a layout was violated
	Expired         Kind = "expired"          // the layout's expiry is in the past
	BindingMismatch Kind = "binding_mismatch" // evidence names other content than the image
	Malformed       Kind = "malformed"        // unparseable, over a limit, or invalid input
	ConditionFailed Kind = "condition_failed" // a policy condition over a predicate was false
	NoPolicy        Kind = "no_policy"        // no policy matches the image and the default denies
	Revoked         Kind = "revoked"          // NodeDefaults revokes one of the image's digests
)

// Error is a verification failure that explains itself. Step, Rule and Artifact are empty
// when they do not apply.
type Error struct {
	Kind     Kind
	Step     string // layout step or inspection name
	Rule     string // artifact rule as written in the layout
	Artifact string // artifact path
	Msg      string // one lower-case sentence without a trailing period
	Err      error  // underlying cause, if any
}

// New returns an Error of the given kind with a formatted message.
func New(kind Kind, format string, args ...any) *Error {
	return &Error{Kind: kind, Msg: fmt.Sprintf(format, args...)}
}

// Error renders the failure as it appears in a denial:
// `step "test": rule "MATCH * WITH PRODUCTS FROM build": artifact "a.txt": <msg>: <cause>`.
func (e *Error) Error() string {
	var b strings.Builder
	if e.Step != "" {
		fmt.Fprintf(&b, "step %q: ", e.Step)
	}
	if e.Rule != "" {
		fmt.Fprintf(&b, "rule %q: ", e.Rule)
	}
	if e.Artifact != "" {
		fmt.Fprintf(&b, "artifact %q: ", e.Artifact)
	}
	b.WriteString(e.Msg)
	if e.Err != nil {
		if e.Msg != "" {
			b.WriteString(": ")
		}
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// The With* helpers return a copy so a shared error value is never mutated.

// Wrap records err as the cause.
func (e *Error) Wrap(err error) *Error { c := *e; c.Err = err; return &c }

// InStep names the layout step (only if none is set yet: the innermost step wins).
func (e *Error) InStep(step string) *Error {
	c := *e
	if c.Step == "" {
		c.Step = step
	}
	return &c
}

// ForRule names the artifact rule.
func (e *Error) ForRule(rule string) *Error { c := *e; c.Rule = rule; return &c }

// OnArtifact names the artifact.
func (e *Error) OnArtifact(path string) *Error { c := *e; c.Artifact = path; return &c }

// KindOf returns the Kind of the first *Error in err's chain, or Malformed for an error
// that carries none (an unclassified failure must still deny, and is most likely bad input).
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return Malformed
}

// As returns err as an *Error, classifying an untyped error as Malformed.
func As(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return &Error{Kind: Malformed, Err: err}
}

// Clip shortens a string the input chose (a type URI, a subject name) before it goes into
// a message, so that a hostile document cannot fill a deny message or a log line.
func Clip(s string) string {
	const max = 120
	if len(s) <= max {
		return s
	}
	return s[:max] + "…"
}

package intoto

import (
	"tollgate.dev/tollgate/policy/envelope"
	"tollgate.dev/tollgate/policy/reason"
)

// DefaultSignatureChecks is the signature-check budget of a Verify call given no
// WithSignatureBudget. Links are untrusted: MaxLinksPerStep links of envelope.MaxSignatures
// signatures each, without keyids, cost 4,096 checks per authorized key for one step, and a
// layout has up to MaxSteps steps plus its sublayouts'. A legitimate layout spends about one
// check per accepted link (a few per step), far below this.
const DefaultSignatureChecks = 4096

// WithSignatureBudget makes Verify charge every link and sublayout signature check to b,
// and fail with reason.Malformed, naming the step, once b is spent (default: a fresh budget
// of DefaultSignatureChecks per call). Sublayouts share their root layout's budget; the
// policy package shares one budget between a decision's Statements and its layouts.
// (*Verifier).Verify only: Compile refuses it, since a Verifier is used concurrently.
func WithSignatureBudget(b *envelope.Budget) Option {
	return func(o *options) { o.budget = b }
}

// budgetError is the failure of a step whose signatures could not all be checked.
func budgetError(b *envelope.Budget, step string) error {
	return reason.New(reason.Malformed, "the evidence needs more than %d signature checks; not checking further links", b.Limit()).InStep(step)
}

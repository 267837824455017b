package envelope

import (
	"errors"

	"tollgate.dev/tollgate/policy/reason"
)

// Budget counts the signature verifications one decision may still spend. Evidence is
// untrusted: signatures without keyids are tried against every trusted key, so a flood
// of them could stall a node. One budget shared by everything a decision checks (its
// Statements and the links and sublayouts of its layouts) bounds the CPU hostile evidence
// costs, whatever it targets. A check over a long message counts once more for every 64
// KiB of it, since its cost is hashing the message: megabytes of payload under many
// signatures cost as many checks as the bytes they hash. A Budget is not safe for
// concurrent use: give each decision its own.
type Budget struct {
	limit, spent int
	stop         <-chan struct{} // closed: no more checks (the decision's deadline passed)
}

// StopWhen makes every check after done is closed fail as if the budget were spent, so
// that a decision stops at its deadline between two signature checks; the caller tells
// the two apart by its own context.
func (b *Budget) StopWhen(done <-chan struct{}) { b.stop = done }

// NewBudget returns a budget of n signature checks (n < 1 allows none).
func NewBudget(n int) *Budget { return &Budget{limit: max(n, 0)} }

// Spent returns the checks spent so far.
func (b *Budget) Spent() int { return b.spent }

// Limit returns the number of checks the budget started with.
func (b *Budget) Limit() int { return b.limit }

// Spend reserves n checks made outside this package (a Sigstore bundle's chain, proofs and
// signature) and reports whether they fit; when they do not, nothing is reserved.
func (b *Budget) Spend(n int) bool {
	if b == nil {
		return true
	}
	if n < 0 || b.spent+n > b.limit {
		return false
	}
	select {
	case <-b.stop:
		return false
	default:
	}
	b.spent += n
	return true
}

// ErrBudget is wrapped by the error of a verification that ran out of budget: the
// evidence was not fully checked, so it must not be trusted (fail closed). Test for it
// with errors.Is.
var ErrBudget = errors.New("signature-check budget exhausted")

func budgetExhausted(b *Budget) error {
	return reason.New(reason.Malformed, "the evidence needs more than %d signature checks", b.limit).Wrap(ErrBudget)
}

// VerifyOption configures Verify and VerifySignatures.
type VerifyOption func(*verifyOptions)

type verifyOptions struct {
	budget *Budget // nil: unlimited (trusted input, such as a node-local layout)
}

// WithBudget charges every signature check to b, before it is made, and fails the
// verification with an error wrapping ErrBudget once b is spent.
func WithBudget(b *Budget) VerifyOption {
	return func(o *verifyOptions) { o.budget = b }
}

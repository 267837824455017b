package intoto

import (
	"tollgate.dev/tollgate/policy/envelope"
	"tollgate.dev/tollgate/policy/keys"
	"tollgate.dev/tollgate/policy/reason"
)

// DefaultSignatureChecks is the signature-check budget of a Verify call given no
// WithSignatureBudget. Links are untrusted: MaxLinksPerStep links of envelope.MaxSignatures
// signatures each, without keyids, cost 4,096 checks per authorized key for one step, and a
// layout has up to MaxSteps steps plus its sublayouts'. A legitimate layout spends about one
// check per accepted link (a few per step), far below this.
const DefaultSignatureChecks = 4096

// SignatureBudget counts the signature verifications one decision may still spend. The
// policy package shares one between the Statements and the layouts of a decision, so that
// hostile evidence costs a bounded amount of CPU whatever it targets. It is not safe for
// concurrent use: give each Verify call (or each decision) its own.
type SignatureBudget struct {
	limit, spent int
}

// NewSignatureBudget returns a budget of n signature checks (n < 1 allows none).
func NewSignatureBudget(n int) *SignatureBudget { return &SignatureBudget{limit: max(n, 0)} }

// Spend reserves n checks and reports whether they fit; when they do not, nothing is spent.
func (b *SignatureBudget) Spend(n int) bool {
	if n < 0 || b.spent+n > b.limit {
		return false
	}
	b.spent += n
	return true
}

// Spent returns the checks spent so far.
func (b *SignatureBudget) Spent() int { return b.spent }

// Limit returns the number of checks the budget started with.
func (b *SignatureBudget) Limit() int { return b.limit }

// WithSignatureBudget makes Verify charge every link and sublayout signature check to b,
// and fail with reason.Malformed, naming the step, once b is spent (default: a fresh budget
// of DefaultSignatureChecks per call). Sublayouts share their root layout's budget.
// (*Verifier).Verify only: Compile refuses it, since a Verifier is used concurrently.
func WithSignatureBudget(b *SignatureBudget) Option {
	return func(o *options) { o.budget = b }
}

// budgetError is the failure of a step whose signatures could not all be checked.
func budgetError(b *SignatureBudget, step string) error {
	return reason.New(reason.Malformed, "the evidence needs more than %d signature checks; not checking further links", b.limit).InStep(step)
}

// errBudget is returned by checkSignatures when the budget ran out; callers turn it into
// budgetError with the step's name.
var errBudget = reason.New(reason.Malformed, "signature-check budget exhausted")

// checkSignatures is envelope.Signed.Verify with threshold 1 for untrusted link evidence,
// charging b before each key check. Signatures whose keyid names a trusted key go first, so
// that signatures without a keyid (or with an unknown one), which are tried against every
// trusted key, skip the keys already proven. It returns the distinct trusted keys that
// verified, errBudget when b ran out before all signatures were checked, and otherwise
// envelope.Verify's error kinds (Malformed, BadSignature).
func checkSignatures(s *envelope.Signed, trusted []*keys.Key, b *SignatureBudget) ([]*keys.Key, error) {
	if s == nil {
		return nil, reason.New(reason.Malformed, "no envelope to verify")
	}
	if len(s.Signatures) > envelope.MaxSignatures {
		return nil, reason.New(reason.Malformed, "envelope has %d signatures, over the limit of %d", len(s.Signatures), envelope.MaxSignatures)
	}
	if len(s.Signatures) == 0 {
		return nil, reason.New(reason.BadSignature, "%s has no signatures", s.Format)
	}
	if len(trusted) == 0 {
		return nil, reason.New(reason.BadSignature, "no trusted keys to verify the %s signatures with", s.Format)
	}
	msg, err := s.SignedBytes()
	if err != nil {
		return nil, err
	}
	var verified []*keys.Key
	try := func(sig envelope.Signature, ks []*keys.Key) error {
		for _, k := range ks {
			if k == nil || proven(verified, k) {
				continue // a key counts once; no need to spend another check on it
			}
			if !b.Spend(1) {
				return errBudget
			}
			if k.Verify(msg, sig.Sig) == nil {
				verified = append(verified, k)
				return nil
			}
		}
		return nil
	}
	var keyless []envelope.Signature
	for _, sig := range s.Signatures {
		named := namedKeys(trusted, sig.KeyID)
		if len(named) == 0 {
			keyless = append(keyless, sig)
			continue
		}
		if err := try(sig, named); err != nil {
			return nil, err
		}
	}
	for _, sig := range keyless {
		if len(verified) == len(trusted) {
			break // every key has been proven: nothing left to try
		}
		if err := try(sig, trusted); err != nil {
			return nil, err
		}
	}
	if len(verified) == 0 {
		return nil, reason.New(reason.BadSignature, "no signature verified with the trusted keys")
	}
	return verified, nil
}

// namedKeys returns the trusted keys with keyid id (none for an empty id).
func namedKeys(trusted []*keys.Key, id string) []*keys.Key {
	if id == "" {
		return nil
	}
	var out []*keys.Key
	for _, k := range trusted {
		if k != nil && k.ID == id {
			out = append(out, k)
		}
	}
	return out
}

// proven reports whether k, or the same key under another listing, has verified already.
func proven(verified []*keys.Key, k *keys.Key) bool {
	for _, v := range verified {
		if v == k || (k.ID != "" && v.ID == k.ID) || v.SameMaterial(k) {
			return true
		}
	}
	return false
}

package intoto

import "tollgate.dev/tollgate/policy/reason"

// Stage is how far verification got with one step or inspection of the root layout.
type Stage int

const (
	// NotReached: verification stopped before it looked at this item.
	NotReached Stage = iota
	// Signed: the step's links met its threshold; its artifact rules were not checked
	// because verification stopped first.
	Signed
	// Passed: the item's links (for a step) and artifact rules held.
	Passed
	// Failed: verification stopped here (Trace.Err says why).
	Failed
)

// Trace records how far one verification got, item by item, for a caller that shows it
// (the CLI's coloured layout graph). Verification stops at the first failure, so items
// after it stay NotReached. Only the root layout's steps and inspections are traced; a
// failure inside a sublayout marks the step it stands for.
type Trace struct {
	// Stages holds each root step's and inspection's stage, by name.
	Stages map[string]Stage
	// Signers holds, per root step whose threshold was met, the accepted keyids.
	Signers map[string][]string
	// Failed names the step or inspection verification stopped at; "" when it passed, or
	// when it failed on the layout itself (signature, expiry, image binding).
	Failed string
	// Err is the failure, nil when verification passed.
	Err error
}

// WithTrace fills t during verification (Verify or (*Verifier).Verify). t belongs to one
// call; it is reset when verification starts.
func WithTrace(t *Trace) Option { return func(o *options) { o.trace = t } }

func (t *Trace) reset() {
	if t != nil {
		*t = Trace{Stages: map[string]Stage{}, Signers: map[string][]string{}}
	}
}

func (t *Trace) signed(name string, ids []string) {
	if t != nil {
		t.Stages[name] = Signed
		t.Signers[name] = ids
	}
}

func (t *Trace) passed(name string) {
	if t != nil {
		t.Stages[name] = Passed
	}
}

// fail records err; name is the item it happened at ("" for the layout itself).
func (t *Trace) fail(name string, err error) {
	if t == nil || t.Err != nil {
		return
	}
	t.Err = err
	if name != "" {
		t.Failed = name
		t.Stages[name] = Failed
	}
}

// failInspection records an inspection failure, at the inspection the error names.
func (t *Trace) failInspection(names []string, err error) {
	if t == nil {
		return
	}
	step := reason.As(err).Step
	for _, n := range names {
		if n == step {
			t.fail(n, err)
			return
		}
	}
	t.fail("", err)
}

// MatchRule is a parsed MATCH rule: artifacts matching Pattern (under SrcPrefix) must
// match those of step From's products (WithProducts) or materials (under DstPrefix).
type MatchRule struct {
	Pattern, SrcPrefix, DstPrefix string
	WithProducts                  bool
	From                          string
}

// ParseMatch parses one artifact rule as the verifier does and returns it when it is a
// well-formed MATCH rule (false for any other rule, or a malformed one).
func ParseMatch(r []string) (MatchRule, bool) {
	ru, err := checkRule(r)
	if err != nil || ru.kind != ruleMatch {
		return MatchRule{}, false
	}
	return MatchRule{Pattern: r[1], SrcPrefix: ru.srcPrefix, DstPrefix: ru.dstPrefix,
		WithProducts: ru.dstProducts, From: ru.dstName}, true
}

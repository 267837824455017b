package intoto

import (
	"maps"
	"slices"
	"strings"
	"time"

	"tollgate.dev/tollgate/policy/envelope"
	"tollgate.dev/tollgate/policy/keys"
	"tollgate.dev/tollgate/policy/reason"
)

// Verifier is a root layout whose signatures have been checked and whose steps and
// inspections have been compiled (parameters substituted, rules and patterns compiled), so
// that verifying evidence against it costs only the links. A node verifies the same few
// layouts for every container it starts: this is where the layout's own cost is paid once.
//
// A Verifier is immutable and safe for concurrent use by any number of Verify calls.
// Expiry is not a property of compilation: every Verify checks it against its own time.
type Verifier struct {
	root *compiledLayout
	// opts holds the defaults given to Compile: its parameters (copied, since sublayouts
	// are substituted with them at verification time), and any time, image or inspection
	// runner, which Verify's own options override.
	opts options
}

// Compile checks the signed root layout against layoutKeys (every distinct key must have
// signed unless WithLayoutThreshold says otherwise), parses and validates it, and
// substitutes WithParameters into its steps and inspections. It does not check expiry.
//
// Options WithTime, WithImage and WithInspectionRunner given here become defaults of
// every Verify call.
func Compile(layout *envelope.Signed, layoutKeys []*keys.Key, opts ...Option) (*Verifier, error) {
	o := newOptions(opts)
	if o.budget != nil {
		// A Verifier serves concurrent Verify calls; a budget is one decision's.
		return nil, reason.New(reason.Malformed, "a signature-check budget belongs to one verification; pass it to Verify, not Compile")
	}
	if o.image != nil {
		if err := checkImage(o.image); err != nil {
			return nil, err
		}
	}
	c, _, err := compile(layout, layoutKeys, o)
	return c, err
}

// compile does Compile's work. When the layout verified and parsed but its rules did not
// compile, it also returns the parsed layout, so that Verify can report expiry first.
func compile(layout *envelope.Signed, layoutKeys []*keys.Key, o options) (*Verifier, *Layout, error) {
	if err := checkParameters(o.params); err != nil {
		return nil, nil, err
	}
	distinct := dedupKeys(layoutKeys)
	if len(distinct) == 0 {
		return nil, nil, reason.New(reason.Malformed, "no layout verification key given")
	}
	threshold := len(distinct)
	if o.layoutThreshold > 0 {
		threshold = o.layoutThreshold
	}
	l, err := openLayout(layout, distinct, threshold)
	if err != nil {
		return nil, nil, err
	}
	if o.params != nil {
		o.params = maps.Clone(o.params)
	}
	cl, err := compileLayout(l, o.params)
	if err != nil {
		return nil, l, err
	}
	o.compileOnly = false
	return &Verifier{root: cl, opts: o}, l, nil
}

// Expires returns the root layout's expiry.
func (c *Verifier) Expires() time.Time { return c.root.layout.Expires }

// Verify verifies the evidence in links against the compiled layout: expiry (against
// WithTime, default time.Now()), link signatures and thresholds, sublayouts, artifact rules
// and inspections, in Python in-toto's order. WithParameters and WithLayoutThreshold
// belong to Compile and are refused here.
func (c *Verifier) Verify(links *Links, opts ...Option) (*Result, error) {
	if c == nil || c.root == nil {
		return nil, reason.New(reason.Malformed, "no compiled layout to verify against")
	}
	o := c.opts
	for _, opt := range opts {
		if opt != nil {
			opt(&o)
		}
	}
	if o.compileOnly {
		return nil, reason.New(reason.Malformed, "layout parameters and the layout signature threshold are fixed when the layout is compiled; pass them to Compile")
	}
	if o.now.IsZero() {
		o.now = time.Now()
	}
	o.trace.reset()
	if o.image != nil && o.image != c.opts.image {
		if err := checkImage(o.image); err != nil {
			o.trace.fail("", err)
			return nil, err
		}
	}
	res, err := c.verify(links, o)
	if err != nil {
		o.trace.fail("", err) // a failure at an item was recorded there first
	}
	return res, err
}

func (c *Verifier) verify(links *Links, o options) (*Result, error) {
	if links == nil {
		links = &Links{}
	}
	layout := c.root.layout
	if layout.Expires.Before(o.now) {
		return nil, expiredError(layout)
	}
	budget := o.budget
	if budget == nil {
		budget = envelope.NewBudget(DefaultSignatureChecks)
	}
	v := &verifier{opts: o, links: links, budget: budget, res: &Result{Expires: layout.Expires, Functionaries: map[string][]string{}}}
	if _, err := v.verifyCompiled(c.root, "", "", 0); err != nil {
		return nil, err
	}
	return v.res, nil
}

// StepNames returns the names of the root layout's steps: the links it can use.
func (c *Verifier) StepNames() []string {
	out := make([]string, 0, len(c.root.layout.Steps))
	for _, st := range c.root.layout.Steps {
		out = append(out, st.Name)
	}
	return out
}

// FunctionaryKeys returns the keys the root layout authorizes for its steps (its "keys"),
// so that a caller can set aside evidence no functionary could have signed before reading
// it. Sublayouts name their own keys; those are known only once a sublayout is read.
func (c *Verifier) FunctionaryKeys() []*keys.Key {
	out := make([]*keys.Key, 0, len(c.root.layout.Keys))
	for _, k := range c.root.layout.Keys {
		out = append(out, k)
	}
	slices.SortFunc(out, func(a, b *keys.Key) int { return strings.Compare(a.ID, b.ID) })
	return out
}

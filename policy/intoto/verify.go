package intoto

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"tollgate.dev/tollgate/policy/envelope"
	"tollgate.dev/tollgate/policy/keys"
	"tollgate.dev/tollgate/policy/reason"
)

// Image is the node's view of the image being verified. ConfigDigest is what the rootfs is
// built from; Digests are the manifest and index digests proven (by the caller, from
// containerd's content store) to lead to that config. All are "sha256:<hex>".
type Image struct {
	Digests      []string
	ConfigDigest string
}

// InspectionRunner runs an inspection other than "image" and returns its link. Only the
// CLI supplies one (to behave like in-toto-verify); the node never does, and this package
// never executes anything itself.
type InspectionRunner interface {
	RunInspection(name string, run []string) (*Link, error)
}

// Result describes a successful verification.
type Result struct {
	// Expires is the root layout's expiry.
	Expires time.Time
	// Warnings are findings that do not fail verification, e.g. a recorded command that
	// differs from a step's expected_command.
	Warnings []string
	// Functionaries holds, per step, the sorted keyids whose links were accepted. Steps of
	// sublayouts appear as "outer/inner".
	Functionaries map[string][]string
	// ImageDigest is the digest of Image.Digests the "image" inspection matched, if any.
	ImageDigest string
}

type options struct {
	now             time.Time
	image           *Image
	params          map[string]string
	layoutThreshold int
	runner          InspectionRunner
	budget          *envelope.Budget
	trace           *Trace
	// compileOnly records that WithParameters or WithLayoutThreshold was given: they shape
	// compilation, so (*Verifier).Verify refuses them rather than silently ignore them.
	compileOnly bool
}

// Option configures Verify, Compile and (*Verifier).Verify.
type Option func(*options)

// WithTime sets the time the layout's expiry is checked against (default: time.Now()).
func WithTime(t time.Time) Option { return func(o *options) { o.now = t } }

// WithImage supplies the image the reserved "image" inspection is synthesized from. With
// it, the root layout must have that inspection: a layout that does not bind its evidence
// to the image fails with reason.BindingMismatch.
func WithImage(img Image) Option { return func(o *options) { i := img; o.image = &i } }

// WithParameters supplies values for "{NAME}" placeholders in the layout (and its
// sublayouts). Compile substitutes them; (*Verifier).Verify does not accept it.
func WithParameters(p map[string]string) Option {
	return func(o *options) { o.params, o.compileOnly = p, true }
}

// WithLayoutThreshold sets how many distinct layout keys must have signed the root layout
// (default: every given key, as in-toto-verify requires). Compile checks it;
// (*Verifier).Verify does not accept it.
func WithLayoutThreshold(n int) Option {
	return func(o *options) { o.layoutThreshold, o.compileOnly = n, true }
}

// WithInspectionRunner lets inspections other than "image" run through r (CLI only).
func WithInspectionRunner(r InspectionRunner) Option { return func(o *options) { o.runner = r } }

// Verify verifies the signed root layout against layoutKeys and the evidence in links. It
// is Compile followed by (*Verifier).Verify; callers that verify one layout many times
// should compile it once instead.
func Verify(layout *envelope.Signed, layoutKeys []*keys.Key, links *Links, opts ...Option) (*Result, error) {
	o := newOptions(opts)
	if o.now.IsZero() {
		o.now = time.Now()
	}
	o.trace.reset()
	res, err := verifyRoot(layout, layoutKeys, links, o)
	if err != nil {
		o.trace.fail("", err) // a failure at an item was recorded there first
	}
	return res, err
}

func verifyRoot(layout *envelope.Signed, layoutKeys []*keys.Key, links *Links, o options) (*Result, error) {
	if err := checkParameters(o.params); err != nil {
		return nil, err
	}
	if o.image != nil {
		if err := checkImage(o.image); err != nil {
			return nil, err
		}
	}
	c, parsed, err := compile(layout, layoutKeys, o)
	if err != nil {
		// Python checks expiry before it substitutes parameters: an expired layout says so
		// even when its rules would not compile.
		if parsed != nil && parsed.Expires.Before(o.now) {
			return nil, expiredError(parsed)
		}
		return nil, err
	}
	return c.verify(links, o)
}

func newOptions(opts []Option) options {
	o := options{}
	for _, opt := range opts {
		if opt != nil {
			opt(&o)
		}
	}
	return o
}

func dedupKeys(ks []*keys.Key) []*keys.Key {
	seen := map[string]bool{}
	var out []*keys.Key
	for _, k := range ks {
		if k != nil && !seen[k.ID] {
			seen[k.ID] = true
			out = append(out, k)
		}
	}
	return out
}

type verifier struct {
	opts       options
	links      *Links
	res        *Result
	sublayouts int
	budget     *envelope.Budget // never nil
}

func (v *verifier) warn(format string, args ...any) {
	if len(v.res.Warnings) < maxWarnings {
		v.res.Warnings = append(v.res.Warnings, fmt.Sprintf(format, args...))
	}
}

// verifyLayout runs the whole verification of a sublayout whose signature the caller has
// checked, and returns its summary link. dir is the evidence directory of this layout;
// prefix names it in messages.
func (v *verifier) verifyLayout(signed *envelope.Signed, dir, prefix string, depth int) (*Link, error) {
	layout, err := ParseLayout(signed)
	if err != nil {
		return nil, err
	}
	if layout.Expires.Before(v.opts.now) {
		return nil, expiredError(layout)
	}
	// 3. Parameter substitution and rule compilation, on copies.
	cl, err := compileLayout(layout, v.opts.params)
	if err != nil {
		return nil, err
	}
	return v.verifyCompiled(cl, dir, prefix, depth)
}

// verifyCompiled verifies the evidence of a layout whose signatures, expiry and rules have
// been checked already.
func (v *verifier) verifyCompiled(cl *compiledLayout, dir, prefix string, depth int) (*Link, error) {
	layout := cl.layout
	if depth == 0 && v.opts.image != nil && !hasInspection(layout, imageInspectionName) {
		// Without it the layout would accept its evidence for any image at all.
		return nil, reason.New(reason.BindingMismatch,
			"layout has no inspection named %q, so nothing binds its evidence to this image; add one whose rules MATCH \"image\" with a step's products",
			imageInspectionName)
	}
	if len(layout.Steps) == 0 {
		v.warn("layout%s has no steps: its signature is all it proves", inSub(prefix))
	}
	// 4-7. Links: signatures, thresholds, sublayouts, agreement; command alignment.
	chosen, err := v.stepLinks(layout, cl.steps, dir, prefix, depth)
	if err != nil {
		return nil, err
	}
	// 8. Step rules see step links only (Python verifies them before any inspection).
	trace := v.rootTrace(depth)
	for _, st := range cl.steps {
		err := verifyItemRules(st.name, false, st.materials, chosen, reason.RuleViolation)
		if err == nil {
			err = verifyItemRules(st.name, true, st.products, chosen, reason.RuleViolation)
		}
		if err != nil {
			trace.fail(st.name, err)
			return nil, err
		}
		trace.passed(st.name)
	}
	// 9-10. Inspections and their rules.
	if err := v.inspections(cl.inspections, chosen, prefix); err != nil {
		trace.failInspection(itemNames(cl.inspections), err)
		return nil, err
	}
	for _, in := range cl.inspections {
		trace.passed(in.name)
	}
	return summaryLink(layout, chosen), nil
}

// rootTrace is the trace to fill at this depth: the caller's for the root layout, none
// inside sublayouts.
func (v *verifier) rootTrace(depth int) *Trace {
	if depth > 0 {
		return nil
	}
	return v.opts.trace
}

func itemNames(items []*compiledItem) []string {
	out := make([]string, len(items))
	for i, it := range items {
		out[i] = it.name
	}
	return out
}

// openLayout checks the root layout's signatures, then parses it. Nothing in an
// unauthenticated layout is looked at beyond what signature checking needs. (Sublayouts
// are checked by (*verifier).sublayout, against the budget.)
func openLayout(signed *envelope.Signed, trusted []*keys.Key, threshold int) (*Layout, error) {
	if signed == nil {
		return nil, reason.New(reason.Malformed, "no layout given")
	}
	if _, err := signed.Verify(trusted, threshold); err != nil {
		return nil, &reason.Error{Kind: reason.As(err).Kind, Msg: "root layout signature verification failed", Err: err}
	}
	return ParseLayout(signed)
}

func expiredError(l *Layout) error {
	return reason.New(reason.Expired, "layout expired on %s", l.Expires.Format(time.RFC3339))
}

// stepLinks finds every step's link and warns where a recorded command differs from the
// expected one (advisory, as the specification says).
func (v *verifier) stepLinks(layout *Layout, steps []*compiledItem, dir, prefix string, depth int) (map[string]*Link, error) {
	chosen := make(map[string]*Link, len(layout.Steps))
	for i := range layout.Steps {
		st := &layout.Steps[i]
		link, err := v.stepLink(layout, st, dir, prefix, depth)
		if err != nil {
			v.rootTrace(depth).fail(st.Name, err)
			return nil, err
		}
		v.rootTrace(depth).signed(st.Name, v.res.Functionaries[prefix+st.Name])
		chosen[st.Name] = link
		if !equalStrings(link.Command, steps[i].command) {
			v.warn("%sstep %q: recorded command %q differs from expected command %q", prefix, st.Name, link.Command, steps[i].command)
		}
	}
	return chosen, nil
}

func hasInspection(l *Layout, name string) bool {
	for _, in := range l.Inspections {
		if in.Name == name {
			return true
		}
	}
	return false
}

func inSub(prefix string) string {
	if prefix == "" {
		return ""
	}
	return fmt.Sprintf(" of sublayout %q", strings.TrimSuffix(prefix, "/"))
}

// compiledLayout is a parsed layout with its steps and inspections compiled (parameters
// substituted, rules and patterns compiled). It is never modified once built.
type compiledLayout struct {
	layout             *Layout
	steps, inspections []*compiledItem
}

func compileLayout(l *Layout, params map[string]string) (*compiledLayout, error) {
	cl := &compiledLayout{layout: l}
	for _, st := range l.Steps {
		c, err := compileItem(st.Name, st.ExpectedCommand, st.ExpectedMaterials, st.ExpectedProducts, params)
		if err != nil {
			return nil, err
		}
		cl.steps = append(cl.steps, c)
	}
	for _, in := range l.Inspections {
		c, err := compileItem(in.Name, in.Run, in.ExpectedMaterials, in.ExpectedProducts, params)
		if err != nil {
			return nil, err
		}
		cl.inspections = append(cl.inspections, c)
	}
	return cl, nil
}

// summaryLink is verifylib.get_summary_link: materials of the first step, products (and
// command) of the last.
func summaryLink(l *Layout, chosen map[string]*Link) *Link {
	if len(l.Steps) == 0 {
		return newLink("", nil, nil, nil)
	}
	first, last := chosen[l.Steps[0].Name], chosen[l.Steps[len(l.Steps)-1].Name]
	return &Link{Command: last.Command, mat: first.mat, prod: last.prod}
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func sortedIDs(ks []*keys.Key) []string {
	ids := make([]string, 0, len(ks))
	for _, k := range ks {
		ids = append(ids, k.ID)
	}
	sort.Strings(ids)
	return ids
}

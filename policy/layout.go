package policy

import (
	"fmt"
	"time"

	"tollgate.dev/tollgate/policy/envelope"
	"tollgate.dev/tollgate/policy/intoto"
	"tollgate.dev/tollgate/policy/keys"
	"tollgate.dev/tollgate/policy/reason"
)

// imageInspection is the one inspection a layout may hold on a node: the verifier
// synthesizes its link from the node's own view of the image instead of running anything.
const imageInspection = "image"

// layoutReq is one layout a policy requires, checked at Load.
type layoutReq struct {
	path      string
	env       *envelope.Signed
	verifier  *intoto.Verifier // env compiled with keys, threshold and params
	keys      []*keys.Key
	threshold int
	params    map[string]string
	expires   time.Time
}

func (l *loader) compileLayout(spec *layoutSpec) (*layoutReq, error) {
	data, p, err := lookup(l.files, spec.Layout)
	if err != nil {
		return nil, fmt.Errorf("layout: %v", err)
	}
	if len(data) > maxReferencedBytes {
		return nil, fmt.Errorf("layout %q is %d bytes, over the limit", p, len(data))
	}
	ks, err := l.loadKeys(spec.Keys)
	if err != nil {
		return nil, fmt.Errorf("layout %q: %v", p, err)
	}
	th := spec.Threshold
	if th == 0 {
		th = len(ks)
	}
	if th < 1 || th > len(ks) {
		return nil, fmt.Errorf("layout %q: threshold %d must be between 1 and the %d distinct keys", p, spec.Threshold, len(ks))
	}
	if len(spec.Parameters) > maxParameters {
		return nil, fmt.Errorf("layout %q: %d parameters, over the limit of %d", p, len(spec.Parameters), maxParameters)
	}
	env, err := envelope.Parse(data)
	if err != nil {
		return nil, fmt.Errorf("layout %q: %v", p, err)
	}
	expires, err := checkLayout(env)
	if err != nil {
		return nil, fmt.Errorf("layout %q: %v", p, err)
	}
	if _, err := env.Verify(ks, th); err != nil {
		return nil, fmt.Errorf("layout %q: signature: %v", p, err)
	}
	params := make(map[string]string, len(spec.Parameters))
	for k, v := range spec.Parameters {
		params[k] = v
	}
	lr := &layoutReq{path: p, env: env, keys: ks, threshold: th, params: params, expires: expires}
	// Compiling checks the signatures again (cheap, once per Load) and substitutes the
	// parameters, so that Evaluate only verifies evidence.
	if lr.verifier, err = intoto.Compile(env, ks, intoto.WithParameters(params), intoto.WithLayoutThreshold(th)); err != nil {
		return nil, fmt.Errorf("layout %q: %v", p, err)
	}
	if err := lr.dryRun(); err != nil {
		return nil, fmt.Errorf("layout %q: %v", p, err)
	}
	return lr, nil
}

// dryRun verifies the layout against no evidence at all, to surface at Load what would
// otherwise fail every decision: a parameter without a value, an invalid parameter name, a
// rule that does not compile. Failures about the missing evidence itself are expected.
// The clock is set just before the expiry so that an expired layout is still checked.
func (l *layoutReq) dryRun() error {
	empty, err := intoto.NewLinks(nil)
	if err != nil {
		return err
	}
	_, err = l.verifier.Verify(empty,
		intoto.WithTime(l.expires.Add(-time.Second)),
		intoto.WithImage(intoto.Image{Digests: []string{dryRunDigest}, ConfigDigest: dryRunDigest}),
	)
	if err != nil && reason.KindOf(err) == reason.Malformed {
		return err
	}
	return nil
}

const dryRunDigest = "sha256:0000000000000000000000000000000000000000000000000000000000000000"

// checkLayout validates the layout's content and returns its expiry. An expired layout
// loads (Evaluate denies with reason Expired, and the expiry metric shows it coming); a
// layout that would need a command run on the node does not.
func checkLayout(env *envelope.Signed) (time.Time, error) {
	lay, err := intoto.ParseLayout(env)
	if err != nil {
		return time.Time{}, err
	}
	for _, in := range lay.Inspections {
		if in.Name != imageInspection {
			return time.Time{}, fmt.Errorf("inspection %q would run a command; on a node a layout may only hold the %q inspection, whose link the node synthesizes from the image", in.Name, imageInspection)
		}
	}
	return lay.Expires, nil
}

package admission

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"tollgate.dev/tollgate/daemon/gate"
	"tollgate.dev/tollgate/daemon/policystore"
	"tollgate.dev/tollgate/daemon/registry"
	"tollgate.dev/tollgate/policy"
)

// Bounds on one review's work and answer.
const (
	maxImagesPerReview = 64 // distinct images; past it the rest count as unverifiable
	checkParallelism   = 8
	maxWarnings        = 16 // past 4096 characters in all, the API server cuts each to 256
	maxWarningBytes    = 1024
	maxMessageBytes    = 16 << 10
)

// errNoPolicy: the policy directory has never loaded.
var errNoPolicy = errors.New("no policy set is loaded in the webhook")

// checker decides the images of one review with the node's policy and verifier: the same
// policy.Set (through the policy directory store) and the same gate.Gate (decision
// cache keyed by config digest × digests × policy generation × evidence version, and
// coalescing of identical checks), fed from the registry instead of containerd.
type checker struct {
	policies gate.PolicySource
	gate     *gate.Gate
	resolver *resolver
	platform platform // --platform: an index's manifest when the pod does not pin one
	failOpen bool
	bgTime   time.Duration // bound of the registry work that outlives a review
	now      func() time.Time
}

// verdict is the outcome for one distinct image of a review, on one platform when the
// image is an index the pod may run on several platforms of.
type verdict struct {
	image    string
	ref      string // normalized, for messages
	platform string // named in messages: an index, on a platform the pod spec chose
	identity string // what was decided (digests, or the error): equal ones are reported once
	decision policy.Decision
	err      error // the image could not be verified (registry, deadline, no policy)
}

// review answers one request. The response's UID is the caller's to set.
func (c *checker) review(ctx context.Context, req *admissionv1.AdmissionRequest) (*admissionv1.AdmissionResponse, string) {
	images, spec, checked, err := reviewImages(req)
	switch {
	case !checked:
		return &admissionv1.AdmissionResponse{Allowed: true}, ResultSkipped
	case err != nil:
		// The API server sent an object our types cannot read: say so, and let the flag decide.
		v := verdict{image: req.Kind.Kind, ref: fmt.Sprintf("%s %s/%s", req.Kind.Kind, req.Namespace, req.Name), err: err}
		return c.compose(req, nil, []verdict{v})
	case len(images) == 0: // an UPDATE that brings in no new image
		return &admissionv1.AdmissionResponse{Allowed: true}, ResultSkipped
	}
	return c.compose(req, images, c.checkAll(ctx, req, images, podPlatforms(spec, c.platform)))
}

// checkAll decides each distinct image once, in parallel, for each platform of pl.
func (c *checker) checkAll(ctx context.Context, req *admissionv1.AdmissionRequest, images []containerImage, pl placement) []verdict {
	var distinct []containerImage
	seen := map[string]bool{}
	for _, ci := range images {
		if !seen[ci.Image] {
			seen[ci.Image] = true
			distinct = append(distinct, ci)
		}
	}
	out := make([][]verdict, len(distinct))
	sem := make(chan struct{}, checkParallelism)
	var wg sync.WaitGroup
	for i, ci := range distinct {
		if i >= maxImagesPerReview {
			out[i] = []verdict{{image: ci.Image, ref: ci.Image,
				err: fmt.Errorf("the object names more than %d distinct images", maxImagesPerReview)}}
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case sem <- struct{}{}:
				defer func() { <-sem }()
			case <-ctx.Done():
				out[i] = []verdict{{image: ci.Image, ref: ci.Image, err: ctx.Err()}}
				return
			}
			out[i] = c.checkImage(ctx, req, ci, pl)
		}()
	}
	wg.Wait()
	return slices.Concat(out...)
}

// checkImage decides one image as the node would: resolve the reference to the manifest
// and config digests, then Gate.Check (cache, coalescing, registry evidence, policy).
func (c *checker) checkImage(ctx context.Context, req *admissionv1.AdmissionRequest, ci containerImage, pl placement) (vs []verdict) {
	v := verdict{image: ci.Image, ref: ci.Image}
	defer func() {
		if r := recover(); r != nil {
			v.err = fmt.Errorf("internal error: %v", r)
			vs = []verdict{v}
		}
	}()
	snap := c.policies.Current()
	if snap == nil || snap.Policies == nil {
		v.err = errNoPolicy
		return []verdict{v}
	}
	ref, err := parseImageRef(ci.Image)
	if err != nil {
		v.err = err
		return []verdict{v}
	}
	v.ref = ref.Ref
	// Exemptions by repository and the node default for unmatched repositories depend on the
	// repository alone: decide them without a registry round trip. Not while NodeDefaults
	// revokes digests: a revoked digest overrides both, and only resolving shows it.
	pre := snap.Policies.Evaluate(policy.Request{Image: policy.Image{Ref: ref.Ref, Repository: ref.Repository}},
		policy.Evidence{}, c.now())
	v.decision = pre
	if (pre.Outcome == policy.Exempt || pre.Outcome == policy.Unmatched) && !revokes(snap.Policies) {
		return []verdict{v}
	}
	if len(pl.platforms) == 1 {
		return []verdict{c.checkPlatform(ctx, req, ci, ref, pl.platforms[0], pl.chosen, v)}
	}
	// The platforms in parallel, so that a pod that may run on several waits for one
	// round trip, not one each; at most maxPodPlatforms per image, and the resolver's slots
	// still bound the registry work.
	out := make([]verdict, len(pl.platforms))
	var wg sync.WaitGroup
	for i, p := range pl.platforms {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out[i] = c.checkPlatform(ctx, req, ci, ref, p, pl.chosen, v)
		}()
	}
	wg.Wait()
	return distinctVerdicts(out)
}

// checkPlatform decides ref's content on platform p; v carries the repository's decision.
func (c *checker) checkPlatform(ctx context.Context, req *admissionv1.AdmissionRequest, ci containerImage,
	ref imageRef, p platform, chosen bool, base verdict) (v verdict) {
	v = base
	defer func() { // its own goroutine: checkImage's recover does not reach it
		if r := recover(); r != nil {
			v.err = fmt.Errorf("internal error: %v", r)
		}
	}()
	img, index, err := c.resolver.resolve(ctx, ref, p, c.bgTime)
	if err != nil {
		v.err, v.identity = err, "error: "+err.Error()
		return v
	}
	if index && chosen {
		v.platform = p.String()
	}
	v.identity = img.ConfigDigest + " " + strings.Join(img.Digests, " ")
	v.decision, v.err = c.gate.Check(ctx, policy.Request{Image: img, Namespace: req.Namespace, Pod: req.Name, Container: ci.Container})
	return v
}

// distinctVerdicts drops verdicts about what an earlier one already decided: a plain
// manifest is the same content on every platform, and one registry outage is one warning.
func distinctVerdicts(vs []verdict) []verdict {
	seen := map[string]bool{}
	out := vs[:0]
	for _, v := range vs {
		if !seen[v.identity] {
			seen[v.identity] = true
			out = append(out, v)
		}
	}
	return out
}

// revokes reports whether the policy set revokes any digest (*policy.Set tells).
func revokes(e policystore.Evaluator) bool {
	r, ok := e.(interface{ Revoked() int })
	return ok && r.Revoked() > 0
}

// outcome of a verdict, for the response.
type outcome int

const (
	outAllow outcome = iota
	outWarn
	outFailOpen
	outDeny
	outFailClosed
)

// judge turns a verdict into what the response says about that image, naming the
// platform when the pod spec chose it, since the digest alone does not say which it is.
func (c *checker) judge(v *verdict) (outcome, string) {
	o, msg := c.judgeContent(v)
	if msg != "" && v.platform != "" {
		msg += " (platform " + v.platform + ")"
	}
	return o, msg
}

func (c *checker) judgeContent(v *verdict) (outcome, string) {
	d := &v.decision
	if v.err == nil {
		switch {
		case !d.Allowed:
			return outDeny, d.Message
		case d.Outcome == policy.AuditFail || d.Outcome == policy.BreakGlass:
			return outWarn, d.Message
		}
		return outAllow, ""
	}
	switch {
	case d.Allowed && (d.Outcome == policy.Exempt || d.Outcome == policy.Unmatched):
		return outAllow, "" // evidence would not have mattered
	case d.Allowed: // audit mode, or break-glass
		return outWarn, fmt.Sprintf("tollgate: audit: could not verify %s%s; the node gate will decide: %s%s", v.ref, why(v.err), oneLine(v.err), policyNote(d))
	case c.failOpen:
		return outFailOpen, fmt.Sprintf("tollgate: could not verify %s%s; the node gate will decide: %s%s", v.ref, why(v.err), oneLine(v.err), policyNote(d))
	}
	return outFailClosed, fmt.Sprintf("tollgate: denied %s: could not verify it%s (the webhook fails closed): %s%s", v.ref, why(v.err), oneLine(v.err), policyNote(d))
}

// why says in a few words why an image could not be verified: a registry this webhook's
// configuration refuses is not a slow one.
func why(err error) string {
	if errors.Is(err, registry.ErrPlainHTTP) {
		return ": its registry is refused by configuration"
	}
	return " in time"
}

// oneLine is an error's text with every run of white space (registries end their error
// bodies with a newline) turned into one space.
func oneLine(err error) string { return strings.Join(strings.Fields(err.Error()), " ") }

func policyNote(d *policy.Decision) string {
	if d.Policy == "" {
		return ""
	}
	return fmt.Sprintf(" (policy %q)", d.Policy)
}

// compose builds the response from the verdicts: denied if any image is denied (the
// message is the node's own message for each denied image), else allowed with a warning
// for each image allowed only by audit mode, break-glass or --fail-open.
func (c *checker) compose(req *admissionv1.AdmissionRequest, images []containerImage, verdicts []verdict) (*admissionv1.AdmissionResponse, string) {
	var denials, warnings []string
	worst := outAllow
	denied := map[string]string{} // image → the message of its denial
	for i := range verdicts {
		v := &verdicts[i]
		o, msg := c.judge(v)
		worst = max(worst, o)
		switch o {
		case outDeny, outFailClosed:
			denials = append(denials, msg)
			if prev, ok := denied[v.image]; ok { // another platform of the same image
				msg = prev + "; " + msg
			}
			denied[v.image] = msg
		case outWarn, outFailOpen:
			warnings = append(warnings, msg)
		case outAllow:
			for _, w := range v.decision.Warnings {
				if v.platform != "" {
					w += " (platform " + v.platform + ")"
				}
				warnings = append(warnings, fmt.Sprintf("tollgate: %s: %s", v.ref, w))
			}
		}
	}
	var causes []metav1.StatusCause // in the order of the containers
	for _, ci := range images {
		if msg, ok := denied[ci.Image]; ok {
			causes = append(causes, metav1.StatusCause{Type: metav1.CauseTypeForbidden, Field: ci.Field,
				Message: bound(ci.what()+": "+msg, maxWarningBytes)})
		}
	}
	resp := &admissionv1.AdmissionResponse{Allowed: len(denials) == 0, Warnings: boundWarnings(warnings)}
	if len(denials) > 0 {
		resp.Result = &metav1.Status{
			Status:  metav1.StatusFailure,
			Code:    http.StatusForbidden,
			Reason:  metav1.StatusReasonForbidden,
			Message: bound(strings.Join(denials, "; "), maxMessageBytes),
			Details: &metav1.StatusDetails{Name: req.Name, Kind: strings.ToLower(req.Kind.Kind), Causes: causes},
		}
	}
	switch worst {
	case outDeny:
		return resp, ResultDenied
	case outFailClosed:
		return resp, ResultFailClose
	case outFailOpen:
		return resp, ResultFailOpen
	case outWarn:
		return resp, ResultAudit
	}
	return resp, ResultAllowed
}

func boundWarnings(ws []string) []string {
	if len(ws) > maxWarnings {
		n := len(ws) - maxWarnings + 1
		ws = append(ws[:maxWarnings-1:maxWarnings-1], fmt.Sprintf("tollgate: %d more warnings not shown", n))
	}
	for i := range ws {
		ws[i] = bound(ws[i], maxWarningBytes)
	}
	return ws
}

// bound cuts s to at most n bytes, on a rune boundary, marking the cut.
func bound(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n - len("…")
	for cut > 0 && !utf8RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

func utf8RuneStart(b byte) bool { return b&0xC0 != 0x80 }

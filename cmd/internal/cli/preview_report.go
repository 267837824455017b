package cli

import (
	"fmt"
	"io"
	"strings"

	"tollgate.dev/tollgate/cmd/internal/report"
	"tollgate.dev/tollgate/policy"
	"tollgate.dev/tollgate/policy/policydiff"
)

// previewReport is `tollgate preview`'s output (-o json as is).
type previewReport struct {
	PolicyDir string             `json:"policyDir"`
	Compare   string             `json:"compare,omitempty"`
	Summary   policydiff.Summary `json:"summary"`
	Images    []previewImage     `json:"images"`
}

// previewImage is what the policy change does to one image.
type previewImage struct {
	Image        string            `json:"image"`
	Repository   string            `json:"repository,omitempty"`
	ConfigDigest string            `json:"configDigest,omitempty"`
	Digests      []string          `json:"digests,omitempty"`
	Containers   []string          `json:"containers,omitempty"`
	Change       policydiff.Change `json:"change"`
	Before       *previewDecision  `json:"before,omitempty"` // absent without --compare
	After        *previewDecision  `json:"after,omitempty"`
	Error        string            `json:"error,omitempty"`
	target       *previewTarget
}

// previewDecision is one decision, as `verify --image -o json` shows it.
type previewDecision struct {
	Allowed bool             `json:"allowed"`
	Outcome string           `json:"outcome"`
	Mode    string           `json:"mode,omitempty"`
	Policy  string           `json:"policy,omitempty"`
	Message string           `json:"message"`
	Reasons []*report.Reason `json:"reasons,omitempty"`
}

func decisionOf(d *policy.Decision) *previewDecision {
	if d == nil {
		return nil
	}
	out := &previewDecision{Allowed: d.Allowed, Outcome: string(d.Outcome), Mode: string(d.Mode), Policy: d.Policy, Message: d.Message}
	for _, r := range d.Reasons {
		out.Reasons = append(out.Reasons, report.ReasonOf(r))
	}
	return out
}

func (pi previewImage) fill() previewImage {
	t := pi.target
	pi.Image, pi.Repository, pi.ConfigDigest = t.image.Ref, t.image.Repository, t.image.ConfigDigest
	if pi.Image == "" {
		pi.Image = t.image.Name() // containerd knows it by digest only
	}
	pi.Digests, pi.Containers = t.image.Digests, t.containers
	return pi
}

func (pi previewImage) failed(err error) previewImage {
	pi = pi.fill()
	pi.Change, pi.Error = policydiff.Error, err.Error()
	return pi
}

func (pi previewImage) decided(old, new *policy.Decision) previewImage {
	pi = pi.fill()
	pi.Change, pi.Before, pi.After = policydiff.Compare(old, new), decisionOf(old), decisionOf(new)
	return pi
}

func (r *previewReport) add(pi previewImage) {
	r.Summary.Add(pi.Image, pi.Change)
	r.Images = append(r.Images, pi)
}

// changeTitles head each kind of change in the text form, most urgent first.
var changeTitles = []struct {
	change policydiff.Change
	title  string
}{
	{policydiff.NewlyDenied, "NEWLY DENIED"},
	{policydiff.Error, "NOT DECIDED"},
	{policydiff.NewlyAllowed, "NEWLY ALLOWED"},
	{policydiff.Changed, "CHANGED"},
}

// print writes the changes, most urgent first, then the summary. Unchanged images are in
// the summary's count only (and in -o json).
func (r *previewReport) print(w io.Writer) {
	for _, ct := range changeTitles {
		for i := range r.Images {
			if pi := &r.Images[i]; pi.Change == ct.change {
				printPreviewImage(w, ct.title, pi)
			}
		}
	}
	base := "no policy"
	if r.Compare != "" {
		base = r.Compare
	}
	s := &r.Summary
	fmt.Fprintf(w, "%s compared with %s: %d image(s): %d newly denied, %d newly allowed, %d changed, %d unchanged, %d not decided\n",
		r.PolicyDir, base, s.Images, s.NewlyDenied, s.NewlyAllowed, s.Changed, s.Unchanged, s.Errors)
}

func printPreviewImage(w io.Writer, title string, pi *previewImage) {
	fmt.Fprintf(w, "%s %s\n", title, pi.Image)
	if len(pi.Containers) > 0 {
		fmt.Fprintf(w, "  running: %s\n", strings.Join(pi.Containers, ", "))
	}
	if pi.Error != "" {
		fmt.Fprintf(w, "  error: %s\n", pi.Error)
		return
	}
	if pi.Before != nil {
		fmt.Fprintf(w, "  before: %s\n", describe(pi.Before))
	}
	fmt.Fprintf(w, "  after:  %s\n", describe(pi.After))
}

func describe(d *previewDecision) string {
	verdict := "denied"
	if d.Allowed {
		verdict = "allowed"
	}
	s := verdict
	if d.Outcome != verdict {
		s += ", " + d.Outcome
	}
	if d.Policy != "" {
		s += fmt.Sprintf(" (policy %s, %s)", d.Policy, d.Mode)
	}
	if d.Outcome != string(policy.Verified) && d.Message != "" {
		s += ": " + d.Message
	}
	return s
}

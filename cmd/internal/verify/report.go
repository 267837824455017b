package verify

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"tollgate.dev/tollgate/cmd/internal/exit"
	"tollgate.dev/tollgate/cmd/internal/report"
	"tollgate.dev/tollgate/policy/intoto"
)

// offlineReport is what offline verification found.
type offlineReport struct {
	Verified     bool                `json:"verified"`
	Time         time.Time           `json:"time"`
	Layout       *layoutReport       `json:"layout,omitempty"`
	Attestations *attestationsReport `json:"attestations,omitempty"`
	Warnings     []string            `json:"warnings"`
	Reason       *report.Reason      `json:"reason,omitempty"`
}

type layoutReport struct {
	File          string              `json:"file"`
	Keys          []string            `json:"keys"`
	Threshold     int                 `json:"threshold"`
	LinkDir       string              `json:"linkDir"`
	LinkFiles     int                 `json:"linkFiles"`
	Verified      bool                `json:"verified"`
	Expires       time.Time           `json:"expires,omitzero"`
	Functionaries map[string][]string `json:"functionaries,omitempty"`
	ImageDigest   string              `json:"imageDigest,omitempty"`
	Inspections   string              `json:"inspections"`
	// for -o dot|mermaid
	layout *intoto.Layout
	trace  *intoto.Trace
}

type attestationsReport struct {
	Files         []string            `json:"files"`
	PredicateType string              `json:"predicateType,omitempty"`
	Threshold     int                 `json:"threshold"`
	Verified      bool                `json:"verified"`
	SubjectBound  bool                `json:"subjectBound"` // checked against --image-digest
	Accepted      []acceptedStatement `json:"accepted,omitempty"`
	Rejected      []rejectedEnvelope  `json:"rejected,omitempty"`
}

type acceptedStatement struct {
	File          string   `json:"file"`
	PredicateType string   `json:"predicateType"`
	Subjects      []string `json:"subjects"`
	SignedBy      []string `json:"signedBy"`
	sha256        string   // of the file, for a VSA's inputAttestations
}

type rejectedEnvelope struct {
	File string `json:"file"`
	Why  string `json:"why"`
}

// write writes the report as text or JSON (output).
func (rep *offlineReport) write(w io.Writer, output string) error {
	if output == "json" {
		if err := report.JSON(w, rep); err != nil {
			return exit.Fail(err)
		}
		return nil
	}
	rep.print(w)
	return nil
}

func (rep *offlineReport) print(w io.Writer) {
	if lr := rep.Layout; lr != nil {
		lr.print(w)
	}
	if ar := rep.Attestations; ar != nil {
		ar.print(w)
	}
	for _, warn := range rep.Warnings {
		fmt.Fprintf(w, "warning: %s\n", warn)
	}
	if rep.Verified {
		fmt.Fprintln(w, "VERIFIED")
	} else {
		fmt.Fprintf(w, "FAILED (%s): %s\n", rep.Reason.Kind, rep.Reason.Message)
	}
}

func (lr *layoutReport) print(w io.Writer) {
	fmt.Fprintf(w, "Layout %s: %d of %d owner key(s) must have signed; links from %s (%d files)\n",
		lr.File, lr.Threshold, len(lr.Keys), lr.LinkDir, lr.LinkFiles)
	fmt.Fprintf(w, "  inspections: %s\n", lr.Inspections)
	if !lr.Verified {
		fmt.Fprintf(w, "  FAILED\n")
		return
	}
	fmt.Fprintf(w, "  layout expires %s\n", lr.Expires.Format(time.RFC3339))
	steps := make([]string, 0, len(lr.Functionaries))
	for s := range lr.Functionaries {
		steps = append(steps, s)
	}
	sort.Strings(steps)
	for _, s := range steps {
		fmt.Fprintf(w, "  step %-20s ok, signed by %s\n", s, strings.Join(report.ShortIDs(lr.Functionaries[s]), ", "))
	}
	if lr.ImageDigest != "" {
		fmt.Fprintf(w, "  image %s bound through the image inspection\n", lr.ImageDigest)
	}
}

func (ar *attestationsReport) print(w io.Writer) {
	want := ar.PredicateType
	if want == "" {
		want = "any predicate type"
	}
	fmt.Fprintf(w, "Attestations (%s, %d distinct key(s) required): %d accepted, %d rejected\n",
		want, ar.Threshold, len(ar.Accepted), len(ar.Rejected))
	for _, a := range ar.Accepted {
		fmt.Fprintf(w, "  ok  %s: %s about %s, signed by %s\n", a.File, a.PredicateType, strings.Join(a.Subjects, ", "), strings.Join(report.ShortIDs(a.SignedBy), ", "))
	}
	for _, r := range ar.Rejected {
		fmt.Fprintf(w, "  no  %s: %s\n", r.File, r.Why)
	}
}

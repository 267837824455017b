// Package report is how tollgate commands print results: indented JSON for -o json, and
// the shared pieces of the human-readable form.
package report

import (
	"encoding/json"
	"io"

	"tollgate.dev/tollgate/policy/reason"
)

// JSON writes v as indented JSON, leaving <, > and & as they are: the output is read by
// people and jq, never embedded in HTML.
func JSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

// ShortIDs abbreviates key ids for text output; full ids are in the JSON form.
func ShortIDs(ids []string) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = id
		if len(id) > 16 {
			out[i] = id[:16] + "…"
		}
		if id == "" {
			out[i] = "(no keyid)"
		}
	}
	return out
}

// Reason is a failure as JSON: its kind and where it happened, with the whole sentence.
type Reason struct {
	Kind     string `json:"kind"`
	Step     string `json:"step,omitempty"`
	Rule     string `json:"rule,omitempty"`
	Artifact string `json:"artifact,omitempty"`
	Message  string `json:"message"`
}

// ReasonOf views err as a Reason; nil for nil.
func ReasonOf(err error) *Reason {
	if err == nil {
		return nil
	}
	r := reason.As(err)
	return &Reason{Kind: string(r.Kind), Step: r.Step, Rule: r.Rule, Artifact: r.Artifact, Message: err.Error()}
}

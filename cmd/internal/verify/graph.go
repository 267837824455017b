package verify

import (
	"errors"
	"io"

	"tollgate.dev/tollgate/cmd/internal/layoutgraph"
)

// graph reports whether the output is a picture of the layout rather than a report.
func (f *Flags) graph() bool { return f.Output == "dot" || f.Output == "mermaid" }

// writeGraph draws the layout verified, each step coloured by how far verification got
// with it (intoto.Trace).
func (f *Flags) writeGraph(w io.Writer, lr *layoutReport) error {
	if lr == nil || lr.trace == nil {
		return errors.New("no layout verification to draw")
	}
	g := layoutgraph.FromLayout(lr.layout)
	g.Mark(lr.trace)
	if lr.ImageDigest != "" {
		g.Title = append(g.Title, "image "+lr.ImageDigest)
	}
	if f.Output == "mermaid" {
		return layoutgraph.WriteMermaid(w, g)
	}
	return layoutgraph.WriteDOT(w, g)
}

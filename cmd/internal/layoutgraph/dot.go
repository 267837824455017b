package layoutgraph

import (
	"bufio"
	"fmt"
	"io"
	"strings"
)

// dotStyle is the fill colour and line style of a status (None: a plain layout).
var dotStyle = map[Status][2]string{
	None:           {"#eef3fb", "rounded,filled"},
	Verified:       {"#c8e6c9", "rounded,filled"},
	Failed:         {"#ffcdd2", "rounded,filled,bold"},
	BelowThreshold: {"#ffe0b2", "rounded,filled,bold"},
	NotReached:     {"#eeeeee", "rounded,filled,dashed"},
}

// dotTitleColour is the title's colour for the overall result.
var dotTitleColour = map[Status]string{None: "#000000", Verified: "#1b5e20", Failed: "#b71c1c"}

var dotShape = map[Kind]string{Step: "box", Inspection: "hexagon", Product: "note", Unknown: "box"}

// WriteDOT writes g as a Graphviz digraph. Node names are the generated IDs; every text
// from the layout goes into a double-quoted string, escaped by dotString.
func WriteDOT(w io.Writer, g *Graph) error {
	b := bufio.NewWriter(w)
	fmt.Fprintln(b, "digraph layout {")
	fmt.Fprintf(b, "  graph [rankdir=LR, labelloc=t, fontname=\"Helvetica\", fontcolor=%q, label=%s];\n", dotTitleColour[g.Status], dotString(g.Title))
	fmt.Fprintln(b, `  node [fontname="Helvetica", fontsize=11];`)
	fmt.Fprintln(b, `  edge [fontname="Helvetica", fontsize=10];`)
	for i := range g.Nodes {
		n := &g.Nodes[i]
		st := dotStyle[n.Status]
		style := st[1]
		if n.Kind == Unknown {
			style = "dashed"
		}
		if n.Kind == Product {
			style = strings.Replace(style, "rounded,", "", 1)
		}
		fmt.Fprintf(b, "  %s [shape=%s, style=%q, fillcolor=%q, label=%s];\n", n.ID, dotShape[n.Kind], style, st[0], dotString(n.lines()))
	}
	for _, e := range g.Edges {
		fmt.Fprintf(b, "  %s -> %s [label=%s];\n", e.From, e.To, dotString([]string{e.Label}))
	}
	fmt.Fprintln(b, "}")
	return b.Flush()
}

// dotString is a DOT double-quoted string of the lines, joined by centred line breaks.
// In a DOT string a backslash starts an escape (\n, \l, \N, ...) and a quote ends it, so
// both are escaped; '&' is written as an entity because Graphviz decodes HTML entities
// in labels (a name "&lt;" must show as typed). clean has removed raw newlines and
// control characters already.
func dotString(lines []string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i, l := range lines {
		if i > 0 {
			b.WriteString(`\n`)
		}
		for _, r := range clean(l) {
			switch r {
			case '\\':
				b.WriteString(`\\`)
			case '"':
				b.WriteString(`\"`)
			case '&':
				b.WriteString("&amp;")
			default:
				b.WriteRune(r)
			}
		}
	}
	b.WriteByte('"')
	return b.String()
}

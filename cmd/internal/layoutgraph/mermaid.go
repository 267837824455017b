package layoutgraph

import (
	"bufio"
	"fmt"
	"io"
	"strings"
	"unicode"
)

// mermaidClass is the class (and its style) of each status.
var mermaidClass = map[Status][2]string{
	None:           {"step", "fill:#eef3fb,stroke:#5b7db1"},
	Verified:       {"verified", "fill:#c8e6c9,stroke:#2e7d32"},
	Failed:         {"failed", "fill:#ffcdd2,stroke:#c62828,stroke-width:2px"},
	BelowThreshold: {"belowthreshold", "fill:#ffe0b2,stroke:#ef6c00,stroke-width:2px"},
	NotReached:     {"notreached", "fill:#eeeeee,stroke:#9e9e9e,stroke-dasharray:4 3"},
}

// WriteMermaid writes g as a Mermaid flowchart. Node names are the generated IDs; every
// text from the layout is a quoted label escaped by mermaidString.
func WriteMermaid(w io.Writer, g *Graph) error {
	b := bufio.NewWriter(w)
	fmt.Fprintln(b, "flowchart LR")
	fmt.Fprintf(b, "  summary[%s]\n", mermaidString(g.Title))
	for i := range g.Nodes {
		n := &g.Nodes[i]
		open, close := "[", "]"
		switch n.Kind {
		case Inspection:
			open, close = "{{", "}}"
		case Product:
			open, close = "[/", "/]"
		}
		fmt.Fprintf(b, "  %s%s%s%s\n", n.ID, open, mermaidString(n.lines()), close)
	}
	for _, e := range g.Edges {
		fmt.Fprintf(b, "  %s -->|%s| %s\n", e.From, mermaidString([]string{e.Label}), e.To)
	}
	for _, s := range []Status{None, Verified, Failed, BelowThreshold, NotReached} {
		var ids []string
		if g.Status == s && s != None {
			ids = append(ids, "summary")
		}
		for _, n := range g.Nodes {
			if n.Status == s {
				ids = append(ids, n.ID)
			}
		}
		if len(ids) == 0 {
			continue
		}
		c := mermaidClass[s]
		fmt.Fprintf(b, "  classDef %s %s\n", c[0], c[1])
		fmt.Fprintf(b, "  class %s %s\n", strings.Join(ids, ","), c[0])
	}
	return b.Flush()
}

// mermaidString is a Mermaid quoted label of the lines, joined by <br/>. Mermaid has no
// escape inside quotes, and labels may be read as HTML or Markdown, so every rune but a
// letter, a digit, a space and . , : / _ - is written as an entity code (#34; for '"'),
// which Mermaid turns back into that one character.
func mermaidString(lines []string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i, l := range lines {
		if i > 0 {
			b.WriteString("<br/>")
		}
		for _, r := range clean(l) {
			if unicode.IsLetter(r) || unicode.IsDigit(r) || strings.ContainsRune(" .,:/_-", r) {
				b.WriteRune(r)
				continue
			}
			fmt.Fprintf(&b, "#%d;", r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

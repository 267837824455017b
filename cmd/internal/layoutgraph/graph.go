// Package layoutgraph draws an in-toto layout as a graph: its steps (who may sign, how
// many must, the expected command, shown and never run), its inspections (shown, never
// executed), the MATCH rules that carry one step's artifacts into another, and the final
// product. After a verification each step can carry its result. Renderers write Graphviz
// DOT and Mermaid; every text that comes from the layout is escaped for the format, so a
// hostile step name cannot break or inject into the output. Output is deterministic:
// nodes and edges follow the layout's order, never a map's.
package layoutgraph

import (
	"fmt"
	"strings"
	"time"

	"tollgate.dev/tollgate/policy/intoto"
)

// Kind is what a node stands for.
type Kind int

const (
	Step Kind = iota
	Inspection
	Product // the final product: the last step's products
	Unknown // a MATCH rule names a step the layout does not have
)

// Status is a node's verification result; None when the graph shows only the layout.
type Status int

const (
	None Status = iota
	Verified
	Failed
	BelowThreshold
	NotReached
)

// Node is one box of the picture. ID is generated here, never taken from the layout.
type Node struct {
	ID     string
	Kind   Kind
	Name   string   // the step's or inspection's name
	Lines  []string // details under the name
	Status Status
	Note   string // why, for a failed or unreached node
}

// Edge carries artifacts From one node To another; Label is the MATCH pattern.
type Edge struct {
	From, To string
	Label    string
}

// Graph is a layout as nodes and edges, with a title (and the overall result).
type Graph struct {
	Title  []string
	Status Status
	Nodes  []Node
	Edges  []Edge

	seen map[Edge]bool // while building: edges added (a layout may hold 160,000 MATCH rules)
}

// maxKeyIDs is how many functionary keyids a step's box lists before "+N more".
const maxKeyIDs = 3

// FromLayout builds the graph of l; a nil layout (one that could not be read) is a graph
// of its title alone.
func FromLayout(l *intoto.Layout) *Graph {
	if l == nil {
		return &Graph{Title: []string{"in-toto layout (unreadable)"}}
	}
	g := &Graph{Title: []string{"in-toto layout, expires " + l.Expires.UTC().Format(time.RFC3339)}, seen: map[Edge]bool{}}
	if l.Readme != "" {
		g.Title = append(g.Title, l.Readme)
	}
	ids := map[string]string{} // step and inspection names -> node IDs
	for i, st := range l.Steps {
		n := Node{ID: fmt.Sprintf("s%d", i), Kind: Step, Name: st.Name, Lines: stepLines(st)}
		g.Nodes = append(g.Nodes, n)
		setOnce(ids, st.Name, n.ID)
	}
	for i, in := range l.Inspections {
		n := Node{ID: fmt.Sprintf("i%d", i), Kind: Inspection, Name: in.Name, Lines: inspectionLines(in)}
		g.Nodes = append(g.Nodes, n)
		setOnce(ids, in.Name, n.ID)
	}
	for i, st := range l.Steps {
		g.matchEdges(ids, fmt.Sprintf("s%d", i), st.ExpectedMaterials, st.ExpectedProducts)
	}
	for i, in := range l.Inspections {
		g.matchEdges(ids, fmt.Sprintf("i%d", i), in.ExpectedMaterials, in.ExpectedProducts)
	}
	if len(l.Steps) > 0 {
		last := l.Steps[len(l.Steps)-1]
		g.Nodes = append(g.Nodes, Node{ID: "final", Kind: Product, Name: "final product",
			Lines: []string{"the products of step " + last.Name}})
		g.Edges = append(g.Edges, Edge{From: fmt.Sprintf("s%d", len(l.Steps)-1), To: "final", Label: "products"})
	}
	g.seen = nil
	return g
}

// setOnce keeps the first node of a name: MATCH resolves a name to the first step that
// has it, as the verifier's link lookup does.
func setOnce(ids map[string]string, name, id string) {
	if _, ok := ids[name]; !ok {
		ids[name] = id
	}
}

func stepLines(st intoto.Step) []string {
	shown := st.PubKeys
	if len(shown) > maxKeyIDs {
		shown = shown[:maxKeyIDs]
	}
	short := make([]string, len(shown))
	for i, id := range shown {
		short[i] = shortID(id)
	}
	who := strings.Join(short, ", ")
	if more := len(st.PubKeys) - len(shown); more > 0 {
		who += fmt.Sprintf(" +%d more", more)
	}
	lines := []string{fmt.Sprintf("%d of %d must sign: %s", st.Threshold, len(st.PubKeys), who)}
	if len(st.ExpectedCommand) > 0 {
		lines = append(lines, "expects: "+strings.Join(st.ExpectedCommand, " "))
	}
	return lines
}

func inspectionLines(in intoto.Inspection) []string {
	if in.Name == "image" {
		return []string{"inspection: synthesized from the image", "nothing runs"}
	}
	return []string{"inspection: would run " + strings.Join(in.Run, " "), "never run on a node"}
}

func shortID(id string) string {
	if id == "" {
		return "(no keyid)"
	}
	if len(id) > 8 {
		return id[:8]
	}
	return id
}

// matchEdges adds an edge for every MATCH rule of the item with node ID to.
func (g *Graph) matchEdges(ids map[string]string, to string, materials, products [][]string) {
	for _, side := range []struct {
		rules [][]string
		into  string
	}{{materials, "materials"}, {products, "products"}} {
		for _, r := range side.rules {
			m, ok := intoto.ParseMatch(r)
			if !ok {
				continue
			}
			from, ok := ids[m.From]
			if !ok {
				from = g.unknown(ids, m.From)
			}
			g.addEdge(Edge{From: from, To: to, Label: matchLabel(m, side.into)})
		}
	}
}

func (g *Graph) unknown(ids map[string]string, name string) string {
	id := fmt.Sprintf("u%d", len(g.Nodes))
	g.Nodes = append(g.Nodes, Node{ID: id, Kind: Unknown, Name: name, Lines: []string{"no such step in the layout"}})
	ids[name] = id
	return id
}

func (g *Graph) addEdge(e Edge) {
	if !g.seen[e] {
		g.seen[e] = true
		g.Edges = append(g.Edges, e)
	}
}

// matchLabel reads a MATCH rule as the edge's label: the pattern, then where it reads
// from and lands when that is not the plain "its products into my materials".
func matchLabel(m intoto.MatchRule, into string) string {
	label := m.Pattern
	if m.SrcPrefix != "" {
		label = strings.TrimSuffix(m.SrcPrefix, "/") + "/" + label
	}
	from := "materials"
	if m.WithProducts {
		from = "products"
	}
	if from != "products" || into != "materials" || m.DstPrefix != "" {
		label += " (" + from
		if m.DstPrefix != "" {
			label += " in " + m.DstPrefix
		}
		label += " → " + into + ")"
	}
	return label
}

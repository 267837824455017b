package layoutgraph

import (
	"bytes"
	"html"
	"os/exec"
	"strings"
	"testing"

	"tollgate.dev/tollgate/policy/intoto"
	"tollgate.dev/tollgate/policy/reason"
	"tollgate.dev/tollgate/test/toolcheck"
)

// TestGraphvizRenders hands the DOT output to Debian's Graphviz: it must parse and
// render to SVG, and the SVG must show every step's name as written (after clean).
func TestGraphvizRenders(t *testing.T) {
	dot := toolcheck.Require(t, "dot")
	marked := FromLayout(threeSteps())
	marked.Mark(&intoto.Trace{Stages: map[string]intoto.Stage{"build": intoto.Passed, "test": intoto.Failed},
		Failed: "test", Err: reason.New(reason.Threshold, `1 of 2 "required" <links>`).InStep("test")})
	hostile := FromLayout(hostileLayout())
	hostile.Mark(&intoto.Trace{Stages: map[string]intoto.Stage{}, Err: reason.New(reason.Expired, "expired & gone")})
	for name, g := range map[string]*Graph{
		"three steps": FromLayout(threeSteps()), "three steps verified": marked,
		"hostile": FromLayout(hostileLayout()), "hostile failed": hostile, "empty": FromLayout(nil),
	} {
		t.Run(name, func(t *testing.T) {
			var in bytes.Buffer
			if err := WriteDOT(&in, g); err != nil {
				t.Fatal(err)
			}
			svg := runDot(t, dot, in.Bytes())
			text := svgText(svg)
			for _, n := range g.Nodes {
				if !strings.Contains(text, clean(n.Name)) {
					t.Errorf("SVG does not show %q", clean(n.Name))
				}
			}
			if strings.Count(svg, `class="node"`) != len(g.Nodes) || strings.Count(svg, `class="edge"`) != len(g.Edges) {
				t.Errorf("SVG has %d nodes and %d edges, want %d and %d", strings.Count(svg, `class="node"`), strings.Count(svg, `class="edge"`), len(g.Nodes), len(g.Edges))
			}
		})
	}
}

func runDot(t *testing.T, dot string, in []byte) string {
	t.Helper()
	cmd := exec.Command(dot, "-Tsvg")
	cmd.Stdin = bytes.NewReader(in)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil || errb.Len() > 0 {
		t.Fatalf("dot -Tsvg: %v\n%s\ninput:\n%s", err, errb.String(), in)
	}
	return out.String()
}

// svgText is the text of the SVG's <text> elements, unescaped, one per line. Graphviz
// keeps runs of spaces as no-break spaces, which read here as spaces again.
func svgText(svg string) string {
	var b strings.Builder
	for _, part := range strings.Split(svg, "<text")[1:] {
		start := strings.Index(part, ">")
		end := strings.Index(part, "</text>")
		if start < 0 || end < start {
			continue
		}
		b.WriteString(strings.ReplaceAll(html.UnescapeString(part[start+1:end]), "\u00a0", " "))
		b.WriteByte('\n')
	}
	return b.String()
}

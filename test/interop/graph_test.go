//go:build interop

package interop

import (
	"html"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"tollgate.dev/tollgate/test/toolcheck"
)

// TestGraphPythonLayout draws the three-step layout Python in-toto writes (the one the
// interop and bench fixtures use), before and after verifying Python's links, and a
// Python-made layout whose step names try to break out of DOT and Mermaid; Debian's
// Graphviz must render every DOT output, showing each step's name.
func TestGraphPythonLayout(t *testing.T) {
	dot := toolcheck.Require(t, "dot")
	e := newPyEnv(t)
	layout := e.layout(filepath.Join(e.dir, "root.layout"), "2099-01-01T00:00:00Z", standardSteps())
	links := filepath.Join(e.dir, "links")
	e.runStandardSteps(links)
	names := []string{"build", "test", "package", "final product"}

	out := mustTollgate(t, e.dir, nil, "layout", "show", "--format", "dot", layout)
	svgShows(t, dot, out, 4, names...)
	out = mustTollgate(t, e.dir, nil, "verify", "-l", layout, "-k", e.key("owner")+".pub", "-d", links, "-o", "dot")
	if !strings.Contains(out, `\nVERIFIED"`) || strings.Count(out, `fillcolor="#c8e6c9"`) != 4 {
		t.Errorf("verify -o dot: not every step verified:\n%s", out)
	}
	svgShows(t, dot, out, 4, append(names, "VERIFIED")...)
	mm := mustTollgate(t, e.dir, nil, "layout", "show", "--format", "mermaid", layout)
	if !strings.HasPrefix(mm, "flowchart LR\n") || !strings.Contains(mm, `s0 -->|"foo.tar.gz"| s1`) {
		t.Errorf("mermaid:\n%s", mm)
	}

	hostile := []string{`evil"]; x -> y; a [label="`, `back\slash\n <b>&lt;b&gt;</b>`, "{{x}} |y| -->z %% #quot;"}
	steps := []pyStep{{Name: hostile[0], PubKeys: []string{"alice"}, ExpectedCommand: []string{"sh", "-c", `echo "}"`},
		ExpectedMaterials: pyRules(), ExpectedProducts: pyRules("CREATE x")}}
	for i, name := range hostile[1:] {
		steps = append(steps, pyStep{Name: name, PubKeys: []string{"bob"}, ExpectedProducts: pyRules(),
			ExpectedMaterials: [][]string{{"MATCH", "*", "WITH", "PRODUCTS", "FROM", hostile[i]}}})
	}
	bad := e.layout(filepath.Join(e.dir, "hostile.layout"), "2099-01-01T00:00:00Z", steps)
	out = mustTollgate(t, e.dir, nil, "layout", "show", "--format", "dot", bad)
	svgShows(t, dot, out, 4, hostile...)
	code, out := tollgate(t, e.dir, nil, "verify", "-l", bad, "-k", e.key("owner")+".pub", "-d", links, "-o", "dot")
	// The command's "{" reads as a parameter placeholder: the layout fails to compile,
	// before any step.
	if code != 1 || !strings.Contains(out, `FAILED before any step: malformed: step \"evil`) {
		t.Errorf("verify -o dot of the hostile layout: exit %d\n%s", code, out)
	}
	svgShows(t, dot, out, 4, hostile...)
}

// svgShows renders DOT with Graphviz and checks the SVG has nodes boxes and shows every
// name as written.
func svgShows(t *testing.T, dot, in string, nodes int, names ...string) {
	t.Helper()
	svg := string(toolcheck.Run(t, "", []byte(in), nil, dot, "-Tsvg"))
	if got := strings.Count(svg, `class="node"`); got != nodes {
		t.Errorf("SVG has %d nodes, want %d", got, nodes)
	}
	text := strings.ReplaceAll(html.UnescapeString(svg), "\u00a0", " ")
	for _, n := range names {
		if !strings.Contains(text, ">"+n+"<") {
			t.Errorf("SVG does not show %q", n)
		}
	}
}

// TestDrawLayoutScript runs examples/pipeline/draw-layout.sh, which made the picture in
// docs/policy.md: the SVG it writes must show the example layout's steps and edges.
func TestDrawLayoutScript(t *testing.T) {
	toolcheck.Require(t, "dot")
	bash := toolcheck.Require(t, "bash")
	out := filepath.Join(t.TempDir(), "layout.svg")
	toolcheck.Run(t, "", nil, []string{"TOLLGATE=" + tollgateBin(t)}, bash, filepath.Join("..", "..", "examples", "pipeline", "draw-layout.sh"), out)
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	svg := string(data)
	for _, want := range []string{">build</text>", ">test</text>", ">package</text>", ">image</text>", ">dist/*</text>", ">final product</text>"} {
		if !strings.Contains(svg, want) {
			t.Errorf("draw-layout.sh's SVG lacks %q", want)
		}
	}
	if n := strings.Count(svg, `class="edge"`); n != 4 {
		t.Errorf("SVG has %d edges, want 4 (build→test, build→package, package→image, package→final)", n)
	}
}

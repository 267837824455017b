package cli

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"tollgate.dev/tollgate/test/toolcheck"
)

func TestLayoutShowGraph(t *testing.T) {
	newPipeline(t)
	dot := must(t, "layout", "show", "--format", "dot", "root.layout").stdout
	for _, want := range []string{"digraph layout {", `s0 -> s1 [label="foo.tar.gz"];`, `s0 -> s2 [label="foo.tar.gz"];`,
		`s2 -> final [label="products"];`, `label="build\n1 of 1 must sign: `, `\nexpects: tar czf foo.tar.gz foo.py"`} {
		if !strings.Contains(dot, want) {
			t.Errorf("dot output lacks %q:\n%s", want, dot)
		}
	}
	if again := must(t, "layout", "show", "-o", "dot", "root.layout").stdout; again != dot {
		t.Errorf("-o dot and --format dot differ")
	}
	mm := must(t, "layout", "show", "--format", "mermaid", "root.layout").stdout
	for _, want := range []string{"flowchart LR\n", `s0 -->|"foo.tar.gz"| s1`, `s0["build<br/>1 of 1 must sign: `} {
		if !strings.Contains(mm, want) {
			t.Errorf("mermaid output lacks %q:\n%s", want, mm)
		}
	}
	if text := must(t, "layout", "show", "root.layout").stdout; !strings.HasPrefix(text, "Layout (") {
		t.Errorf("default is no longer text:\n%s", text)
	}
	if r := tg(t, "layout", "show", "--format", "svg", "root.layout"); r.code != 2 || !strings.Contains(r.stderr, "want text, json, dot or mermaid") {
		t.Errorf("--format svg: %s", r)
	}
}

// fill reads each step's fill colour from DOT output.
var fill = regexp.MustCompile(`(?m)^  (s\d|final) \[.*fillcolor="(#[0-9a-f]+)"`)

func fills(dot string) map[string]string {
	out := map[string]string{}
	for _, m := range fill.FindAllStringSubmatch(dot, -1) {
		out[m[1]] = m[2]
	}
	return out
}

const (
	green, red, orange, grey = "#c8e6c9", "#ffcdd2", "#ffe0b2", "#eeeeee"
)

func TestVerifyGraph(t *testing.T) {
	p := newPipeline(t)
	verify := []string{"verify", "--layout", "root.layout", "--layout-keys", "owner.pub", "--link-dir", "links", "-o", "dot"}
	r := must(t, verify...)
	if got := fills(r.stdout); len(got) != 4 || got["s0"] != green || got["s1"] != green || got["s2"] != green || got["final"] != green {
		t.Errorf("verified: fills %v\n%s", got, r.stdout)
	}
	if !strings.Contains(r.stdout, `\nVERIFIED"`) || !strings.Contains(r.stdout, `\nVerified: signed by 1: `) {
		t.Errorf("verified graph:\n%s", r.stdout)
	}
	// The test step's link now comes from mallory, who may not sign it: below threshold.
	if err := os.Remove(p.linkFile(t, "test")); err != nil {
		t.Fatal(err)
	}
	must(t, "run", "-n", "test", "-k", "mallory", "-m", "foo.tar.gz", "-p", "foo.tar.gz", "report.txt", "-d", "links", "--", "true")
	r = tg(t, verify...)
	if got := fills(r.stdout); r.code != 1 || got["s0"] != grey || got["s1"] != orange || got["s2"] != grey || got["final"] != grey {
		t.Errorf("below threshold: exit %d, fills %v\n%s", r.code, got, r.stdout)
	}
	if !strings.Contains(r.stdout, `Below threshold: 0 of 1 required links`) || !strings.Contains(r.stdout, `\nNot reached: signed; rules not checked"`) {
		t.Errorf("below threshold graph:\n%s", r.stdout)
	}
	mm := tg(t, append(verify[:len(verify)-1], "mermaid")...)
	if mm.code != 1 || !strings.Contains(mm.stdout, "class s1 belowthreshold") || !strings.Contains(mm.stdout, "class s0,s2,final notreached") {
		t.Errorf("mermaid below threshold: %s", mm)
	}
	// A wrong layout key fails before any step.
	r = tg(t, "verify", "--layout", "root.layout", "--layout-keys", "alice.pub", "--link-dir", "links", "-o", "dot")
	if got := fills(r.stdout); r.code != 1 || got["s0"] != grey || !strings.Contains(r.stdout, `FAILED before any step: bad_signature: root layout signature`) {
		t.Errorf("wrong layout key: exit %d fills %v\n%s", r.code, got, r.stdout)
	}
	if r := tg(t, "verify", "--attestation", "x.json", "--key", "alice.pub", "-o", "dot"); r.code != 2 || !strings.Contains(r.stderr, "give --layout") {
		t.Errorf("-o dot without a layout: %s", r)
	}
	renderSVG(t, r.stdout, "build", "test", "package", "final product")
}

// renderSVG runs Graphviz on the DOT text: it must render, and show the names.
func renderSVG(t *testing.T, dot string, names ...string) {
	t.Helper()
	bin := toolcheck.Require(t, "dot")
	svg := string(toolcheck.Run(t, "", []byte(dot), nil, bin, "-Tsvg"))
	for _, n := range names {
		if !strings.Contains(svg, ">"+n+"</text>") {
			t.Errorf("SVG lacks %q", n)
		}
	}
}

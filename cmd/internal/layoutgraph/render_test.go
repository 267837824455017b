package layoutgraph

import (
	"bytes"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"tollgate.dev/tollgate/policy/intoto"
)

// hostileNames try to end a string, a statement or the graph, start HTML or Markdown,
// reorder text, or smuggle bytes that are not UTF-8.
var hostileNames = []string{
	`evil"];  x -> y; a [label="`,
	"two\nlines\r\nand\ttab",
	`back\slash\n\l\N\"`,
	"<b>bold</b> & &lt;script&gt; &amp;",
	"[x]{y}(z) |pipe| -->arrow ;semi",
	"%% mermaid comment #quot; #35; `md` **bold**",
	"über 構築 шаг 🚀",
	"rtl \u202e override \u200b zero width \u2028 sep",
	"bad utf8 \xff\xfe end",
	"}",
	strings.Repeat("long-", 100),
}

func hostileLayout() *intoto.Layout {
	l := &intoto.Layout{Expires: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC), Readme: hostileNames[0]}
	for i, name := range hostileNames {
		st := intoto.Step{Name: name, Threshold: 1, PubKeys: []string{`k"ey` + strconv.Itoa(i)}, ExpectedCommand: []string{"sh", "-c", name}}
		if i > 0 {
			st.ExpectedMaterials = [][]string{{"MATCH", name, "WITH", "PRODUCTS", "FROM", hostileNames[i-1]}}
		}
		l.Steps = append(l.Steps, st)
	}
	l.Inspections = []intoto.Inspection{{Name: hostileNames[1], Run: []string{hostileNames[2]}}}
	return l
}

var (
	dotLine = []*regexp.Regexp{
		regexp.MustCompile(`^digraph layout \{$`),
		regexp.MustCompile(`^  graph \[rankdir=LR, labelloc=t, fontname=Q, fontcolor=Q, label=Q\];$`),
		regexp.MustCompile(`^  node \[fontname=Q, fontsize=11\];$`),
		regexp.MustCompile(`^  edge \[fontname=Q, fontsize=10\];$`),
		regexp.MustCompile(`^  [a-z][a-z0-9]* \[shape=[a-z]+, style=Q, fillcolor=Q, label=Q\];$`),
		regexp.MustCompile(`^  [a-z][a-z0-9]* -> [a-z][a-z0-9]* \[label=Q\];$`),
		regexp.MustCompile(`^\}$`),
	}
	mermaidLine = []*regexp.Regexp{
		regexp.MustCompile(`^flowchart LR$`),
		regexp.MustCompile(`^  summary\[Q\]$`),
		regexp.MustCompile(`^  [a-z][a-z0-9]*(\[Q\]|\{\{Q\}\}|\[/Q/\])$`),
		regexp.MustCompile(`^  [a-z][a-z0-9]* -->\|Q\| [a-z][a-z0-9]*$`),
		regexp.MustCompile(`^  classDef [a-z]+ [a-z0-9:#,.\- ]+$`),
		regexp.MustCompile(`^  class [a-z0-9,]+ [a-z]+$`),
	}
	mermaidText = regexp.MustCompile(`^([\p{L}\p{N} .,:/_\-]|#[0-9]+;|<br/>)*$`)
	mermaidCode = regexp.MustCompile(`#([0-9]+);`)
	quoted      = regexp.MustCompile(`"[^"\n]*"`)
)

// parseDOT checks that out is DOT of the shape WriteDOT writes — every quoted string
// closed, only \\, \" and \n escapes, no raw newline inside a string, every line one
// known statement with the strings taken out — and returns the strings, unescaped.
func parseDOT(out string) ([]string, error) {
	var strs []string
	var skel, cur strings.Builder
	in := false
	for i := 0; i < len(out); i++ {
		c := out[i]
		switch {
		case !in && c == '"':
			in = true
			cur.Reset()
			skel.WriteByte('Q')
		case !in:
			skel.WriteByte(c)
		case c == '"':
			in = false
			strs = append(strs, strings.ReplaceAll(cur.String(), "&amp;", "&"))
		case c == '\n' || c == '\r':
			return nil, fmt.Errorf("raw newline inside a string at byte %d", i)
		case c == '\\':
			if i+1 == len(out) {
				return nil, fmt.Errorf("backslash at the end")
			}
			i++
			switch out[i] {
			case '\\', '"':
				cur.WriteByte(out[i])
			case 'n':
				cur.WriteByte('\n')
			default:
				return nil, fmt.Errorf("escape \\%c at byte %d", out[i], i)
			}
		default:
			cur.WriteByte(c)
		}
	}
	if in {
		return nil, fmt.Errorf("unterminated string")
	}
	return strs, matchLines(strings.TrimSuffix(skel.String(), "\n"), dotLine)
}

func matchLines(text string, grammar []*regexp.Regexp) error {
lines:
	for _, line := range strings.Split(text, "\n") {
		for _, re := range grammar {
			if re.MatchString(line) {
				continue lines
			}
		}
		return fmt.Errorf("line %q is no statement WriteDOT/WriteMermaid writes", line)
	}
	return nil
}

// parseMermaid checks out the same way for Mermaid: labels hold only plain runes, entity
// codes and <br/>; it returns them decoded.
func parseMermaid(out string) ([]string, error) {
	var strs []string
	skel := quoted.ReplaceAllStringFunc(out, func(q string) string {
		strs = append(strs, q[1:len(q)-1])
		return "Q"
	})
	for i, s := range strs {
		if !mermaidText.MatchString(s) {
			return nil, fmt.Errorf("label %q holds raw syntax", s)
		}
		s = strings.ReplaceAll(s, "<br/>", "\n")
		strs[i] = mermaidCode.ReplaceAllStringFunc(s, func(m string) string {
			n, _ := strconv.Atoi(m[1 : len(m)-1])
			return string(rune(n))
		})
	}
	return strs, matchLines(strings.TrimSuffix(skel, "\n"), mermaidLine)
}

func render(t *testing.T, g *Graph) (dot, mermaid string) {
	t.Helper()
	var d, m bytes.Buffer
	if err := WriteDOT(&d, g); err != nil {
		t.Fatal(err)
	}
	if err := WriteMermaid(&m, g); err != nil {
		t.Fatal(err)
	}
	return d.String(), m.String()
}

// wantLabel is what a node's label must read as once unescaped.
func wantLabel(n *Node) string {
	var out []string
	for _, l := range n.lines() {
		out = append(out, clean(l))
	}
	return strings.Join(out, "\n")
}

// checkRendered renders g both ways, checks both outputs' structure, and that every
// node's label comes back intact; it returns the outputs and their unescaped strings.
func checkRendered(t *testing.T, g *Graph) (dot, mermaid string, strs []string) {
	t.Helper()
	dot, mermaid = render(t, g)
	dotStrs, err := parseDOT(dot)
	if err != nil {
		t.Fatalf("DOT: %v\n%s", err, dot)
	}
	mmStrs, err := parseMermaid(mermaid)
	if err != nil {
		t.Fatalf("Mermaid: %v\n%s", err, mermaid)
	}
	for _, n := range g.Nodes {
		if want := wantLabel(&n); !slices.Contains(dotStrs, want) || !slices.Contains(mmStrs, want) {
			t.Fatalf("node %s: label %q not intact in both outputs", n.ID, want)
		}
	}
	return dot, mermaid, append(dotStrs, mmStrs...)
}

func TestRenderHostile(t *testing.T) {
	g := FromLayout(hostileLayout())
	g.Mark(&intoto.Trace{Stages: map[string]intoto.Stage{hostileNames[0]: intoto.Passed, hostileNames[1]: intoto.Failed},
		Failed: hostileNames[1], Err: fmt.Errorf("%s", hostileNames[0])})
	dot, mermaid, strs := checkRendered(t, g)
	for _, s := range strs {
		for _, line := range strings.Split(s, "\n") {
			if n := len([]rune(line)); n > maxLine+1 {
				t.Errorf("line of %d runes: %q", n, line)
			}
			if strings.ContainsAny(line, "\r\t\u202e\u200b\u2028\x00") || strings.Contains(line, "\xff") {
				t.Errorf("hidden or invalid runes survived: %q", line)
			}
		}
	}
	if !strings.Contains(dot, "über 構築 шаг 🚀") || !strings.Contains(mermaid, "über 構築 шаг #128640;") {
		t.Errorf("unicode not kept readable")
	}
}

func TestRenderDeterministic(t *testing.T) {
	d1, m1 := render(t, FromLayout(threeSteps()))
	for range 20 {
		d2, m2 := render(t, FromLayout(threeSteps()))
		if d1 != d2 || m1 != m2 {
			t.Fatal("output differs between runs")
		}
	}
}

func TestDOTString(t *testing.T) {
	cases := map[string]string{
		`plain`:          `"plain"`,
		`a"b`:            `"a\"b"`,
		`a\b`:            `"a\\b"`,
		"a\nb":           `"a` + "\uFFFD" + `b"`,
		"&lt;":           `"&amp;lt;"`,
		"<x>[y]{z};":     `"<x>[y]{z};"`,
		"\xff":           "\"\uFFFD\"",
		"\u202eevil":     "\"\uFFFDevil\"",
		`\n`:             `"\\n"`,
		`\`:              `"\\"`,
		`"`:              `"\""`,
		"":               `""`,
		"ok\u00e9\u6784": "\"ok\u00e9\u6784\"",
	}
	for in, want := range cases {
		if got := dotString([]string{in}); got != want {
			t.Errorf("dotString(%q) = %s, want %s", in, got, want)
		}
	}
	if got := dotString([]string{"a", "b"}); got != `"a\nb"` {
		t.Errorf("two lines: %s", got)
	}
}

func TestMermaidString(t *testing.T) {
	cases := map[string]string{
		"plain text": `"plain text"`,
		`a"b`:        `"a#34;b"`,
		"<br/>":      `"#60;br/#62;"`,
		"a|b]":       `"a#124;b#93;"`,
		"#35;":       `"#35;35#59;"`,
		"über":       `"über"`,
		"a\nb":       `"a#65533;b"`,
		"`md` **x**": `"#96;md#96; #42;#42;x#42;#42;"`,
		"%% c":       `"#37;#37; c"`,
	}
	for in, want := range cases {
		if got := mermaidString([]string{in}); got != want {
			t.Errorf("mermaidString(%q) = %s, want %s", in, got, want)
		}
	}
}

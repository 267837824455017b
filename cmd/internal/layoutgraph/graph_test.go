package layoutgraph

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"tollgate.dev/tollgate/policy/intoto"
	"tollgate.dev/tollgate/policy/reason"
)

func rules(rs ...string) [][]string {
	out := [][]string{}
	for _, r := range rs {
		out = append(out, strings.Fields(r))
	}
	return out
}

// threeSteps is the shape of the interop suite's Python-made layout, with an image
// inspection.
func threeSteps() *intoto.Layout {
	return &intoto.Layout{
		Expires: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC),
		Readme:  "three steps",
		Steps: []intoto.Step{
			{Name: "build", Threshold: 1, PubKeys: []string{"aaaaaaaaaaaaaaaa"}, ExpectedCommand: []string{"tar", "czf", "foo.tar.gz", "foo.py"},
				ExpectedMaterials: rules("ALLOW foo.py", "DISALLOW *"), ExpectedProducts: rules("CREATE foo.tar.gz", "DISALLOW *")},
			{Name: "test", Threshold: 2, PubKeys: []string{"bbbbbbbbbbbbbbbb", "cccccccc", "dd", "ee"},
				ExpectedMaterials: rules("MATCH foo.tar.gz WITH PRODUCTS FROM build", "match foo.tar.gz with products from build", "DISALLOW *")},
			{Name: "package", Threshold: 1, PubKeys: []string{"cccccccc"},
				ExpectedMaterials: rules("MATCH foo.tar.gz WITH PRODUCTS FROM build", "MATCH * IN src WITH MATERIALS IN dst FROM test", "MATCH x WITH PRODUCTS FROM nowhere"),
				ExpectedProducts:  rules("CREATE image", "MATCH report.txt WITH PRODUCTS FROM test")},
		},
		Inspections: []intoto.Inspection{
			{Name: "image", ExpectedMaterials: rules("MATCH image WITH PRODUCTS FROM package", "ALLOW image-config")},
			{Name: "lint", Run: []string{"make", "lint"}},
		},
	}
}

func TestFromLayout(t *testing.T) {
	g := FromLayout(threeSteps())
	var ids, names []string
	for _, n := range g.Nodes {
		ids, names = append(ids, n.ID), append(names, n.Name)
	}
	if want := []string{"s0", "s1", "s2", "i0", "i1", "u5", "final"}; !reflect.DeepEqual(ids, want) {
		t.Errorf("node ids %v, want %v", ids, want)
	}
	if want := []string{"build", "test", "package", "image", "lint", "nowhere", "final product"}; !reflect.DeepEqual(names, want) {
		t.Errorf("node names %v, want %v", names, want)
	}
	want := []Edge{
		{"s0", "s1", "foo.tar.gz"}, // the lower-case duplicate is the same edge
		{"s0", "s2", "foo.tar.gz"},
		{"s1", "s2", "src/* (materials in dst → materials)"},
		{"u5", "s2", "x"},
		{"s1", "s2", "report.txt (products → products)"},
		{"s2", "i0", "image"},
		{"s2", "final", "products"},
	}
	if !reflect.DeepEqual(g.Edges, want) {
		t.Errorf("edges\n%v\nwant\n%v", g.Edges, want)
	}
	if got := g.Nodes[1].Lines[0]; got != "2 of 4 must sign: bbbbbbbb, cccccccc, dd +1 more" {
		t.Errorf("test step line %q", got)
	}
	if got := g.Nodes[0].Lines[1]; got != "expects: tar czf foo.tar.gz foo.py" {
		t.Errorf("build step line %q", got)
	}
	if got := strings.Join(g.Nodes[4].Lines, " "); !strings.Contains(got, "would run make lint") || !strings.Contains(got, "never run on a node") {
		t.Errorf("lint inspection lines %q", got)
	}
	if g.Title[0] != "in-toto layout, expires 2030-01-02T03:04:05Z" || g.Title[1] != "three steps" {
		t.Errorf("title %q", g.Title)
	}
}

func TestFromLayoutEmpty(t *testing.T) {
	for _, l := range []*intoto.Layout{nil, {}} {
		for _, tr := range []*intoto.Trace{nil, {Err: reason.New(reason.Malformed, "unreadable")}} {
			g := FromLayout(l)
			if tr != nil {
				g.Mark(tr)
			}
			if len(g.Nodes) != 0 || len(g.Edges) != 0 || len(g.Title) == 0 {
				t.Errorf("%v: %+v", l, g)
			}
			checkRendered(t, g)
		}
	}
}

func statuses(g *Graph) map[string]Status {
	out := map[string]Status{}
	for _, n := range g.Nodes {
		out[n.Name] = n.Status
	}
	return out
}

func TestMark(t *testing.T) {
	threshold := reason.New(reason.Threshold, "1 of 2 required links").InStep("test")
	rule := reason.New(reason.RuleViolation, "product not allowed").InStep("build")
	sig := reason.New(reason.BadSignature, "root layout signature verification failed")
	cases := []struct {
		name  string
		trace intoto.Trace
		want  map[string]Status
		title string
	}{
		{"verified", intoto.Trace{Stages: map[string]intoto.Stage{"build": intoto.Passed, "test": intoto.Passed, "package": intoto.Passed, "image": intoto.Passed, "lint": intoto.Passed}},
			map[string]Status{"build": Verified, "test": Verified, "package": Verified, "image": Verified, "lint": Verified, "final product": Verified, "nowhere": None}, "VERIFIED"},
		{"below threshold", intoto.Trace{Stages: map[string]intoto.Stage{"build": intoto.Signed, "test": intoto.Failed}, Failed: "test", Err: threshold},
			map[string]Status{"build": NotReached, "test": BelowThreshold, "package": NotReached, "image": NotReached, "lint": NotReached, "final product": NotReached, "nowhere": None},
			"FAILED: threshold: step \"test\": 1 of 2 required links"},
		{"rule", intoto.Trace{Stages: map[string]intoto.Stage{"build": intoto.Failed, "test": intoto.Signed, "package": intoto.Signed}, Failed: "build", Err: rule},
			map[string]Status{"build": Failed, "test": NotReached, "package": NotReached, "image": NotReached, "lint": NotReached, "final product": NotReached, "nowhere": None},
			"FAILED: rule_violation: step \"build\": product not allowed"},
		{"layout signature", intoto.Trace{Stages: map[string]intoto.Stage{}, Err: sig},
			map[string]Status{"build": NotReached, "test": NotReached, "package": NotReached, "image": NotReached, "lint": NotReached, "final product": NotReached, "nowhere": None},
			"FAILED before any step: bad_signature: root layout signature verification failed"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := FromLayout(threeSteps())
			g.Mark(&tc.trace)
			if got := statuses(g); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("statuses %v, want %v", got, tc.want)
			}
			if last := g.Title[len(g.Title)-1]; last != tc.title {
				t.Errorf("title %q, want %q", last, tc.title)
			}
		})
	}
}

func TestMarkNotes(t *testing.T) {
	g := FromLayout(threeSteps())
	long := strings.Repeat("why ", 200)
	g.Mark(&intoto.Trace{Stages: map[string]intoto.Stage{"build": intoto.Signed, "test": intoto.Failed}, Failed: "test",
		Err: reason.New(reason.MissingEvidence, "%s", long).InStep("test")})
	lines := g.Nodes[1].lines()
	status := lines[len(g.Nodes[1].Lines)+1:]
	if len(status) != 2 || !strings.HasSuffix(status[1], "…") || !strings.HasPrefix(status[0], "Failed: missing_evidence: why") || strings.Contains(status[0], `step "test"`) {
		t.Errorf("status lines %q", status)
	}
	if got := g.Nodes[0].lines(); got[len(got)-1] != "Not reached: signed; rules not checked" {
		t.Errorf("build lines %q", got)
	}
}

// A layout at the parser's limits (every step and inspection with full rule lists of
// MATCH rules) draws every distinct edge once, without quadratic work.
func TestFromLayoutAtLimits(t *testing.T) {
	l := &intoto.Layout{}
	var matches [][]string
	for i := range intoto.MaxRules {
		matches = append(matches, []string{"MATCH", fmt.Sprint("p", i), "WITH", "PRODUCTS", "FROM", fmt.Sprint("s", i%7)})
	}
	for i := range intoto.MaxSteps {
		l.Steps = append(l.Steps, intoto.Step{Name: fmt.Sprint("s", i), ExpectedMaterials: matches, ExpectedProducts: matches})
	}
	for i := range intoto.MaxInspections {
		l.Inspections = append(l.Inspections, intoto.Inspection{Name: fmt.Sprint("i", i), ExpectedMaterials: matches})
	}
	g := FromLayout(l)
	want := (intoto.MaxSteps*2+intoto.MaxInspections)*intoto.MaxRules + 1
	if len(g.Edges) != want || len(g.Nodes) != intoto.MaxSteps+intoto.MaxInspections+1 {
		t.Errorf("%d edges, %d nodes; want %d, %d", len(g.Edges), len(g.Nodes), want, intoto.MaxSteps+intoto.MaxInspections+1)
	}
	dot, mermaid := render(t, g)
	if n := strings.Count(dot, " -> "); n != want {
		t.Errorf("DOT has %d edges, want %d", n, want)
	}
	if n := strings.Count(mermaid, " -->|"); n != want {
		t.Errorf("Mermaid has %d edges, want %d", n, want)
	}
}

package layoutgraph

import (
	"errors"
	"testing"

	"tollgate.dev/tollgate/policy/intoto"
)

// FuzzRender draws layouts whose names, commands, patterns and failure reasons are
// arbitrary: both outputs must keep their structure (parseDOT, parseMermaid: quoting
// balanced, no raw newline in a label, no statement but ours) and every node's label
// must come back intact; nothing may panic.
func FuzzRender(f *testing.F) {
	for _, s := range hostileNames {
		f.Add(s, s, s, s)
	}
	f.Add("build", "make", "dist/*", "step \"build\": 0 of 1")
	f.Add("", "", "", "")
	f.Add("a\\", "\\\"", "\"\\n", "&amp;#35;")
	f.Fuzz(func(t *testing.T, name, cmd, pattern, why string) {
		l := &intoto.Layout{Readme: why, Steps: []intoto.Step{
			{Name: name, Threshold: 1, PubKeys: []string{why}, ExpectedCommand: []string{cmd}},
			{Name: cmd, ExpectedMaterials: [][]string{{"MATCH", pattern, "WITH", "PRODUCTS", "FROM", name}, {"MATCH", pattern, "IN", why, "WITH", "MATERIALS", "IN", cmd, "FROM", pattern}}},
		}, Inspections: []intoto.Inspection{{Name: pattern, Run: []string{cmd, why}}}}
		g := FromLayout(l)
		g.Mark(&intoto.Trace{Stages: map[string]intoto.Stage{name: intoto.Passed, cmd: intoto.Failed}, Failed: cmd, Err: errors.New(why)})
		checkRendered(t, g)
	})
}

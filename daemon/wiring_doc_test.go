package daemon

import (
	"go/ast"
	"go/parser"
	"go/token"
	"regexp"
	"strings"
	"testing"
)

// The wiring example in Daemon's doc comment is what integrators copy. NRI registers a
// plugin as "<index>-<name>" and rejects an index that is not two digits ("5-tollgate"),
// so the example must format the index as cmd/tollgated does: "%02d".
func TestWiringExampleFormatsPluginIndex(t *testing.T) {
	f, err := parser.ParseFile(token.NewFileSet(), "daemon.go", nil, parser.ParseComments)
	if err != nil {
		t.Fatal(err)
	}
	var doc string
	ast.Inspect(f, func(n ast.Node) bool {
		if g, ok := n.(*ast.GenDecl); ok && g.Tok == token.TYPE {
			for _, s := range g.Specs {
				if ts := s.(*ast.TypeSpec); ts.Name.Name == "Daemon" && g.Doc != nil {
					doc = g.Doc.Text()
				}
			}
		}
		return true
	})
	if !strings.Contains(doc, "plugin.New(") {
		t.Fatal("Daemon's doc comment has no wiring example")
	}
	m := regexp.MustCompile(`plugin\.WithIndex\(([^\n]*)\)`).FindAllStringSubmatch(doc, -1)
	if len(m) != 1 {
		t.Fatalf("the wiring example calls plugin.WithIndex %d times, want once", len(m))
	}
	if arg := m[0][1]; !strings.HasPrefix(arg, `fmt.Sprintf("%02d", cfg.PluginIndex)`) {
		t.Errorf("the wiring example passes plugin.WithIndex(%s); NRI needs two digits: fmt.Sprintf(\"%%02d\", cfg.PluginIndex)", arg)
	}
}

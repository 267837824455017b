package predicate

import (
	"errors"
	"strings"
	"testing"

	"tollgate.dev/tollgate/policy/reason"
)

const hexA = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"

func TestParseLink(t *testing.T) {
	l, err := ParseLink([]byte(`{"name":"build","command":["make"],"materials":[{"name":"src/main.go","digest":{"sha256":"` + hexA + `"}}],"byproducts":{"return-value":0},"environment":{}}`))
	if err != nil {
		t.Fatal(err)
	}
	if l.Name != "build" || len(l.Command) != 1 || len(l.Materials) != 1 || l.Materials[0].Name != "src/main.go" || l.Byproducts["return-value"] != 0.0 {
		t.Fatalf("unexpected %+v", l)
	}
	if _, err := ParseLink([]byte(`{"command":["make"]}`)); err == nil {
		t.Fatal("link predicate without name accepted")
	}
}

func TestParseLinkErrors(t *testing.T) {
	tests := []struct {
		name, pred, want string
	}{
		{"no name", `{"command":["make"]}`, "in-toto link predicate has no name"},
		{"not json", `{`, "in-toto link predicate"},
		{"wrong field type", `{"name":"build","command":"make"}`, "in-toto link predicate"},
		{"too deep", strings.Repeat("[", 1000) + strings.Repeat("]", 1000), "link predicate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseLink([]byte(tt.pred))
			var re *reason.Error
			if !errors.As(err, &re) || re.Kind != reason.Malformed || !strings.HasPrefix(err.Error(), tt.want) {
				t.Fatalf("err = %v, want a malformed error starting %q", err, tt.want)
			}
		})
	}
}

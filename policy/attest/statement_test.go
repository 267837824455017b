package attest

import (
	"encoding/json"
	"strings"
	"testing"

	"tollgate.dev/tollgate/policy/envelope"
	"tollgate.dev/tollgate/policy/reason"
)

const (
	hexA = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	hexB = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
)

func statementJSON(typ, predType string, subjects string, predicate string) string {
	s := `{"_type":"` + typ + `","predicateType":"` + predType + `","subject":` + subjects
	if predicate != "" {
		s += `,"predicate":` + predicate
	}
	return s + "}"
}

func TestParseStatement(t *testing.T) {
	subj := `[{"name":"ghcr.io/acme/api","digest":{"sha256":"` + hexA + `"}}]`
	tests := []struct {
		name    string
		in      string
		wantErr string
	}{
		{"v1", statementJSON(StatementV1, PredicateSLSAProvenanceV1, subj, `{}`), ""},
		{"v0.1", statementJSON(StatementV01, PredicateSLSAProvenanceV02, subj, `{"builder":{"id":"x"}}`), ""},
		{"v0.1 without predicate", statementJSON(StatementV01, "https://example.com/p", subj, ""), ""},
		{"v1 without predicate", statementJSON(StatementV1, "https://example.com/p", subj, ""), "has no predicate"},
		{"v1 null predicate", statementJSON(StatementV1, "https://example.com/p", subj, "null"), "has no predicate"},
		{"predicate not object", statementJSON(StatementV1, "https://example.com/p", subj, `[1]`), "not a JSON object"},
		{"wrong type", statementJSON("https://in-toto.io/Statement/v9", "p", subj, `{}`), "is not an in-toto Statement"},
		{"no type", `{"predicateType":"p","subject":` + subj + `,"predicate":{}}`, "has no _type"},
		{"no predicate type", statementJSON(StatementV1, "", subj, `{}`), "no predicateType"},
		{"no subject", statementJSON(StatementV1, "p", `[]`, `{}`), "has no subject"},
		{"subject without digest", statementJSON(StatementV1, "p", `[{"name":"x","digest":{}}]`, `{}`), "has no digest"},
		{"short sha256", statementJSON(StatementV1, "p", `[{"name":"x","digest":{"sha256":"abc"}}]`, `{}`), "want 64"},
		{"non-hex sha256", statementJSON(StatementV1, "p", `[{"name":"x","digest":{"sha256":"`+strings.Repeat("z", 64)+`"}}]`, `{}`), "not hex"},
		{"unknown alg kept", statementJSON(StatementV1, "p", `[{"name":"x","digest":{"blake9":"whatever"}}]`, `{}`), ""},
		{"not json", `{"_type":`, "not valid JSON"},
		{"trailing", statementJSON(StatementV1, "p", subj, `{}`) + `{}`, "trailing data"},
		{"too deep", `{"_type":"` + StatementV1 + `","predicate":` + strings.Repeat("[", 100) + strings.Repeat("]", 100) + `}`, "nests deeper"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, err := Parse([]byte(tt.in))
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Parse: %v", err)
				}
				if len(st.Subjects) == 0 {
					t.Fatal("no subjects")
				}
				return
			}
			if err == nil {
				t.Fatalf("Parse succeeded, want error containing %q", tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error %q does not contain %q", err, tt.wantErr)
			}
			if k := reason.KindOf(err); k != reason.Malformed {
				t.Fatalf("kind %s, want malformed", k)
			}
		})
	}
}

func TestParseStatementTooManySubjects(t *testing.T) {
	var b strings.Builder
	b.WriteString("[")
	for i := 0; i <= MaxSubjects; i++ {
		if i > 0 {
			b.WriteString(",")
		}
		b.WriteString(`{"name":"x","digest":{"sha256":"` + hexA + `"}}`)
	}
	b.WriteString("]")
	_, err := Parse([]byte(statementJSON(StatementV1, "p", b.String(), `{}`)))
	if err == nil || !strings.Contains(err.Error(), "over the limit") {
		t.Fatalf("err = %v, want subject limit", err)
	}
}

func TestBoundTo(t *testing.T) {
	subj := `[{"name":"a","digest":{"sha256":"` + strings.ToUpper(hexA) + `","sha512":"` + hexA + hexA + `"}},{"name":"b","digest":{"sha256":"` + hexB + `"}}]`
	st, err := Parse([]byte(statementJSON(StatementV1, "p", subj, `{}`)))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		digests []string
		want    bool
	}{
		{[]string{"sha256:" + hexA}, true},
		{[]string{"sha256:" + strings.ToUpper(hexB)}, true},
		{[]string{"SHA256:" + hexB}, true},
		{[]string{"sha256:" + strings.Repeat("c", 64), "sha256:" + hexB}, true},
		{[]string{"sha256:" + strings.Repeat("c", 64)}, false},
		{[]string{"sha512:" + hexA}, false},
		{[]string{hexA}, false},
		{[]string{"sha256:"}, false},
		{nil, false},
	}
	for _, tt := range tests {
		if got := st.BoundTo(tt.digests...); got != tt.want {
			t.Errorf("BoundTo(%v) = %v, want %v", tt.digests, got, tt.want)
		}
	}
	var nilSt *Statement
	if nilSt.BoundTo("sha256:" + hexA) {
		t.Error("nil statement bound")
	}
}

func TestStatementMap(t *testing.T) {
	subj := `[{"name":"a","digest":{"sha256":"` + hexA + `"}}]`
	st, err := Parse([]byte(statementJSON(StatementV1, "https://example.com/p", subj, `{"n":1.5,"list":["x"],"nested":{"k":true}}`)))
	if err != nil {
		t.Fatal(err)
	}
	m, err := st.Map()
	if err != nil {
		t.Fatal(err)
	}
	got, _ := json.Marshal(m)
	want := `{"_type":"https://in-toto.io/Statement/v1","predicate":{"list":["x"],"n":1.5,"nested":{"k":true}},"predicateType":"https://example.com/p","subject":[{"digest":{"sha256":"` + hexA + `"},"name":"a"}]}`
	if string(got) != want {
		t.Fatalf("Map =\n%s\nwant\n%s", got, want)
	}
}

// TestFromEnvelope: the node's rules for a Statement's envelope, shared with the CLI.
func TestFromEnvelope(t *testing.T) {
	st := `{"_type":"https://in-toto.io/Statement/v1","predicateType":"p","subject":[{"name":"a","digest":{"sha256":"` + strings.Repeat("a", 64) + `"}}],"predicate":{}}`
	dup := strings.Replace(st, `"predicate":{}`, `"subject":[{"name":"b","digest":{"sha256":"`+strings.Repeat("b", 64)+`"}}],"predicate":{}`, 1)
	mb, err := envelope.NewMetablock(map[string]any{"_type": "https://in-toto.io/Statement/v1"})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		env  *envelope.Signed
		want string // "" = accepted
	}{
		{"DSSE in-toto", envelope.NewDSSE(envelope.PayloadTypeInToto, []byte(st)), ""},
		{"other payload type", envelope.NewDSSE("application/json", []byte(st)), "is not in-toto"},
		{"Metablock", mb, "must travel in a DSSE envelope"},
		{"duplicate subject", envelope.NewDSSE(envelope.PayloadTypeInToto, []byte(dup)), `member "subject" appears twice`},
	}
	for _, tt := range tests {
		_, err := FromEnvelope(tt.env)
		if tt.want == "" && err != nil || tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want) || reason.KindOf(err) != reason.Malformed) {
			t.Errorf("%s: %v; want %q", tt.name, err, tt.want)
		}
	}
}

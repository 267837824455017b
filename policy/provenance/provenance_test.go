package provenance

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"tollgate.dev/tollgate/policy/attest"
	"tollgate.dev/tollgate/policy/envelope"
	"tollgate.dev/tollgate/policy/keys"
	"tollgate.dev/tollgate/policy/predicate"
)

var digest = "sha256:" + strings.Repeat("ab", 32)

var gh = map[string]string{
	"GITHUB_ACTIONS": "true", "GITHUB_SERVER_URL": "https://github.example", "GITHUB_REPOSITORY": "acme/api",
	"GITHUB_SHA": "0123456789abcdef0123456789abcdef01234567", "GITHUB_REF": "refs/tags/v1",
	"GITHUB_RUN_ID": "7", "GITHUB_RUN_ATTEMPT": "2", "GITHUB_WORKFLOW_REF": "acme/api/.github/workflows/release.yml@refs/tags/v1",
	"GITHUB_EVENT_NAME": "push", "RUNNER_ENVIRONMENT": "github-hosted", "RUNNER_OS": "Linux",
}

func subject(t *testing.T) []Subject {
	s, err := ImageSubject("registry.example/acme/api", digest)
	if err != nil {
		t.Fatal(err)
	}
	return []Subject{s}
}

func TestFromEnvGitHub(t *testing.T) {
	in := FromEnv(gh)
	want := Inputs{
		BuilderID:    "https://github.example/acme/api/.github/workflows/release.yml@refs/tags/v1",
		BuildType:    GitHubBuildType,
		SourceURI:    "git+https://github.example/acme/api@refs/tags/v1",
		EntryPoint:   ".github/workflows/release.yml",
		InvocationID: "https://github.example/acme/api/actions/runs/7/attempts/2",
	}
	if in.BuilderID != want.BuilderID || in.BuildType != want.BuildType || in.SourceURI != want.SourceURI ||
		in.EntryPoint != want.EntryPoint || in.InvocationID != want.InvocationID || in.SourceDigest["gitCommit"] != gh["GITHUB_SHA"] {
		t.Errorf("FromEnv = %+v", in)
	}
	if FromEnv(map[string]string{"HOME": "/root"}).BuilderID != "" {
		t.Error("outside CI, FromEnv must be empty")
	}
	// Explicit flags win over the environment.
	m := Merge(Inputs{BuilderID: "https://builder.example"}, in)
	if m.BuilderID != "https://builder.example" || m.SourceURI != in.SourceURI {
		t.Errorf("Merge = %+v", m)
	}
}

func TestSLSAv1(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	in := Merge(Inputs{StartedOn: start, FinishedOn: start.Add(time.Minute),
		Materials: []Material{{URI: "pkg:golang/go@1.26", Digest: map[string]string{"sha256": strings.Repeat("1", 64)}}}}, FromEnv(gh))
	out, err := SLSAv1(subject(t), in)
	if err != nil {
		t.Fatal(err)
	}
	st, err := attest.Parse(out)
	if err != nil {
		t.Fatal(err)
	}
	if st.PredicateType != attest.PredicateSLSAProvenanceV1 || !st.BoundTo(digest) {
		t.Errorf("statement %s", out)
	}
	p, err := predicate.ParseProvenance(st.PredicateType, st.Predicate)
	if err != nil {
		t.Fatal(err)
	}
	m := p.Map()
	if !strings.Contains(mustJSON(t, m), "release.yml@refs/tags/v1") || !strings.Contains(string(out), `"startedOn":"2026-01-01T00:00:00Z"`) ||
		!strings.Contains(string(out), `"resolvedDependencies":[{"uri":"git+https://github.example/acme/api@refs/tags/v1"`) {
		t.Errorf("predicate: %s", out)
	}
}

func TestSLSAv02(t *testing.T) {
	out, err := SLSAv02(subject(t), FromEnv(gh))
	if err != nil {
		t.Fatal(err)
	}
	st, err := attest.Parse(out)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := predicate.ParseProvenance(st.PredicateType, st.Predicate); err != nil {
		t.Fatalf("v0.2 predicate does not parse: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), `"configSource":{"digest":{"gitCommit":"0123`) {
		t.Errorf("predicate: %s", out)
	}
}

func TestErrors(t *testing.T) {
	s := subject(t)
	start := time.Now()
	cases := []struct {
		name string
		err  error
		want string
	}{
		{"no builder", second(SLSAv1(s, Inputs{})), "builder id"},
		{"no external parameters", second(SLSAv1(s, Inputs{BuilderID: "b"})), "external parameters"},
		{"time order", second(SLSAv1(s, Inputs{BuilderID: "b", StartedOn: start, FinishedOn: start.Add(-time.Hour)})), "before it started"},
		{"digest without uri", second(SLSAv02(s, Inputs{BuilderID: "b", SourceDigest: map[string]string{"a": "b"}})), "source URI"},
		{"no subject", second(Statement("x", nil, map[string]any{})), "subject"},
		{"no predicate type", second(Statement("", s, map[string]any{})), "predicate type"},
		{"array predicate", second(Statement("x", s, []int{1})), "JSON object"},
		{"bad image digest", second(ImageSubject("x", "nodigest")), "sha256"},
		{"bad digest", second(ParseDigest("abc")), "ALG:HEX"},
		{"link not a link", second(LinkStatement(s, []byte(`{"x":1}`))), "link"},
	}
	for _, tc := range cases {
		if tc.err == nil || !strings.Contains(tc.err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.name, tc.err, tc.want)
		}
	}
}

func second[T any](_ T, err error) error { return err }

func TestParseMaterial(t *testing.T) {
	m, err := ParseMaterial("git+https://h/r@sha1:abc")
	if err != nil || m.URI != "git+https://h/r" || m.Digest["sha1"] != "abc" {
		t.Errorf("%+v %v", m, err)
	}
	m, _ = ParseMaterial("https://h/r@refs/heads/x")
	if m.URI != "https://h/r@refs/heads/x" || m.Digest != nil {
		t.Errorf("%+v", m)
	}
}

func TestLinkStatement(t *testing.T) {
	s, _ := keys.Generate(keys.TypeED25519, 0)
	env, err := envelope.NewMetablock(map[string]any{"_type": "link", "name": "build", "command": []string{"make"},
		"materials": map[string]any{"src/a.go": map[string]string{"sha256": strings.Repeat("c", 64)}},
		"products":  map[string]any{}, "byproducts": map[string]any{"return-value": 0}, "environment": map[string]any{}})
	if err != nil {
		t.Fatal(err)
	}
	if err := env.Sign(s); err != nil {
		t.Fatal(err)
	}
	raw, _ := env.Marshal()
	out, err := LinkStatement(subject(t), raw)
	if err != nil {
		t.Fatal(err)
	}
	st, _ := attest.Parse(out)
	var lp struct { // the in-toto link predicate v0.3
		Name      string `json:"name"`
		Materials []struct {
			Name string `json:"name"`
			URI  string `json:"uri"`
		} `json:"materials"`
	}
	err = json.Unmarshal(st.Predicate, &lp)
	if err != nil || lp.Name != "build" || len(lp.Materials) != 1 || lp.Materials[0].URI != "src/a.go" && lp.Materials[0].Name != "src/a.go" {
		t.Errorf("%+v %v\n%s", lp, err, out)
	}
}

func mustJSON(t *testing.T, v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

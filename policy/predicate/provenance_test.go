package predicate

import (
	"errors"
	"strings"
	"testing"

	"tollgate.dev/tollgate/policy/attest"
	"tollgate.dev/tollgate/policy/reason"
)

const slsaV1Predicate = `{
  "buildDefinition": {
    "buildType": "https://tollgate.dev/build/v1",
    "externalParameters": {"repository": "https://github.com/acme/api", "ref": "refs/heads/main"},
    "internalParameters": {"runner": "linux"},
    "resolvedDependencies": [{"uri": "git+https://github.com/acme/api@refs/heads/main", "digest": {"gitCommit": "0123456789abcdef0123456789abcdef01234567"}}]
  },
  "runDetails": {
    "builder": {"id": "https://github.com/acme/builder@v1"},
    "metadata": {"invocationId": "run-42", "startedOn": "2026-01-02T03:04:05Z", "finishedOn": "2026-01-02T03:05:05Z"},
    "futureField": 1
  }
}`

const slsaV02Predicate = `{
  "builder": {"id": "https://github.com/Attestations/GitHubHostedActions@v1"},
  "buildType": "https://github.com/Attestations/GitHubActionsWorkflow@v1",
  "invocation": {
    "configSource": {"uri": "git+https://github.com/acme/api@refs/heads/main", "digest": {"sha1": "0123456789abcdef0123456789abcdef01234567"}, "entryPoint": ".github/workflows/build.yml"},
    "parameters": {"event": "push"}
  },
  "metadata": {"buildInvocationId": "inv-1", "buildStartedOn": "2026-01-02T03:04:05Z", "completeness": {"parameters": true}, "reproducible": false},
  "materials": [{"uri": "git+https://github.com/acme/api", "digest": {"sha1": "0123456789abcdef0123456789abcdef01234567"}}]
}`

func TestParseProvenanceV1(t *testing.T) {
	p, err := ParseProvenance(attest.PredicateSLSAProvenanceV1, []byte(slsaV1Predicate))
	if err != nil {
		t.Fatal(err)
	}
	if p.Version != "v1" || p.BuilderID != "https://github.com/acme/builder@v1" || p.BuildType != "https://tollgate.dev/build/v1" {
		t.Fatalf("unexpected %+v", p)
	}
	if p.Parameters["repository"] != "https://github.com/acme/api" || p.InternalParameters["runner"] != "linux" {
		t.Fatalf("parameters %v %v", p.Parameters, p.InternalParameters)
	}
	if len(p.Materials) != 1 || p.Materials[0].Digest["gitCommit"] == "" {
		t.Fatalf("materials %+v", p.Materials)
	}
	if p.InvocationID != "run-42" || p.StartedOn.IsZero() || p.FinishedOn.IsZero() {
		t.Fatalf("metadata %+v", p)
	}
	m := p.Map()
	if m["builderId"] != p.BuilderID || len(m["materials"].([]any)) != 1 {
		t.Fatalf("map %v", m)
	}
}

func TestParseProvenanceV02(t *testing.T) {
	p, err := ParseProvenance(attest.PredicateSLSAProvenanceV02, []byte(slsaV02Predicate))
	if err != nil {
		t.Fatal(err)
	}
	if p.Version != "v0.2" || p.BuilderID != "https://github.com/Attestations/GitHubHostedActions@v1" {
		t.Fatalf("unexpected %+v", p)
	}
	if p.ConfigSource == nil || p.ConfigSource.EntryPoint != ".github/workflows/build.yml" {
		t.Fatalf("config source %+v", p.ConfigSource)
	}
	if p.Parameters["event"] != "push" || len(p.Materials) != 1 || p.InvocationID != "inv-1" || p.StartedOn.IsZero() {
		t.Fatalf("unexpected %+v", p)
	}
	if p.Map()["configSource"].(map[string]any)["entryPoint"] != ".github/workflows/build.yml" {
		t.Fatal("configSource missing from map")
	}
}

func TestParseProvenanceErrors(t *testing.T) {
	tests := []struct {
		name, typ, pred, want string
	}{
		{"v1 no builder", attest.PredicateSLSAProvenanceV1, `{"buildDefinition":{"buildType":"x","externalParameters":{"a":1}},"runDetails":{}}`, "runDetails"},
		{"v1 no build type", attest.PredicateSLSAProvenanceV1, `{"buildDefinition":{"externalParameters":{"a":1}},"runDetails":{"builder":{"id":"b"}}}`, "buildType"},
		{"v1 wrong field type", attest.PredicateSLSAProvenanceV1, `{"buildDefinition":{"buildType":5}}`, "SLSA provenance v1"},
		{"v1 bad timestamp", attest.PredicateSLSAProvenanceV1, `{"buildDefinition":{"buildType":"x","externalParameters":{"a":1}},"runDetails":{"builder":{"id":"b"},"metadata":{"startedOn":"yesterday"}}}`, "SLSA provenance v1"},
		{"v1 no external parameters", attest.PredicateSLSAProvenanceV1, `{"buildDefinition":{"buildType":"x"},"runDetails":{"builder":{"id":"b"}}}`, "externalParameters required"},
		{"v1 null external parameters", attest.PredicateSLSAProvenanceV1, `{"buildDefinition":{"buildType":"x","externalParameters":null},"runDetails":{"builder":{"id":"b"}}}`, "externalParameters required"},
		{"v1 empty external parameters, no builder id", attest.PredicateSLSAProvenanceV1, `{"buildDefinition":{"buildType":"x","externalParameters":{}},"runDetails":{"builder":{"version":{"a":"1"}}}}`, "builder.id required"},
		{"v1 empty external parameters, no run details", attest.PredicateSLSAProvenanceV1, `{"buildDefinition":{"buildType":"x","externalParameters":{}}}`, "runDetails required"},
		{"v0.2 no builder", attest.PredicateSLSAProvenanceV02, `{"buildType":"x"}`, "builder.id"},
		{"v0.2 not json", attest.PredicateSLSAProvenanceV02, `{`, "SLSA provenance v0.2"},
		{"other type", "https://example.com/p", `{}`, "not SLSA provenance"},
		{"too deep", attest.PredicateSLSAProvenanceV1, strings.Repeat("[", 1000) + strings.Repeat("]", 1000), "provenance predicate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseProvenance(tt.typ, []byte(tt.pred))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
			if re := (*reason.Error)(nil); !errors.As(err, &re) || re.Kind != reason.Malformed {
				t.Fatalf("err = %#v, want a reason.Malformed error", err)
			}
		})
	}
}

// SLSA v1 requires externalParameters but allows it to be empty; cosign's examples write {}.
func TestParseProvenanceV1EmptyExternalParameters(t *testing.T) {
	pred := `{"buildDefinition":{"buildType":"https://example.com/t","externalParameters":{}},"runDetails":{"builder":{"id":"https://example.com/b"}}}`
	p, err := ParseProvenance(attest.PredicateSLSAProvenanceV1, []byte(pred))
	if err != nil {
		t.Fatalf("ParseProvenance: %v", err)
	}
	if p.BuilderID != "https://example.com/b" || len(p.Parameters) != 0 {
		t.Fatalf("got builder %q, parameters %v", p.BuilderID, p.Parameters)
	}
}

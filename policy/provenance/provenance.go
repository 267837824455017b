// Package provenance builds in-toto Statements: SLSA provenance v1 and v0.2 from explicit
// inputs and a CI environment, in-toto link predicates, and Statements around any
// predicate. It is pure: the environment is a map the caller passes in, and times are
// given, never read from the clock.
package provenance

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"tollgate.dev/tollgate/policy/attest"
)

// Subject is what a Statement is about: for an image, its reference and manifest digest.
type Subject struct {
	Name   string            `json:"name"`
	Digest map[string]string `json:"digest"`
}

// Material is a resolved dependency (source, base image, tool).
type Material struct {
	URI    string            `json:"uri"`
	Digest map[string]string `json:"digest,omitempty"`
}

// Inputs are the facts a provenance predicate records. Empty fields are left out (or
// filled from the CI environment by FromEnv).
type Inputs struct {
	BuilderID    string
	BuildType    string
	SourceURI    string            // e.g. git+https://github.com/acme/api@refs/heads/main
	SourceDigest map[string]string // e.g. {"gitCommit": "<sha>"}
	EntryPoint   string            // workflow path, build script
	Materials    []Material
	StartedOn    time.Time
	FinishedOn   time.Time
	InvocationID string
	// ExternalParameters are the inputs a user controlled (v1 externalParameters, v0.2
	// invocation.parameters).
	ExternalParameters map[string]any
	// InternalParameters are the builder's own facts (v1 internalParameters, v0.2
	// invocation.environment).
	InternalParameters map[string]any
}

// Defaults used when neither flags nor a CI environment say otherwise.
const (
	DefaultBuildType   = "https://tollgate.dev/buildtypes/generic/v1"
	GitHubBuildType    = "https://actions.github.io/buildtypes/workflow/v1"
	defaultGitHubHost  = "https://github.com"
	maxEnvValueBytes   = 4096
	DefaultBuilderID   = "https://tollgate.dev/builders/local"
	githubWorkflowPath = ".github/workflows/"
)

// FromEnv returns the inputs a CI environment implies; today GitHub Actions (detected by
// GITHUB_ACTIONS=true or GITHUB_RUN_ID). Outside CI it returns zero Inputs. Explicit inputs
// win: see Merge.
func FromEnv(env map[string]string) Inputs {
	if env["GITHUB_ACTIONS"] != "true" && env["GITHUB_RUN_ID"] == "" {
		return Inputs{}
	}
	get := func(k string) string { return clip(env[k]) }
	server := strings.TrimSuffix(get("GITHUB_SERVER_URL"), "/")
	if server == "" {
		server = defaultGitHubHost
	}
	repo := get("GITHUB_REPOSITORY")
	in := Inputs{BuildType: GitHubBuildType}
	// GITHUB_WORKFLOW_REF is "owner/repo/.github/workflows/ci.yml@refs/heads/main": the
	// workflow that ran is the builder a verifier trusts.
	wfRef := get("GITHUB_WORKFLOW_REF")
	if wfRef != "" {
		in.BuilderID = server + "/" + wfRef
		if path, _, ok := strings.Cut(wfRef, "@"); ok {
			if i := strings.Index(path, githubWorkflowPath); i >= 0 {
				in.EntryPoint = path[i:]
			}
		}
	} else if repo != "" {
		in.BuilderID = server + "/" + repo + "/" + githubWorkflowPath
	}
	ref := get("GITHUB_REF")
	if repo != "" {
		in.SourceURI = "git+" + server + "/" + repo
		if ref != "" {
			in.SourceURI += "@" + ref
		}
	}
	if sha := get("GITHUB_SHA"); sha != "" {
		in.SourceDigest = map[string]string{"gitCommit": sha}
	}
	if run := get("GITHUB_RUN_ID"); run != "" && repo != "" {
		in.InvocationID = server + "/" + repo + "/actions/runs/" + run
		if a := get("GITHUB_RUN_ATTEMPT"); a != "" {
			in.InvocationID += "/attempts/" + a
		}
	}
	wf := map[string]any{}
	putIf(wf, "ref", ref)
	if repo != "" {
		wf["repository"] = server + "/" + repo
	}
	putIf(wf, "path", in.EntryPoint)
	if len(wf) > 0 {
		in.ExternalParameters = map[string]any{"workflow": wf}
	}
	gh := map[string]any{}
	for k, envName := range map[string]string{
		"event_name": "GITHUB_EVENT_NAME", "repository_id": "GITHUB_REPOSITORY_ID",
		"repository_owner_id": "GITHUB_REPOSITORY_OWNER_ID", "actor_id": "GITHUB_ACTOR_ID",
		"runner_environment": "RUNNER_ENVIRONMENT", "runner_os": "RUNNER_OS", "runner_arch": "RUNNER_ARCH",
		"runner_name": "RUNNER_NAME", "workflow_sha": "GITHUB_WORKFLOW_SHA",
	} {
		putIf(gh, k, get(envName))
	}
	if len(gh) > 0 {
		in.InternalParameters = map[string]any{"github": gh}
	}
	return in
}

// Merge returns explicit with every empty field taken from fallback.
func Merge(explicit, fallback Inputs) Inputs {
	out := explicit
	pick := func(a *string, b string) {
		if *a == "" {
			*a = b
		}
	}
	pick(&out.BuilderID, fallback.BuilderID)
	pick(&out.BuildType, fallback.BuildType)
	pick(&out.SourceURI, fallback.SourceURI)
	pick(&out.EntryPoint, fallback.EntryPoint)
	pick(&out.InvocationID, fallback.InvocationID)
	if len(out.SourceDigest) == 0 {
		out.SourceDigest = fallback.SourceDigest
	}
	if len(out.Materials) == 0 {
		out.Materials = fallback.Materials
	}
	if out.StartedOn.IsZero() {
		out.StartedOn = fallback.StartedOn
	}
	if out.FinishedOn.IsZero() {
		out.FinishedOn = fallback.FinishedOn
	}
	if out.ExternalParameters == nil {
		out.ExternalParameters = fallback.ExternalParameters
	}
	if out.InternalParameters == nil {
		out.InternalParameters = fallback.InternalParameters
	}
	return out
}

func (in *Inputs) check() error {
	if in.BuilderID == "" {
		return fmt.Errorf("provenance needs a builder id (--builder-id, or run inside GitHub Actions)")
	}
	if !in.StartedOn.IsZero() && !in.FinishedOn.IsZero() && in.FinishedOn.Before(in.StartedOn) {
		return fmt.Errorf("build finished (%s) before it started (%s)", stamp(in.FinishedOn), stamp(in.StartedOn))
	}
	if in.SourceURI == "" && len(in.SourceDigest) > 0 {
		return fmt.Errorf("a source digest needs a source URI (--source-uri)")
	}
	for _, m := range in.Materials {
		if m.URI == "" {
			return fmt.Errorf("a material has no URI")
		}
	}
	return nil
}

// dependencies is the source (if any) followed by the other materials.
func (in *Inputs) dependencies() []Material {
	out := []Material{}
	if in.SourceURI != "" {
		out = append(out, Material{URI: in.SourceURI, Digest: in.SourceDigest})
	}
	return append(out, in.Materials...)
}

// SLSAv1 returns a Statement v1 with a SLSA provenance v1 predicate.
func SLSAv1(subjects []Subject, in Inputs) ([]byte, error) {
	if err := in.check(); err != nil {
		return nil, err
	}
	buildType := orDefault(in.BuildType, DefaultBuildType)
	// SLSA v1 requires externalParameters, and verifiers (the in-toto attestation library
	// among them) reject an empty object: record what the user controlled.
	ext := copyMap(in.ExternalParameters)
	if buildType != GitHubBuildType {
		if _, ok := ext["entryPoint"]; !ok && in.EntryPoint != "" {
			ext["entryPoint"] = in.EntryPoint
		}
		if _, ok := ext["source"]; !ok && in.SourceURI != "" {
			ext["source"] = in.SourceURI
		}
	}
	if len(ext) == 0 {
		return nil, fmt.Errorf("SLSA provenance v1 needs external parameters: give --source-uri or --entry-point (or run in CI)")
	}
	def := map[string]any{"buildType": buildType, "externalParameters": ext}
	if in.InternalParameters != nil {
		def["internalParameters"] = in.InternalParameters
	}
	if deps := in.dependencies(); len(deps) > 0 {
		def["resolvedDependencies"] = deps
	}
	meta := map[string]any{}
	putIf(meta, "invocationId", in.InvocationID)
	putIf(meta, "startedOn", stamp(in.StartedOn))
	putIf(meta, "finishedOn", stamp(in.FinishedOn))
	run := map[string]any{"builder": map[string]any{"id": in.BuilderID}}
	if len(meta) > 0 {
		run["metadata"] = meta
	}
	return Statement(attest.PredicateSLSAProvenanceV1, subjects, map[string]any{"buildDefinition": def, "runDetails": run})
}

// SLSAv02 returns a Statement v1 with a SLSA provenance v0.2 predicate.
func SLSAv02(subjects []Subject, in Inputs) ([]byte, error) {
	if err := in.check(); err != nil {
		return nil, err
	}
	inv := map[string]any{}
	if in.SourceURI != "" {
		cs := map[string]any{"uri": in.SourceURI}
		if len(in.SourceDigest) > 0 {
			cs["digest"] = in.SourceDigest
		}
		putIf(cs, "entryPoint", in.EntryPoint)
		inv["configSource"] = cs
	}
	if in.ExternalParameters != nil {
		inv["parameters"] = in.ExternalParameters
	}
	if in.InternalParameters != nil {
		inv["environment"] = in.InternalParameters
	}
	meta := map[string]any{"reproducible": false,
		"completeness": map[string]any{"parameters": in.ExternalParameters != nil, "environment": false, "materials": false}}
	putIf(meta, "buildInvocationId", in.InvocationID)
	putIf(meta, "buildStartedOn", stamp(in.StartedOn))
	putIf(meta, "buildFinishedOn", stamp(in.FinishedOn))
	pred := map[string]any{
		"builder":   map[string]any{"id": in.BuilderID},
		"buildType": orDefault(in.BuildType, DefaultBuildType),
		"metadata":  meta,
	}
	if len(inv) > 0 {
		pred["invocation"] = inv
	}
	if deps := in.dependencies(); len(deps) > 0 {
		pred["materials"] = deps
	}
	return Statement(attest.PredicateSLSAProvenanceV02, subjects, pred)
}

// Statement wraps predicate (a Go value or json.RawMessage holding a JSON object) in an
// in-toto Statement v1 about subjects, and checks the result with attest.Parse.
func Statement(predicateType string, subjects []Subject, predicate any) ([]byte, error) {
	if predicateType == "" {
		return nil, fmt.Errorf("a Statement needs a predicate type")
	}
	if len(subjects) == 0 {
		return nil, fmt.Errorf("a Statement needs at least one subject")
	}
	for _, s := range subjects {
		if len(s.Digest) == 0 {
			return nil, fmt.Errorf("subject %q has no digest", s.Name)
		}
	}
	pred, err := json.Marshal(predicate)
	if err != nil {
		return nil, fmt.Errorf("encoding predicate: %w", err)
	}
	if len(pred) == 0 || pred[0] != '{' {
		return nil, fmt.Errorf("the predicate must be a JSON object")
	}
	out, err := json.Marshal(struct {
		Type          string          `json:"_type"`
		Subject       []Subject       `json:"subject"`
		PredicateType string          `json:"predicateType"`
		Predicate     json.RawMessage `json:"predicate"`
	}{attest.StatementV1, subjects, predicateType, pred})
	if err != nil {
		return nil, err
	}
	if _, err := attest.Parse(out); err != nil {
		return nil, fmt.Errorf("the generated Statement is invalid: %w", err)
	}
	return out, nil
}

// ImageSubject is the subject for an image: its reference without digest, and the digest.
func ImageSubject(name, digest string) (Subject, error) {
	alg, hex, ok := strings.Cut(digest, ":")
	if !ok || alg == "" || hex == "" {
		return Subject{}, fmt.Errorf("image digest %q is not of the form sha256:<hex>", digest)
	}
	return Subject{Name: name, Digest: map[string]string{alg: hex}}, nil
}

// ParseMaterial reads "URI@ALG:HEX" (the last "@" splits, so git+https://h/r@refs/x works
// only with a digest: "git+https://h/r@sha1:abc"). Without a digest the whole string is the URI.
func ParseMaterial(s string) (Material, error) {
	i := strings.LastIndex(s, "@")
	if i > 0 {
		if alg, hex, ok := strings.Cut(s[i+1:], ":"); ok && alg != "" && hex != "" && !strings.Contains(hex, "/") {
			return Material{URI: s[:i], Digest: map[string]string{alg: hex}}, nil
		}
	}
	if s == "" {
		return Material{}, fmt.Errorf("empty material")
	}
	return Material{URI: s}, nil
}

// ParseDigest reads "ALG:HEX" into a digest set.
func ParseDigest(s string) (map[string]string, error) {
	alg, hex, ok := strings.Cut(s, ":")
	if !ok || alg == "" || hex == "" {
		return nil, fmt.Errorf("digest %q is not of the form ALG:HEX (e.g. gitCommit:abc123 or sha256:...)", s)
	}
	return map[string]string{alg: hex}, nil
}

func stamp(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

func putIf(m map[string]any, k, v string) {
	if v != "" {
		m[k] = v
	}
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

func copyMap(m map[string]any) map[string]any {
	out := make(map[string]any, len(m)+2)
	for k, v := range m {
		out[k] = v
	}
	return out
}

// clip bounds an environment value; CI variables are short, a huge one is a mistake.
func clip(s string) string {
	if len(s) > maxEnvValueBytes {
		return s[:maxEnvValueBytes]
	}
	return s
}

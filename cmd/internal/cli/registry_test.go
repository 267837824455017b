package cli

import (
	"encoding/base64"
	"encoding/json"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"tollgate.dev/tollgate/cmd/internal/exit"
)

// loopbackRegistry serves go-containerregistry's registry on 127.0.0.1 and returns its
// host:port. DOCKER_CONFIG points at an empty directory so no real credentials are read.
func loopbackRegistry(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	t.Setenv("DOCKER_CONFIG", t.TempDir())
	return strings.TrimPrefix(srv.URL, "http://")
}

// pushRandom pushes a random single-platform image and returns its manifest digest.
func pushRandom(t *testing.T, ref string) string {
	t.Helper()
	img, err := random.Image(256, 1)
	if err != nil {
		t.Fatal(err)
	}
	tag, err := name.NewTag(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(tag, img); err != nil {
		t.Fatal(err)
	}
	d, _ := img.Digest()
	return d.String()
}

var githubEnv = []string{
	"GITHUB_ACTIONS=true", "GITHUB_SERVER_URL=https://github.com", "GITHUB_REPOSITORY=acme/app",
	"GITHUB_SHA=0123456789abcdef0123456789abcdef01234567", "GITHUB_REF=refs/heads/main",
	"GITHUB_RUN_ID=42", "GITHUB_RUN_ATTEMPT=1", "GITHUB_WORKFLOW_REF=acme/app/.github/workflows/ci.yml@refs/heads/main",
	"RUNNER_OS=Linux", "RUNNER_ARCH=X64", "RUNNER_ENVIRONMENT=github-hosted",
}

const imageLayoutYAML = `expires: 720h
steps:
  - name: package
    functionaries: [alice.pub]
    products: [CREATE image, DISALLOW *]
inspections:
  - image: {from: package}
`

func TestRegistryAttachFetchVerify(t *testing.T) {
	host := loopbackRegistry(t)
	t.Chdir(t.TempDir())
	ref := host + "/acme/app:v1"
	digest := pushRandom(t, ref)
	for _, k := range []string{"owner", "alice", "ci"} {
		must(t, "keygen", k)
	}
	write(t, "layout.yaml", imageLayoutYAML)
	must(t, "layout", "create", "--from", "layout.yaml", "--key", "owner", "--out", "root.layout")
	r := must(t, "run", "-n", "package", "-k", "alice", "--image-product", "image="+ref, "--insecure-registry", host, "--no-command", "-d", "links")
	if !strings.Contains(r.stderr, digest) {
		t.Errorf("run did not record %s: %s", digest, r.stderr)
	}
	if r := tgEnv(t, githubEnv, "attest", "--image", ref, "--predicate-type", "slsa-v1", "--key", "ci",
		"--insecure-registry", host, "--out", "prov.dsse.json"); r.code != 0 {
		t.Fatal(r)
	}
	checkProvenance(t, "prov.dsse.json", digest)
	// The attestation verifies offline, bound to the image, and not with another key.
	must(t, "verify", "--attestation", "prov.dsse.json", "--key", "ci.pub", "--predicate-type", "slsa-v1", "--image-digest", digest)
	if r := tg(t, "verify", "--attestation", "prov.dsse.json", "--key", "alice.pub"); r.code != 1 || !strings.Contains(r.stdout, "FAILED") {
		t.Errorf("wrong key: %s", r)
	}
	if r := tg(t, "verify", "--attestation", "prov.dsse.json", "--key", "ci.pub", "--predicate-type", "slsa-v0.2"); r.code != 1 {
		t.Errorf("wrong predicate type: %s", r)
	}
	if r := tg(t, "verify", "--attestation", "prov.dsse.json", "--key", "ci.pub", "--image-digest", "sha256:"+strings.Repeat("0", 64)); r.code != 1 || !strings.Contains(r.stdout, "binding_mismatch") {
		t.Errorf("other image: %s", r)
	}

	must(t, "attach", "--image", ref, "--link-dir", "links", "--attestation", "prov.dsse.json", "--insecure-registry", host)
	r = must(t, "fetch", "--image", ref, "--out", "fetched", "--insecure-registry", host)
	if !strings.Contains(r.stdout, "prov.dsse.json") || !strings.Contains(r.stdout, "package.") {
		t.Errorf("fetch listed: %s", r.stdout)
	}
	must(t, "verify", "-l", "root.layout", "-k", "owner.pub", "-d", "fetched", "--image-digest", digest, "--image-config-digest", "sha256:"+strings.Repeat("1", 64))

	writePolicyDir(t, "policy", host)
	r = must(t, "verify", "--image", ref, "--policy-dir", "policy", "--insecure-registry", host)
	t.Logf("online verify:\n%s", r.stdout)
	if !strings.Contains(r.stdout, "verified") && !strings.Contains(r.stdout, "allowed") {
		t.Errorf("online verify: %s", r.stdout)
	}
	r = must(t, "verify", "--image", ref, "--policy-dir", "policy", "--insecure-registry", host, "-o", "json")
	var rep onlineReport
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil || !rep.Verified || rep.Digest != digest {
		t.Errorf("json: %v %+v", err, rep)
	}

	// An image without evidence is denied, with the node's message.
	other := host + "/acme/app:unsigned"
	pushRandom(t, other)
	r = tg(t, "verify", "--image", other, "--policy-dir", "policy", "--insecure-registry", host)
	t.Logf("unsigned:\n%s", r.stdout)
	if r.code != 1 || !strings.Contains(r.stdout, "denied") {
		t.Errorf("unsigned image: %s", r)
	}
	// Allowed without verification (unmatched under `unmatched: allow`, or exempt) has its
	// own exit status: a CI gate testing for success cannot take it for verified.
	unmatchedRef := host + "/elsewhere/app:v1"
	pushRandom(t, unmatchedRef)
	write(t, filepath.Join("policy", "node.yaml"), "apiVersion: tollgate.dev/v1alpha1\nkind: NodeDefaults\nmetadata: {name: node}\nspec:\n  unmatched: allow\n  exemptions: {repositories: [\""+host+"/exempt/*\"]}\n")
	exemptRef := host + "/exempt/app:v1"
	pushRandom(t, exemptRef)
	for _, img := range []string{unmatchedRef, exemptRef} {
		if r := tg(t, "verify", "--image", img, "--policy-dir", "policy", "--insecure-registry", host); r.code != exit.Unverified {
			t.Errorf("%s allowed without verification: exit %d, want %d: %s", img, r.code, exit.Unverified, r)
		}
	}
	if r := tg(t, "verify", "--image", ref, "--policy-dir", "policy", "--insecure-registry", host); r.code != 0 {
		t.Errorf("verified image with the node defaults: %s", r)
	}
	// Plain HTTP needs --insecure-registry; the error says so.
	r = tg(t, "verify", "--image", ref, "--policy-dir", "policy")
	if r.code != 1 || !strings.Contains(r.stderr, "insecure") && !strings.Contains(r.stderr, "HTTP") {
		t.Errorf("without --insecure-registry: %s", r)
	}
	// Bad input is exit 2.
	for _, args := range [][]string{
		{"verify", "--image", ref},
		{"verify", "--image", ref, "--policy-dir", "nonexistent"},
		{"verify", "--image", ref, "--policy-dir", "policy", "--layout", "root.layout"},
		{"attach", "--image", ref},
		{"attach", "--image", ref, "--attestation", "root.layout"},
		{"fetch", "--image", ref},
		{"fetch", "--image", "bad ref!!", "--out", "x"},
		{"attach", "--image", "bad ref!!", "--link-dir", "links"},
		{"verify", "--image", "bad ref!!", "--policy-dir", "policy"},
		{"run", "-n", "s", "-k", "alice", "-x", "--image-product", "image=bad ref!!"},
		{"attest", "--image", ref + "@" + digest, "--key", "ci", "--predicate-type", "nope"},
		{"attest", "--image", "Not A Ref", "--key", "ci"},
		{"attest", "--image", host + "/acme/app@" + digest, "--key", "ci", "--predicate-type", "https://example.com/p"},
	} {
		if r := tg(t, args...); r.code != 2 {
			t.Errorf("%v: %s (want exit 2)", args, r)
		}
	}
}

func checkProvenance(t *testing.T, file, digest string) {
	t.Helper()
	var env struct {
		PayloadType string `json:"payloadType"`
		Payload     string `json:"payload"`
	}
	if err := json.Unmarshal([]byte(readString(t, file)), &env); err != nil {
		t.Fatal(err)
	}
	payload, _ := base64.StdEncoding.DecodeString(env.Payload)
	var st struct {
		Type          string `json:"_type"`
		PredicateType string `json:"predicateType"`
		Subject       []struct {
			Digest map[string]string `json:"digest"`
		} `json:"subject"`
		Predicate struct {
			RunDetails struct {
				Builder struct {
					ID string `json:"id"`
				} `json:"builder"`
				Metadata struct {
					InvocationID string `json:"invocationId"`
				} `json:"metadata"`
			} `json:"runDetails"`
		} `json:"predicate"`
	}
	if err := json.Unmarshal(payload, &st); err != nil {
		t.Fatal(err)
	}
	if st.Type != "https://in-toto.io/Statement/v1" || st.PredicateType != "https://slsa.dev/provenance/v1" ||
		"sha256:"+st.Subject[0].Digest["sha256"] != digest ||
		st.Predicate.RunDetails.Builder.ID != "https://github.com/acme/app/.github/workflows/ci.yml@refs/heads/main" ||
		st.Predicate.RunDetails.Metadata.InvocationID != "https://github.com/acme/app/actions/runs/42/attempts/1" {
		t.Errorf("statement: %s", payload)
	}
}

func writePolicyDir(t *testing.T, dir, host string) {
	t.Helper()
	for _, f := range []string{"owner.pub", "ci.pub"} {
		write(t, filepath.Join(dir, "keys", f), readString(t, f))
	}
	write(t, filepath.Join(dir, "layouts", "root.layout"), readString(t, "root.layout"))
	write(t, filepath.Join(dir, "app.yaml"), `apiVersion: tollgate.dev/v1alpha1
kind: ImagePolicy
metadata: {name: app}
spec:
  images: ["`+host+`/acme/app"]
  mode: enforce
  layouts:
    - layout: layouts/root.layout
      keys: [keys/owner.pub]
  attestations:
    - name: provenance
      predicateType: slsa-v1
      keys: [keys/ci.pub]
      conditions:
        - predicate.runDetails.builder.id.startsWith("https://github.com/acme/")
`)
	if _, err := os.Stat(filepath.Join(dir, "app.yaml")); err != nil {
		t.Fatal(err)
	}
}

// TestAttachKeepsSublayoutDirectories: link names are paths relative to --link-dir, so a
// sublayout's links come back from fetch in their directory; fetch writes only under --out.
func TestAttachKeepsSublayoutDirectories(t *testing.T) {
	host := loopbackRegistry(t)
	t.Chdir(t.TempDir())
	ref := host + "/acme/sub:v1"
	pushRandom(t, ref)
	must(t, "keygen", "alice")
	must(t, "run", "-n", "inner", "-k", "alice", "-x", "-d", "links/outer.0123abcd", "--dsse")
	must(t, "run", "-n", "outer", "-k", "alice", "-x", "-d", "links")
	r := must(t, "attach", "--image", ref, "--link-dir", "links", "--insecure-registry", host)
	if !strings.Contains(r.stderr, "application/vnd.dsse.envelope.v1+json") || !strings.Contains(r.stderr, "application/vnd.in-toto.link.v1+json") {
		t.Errorf("media types: %s", r.stderr)
	}
	must(t, "fetch", "--image", ref, "--out", "fetched", "--insecure-registry", host)
	if m, _ := filepath.Glob("fetched/outer.0123abcd/inner.*.link"); len(m) != 1 {
		t.Errorf("sublayout link not fetched into its directory: %v", m)
	}
	if m, _ := filepath.Glob("fetched/outer.*.link"); len(m) != 1 {
		t.Errorf("outer link: %v", m)
	}
	if r := tg(t, "attach", "--image", ref, "--link-dir", "fetched/none", "--insecure-registry", host); r.code != 2 {
		t.Errorf("missing link dir: %s", r)
	}
}

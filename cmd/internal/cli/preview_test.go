package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// previewPolicies writes two policy directories: "old" audits host/acme/* and enforces
// host/legacy/*; "new" enforces host/acme/* and exempts host/legacy/*. Both want SLSA v1
// provenance signed by ci.pub and allow unmatched images.
func previewPolicies(t *testing.T, host string) {
	t.Helper()
	policyFile := func(name, repo, mode string) string {
		return `apiVersion: tollgate.dev/v1alpha1
kind: ImagePolicy
metadata: {name: ` + name + `}
spec:
  images: ["` + host + `/` + repo + `/*"]
  mode: ` + mode + `
  attestations:
    - name: provenance
      predicateType: slsa-v1
      keys: [keys/ci.pub]
`
	}
	for _, dir := range []string{"old", "new"} {
		write(t, filepath.Join(dir, "keys", "ci.pub"), readString(t, "ci.pub"))
	}
	write(t, filepath.Join("old", "app.yaml"), policyFile("app", "acme", "audit"))
	write(t, filepath.Join("old", "legacy.yaml"), policyFile("legacy", "legacy", "enforce"))
	write(t, filepath.Join("old", "node.yaml"), "apiVersion: tollgate.dev/v1alpha1\nkind: NodeDefaults\nmetadata: {name: node}\nspec:\n  unmatched: allow\n")
	write(t, filepath.Join("new", "app.yaml"), policyFile("app", "acme", "enforce"))
	write(t, filepath.Join("new", "node.yaml"), "apiVersion: tollgate.dev/v1alpha1\nkind: NodeDefaults\nmetadata: {name: node}\nspec:\n  unmatched: allow\n  exemptions: {repositories: [\""+host+"/legacy/*\"]}\n")
}

// previewJSON is the shape `tollgate preview -o json` promises CI.
type previewJSON struct {
	PolicyDir string `json:"policyDir"`
	Compare   string `json:"compare"`
	Summary   struct {
		Images, NewlyDenied, NewlyAllowed, Changed, Unchanged, Errors int
	} `json:"summary"`
	Images []struct {
		Image        string   `json:"image"`
		Repository   string   `json:"repository"`
		ConfigDigest string   `json:"configDigest"`
		Digests      []string `json:"digests"`
		Change       string   `json:"change"`
		Error        string   `json:"error"`
		Before       *struct {
			Allowed bool   `json:"allowed"`
			Outcome string `json:"outcome"`
			Policy  string `json:"policy"`
		} `json:"before"`
		After *struct {
			Allowed bool   `json:"allowed"`
			Outcome string `json:"outcome"`
			Message string `json:"message"`
			Reasons []struct {
				Kind string `json:"kind"`
			} `json:"reasons"`
		} `json:"after"`
	} `json:"images"`
}

func TestPreviewImages(t *testing.T) {
	host := loopbackRegistry(t)
	t.Chdir(t.TempDir())
	must(t, "keygen", "ci")
	signed, unsigned, legacy, other := host+"/acme/app:v1", host+"/acme/app:unsigned", host+"/legacy/tool:v1", host+"/other/x:v1"
	pushRandom(t, signed)
	unsignedDigest := pushRandom(t, unsigned)
	pushRandom(t, legacy)
	pushRandom(t, other)
	if r := tgEnv(t, githubEnv, "attest", "--image", signed, "--predicate-type", "slsa-v1", "--key", "ci",
		"--insecure-registry", host, "--out", "prov.dsse.json"); r.code != 0 {
		t.Fatal(r)
	}
	must(t, "attach", "--image", signed, "--attestation", "prov.dsse.json", "--insecure-registry", host)
	previewPolicies(t, host)
	write(t, "images.txt", "# what runs in production\n\n"+signed+"\n  "+unsigned+"  \n"+legacy+"\n"+other+"\n"+signed+"\n")

	// Switching acme to enforce denies the unsigned image; legacy's exemption allows its
	// unsigned tool; the signed and the unmatched images are unchanged.
	r := tg(t, "preview", "--policy-dir", "new", "--compare", "old", "--images", "images.txt", "--insecure-registry", host)
	t.Logf("preview:\n%s", r.stdout)
	if r.code != 1 {
		t.Fatalf("a newly denied image: exit %d, want 1: %s", r.code, r)
	}
	for _, want := range []string{
		"NEWLY DENIED " + unsigned, "before: allowed, audit_fail", "after:  denied (policy app, enforce)",
		"NEWLY ALLOWED " + legacy, "after:  allowed, exempt",
		"new compared with old: 4 image(s): 1 newly denied, 1 newly allowed, 0 changed, 2 unchanged, 0 not decided",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("text output lacks %q", want)
		}
	}
	if strings.Contains(r.stdout, "NEWLY DENIED "+signed) || strings.Contains(r.stdout, other) {
		t.Errorf("unchanged images listed as changes:\n%s", r.stdout)
	}

	var rep previewJSON
	r = tg(t, "preview", "--policy-dir", "new", "--compare", "old", "--images", "images.txt", "--insecure-registry", host, "-o", "json")
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil || r.code != 1 {
		t.Fatalf("json: %v: %s", err, r)
	}
	s := rep.Summary
	if rep.PolicyDir != "new" || rep.Compare != "old" || s.Images != 4 || s.NewlyDenied != 1 || s.NewlyAllowed != 1 || s.Unchanged != 2 || len(rep.Images) != 4 {
		t.Errorf("json summary: %+v (%d images)", rep, len(rep.Images))
	}
	for _, img := range rep.Images {
		if img.Change != "newly-denied" {
			continue
		}
		if img.Repository != host+"/acme/app" || len(img.Digests) != 1 || img.Digests[0] != unsignedDigest ||
			!strings.HasPrefix(img.ConfigDigest, "sha256:") || img.Before == nil || !img.Before.Allowed ||
			img.Before.Outcome != "audit_fail" || img.After == nil || img.After.Allowed ||
			len(img.After.Reasons) == 0 || img.After.Reasons[0].Kind != "missing_evidence" {
			t.Errorf("newly denied image in json: %+v before %+v after %+v", img, img.Before, img.After)
		}
	}

	// Without --compare the baseline is no policy: the new policies deny the unsigned image.
	r = tg(t, "preview", "--policy-dir", "new", "--images", "images.txt", "--insecure-registry", host)
	if r.code != 1 || !strings.Contains(r.stdout, "NEWLY DENIED "+unsigned) || strings.Contains(r.stdout, "before:") ||
		!strings.Contains(r.stdout, "compared with no policy: 4 image(s): 1 newly denied, 0 newly allowed, 0 changed, 3 unchanged") {
		t.Errorf("without --compare: %s", r)
	}
	// Nothing newly denied: exit 0.
	write(t, "ok.txt", signed+"\n"+legacy+"\n")
	if r := tg(t, "preview", "--policy-dir", "new", "--compare", "old", "--images", "ok.txt", "--insecure-registry", host); r.code != 0 {
		t.Errorf("no image newly denied: %s", r)
	}
	// Evidence in the node evidence directory is read first, as the node reads it: with
	// the unsigned image's provenance there, it verifies under the new policies.
	if r := tgEnv(t, githubEnv, "attest", "--image", unsigned, "--predicate-type", "slsa-v1", "--key", "ci",
		"--insecure-registry", host, "--out", "local.dsse.json"); r.code != 0 {
		t.Fatal(r)
	}
	write(t, filepath.Join("evidence", strings.Replace(unsignedDigest, ":", "/", 1), "prov.dsse.json"), readString(t, "local.dsse.json"))
	write(t, "unsigned.txt", unsigned+"\n")
	r = tg(t, "preview", "--policy-dir", "new", "--compare", "old", "--images", "unsigned.txt", "--evidence-dir", "evidence", "--insecure-registry", host)
	if r.code != 0 || !strings.Contains(r.stdout, "1 image(s): 0 newly denied, 0 newly allowed, 0 changed, 1 unchanged") {
		t.Errorf("with the evidence in --evidence-dir: %s", r)
	}
	r = tg(t, "preview", "--policy-dir", "new", "--images", "unsigned.txt", "--evidence-dir", "evidence", "-o", "json", "--insecure-registry", host)
	rep = previewJSON{}
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil || r.code != 0 || len(rep.Images) != 1 ||
		rep.Images[0].After == nil || rep.Images[0].After.Outcome != "verified" || rep.Images[0].Before != nil {
		t.Errorf("with the evidence in --evidence-dir, no --compare: %v %s", err, r)
	}
}

// An image the registry cannot resolve is "not decided" and fails the preview (exit 1):
// a preview that could not look cannot say nothing changes.
func TestPreviewRegistryDown(t *testing.T) {
	host := loopbackRegistry(t)
	t.Chdir(t.TempDir())
	must(t, "keygen", "ci")
	previewPolicies(t, host)
	write(t, "images.txt", "127.0.0.1:1/acme/app:v1\n")
	r := tg(t, "preview", "--policy-dir", "new", "--images", "images.txt", "--insecure-registry", "127.0.0.1:1")
	if r.code != 1 || !strings.Contains(r.stdout, "NOT DECIDED 127.0.0.1:1/acme/app:v1") || !strings.Contains(r.stdout, "error: resolving") ||
		!strings.Contains(r.stdout, "1 not decided") {
		t.Errorf("registry down: %s", r)
	}
}

func TestPreviewUsage(t *testing.T) {
	host := loopbackRegistry(t)
	t.Chdir(t.TempDir())
	must(t, "keygen", "ci")
	previewPolicies(t, host)
	write(t, "good.txt", host+"/acme/app:v1\n")
	write(t, "spaces.txt", "# ok\n"+host+"/acme/app:v1\n\nregistry.example/a b\n")
	write(t, "bad.txt", host+"/acme/app:v1\nNot/A/Ref!\n")
	write(t, "empty.txt", "# nothing\n\n")
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"--images", "good.txt"}, "--policy-dir"},
		{[]string{"--policy-dir", "new"}, "exactly one of --images"},
		{[]string{"--policy-dir", "new", "--images", "good.txt", "--containerd", "/nonexistent.sock"}, "exactly one of --images"},
		{[]string{"--policy-dir", "new", "--images", "good.txt", "--offline"}, "--offline works with --containerd only"},
		{[]string{"--policy-dir", "new", "--images", "good.txt", "--namespace", "x"}, "--namespace needs --containerd"},
		{[]string{"--policy-dir", "new", "--images", "good.txt", "-o", "yaml"}, "--output"},
		{[]string{"--policy-dir", "new", "--images", "good.txt", "--at", "yesterday"}, "--at"},
		{[]string{"--policy-dir", "nonexistent", "--images", "good.txt"}, "policy directory"},
		{[]string{"--policy-dir", "new", "--compare", "good.txt", "--images", "good.txt"}, "not a directory"},
		{[]string{"--policy-dir", "new", "--images", "missing.txt"}, "--images"},
		{[]string{"--policy-dir", "new", "--images", "spaces.txt"}, "line 4"},
		{[]string{"--policy-dir", "new", "--images", "bad.txt"}, `line 2: "Not/A/Ref!" is not an image reference`},
		{[]string{"--policy-dir", "new", "--images", "empty.txt"}, "no image references"},
	} {
		r := tg(t, append([]string{"preview"}, tt.args...)...)
		if r.code != 2 || !strings.Contains(r.stderr, tt.want) {
			t.Errorf("%v: want exit 2 naming %q: %s", tt.args, tt.want, r)
		}
	}
	// Standard input: a bad line is named as in a file.
	var out, errb bytes.Buffer
	code := Run(context.Background(), []string{"preview", "--policy-dir", "new", "--images", "-"},
		strings.NewReader("# from stdin\nregistry.example/a b\n"), &out, &errb, nil)
	if code != 2 || !strings.Contains(errb.String(), "--images -: line 2") {
		t.Errorf("stdin: exit %d: %s", code, errb.String())
	}
	// A broken new policy is an input error too.
	write(t, filepath.Join("new", "broken.yaml"), "apiVersion: tollgate.dev/v1alpha1\nkind: ImagePolicy\nspec: [\n")
	if r := tg(t, "preview", "--policy-dir", "new", "--images", "good.txt"); r.code != 2 {
		t.Errorf("broken policy: %s", r)
	}
	if err := os.Remove(filepath.Join("new", "broken.yaml")); err != nil {
		t.Fatal(err)
	}
}

func TestParseImageList(t *testing.T) {
	refs, err := parseImageList([]byte("# c\r\n\r\n  registry.example/a:1  \r\nregistry.example/b@sha256:" + strings.Repeat("a", 64) + "\n#x y\n"))
	if err != nil || len(refs) != 2 || refs[0] != "registry.example/a:1" {
		t.Fatalf("refs %q, err %v", refs, err)
	}
	long := strings.Repeat("registry.example/a:1\n", maxImageListRefs+1)
	if _, err := parseImageList([]byte(long)); err == nil || !strings.Contains(err.Error(), "more than") {
		t.Errorf("too many references: %v", err)
	}
	if _, err := parseImageList(make([]byte, maxImageListBytes+1)); err == nil || !strings.Contains(err.Error(), "over the limit") {
		t.Errorf("oversized: %v", err)
	}
}

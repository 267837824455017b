package policy

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"tollgate.dev/tollgate/policy/reason"
	"tollgate.dev/tollgate/test/toolcheck"
)

// The keyless requirement end to end through Load and Evaluate, on a real public-good
// bundle (a DSSE Statement about a conda package, signed in GitHub Actions).
const (
	condaSAN     = "https://github.com/prefix-dev/sigstore-example/.github/workflows/action.yaml@refs/heads/main"
	condaDigest  = "sha256:54303491a8418fbed24344b513546182c29b43bf282ceb433af65e2299f9271f"
	condaPredURI = "https://schemas.conda.org/attestations-publish-1.schema.json"
)

func keylessPolicy(identities string, extra string) string {
	return `apiVersion: tollgate.dev/v1alpha1
kind: ImagePolicy
metadata: {name: conda}
spec:
  images: ["registry.example/conda"]
  attestations:
  - name: publish
    predicateType: ` + condaPredURI + `
    identities:
` + identities + extra
}

func TestKeylessRequirement(t *testing.T) {
	shared := toolcheck.SharedDir(t, "fixtures/sigstore")
	root, err := os.ReadFile(filepath.Join(shared, "roots", "public-good.trusted_root.json"))
	if err != nil {
		t.Fatal(err)
	}
	bundle, err := os.ReadFile(filepath.Join(shared, "real", "conda-attestation.sigstore.json"))
	if err != nil {
		t.Fatal(err)
	}
	rootDoc := "apiVersion: tollgate.dev/v1alpha1\nkind: TrustedRoot\nmetadata: {name: public-good}\nspec:\n  files: [roots/public-good.json]\n"
	good := "    - {issuer: https://token.actions.githubusercontent.com, subject: \"" + condaSAN + "\"}\n"
	other := "    - {issuer: https://token.actions.githubusercontent.com, subject: \"https://github.com/acme/app/.github/workflows/release.yml@refs/heads/main\"}\n"
	unanchored := "    - {issuer: https://token.actions.githubusercontent.com, subjectRegexp: \"https://github.com/prefix-dev/sigstore-example\"}\n"
	regexp := "    - {issuer: https://token.actions.githubusercontent.com, subjectRegexp: \"https://github.com/prefix-dev/sigstore-example/.*\"}\n"
	claim := "    - issuer: https://token.actions.githubusercontent.com\n      subject: \"" + condaSAN + "\"\n      claims: {sourceRepositoryRef: refs/heads/release}\n"
	gh := "    - github: {repo: prefix-dev/sigstore-example, denySelfHostedRunners: true}\n"
	// A second requirement of the same type trusts another identity only: the bundle that
	// satisfies the first must not satisfy it.
	second := "  - name: release\n    predicateType: " + condaPredURI + "\n    identities:\n" + other
	for _, tc := range []struct {
		name, policy string
		evidence     bool
		allowed      bool
		kind         reason.Kind
		msg          string
	}{
		{"exact identity", keylessPolicy(good, ""), true, true, "", ""},
		{"anchored regexp", keylessPolicy(regexp, ""), true, true, "", ""},
		{"github shorthand", keylessPolicy(gh, ""), true, true, "", ""},
		{"other identity", keylessPolicy(other, ""), true, false, reason.BadSignature,
			`signed by subject "` + condaSAN + `" from issuer "https://token.actions.githubusercontent.com", not subject "https://github.com/acme/app`},
		{"unanchored regexp does not match a superstring", keylessPolicy(unanchored, ""), true, false, reason.BadSignature, "matching /"},
		{"wrong claim", keylessPolicy(claim, ""), true, false, reason.ConditionFailed, `sourceRepositoryRef "refs/heads/main", not "refs/heads/release"`},
		{"identity of one requirement never satisfies another", keylessPolicy(good, second), true, false, reason.BadSignature, `attestation "release"`},
		{"two identities required, one signed", keylessPolicy(good+other, "    threshold: 2\n"), true, false, reason.Threshold, "1 distinct trusted identities, 2 required"},
		{"no bundle", keylessPolicy(good, ""), false, false, reason.MissingEvidence, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			set, err := Load(map[string][]byte{"roots.yaml": []byte(rootDoc), "roots/public-good.json": root, "conda.yaml": []byte(tc.policy)}, 1)
			if err != nil {
				t.Fatal(err)
			}
			ev := Evidence{Files: map[string][]byte{}}
			if tc.evidence {
				ev.Files["conda.sigstore.json"] = bundle
			}
			d := set.Evaluate(Request{Image: Image{Ref: "registry.example/conda:1", Repository: "registry.example/conda", Digests: []string{condaDigest}}}, ev, time.Now())
			if d.Allowed != tc.allowed {
				t.Fatalf("allowed = %v, want %v: %s", d.Allowed, tc.allowed, d.Message)
			}
			if tc.allowed {
				return
			}
			if len(d.Reasons) == 0 || d.Reasons[0].Kind != tc.kind || !strings.Contains(d.Message, tc.msg) {
				t.Fatalf("got %v: %s; want %s containing %q", d.Reasons, d.Message, tc.kind, tc.msg)
			}
		})
	}
	// A requirement that trusts only GitHub's instance refuses a public-good bundle.
	ghRoot, err := os.ReadFile(filepath.Join(shared, "roots", "github.trusted_root.json"))
	if err != nil {
		t.Fatal(err)
	}
	ghDoc := "apiVersion: tollgate.dev/v1alpha1\nkind: TrustedRoot\nmetadata: {name: github}\nspec:\n  files: [roots/github.json]\n"
	set, err := Load(map[string][]byte{"roots.yaml": []byte(rootDoc + "---\n" + ghDoc), "roots/public-good.json": root, "roots/github.json": ghRoot,
		"conda.yaml": []byte(keylessPolicy(good, "    trustedRoots: [github]\n"))}, 1)
	if err != nil {
		t.Fatal(err)
	}
	d := set.Evaluate(Request{Image: Image{Repository: "registry.example/conda", Digests: []string{condaDigest}}},
		Evidence{Files: map[string][]byte{"b.json": bundle}}, time.Now())
	if d.Allowed || !strings.Contains(d.Message, `trusted root "public-good", which this requirement does not trust`) {
		t.Fatalf("bundle from an instance the requirement does not trust: %s", d.Message)
	}
	// Binding unchanged: the same bundle for an image whose digests it does not name.
	set, err = Load(map[string][]byte{"roots.yaml": []byte(rootDoc), "roots/public-good.json": root, "conda.yaml": []byte(keylessPolicy(good, ""))}, 1)
	if err != nil {
		t.Fatal(err)
	}
	d = set.Evaluate(Request{Image: Image{Repository: "registry.example/conda", Digests: []string{"sha256:" + strings.Repeat("1", 64)}}},
		Evidence{Files: map[string][]byte{"b.json": bundle}}, time.Now())
	if d.Allowed || d.Reasons[0].Kind != reason.BindingMismatch {
		t.Fatalf("unbound image: %s", d.Message)
	}
	// The bundle's cryptography was checked once for this Set; concurrent decisions reuse it.
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			if d := set.Evaluate(Request{Image: Image{Repository: "registry.example/conda", Digests: []string{condaDigest}}},
				Evidence{Files: map[string][]byte{"b.json": bundle}}, time.Now()); !d.Allowed {
				t.Errorf("denied: %s", d.Message)
			}
		})
	}
	wg.Wait()
	if n := len(set.policies[0].attests[0].trust.done); n != 1 {
		t.Fatalf("%d bundles remembered, want 1", n)
	}
	if got := set.TrustedRoots().Instances(); len(got) != 1 || got[0].Name != "public-good" {
		t.Fatalf("TrustedRoots = %+v", got)
	}
	// The public-good root's newest CA has no end in the root; its certificates do.
	exp := set.TrustedRootExpiries(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	if len(exp) != 2 || exp[0].Instance != "public-good" || exp[0].Authority != "ca" || exp[1].Authority != "tsa" || exp[0].Seconds <= 0 {
		t.Fatalf("TrustedRootExpiries = %+v", exp)
	}
}

func TestKeylessLoadErrors(t *testing.T) {
	id := "    - {issuer: https://i.example, subject: a@example.com}\n"
	rootDoc := func(spec string) string {
		return "apiVersion: tollgate.dev/v1alpha1\nkind: TrustedRoot\nmetadata: {name: r}\nspec:\n" + spec
	}
	for name, tc := range map[string]struct {
		files map[string]string
		msg   string
	}{
		"identities without a trusted root": {map[string]string{"p.yaml": keylessPolicy(id, "")}, "no TrustedRoot document is loaded"},
		"unknown trusted root":              {map[string]string{"p.yaml": keylessPolicy(id, "    trustedRoots: [nope]\n"), "r.yaml": rootDoc("  trustedRoot: '{}'\n")}, `no TrustedRoot named "nope"`},
		"root file outside the directory":   {map[string]string{"r.yaml": rootDoc("  files: [../etc/root.json]\n")}, "leaves the policy directory"},
		"root file missing":                 {map[string]string{"r.yaml": rootDoc("  files: [root.json]\n")}, "not in the policy directory"},
		"root not a trusted root":           {map[string]string{"r.yaml": rootDoc("  trustedRoot: '[1]'\n")}, "not a JSON object"},
		"both inline and files":             {map[string]string{"r.yaml": rootDoc("  trustedRoot: '{}'\n  files: [x]\n")}, "one of them"},
		"bad requirements":                  {map[string]string{"r.yaml": rootDoc("  trustedRoot: '{}'\n  requirements: {signedCertificateTimestamps: 1}\n")}, "trusted time of signing"},
		"identity without issuer":           {map[string]string{"p.yaml": keylessPolicy("    - {subject: a@example.com}\n", "")}, "issuer or issuerRegexp is required"},
		"bad regexp":                        {map[string]string{"p.yaml": keylessPolicy("    - {issuer: i, subjectRegexp: '('}\n", "")}, "regular expression"},
		"unknown claim":                     {map[string]string{"p.yaml": keylessPolicy("    - {issuer: i, subject: s, claims: {colour: red}}\n", "")}, "unknown certificate claim"},
		"threshold over identities":         {map[string]string{"p.yaml": keylessPolicy(id, "    threshold: 2\n")}, "threshold 2"},
	} {
		t.Run(name, func(t *testing.T) {
			files := map[string][]byte{}
			for k, v := range tc.files {
				files[k] = []byte(v)
			}
			_, err := Load(files, 1)
			if err == nil || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("Load = %v, want an error containing %q", err, tc.msg)
			}
		})
	}
}

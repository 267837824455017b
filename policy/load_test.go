package policy

import (
	"strings"
	"testing"
	"time"

	"tollgate.dev/tollgate/policy/keys"
)

const apiPolicy = `apiVersion: tollgate.dev/v1alpha1
kind: ImagePolicy
metadata:
  name: api
spec:
  images: ["ghcr.io/acme/*"]
  layouts:
    - layout: layouts/api.layout
      keys: [keys/owner.pub]
      parameters: {REPO: acme}
  attestations:
    - name: provenance
      predicateType: slsa-v1
      keys: [keys/ci.pub]
      conditions:
        - predicate.buildDefinition.buildType == "https://tollgate.dev/build/v1"
`

const zeroDigest = "sha256:0000000000000000000000000000000000000000000000000000000000000000"

const defaultsDoc = `apiVersion: tollgate.dev/v1alpha1
kind: NodeDefaults
metadata:
  name: node
spec:
  unmatched: allow
  exemptions:
    digests: ["` + zeroDigest + `"]
    repositories: ["registry.k8s.io/pause"]
  breakGlass:
    enabled: true
    until: "2026-06-02T00:00:00Z"
    reason: "INC-42"
`

// baseDir is a valid policy directory: one ImagePolicy with a layout and a Statement
// requirement, keys, and a README that is ignored.
func baseDir(t testing.TB) dir {
	d := dir{}
	owner := d.key(t, "owner")
	build := d.key(t, "build")
	d.key(t, "ci")
	d["layouts/api.layout"] = layout(t, testNow.Add(24*time.Hour),
		[]step{{name: "build", signers: signers(build), products: [][]string{{"ALLOW", "*"}}}}, nil, owner)
	d["README.md"] = []byte("# node policy\n")
	d["api.yaml"] = []byte(apiPolicy)
	return d
}

func signers(s ...*keys.Signer) []*keys.Signer { return s }

func TestLoadGood(t *testing.T) {
	d := baseDir(t)
	d["defaults.yml"] = []byte(defaultsDoc)
	d["more.yaml"] = []byte(`# two documents in one file
apiVersion: tollgate.dev/v1alpha1
kind: ImagePolicy
metadata: {name: web}
spec:
  images: [nginx, "docker.io/acme/web-?"]
  mode: audit
  attestations:
    - {name: prov, predicateType: "https://slsa.dev/provenance/v0.2", keys: [keys/ci.pub, ./keys/ci.pub]}
---
# only a comment
---
apiVersion: tollgate.dev/v1alpha1
kind: ImagePolicy
metadata:
  name: links
  labels: {team: platform}
spec:
  images: ["*.example.com/*/*"]
  attestations:
    - {name: l, predicateType: link, keys: [keys/build.pub, keys/ci.pub], threshold: 2}
`)
	d["..data/ignored.yaml"] = []byte("not: a policy")
	d[".hidden.yaml"] = []byte("neither")
	s, err := Load(d, 7)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if s.Generation != 7 {
		t.Errorf("Generation = %d", s.Generation)
	}
	if got := strings.Join(s.Policies(), ","); got != "api,links,web" {
		t.Errorf("Policies = %s", got)
	}
	exp := s.LayoutExpiries()
	if len(exp) != 1 || !exp["api"].Equal(testNow.Add(24*time.Hour)) {
		t.Errorf("LayoutExpiries = %v", exp)
	}
	on, until, why := s.BreakGlass()
	if !on || until.IsZero() || why != "INC-42" {
		t.Errorf("BreakGlass = %v %v %q", on, until, why)
	}
	web := s.policies[2]
	if web.mode != Audit || web.attests[0].threshold != 1 || len(web.attests[0].keys) != 1 {
		t.Errorf("web policy = %+v (duplicate key files must count once)", web)
	}
	api := s.policies[0]
	if api.mode != Enforce || api.layouts[0].threshold != 1 || api.layouts[0].params["REPO"] != "acme" {
		t.Errorf("api policy defaults wrong: %+v", api.layouts[0])
	}
}

func TestLoadEmptyDir(t *testing.T) {
	s, err := Load(map[string][]byte{"README": []byte("x")}, 1)
	if err != nil {
		t.Fatal(err)
	}
	d := s.Evaluate(testRequest(), Evidence{}, testNow)
	if d.Allowed || d.Outcome != Unmatched {
		t.Fatalf("empty policy dir must deny by default: %+v", d)
	}
}

func TestLoadBad(t *testing.T) {
	base := baseDir(t)
	owner := signer(t, "owner")
	build := signer(t, "build")
	ci := signer(t, "ci")
	policy := func(spec string) []byte {
		return []byte("apiVersion: tollgate.dev/v1alpha1\nkind: ImagePolicy\nmetadata: {name: p}\nspec:\n" + spec)
	}
	att := "  attestations: [{name: a, predicateType: slsa-v1, keys: [keys/ci.pub]}]\n"
	tests := []struct {
		name  string
		edit  func(d dir)
		wants []string
	}{
		{"unknown top-level field", func(d dir) { d["api.yaml"] = []byte(apiPolicy + "extra: 1\n") }, []string{"api.yaml", `unknown field "extra"`}},
		{"unknown spec field", func(d dir) {
			d["api.yaml"] = []byte(strings.Replace(apiPolicy, "  mode", "  modes", 1) + "")
			d["x.yaml"] = policy("  images: [a/b]\n  imagez: [c]\n" + att)
		}, []string{"x.yaml", `unknown field "imagez"`}},
		{"unknown layout field", func(d dir) {
			d["x.yaml"] = policy("  images: [a/b]\n  layouts: [{layout: layouts/api.layout, keys: [keys/owner.pub], treshold: 1}]\n")
		}, []string{"x.yaml", `unknown field "treshold"`}},
		{"duplicate field", func(d dir) { d["x.yaml"] = policy("  images: [a/b]\n  images: [c/d]\n" + att) }, []string{"x.yaml", "images"}},
		{"other apiVersion", func(d dir) { d["k.yaml"] = []byte("apiVersion: v1\nkind: ConfigMap\n") }, []string{"k.yaml", `apiVersion "v1"`}},
		{"no apiVersion", func(d dir) { d["k.yaml"] = []byte("foo: bar\n") }, []string{"k.yaml", "apiVersion"}},
		{"not yaml mapping", func(d dir) { d["k.yaml"] = []byte("- a\n- b\n") }, []string{"k.yaml", "not a YAML mapping"}},
		{"bad yaml", func(d dir) { d["k.yaml"] = []byte("a: [\n") }, []string{"k.yaml"}},
		{"unknown kind", func(d dir) { d["k.yaml"] = []byte("apiVersion: tollgate.dev/v1alpha1\nkind: Foo\n") }, []string{"k.yaml", `kind "Foo"`}},
		{"missing name", func(d dir) {
			d["x.yaml"] = []byte("apiVersion: tollgate.dev/v1alpha1\nkind: ImagePolicy\nspec:\n  images: [a/b]\n" + att)
		}, []string{"x.yaml", "metadata.name"}},
		{"bad name", func(d dir) {
			d["x.yaml"] = []byte("apiVersion: tollgate.dev/v1alpha1\nkind: ImagePolicy\nmetadata: {name: Bad_Name}\nspec:\n  images: [a/b]\n" + att)
		}, []string{"metadata.name", "Bad_Name"}},
		{"duplicate name", func(d dir) { d["x.yaml"] = []byte(apiPolicy) }, []string{"x.yaml", `"api"`, "already used in api.yaml"}},
		{"no images", func(d dir) { d["x.yaml"] = policy(att) }, []string{"spec.images"}},
		{"glob with **", func(d dir) { d["x.yaml"] = policy("  images: [\"ghcr.io/**\"]\n" + att) }, []string{`"**"`}},
		{"glob with tag", func(d dir) { d["x.yaml"] = policy("  images: [\"ghcr.io/a:v1\"]\n" + att) }, []string{"tag"}},
		{"glob with digest", func(d dir) { d["x.yaml"] = policy("  images: [\"ghcr.io/a@sha256:00\"]\n" + att) }, []string{"digest"}},
		{"bad mode", func(d dir) { d["x.yaml"] = policy("  images: [a/b]\n  mode: warn\n" + att) }, []string{`spec.mode "warn"`}},
		{"no requirements", func(d dir) { d["x.yaml"] = policy("  images: [a/b]\n") }, []string{"at least one of layouts, attestations, signatures or verificationSummaries"}},
		{"missing layout file", func(d dir) {
			d["x.yaml"] = policy("  images: [a/b]\n  layouts: [{layout: layouts/nope.layout, keys: [keys/owner.pub]}]\n")
		}, []string{"x.yaml", "spec.layouts[0]", `"layouts/nope.layout" is not in the policy directory`}},
		{"layout path escapes", func(d dir) {
			d["x.yaml"] = policy("  images: [a/b]\n  layouts: [{layout: ../etc/passwd, keys: [keys/owner.pub]}]\n")
		}, []string{"leaves the policy directory"}},
		{"absolute layout path", func(d dir) {
			d["x.yaml"] = policy("  images: [a/b]\n  layouts: [{layout: /etc/x, keys: [keys/owner.pub]}]\n")
		}, []string{"relative path"}},
		{"missing key file", func(d dir) {
			d["x.yaml"] = policy("  images: [a/b]\n  attestations: [{name: a, predicateType: slsa-v1, keys: [keys/nope.pub]}]\n")
		}, []string{`"keys/nope.pub" is not in the policy directory`}},
		{"bad key file", func(d dir) {
			d["keys/bad.pub"] = []byte("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")
			d["x.yaml"] = policy("  images: [a/b]\n  attestations: [{name: a, predicateType: slsa-v1, keys: [keys/bad.pub]}]\n")
		}, []string{`key "keys/bad.pub"`}},
		{"no keys", func(d dir) {
			d["x.yaml"] = policy("  images: [a/b]\n  attestations: [{name: a, predicateType: slsa-v1}]\n")
		}, []string{"keys must name at least one"}},
		{"threshold above keys", func(d dir) {
			d["x.yaml"] = policy("  images: [a/b]\n  attestations: [{name: a, predicateType: slsa-v1, keys: [keys/ci.pub, keys/ci.pub], threshold: 2}]\n")
		}, []string{"threshold 2", "1 distinct keys"}},
		{"layout threshold above keys", func(d dir) {
			d["x.yaml"] = policy("  images: [a/b]\n  layouts: [{layout: layouts/api.layout, keys: [keys/owner.pub], threshold: 2}]\n")
		}, []string{"threshold 2"}},
		{"negative threshold", func(d dir) {
			d["x.yaml"] = policy("  images: [a/b]\n  attestations: [{name: a, predicateType: slsa-v1, keys: [keys/ci.pub], threshold: -1}]\n")
		}, []string{"threshold -1"}},
		{"attestation without name", func(d dir) {
			d["x.yaml"] = policy("  images: [a/b]\n  attestations: [{predicateType: slsa-v1, keys: [keys/ci.pub]}]\n")
		}, []string{"name is required"}},
		{"duplicate attestation name", func(d dir) {
			d["x.yaml"] = policy("  images: [a/b]\n  attestations: [{name: a, predicateType: slsa-v1, keys: [keys/ci.pub]}, {name: a, predicateType: link, keys: [keys/ci.pub]}]\n")
		}, []string{`name "a" is used twice`}},
		{"bad predicate type", func(d dir) {
			d["x.yaml"] = policy("  images: [a/b]\n  attestations: [{name: a, predicateType: slsa, keys: [keys/ci.pub]}]\n")
		}, []string{`predicateType "slsa"`}},
		{"missing predicate type", func(d dir) {
			d["x.yaml"] = policy("  images: [a/b]\n  attestations: [{name: a, keys: [keys/ci.pub]}]\n")
		}, []string{"predicateType is required"}},
		{"CEL syntax error", func(d dir) {
			d["x.yaml"] = policy("  images: [a/b]\n  attestations: [{name: a, predicateType: slsa-v1, keys: [keys/ci.pub], conditions: [\"predicate.x ==\"]}]\n")
		}, []string{"x.yaml", `ImagePolicy "p"`, `condition "predicate.x =="`}},
		{"CEL unknown variable", func(d dir) {
			d["x.yaml"] = policy("  images: [a/b]\n  attestations: [{name: a, predicateType: slsa-v1, keys: [keys/ci.pub], conditions: [\"pred.x == 1\"]}]\n")
		}, []string{`condition "pred.x == 1"`, "undeclared reference"}},
		{"CEL not bool", func(d dir) {
			d["x.yaml"] = policy("  images: [a/b]\n  attestations: [{name: a, predicateType: slsa-v1, keys: [keys/ci.pub], conditions: [\"'abc'\"]}]\n")
		}, []string{"want bool"}},
		{"layout signed by another key", func(d dir) {
			d["layouts/api.layout"] = layout(t, testNow.Add(time.Hour), []step{{name: "build", signers: signers(build)}}, nil, ci)
		}, []string{"api.yaml", `layout "layouts/api.layout"`, "signature"}},
		{"layout tampered", func(d dir) {
			d["layouts/api.layout"] = []byte(strings.Replace(string(d["layouts/api.layout"]), `"build"`, `"bulid"`, 1))
		}, []string{`layout "layouts/api.layout"`, "signature"}},
		{"layout not JSON", func(d dir) { d["layouts/api.layout"] = []byte("{") }, []string{`layout "layouts/api.layout"`}},
		{"layout is a link", func(d dir) {
			d["layouts/api.layout"] = link(t, "build", nil, nil, owner)
		}, []string{`layout "layouts/api.layout"`}},
		{"layout with a command inspection", func(d dir) {
			d["layouts/api.layout"] = layout(t, testNow.Add(time.Hour), []step{{name: "build", signers: signers(build)}},
				[]map[string]any{{"_type": "inspection", "name": "untar", "run": []string{"tar", "xf", "x.tgz"}, "expected_materials": [][]string{}, "expected_products": [][]string{}}}, owner)
		}, []string{`inspection "untar" would run a command`}},
		{"layout parameter without value", func(d dir) {
			d["layouts/api.layout"] = layout(t, testNow.Add(time.Hour), []step{{name: "build", signers: signers(build), products: [][]string{{"CREATE", "{ARTIFACT}"}}}}, nil, owner)
			d["api.yaml"] = []byte(strings.Replace(apiPolicy, "parameters: {REPO: acme}", "parameters: {OTHER: x}", 1))
		}, []string{`layout "layouts/api.layout"`, "{ARTIFACT} has no value"}},
		{"layout parameter bad name", func(d dir) {
			d["api.yaml"] = []byte(strings.Replace(apiPolicy, "parameters: {REPO: acme}", `parameters: {"bad name": x}`, 1))
		}, []string{`"bad name" is invalid`}},
		{"two NodeDefaults", func(d dir) { d["a.yaml"] = []byte(defaultsDoc); d["b.yaml"] = []byte(defaultsDoc) }, []string{"b.yaml", "only one is allowed"}},
		{"bad unmatched", func(d dir) {
			d["a.yaml"] = []byte(strings.Replace(defaultsDoc, "unmatched: allow", "unmatched: maybe", 1))
		}, []string{`spec.unmatched "maybe"`}},
		{"bad exemption digest", func(d dir) { d["a.yaml"] = []byte(strings.Replace(defaultsDoc, zeroDigest, "sha256:abc", 1)) }, []string{`"sha256:abc" is not a digest`}},
		{"bad exemption glob", func(d dir) {
			d["a.yaml"] = []byte(strings.Replace(defaultsDoc, "registry.k8s.io/pause", "registry.k8s.io/**", 1))
		}, []string{"spec.exemptions.repositories"}},
		{"break-glass without until", func(d dir) {
			d["a.yaml"] = []byte(strings.Replace(defaultsDoc, `    until: "2026-06-02T00:00:00Z"`+"\n", "", 1))
		}, []string{"until is required"}},
		{"break-glass bad until", func(d dir) {
			d["a.yaml"] = []byte(strings.Replace(defaultsDoc, "2026-06-02T00:00:00Z", "tomorrow", 1))
		}, []string{`until "tomorrow"`}},
		{"unknown NodeDefaults field", func(d dir) {
			d["a.yaml"] = []byte(strings.Replace(defaultsDoc, "  unmatched: allow", "  unmatched: allow\n  fallback: deny", 1))
		}, []string{"a.yaml", `unknown field "fallback"`}},
		{"oversized file", func(d dir) { d["big.yaml"] = []byte("# " + strings.Repeat("x", maxPolicyFileBytes)) }, []string{"big.yaml", "over the limit"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := base.clone()
			tt.edit(d)
			s, err := Load(d, 1)
			if err == nil {
				t.Fatalf("Load succeeded (%v), want error", s.Policies())
			}
			t.Log(err)
			for _, w := range tt.wants {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not mention %q:\n%v", w, err)
				}
			}
		})
	}
}

// An expired layout loads: the node must keep deciding (deny, with the reason) and the
// expiry metric must show it.
func TestLoadExpiredLayout(t *testing.T) {
	d := baseDir(t)
	d["layouts/api.layout"] = layout(t, testNow.Add(-time.Hour), []step{{name: "build", signers: signers(signer(t, "build"))}}, nil, signer(t, "owner"))
	s := mustLoad(t, d)
	if !s.LayoutExpiries()["api"].Equal(testNow.Add(-time.Hour)) {
		t.Fatalf("expiry %v", s.LayoutExpiries())
	}
}

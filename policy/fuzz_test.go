package policy

import (
	"strings"
	"testing"
	"time"

	"tollgate.dev/tollgate/policy/reason"
)

func FuzzLoad(f *testing.F) {
	base := baseDir(f)
	f.Add([]byte(apiPolicy))
	f.Add([]byte(defaultsDoc))
	f.Add([]byte(apiPolicy + "---\n" + defaultsDoc))
	f.Add([]byte("apiVersion: tollgate.dev/v1alpha1\nkind: ImagePolicy\nmetadata: {name: x}\nspec:\n  images: [\"a/*\"]\n  attestations: [{name: a, predicateType: link, keys: [keys/ci.pub], conditions: [\"predicate.name == 'build'\"]}]\n"))
	f.Add([]byte("apiVersion: tollgate.dev/v1alpha1\nkind: NodeDefaults\nspec: {breakGlass: {enabled: true, until: \"2026-01-01T00:00:00Z\"}}\n"))
	f.Add([]byte("apiVersion: tollgate.dev/v1alpha1\nkind: TrustedRoot\nmetadata: {name: r}\nspec: {trustedRoot: \"{}\", requirements: {signedTimestamps: 1}}\n---\napiVersion: tollgate.dev/v1alpha1\nkind: ImagePolicy\nmetadata: {name: x}\nspec:\n  images: [\"a/*\"]\n  attestations: [{name: a, predicateType: link, identities: [{issuer: i, subjectRegexp: \"s.*\", claims: {buildTrigger: push}}, {github: {owner: o}}]}]\n"))
	f.Add([]byte("apiVersion: tollgate.dev/v1alpha1\nkind: NodeDefaults\nspec:\n  revoked: {digests: [\"" + configDigest + "\", " + zeroDigest + "], reason: \"CVE-2026-1234\"}\n  exemptions: {repositories: [\"ghcr.io/acme/*\"]}\n"))
	f.Add([]byte(apiPolicy + "---\napiVersion: tollgate.dev/v1alpha1\nkind: NodeDefaults\nspec: {revoked: {digests: [" + strings.ToUpper(manifestDigest) + "]}, breakGlass: {enabled: true, until: \"2026-06-02T00:00:00Z\"}}\n"))
	f.Add([]byte("apiVersion: tollgate.dev/v1alpha1\nkind: ImagePolicy\nmetadata: {name: x}\nspec:\n  images: [\"a/*\"]\n  verificationSummaries: [{name: v, verifier: \"https://v\", keys: [keys/ci.pub], policyDigests: [\"" + configDigest + "\"], maxAge: 24h, levels: [SLSA_BUILD_LEVEL_2, ACME_X]}]\n"))
	f.Add([]byte("a: [\n"))
	f.Add([]byte("- 1\n"))
	f.Fuzz(func(t *testing.T, doc []byte) {
		files := base.clone()
		files["api.yaml"] = doc
		s, err := Load(files, 1)
		if err != nil {
			if s != nil {
				t.Fatal("Load returned a Set with an error")
			}
			return
		}
		// Whatever loaded must decide without panicking.
		d := s.Evaluate(testRequest(), Evidence{}, testNow)
		if d.Outcome == "" || d.Message == "" {
			t.Fatalf("incomplete decision %+v", d)
		}
		// Nothing turns a revocation into an allowance.
		if len(d.Reasons) > 0 && d.Reasons[0].Kind == reason.Revoked && (d.Allowed || d.Outcome != Denied) {
			t.Fatalf("revoked image: %+v", d)
		}
		_ = s.LayoutExpiries()
	})
}

// FuzzEvaluateEvidence feeds arbitrary evidence files to a full policy.
func FuzzEvaluateEvidence(f *testing.F) {
	d, ev := scenario(f, testNow.Add(time.Hour))
	s := mustLoad(f, d)
	for _, v := range ev {
		f.Add(v)
	}
	f.Add([]byte("{}\n{}"))
	f.Fuzz(func(t *testing.T, data []byte) {
		files := map[string][]byte{}
		for k, v := range ev {
			files[k] = v
		}
		files["provenance.intoto.json"] = data
		dec := s.Evaluate(testRequest(), Evidence{Files: files}, testNow)
		if dec.Message == "" {
			t.Fatal("decision without message")
		}
	})
}

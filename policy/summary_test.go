package policy

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"tollgate.dev/tollgate/policy/keys"
	"tollgate.dev/tollgate/policy/reason"
	"tollgate.dev/tollgate/policy/vsa"
)

const (
	testVerifier  = "https://ci.example/verifier"
	testPolicyURI = "https://git.example/acme/policies"
)

var (
	testPolicyDigest  = digestOf("the policy set")
	otherPolicyDigest = digestOf("another policy set")
)

const summaryPolicy = `apiVersion: tollgate.dev/v1alpha1
kind: ImagePolicy
metadata:
  name: api
spec:
  images: ["ghcr.io/acme/*"]
  verificationSummaries:
    - name: release-gate
      verifier: https://ci.example/verifier
      keys: [keys/verifier.pub, keys/verifier2.pub]
      threshold: THRESHOLD
      policyDigests: [POLICYDIGEST]
      policyURI: https://git.example/acme/policies
      maxAge: 24h
      levels: [SLSA_BUILD_LEVEL_2]
`

func summaryDir(t testing.TB, threshold string) dir {
	d := dir{}
	d.key(t, "verifier")
	d.key(t, "verifier2")
	p := strings.NewReplacer("THRESHOLD", threshold, "POLICYDIGEST", testPolicyDigest).Replace(summaryPolicy)
	d["api.yaml"] = []byte(p)
	return d
}

// goodSummary is what the trusted verifier says about the image, an hour ago.
func goodSummary() vsa.Summary {
	alg, hx, _ := cut(testPolicyDigest)
	return vsa.Summary{VerifierID: testVerifier, TimeVerified: testNow.Add(-time.Hour), ResourceURI: testRepo + "@" + manifestDigest,
		PolicyURI: testPolicyURI, PolicyDigest: map[string]string{alg: hx}, Result: vsa.Passed, Levels: []string{"SLSA_BUILD_LEVEL_3"}}
}

// summaryStatement signs s as a VSA Statement about subjects, built by the producer's code.
func summaryStatement(t testing.TB, predicateType string, s vsa.Summary, subjects []string, signers ...*keys.Signer) []byte {
	t.Helper()
	pred, err := s.Predicate(nil)
	if err != nil {
		t.Fatal(err)
	}
	return statement(t, predicateType, subjects, json.RawMessage(pred), signers...)
}

func TestVerificationSummaryRequirement(t *testing.T) {
	ver, ver2, other := signer(t, "verifier"), signer(t, "verifier2"), signer(t, "other")
	with := func(f func(*vsa.Summary)) vsa.Summary { s := goodSummary(); f(&s); return s }
	img := []string{manifestDigest}
	cases := []struct {
		name      string
		threshold string
		files     map[string][]byte
		kind      reason.Kind // "": allowed
		parts     []string
	}{
		{"trusted verifier, named policy digest, young, level 3 meets 2", "1",
			map[string][]byte{"v.json": summaryStatement(t, vsa.PredicateType, goodSummary(), img, ver)}, "", nil},
		{"two verifiers' keys, threshold 2", "2",
			map[string][]byte{"v.json": summaryStatement(t, vsa.PredicateType, goodSummary(), img, ver, ver2)}, "", nil},
		{"a VSA by another verifier beside a good one", "1", map[string][]byte{
			"a.json": summaryStatement(t, vsa.PredicateType, with(func(s *vsa.Summary) { s.VerifierID = "https://evil.example" }), img, other),
			"b.json": summaryStatement(t, vsa.PredicateType, goodSummary(), img, ver)}, "", nil},
		{"signed by another verifier's key", "1",
			map[string][]byte{"v.json": summaryStatement(t, vsa.PredicateType, goodSummary(), img, other)},
			reason.BadSignature, []string{`evidence "v.json" set aside unread`, "not signed by a key the policy authorizes"}},
		{"below threshold", "2",
			map[string][]byte{"v.json": summaryStatement(t, vsa.PredicateType, goodSummary(), img, ver)},
			reason.Threshold, []string{`verification summary "release-gate"`, "2 required"}},
		{"other verifier id, trusted key", "1",
			map[string][]byte{"v.json": summaryStatement(t, vsa.PredicateType, with(func(s *vsa.Summary) { s.VerifierID = "https://other.example/verifier" }), img, ver)},
			reason.ConditionFailed, []string{`by verifier "https://other.example/verifier"`, `verifier.id is "https://other.example/verifier", want "https://ci.example/verifier"`}},
		{"other policy digest", "1",
			map[string][]byte{"v.json": summaryStatement(t, vsa.PredicateType, with(func(s *vsa.Summary) {
				alg, hx, _ := cut(otherPolicyDigest)
				s.PolicyDigest = map[string]string{alg: hx}
			}), img, ver)},
			reason.ConditionFailed, []string{"policy digest " + otherPolicyDigest, "want " + testPolicyDigest}},
		{"the policy URI matches but there is no digest", "1",
			map[string][]byte{"v.json": summaryStatement(t, vsa.PredicateType, with(func(s *vsa.Summary) { s.PolicyDigest = nil }), img, ver)},
			reason.ConditionFailed, []string{`policy "https://git.example/acme/policies" is named by URI only, with no sha256 digest; want policy digest ` + testPolicyDigest, "a matching policy URI is not enough"}},
		{"right digest, other policy URI", "1",
			map[string][]byte{"v.json": summaryStatement(t, vsa.PredicateType, with(func(s *vsa.Summary) { s.PolicyURI = "https://elsewhere.example/p" }), img, ver)},
			reason.ConditionFailed, []string{`policy.uri is "https://elsewhere.example/p", want "https://git.example/acme/policies"`}},
		{"too old", "1",
			map[string][]byte{"v.json": summaryStatement(t, vsa.PredicateType, with(func(s *vsa.Summary) { s.TimeVerified = testNow.Add(-25 * time.Hour) }), img, ver)},
			reason.Expired, []string{"verified at 2026-05-31T11:00:00Z, 25h0m0s ago, over the maximum age of 24h0m0s"}},
		{"in the future", "1",
			map[string][]byte{"v.json": summaryStatement(t, vsa.PredicateType, with(func(s *vsa.Summary) { s.TimeVerified = testNow.Add(time.Hour) }), img, ver)},
			reason.ConditionFailed, []string{"timeVerified 2026-06-01T13:00:00Z is 1h0m0s in the future"}},
		{"level too low", "1",
			map[string][]byte{"v.json": summaryStatement(t, vsa.PredicateType, with(func(s *vsa.Summary) { s.Levels = []string{"SLSA_BUILD_LEVEL_1"} }), img, ver)},
			reason.ConditionFailed, []string{"verifiedLevels [SLSA_BUILD_LEVEL_1] do not meet [SLSA_BUILD_LEVEL_2] (missing SLSA_BUILD_LEVEL_2)"}},
		{"level of another track", "1",
			map[string][]byte{"v.json": summaryStatement(t, vsa.PredicateType, with(func(s *vsa.Summary) { s.Levels = []string{"SLSA_SOURCE_LEVEL_3"} }), img, ver)},
			reason.ConditionFailed, []string{"missing SLSA_BUILD_LEVEL_2"}},
		{"no levels", "1",
			map[string][]byte{"v.json": summaryStatement(t, vsa.PredicateType, with(func(s *vsa.Summary) { s.Levels = nil }), img, ver)},
			reason.ConditionFailed, []string{"verifiedLevels [] do not meet"}},
		{"result FAILED", "1",
			map[string][]byte{"v.json": summaryStatement(t, vsa.PredicateType, with(func(s *vsa.Summary) { s.Result = vsa.Failed; s.Levels = []string{"FAILED"} }), img, ver)},
			reason.ConditionFailed, []string{`verifier "https://ci.example/verifier" recorded verificationResult FAILED, not PASSED`}},
		{"subject is another image", "1",
			map[string][]byte{"v.json": summaryStatement(t, vsa.PredicateType, goodSummary(), []string{otherDigest}, ver)},
			reason.BindingMismatch, []string{"names " + otherDigest + ", not the image"}},
		{"resource URI pinned to another digest", "1",
			map[string][]byte{"v.json": summaryStatement(t, vsa.PredicateType, with(func(s *vsa.Summary) { s.ResourceURI = testRepo + "@" + otherDigest }), img, ver)},
			reason.BindingMismatch, []string{"resourceUri", "names " + otherDigest + ", not the image"}},
		{"resource URI not pinned", "1",
			map[string][]byte{"v.json": summaryStatement(t, vsa.PredicateType, with(func(s *vsa.Summary) { s.ResourceURI = testRepo + ":v1" }), img, ver)},
			reason.BindingMismatch, []string{"is not pinned by a digest"}},
		{"a VSA under another predicate type", "1",
			map[string][]byte{"v.json": summaryStatement(t, "https://slsa.dev/provenance/v1", goodSummary(), img, ver)},
			reason.MissingEvidence, []string{"no in-toto evidence found for the image"}},
		{"provenance by the verifier's key is no VSA", "1",
			map[string][]byte{"p.json": statement(t, "https://slsa.dev/provenance/v1", img, slsaV1(buildType, "b"), ver)},
			reason.MissingEvidence, []string{"no in-toto evidence found for the image"}},
		{"no evidence", "1", map[string][]byte{}, reason.MissingEvidence, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := evaluate(t, summaryDir(t, c.threshold), c.files)
			if c.kind == "" {
				wantDecision(t, d, true, Verified, "")
				return
			}
			wantDecision(t, d, false, Denied, c.kind, c.parts...)
		})
	}
}

// An accepted VSA bounds the decision: it stops being young enough at timeVerified+maxAge.
func TestVerificationSummaryBoundsTheDecision(t *testing.T) {
	ver := signer(t, "verifier")
	d := evaluate(t, summaryDir(t, "1"), map[string][]byte{"v.json": summaryStatement(t, vsa.PredicateType, goodSummary(), []string{manifestDigest}, ver)})
	wantDecision(t, d, true, Verified, "")
	if want := goodSummary().TimeVerified.Add(24 * time.Hour); !d.ValidUntil.Equal(want) {
		t.Fatalf("ValidUntil %v, want %v (timeVerified + maxAge)", d.ValidUntil, want)
	}
	later := mustLoad(t, summaryDir(t, "1")).Evaluate(testRequest(), Evidence{Files: map[string][]byte{
		"v.json": summaryStatement(t, vsa.PredicateType, goodSummary(), []string{manifestDigest}, ver)}}, d.ValidUntil.Add(time.Second))
	wantDecision(t, later, false, Denied, reason.Expired)
}

// A VSA never satisfies another requirement: an attestation requirement for the
// provenance, signed by the same key, is not met by the verifier's summary.
func TestVerificationSummarySatisfiesNothingElse(t *testing.T) {
	ver := signer(t, "verifier")
	d := summaryDir(t, "1")
	d["api.yaml"] = []byte(string(d["api.yaml"]) + `  attestations:
    - name: provenance
      predicateType: slsa-v1
      keys: [keys/verifier.pub]
`)
	dec := evaluate(t, d, map[string][]byte{"v.json": summaryStatement(t, vsa.PredicateType, goodSummary(), []string{manifestDigest}, ver)})
	wantDecision(t, dec, false, Denied, reason.MissingEvidence, `attestation "provenance": no statement of type https://slsa.dev/provenance/v1`)
	if len(dec.Reasons) != 1 {
		t.Fatalf("reasons %v: only the attestation should fail", dec.Reasons)
	}
}

func TestVerificationSummaryLoadErrors(t *testing.T) {
	base := strings.NewReplacer("THRESHOLD", "1", "POLICYDIGEST", testPolicyDigest).Replace(summaryPolicy)
	cases := []struct{ name, from, to, want string }{
		{"no policy digests", "      policyDigests: [" + testPolicyDigest + "]\n", "", "policyDigests must name at least one policy digest"},
		{"a policy digest that is not one", testPolicyDigest, "sha256:abc", `policyDigests[0]: "sha256:abc" is not a digest`},
		{"no max age", "      maxAge: 24h\n", "", "maxAge is required"},
		{"max age not a duration", "maxAge: 24h", "maxAge: 1d", `maxAge "1d" must be a duration`},
		{"max age too long", "maxAge: 24h", "maxAge: 10000h", "must be a duration between"},
		{"no verifier", "      verifier: https://ci.example/verifier\n", "", "verifier \"\" must be the verifier id"},
		{"level reserved", "SLSA_BUILD_LEVEL_2", "SLSA_BUILDLEVEL", "neither SLSA_<TRACK>_LEVEL_<n> nor a custom property"},
		{"threshold over the keys", "threshold: 1", "threshold: 3", "threshold 3 must be between 1 and the 2"},
		{"a VSA as a plain attestation", "  verificationSummaries:", "  attestations:\n    - name: x\n      predicateType: https://slsa.dev/verification_summary/v1\n      keys: [keys/verifier.pub]\n  verificationSummaries:",
			"require it under spec.verificationSummaries"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if !strings.Contains(base, c.from) {
				t.Fatalf("fixture has no %q", c.from)
			}
			d := summaryDir(t, "1")
			d["api.yaml"] = []byte(strings.Replace(base, c.from, c.to, 1))
			_, err := Load(d, 1)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Load error %v, want %q", err, c.want)
			}
		})
	}
}

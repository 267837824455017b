package policy

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/sigstore/sigstore-go/pkg/testing/ca"

	"tollgate.dev/tollgate/policy/cosign"
	"tollgate.dev/tollgate/policy/reason"
	"tollgate.dev/tollgate/policy/vsa"
)

// A VSA signed keyless (a cosign v2 .att layer from a Sigstore made in the test) meets a
// verificationSummaries requirement whose identities name that verifier, and only those:
// the verifier's workflow is the verifier.
func TestKeylessVerificationSummary(t *testing.T) {
	vs, err := ca.NewVirtualSigstore()
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	s := goodSummary()
	s.TimeVerified = now.Add(-time.Minute)
	pred, err := s.Predicate(nil)
	if err != nil {
		t.Fatal(err)
	}
	st, err := json.Marshal(map[string]any{"_type": "https://in-toto.io/Statement/v1", "predicateType": vsa.PredicateType, "predicate": json.RawMessage(pred),
		"subject": []any{map[string]any{"name": testRepo, "digest": map[string]string{"sha256": strings.TrimPrefix(manifestDigest, "sha256:")}}}})
	if err != nil {
		t.Fatal(err)
	}
	ent, err := vs.Attest(releaseSAN, ghIssuer, st)
	if err != nil {
		t.Fatal(err)
	}
	sc, err := ent.SignatureContent()
	if err != nil {
		t.Fatal(err)
	}
	env, err := json.Marshal(sc.EnvelopeContent().RawEnvelope())
	if err != nil {
		t.Fatal(err)
	}
	layer, err := cosign.MarshalLayer(cosign.MediaTypeDSSE, cosignKeyless(t, vs, ent, nil), env)
	if err != nil {
		t.Fatal(err)
	}
	spec := func(san string) string {
		return "  verificationSummaries:\n    - name: ci-gate\n      verifier: " + testVerifier + "\n      policyDigests: [" + testPolicyDigest + "]\n      maxAge: 1h\n" +
			"      identities:\n        - {issuer: \"" + ghIssuer + "\", subject: \"" + san + "\"}\n"
	}
	ev := Evidence{Files: map[string][]byte{"v.cosign.json": layer}}
	d := mustLoad(t, keylessDir(t, vs, spec(releaseSAN))).Evaluate(testRequest(), ev, now)
	wantDecision(t, d, true, Verified, "")
	d = mustLoad(t, keylessDir(t, vs, spec(otherSAN))).Evaluate(testRequest(), ev, now)
	wantDecision(t, d, false, Denied, "*", `verification summary "ci-gate"`, releaseSAN, otherSAN)
	// The right signer, but the verification is too old by now.
	d = mustLoad(t, keylessDir(t, vs, spec(releaseSAN))).Evaluate(testRequest(), ev, now.Add(2*time.Hour))
	wantDecision(t, d, false, Denied, reason.Expired, `verification summary "ci-gate"`, "over the maximum age of 1h0m0s")
}

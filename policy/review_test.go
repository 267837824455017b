package policy

import (
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"tollgate.dev/tollgate/policy/attest"
	"tollgate.dev/tollgate/policy/envelope"
)

// A registry host is a DNS name: "GHCR.IO/acme/api" pulls the same content as
// "ghcr.io/acme/api" (and the reference grammar allows upper case in the host). A policy
// for ghcr.io/acme/* must cover it; otherwise, with unmatched: allow, writing the host in
// upper case skips verification.
func TestReviewRegistryHostCase(t *testing.T) {
	d, _ := scenario(t, testNow.AddDate(1, 0, 0))
	d["defaults.yaml"] = []byte(strings.Replace(strings.Replace(defaultsDoc, `repositories: ["registry.k8s.io/pause"]`, `repositories: ["registry.k8s.io/pause", "docker.io/library/busybox"]`, 1), "enabled: true", "enabled: false", 1))
	s := mustLoad(t, d)
	for _, repo := range []string{"GHCR.IO/acme/api", "Ghcr.Io/acme/api", "ghcr.IO/acme/api", "GHCR.IO/acme/api"} {
		req := testRequest()
		req.Image.Repository, req.Image.Ref = repo, repo+":v1"
		dec := s.Evaluate(req, Evidence{}, testNow)
		if dec.Allowed || dec.Outcome != Denied {
			t.Errorf("%s with no evidence: allowed=%v outcome=%s (%s), want denied by policy \"api\"", repo, dec.Allowed, dec.Outcome, dec.Message)
		}
	}
	// The same canonical form on the exemption side: a Docker Hub host in upper case.
	req := testRequest()
	req.Image.Repository, req.Image.Ref = "DOCKER.IO/library/busybox", "DOCKER.IO/library/busybox:1"
	if dec := s.Evaluate(req, Evidence{}, testNow); dec.Outcome != Exempt {
		t.Errorf("DOCKER.IO/library/busybox: outcome %s, want exempt like docker.io/library/busybox", dec.Outcome)
	}
}

// floodStatements returns n distinct Statements bound to the image, each carrying
// envelope.MaxSignatures signatures by no trusted key and without keyids, so that each
// signature must be tried against every key of the requirement.
func floodStatements(t *testing.T, n int) map[string][]byte {
	t.Helper()
	ev := map[string][]byte{}
	for i := 0; i < n; i++ {
		payload, err := json.Marshal(map[string]any{"_type": attest.StatementV1, "predicateType": attest.PredicateSLSAProvenanceV1,
			"subject": []any{map[string]any{"name": fmt.Sprint(i), "digest": map[string]string{"sha256": manifestDigest[7:]}}}, "predicate": map[string]any{}})
		if err != nil {
			t.Fatal(err)
		}
		var sigs []map[string]string
		for j := 0; j < envelope.MaxSignatures; j++ {
			s := sha512.Sum512([]byte(fmt.Sprint(i, j)))
			s[63] &= 0x0f // a canonical scalar: ed25519 does the full verification
			sigs = append(sigs, map[string]string{"keyid": "", "sig": base64.StdEncoding.EncodeToString(s[:])})
		}
		b, err := json.Marshal(map[string]any{"payloadType": envelope.PayloadTypeInToto, "payload": base64.StdEncoding.EncodeToString(payload), "signatures": sigs})
		if err != nil {
			t.Fatal(err)
		}
		ev[fmt.Sprintf("a%04d.intoto.json", i)] = b
	}
	return ev
}

// Evidence is untrusted: someone who can attach referrers to an image must not be able to
// make one decision cost minutes of CPU. 1024 files of distinct Statements with 64
// unverifiable signatures each cost 65,536 signature checks per key (seconds with one
// ed25519 key, minutes with 32 keys); the checks one decision spends are bounded (an
// envelope is admitted on at most maxAdmitSignatures of its signatures, each tried against
// the policy's 4 keys without a keyid), and running out denies.
func TestReviewSignatureCheckBudget(t *testing.T) {
	d, good := scenario(t, testNow.AddDate(1, 0, 0))
	perFile := maxAdmitSignatures * 4 // ci, and the layout's build, test and push
	n := maxSignatureChecks/perFile + 1
	ev := floodStatements(t, n)
	for k, v := range good {
		ev["z"+k] = v // sorts after the flood
	}
	dec := mustLoad(t, d).Evaluate(testRequest(), Evidence{Files: ev}, testNow)
	if dec.Allowed {
		t.Fatalf("allowed after %d signature checks, over the budget of %d: %s", n*perFile, maxSignatureChecks, dec.Message)
	}
	if !strings.Contains(dec.Message, "signature checks") {
		t.Errorf("message does not say the signature-check budget ran out: %s", dec.Message)
	}
	// Within the budget, the good Statement still verifies after the bogus ones.
	ev = floodStatements(t, 8)
	for k, v := range good {
		ev["z"+k] = v
	}
	if dec := mustLoad(t, d).Evaluate(testRequest(), Evidence{Files: ev}, testNow); !dec.Allowed {
		t.Fatalf("denied within the budget: %s", dec.Message)
	}
}

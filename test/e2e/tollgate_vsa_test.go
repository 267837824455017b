//go:build e2e

package e2e

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"tollgate.dev/tollgate/test/tools/testimage"
)

const (
	vsaVerifierID = "https://ci.e2e.tollgate.dev/verifier"
	vsaPolicyURI  = "https://git.e2e.tollgate.dev/policies"
)

// TestTollgateVSA runs the verification summary scenario (issue 15) on real containerd
// with its own tollgated, set up as in TestTollgate plus one ImagePolicy that requires of
// e2e/vsa images only a SLSA VSA: from the CI verifier's key, naming the digest of the
// CI's policy directory. The CI side is the real CLI against the loopback registry:
// `tollgate verify --image --policy-dir --vsa-out`, then `tollgate attach`.
func TestTollgateVSA(t *testing.T) {
	start := time.Now()
	env := Start(t, WithRequiredPlugin())
	g := newGate(t, env)
	for _, k := range []string{"verifier", "other-verifier"} {
		g.tollgate(t, "keygen", filepath.Join(g.keysDir, k))
	}
	// The CI verifies e2e/vsa images against its own policy directory: provenance by ci.
	ciPolicy := filepath.Join(g.workDir, "ci-policy")
	copyFile(t, filepath.Join(g.keysDir, "ci.pub"), filepath.Join(ciPolicy, "ci.pub"))
	writeFile(t, filepath.Join(ciPolicy, "vsa.yaml"), fmt.Sprintf(`apiVersion: tollgate.dev/v1alpha1
kind: ImagePolicy
metadata:
  name: ci
spec:
  images: ["%s/e2e/vsa"]
  attestations:
    - name: provenance
      predicateType: slsa-v1
      keys: [ci.pub]
`, g.host))
	ciDigest := strings.TrimSpace(g.tollgate(t, "policy", "digest", "--policy-dir", ciPolicy))
	// Another CI policy: the same requirement and a README more, so another digest.
	otherPolicy := filepath.Join(g.workDir, "ci-policy-2")
	copyFile(t, filepath.Join(ciPolicy, "ci.pub"), filepath.Join(otherPolicy, "ci.pub"))
	copyFile(t, filepath.Join(ciPolicy, "vsa.yaml"), filepath.Join(otherPolicy, "vsa.yaml"))
	writeFile(t, filepath.Join(otherPolicy, "README"), "a second policy set\n")

	copyFile(t, filepath.Join(g.keysDir, "verifier.pub"), filepath.Join(g.policyDir, "verifier.pub"))
	writeFile(t, filepath.Join(g.policyDir, "vsa.yaml"), fmt.Sprintf(`apiVersion: tollgate.dev/v1alpha1
kind: ImagePolicy
metadata:
  name: vsa
spec:
  images: ["%s/e2e/vsa"]
  verificationSummaries:
    - name: ci-gate
      verifier: %s
      keys: [verifier.pub]
      policyDigests: [%s]
      maxAge: 1h
      levels: [SLSA_BUILD_LEVEL_1]
`, g.host, vsaVerifierID, ciDigest))
	g.pod = env.RunPod(t, "vsa")
	g.start(t)
	t.Logf("e2e: environment and tollgated ready in %s", time.Since(start).Round(time.Millisecond))
	// The node reports the digest of its policy set as the CLI computes it.
	nodeDigest := strings.TrimSpace(g.tollgate(t, "policy", "digest", "--policy-dir", g.policyDir))
	if v := metric(g.metrics(t), "tollgate_policy_info", "digest="+nodeDigest); v != 1 {
		t.Errorf("tollgate_policy_info{digest=%q} = %v, want 1 (generation 1)", nodeDigest, v)
	}
	if code, body, err := g.get("/readyz"); err != nil || code != 200 || !strings.Contains(body, "policy digest "+nodeDigest) {
		t.Errorf("/readyz: %d %v %q does not name the policy digest %s", code, err, body, nodeDigest)
	}

	// summarize verifies img as the CI does and attaches the VSA signed with key.
	summarize := func(t *testing.T, img *testimage.Pushed, policyDir, key string) {
		t.Helper()
		g.attach(t, img, g.makeEvidence(t, img, evidence{noLink: true}))
		out := filepath.Join(g.workDir, fmt.Sprintf("vsa-%d.json", g.counter.Add(1)))
		g.tollgate(t, "verify", "--image", img.DigestRef(), "--policy-dir", policyDir, "--insecure-registry", g.host,
			"--vsa-out", out, "--vsa-key", filepath.Join(g.keysDir, key), "--verifier-id", vsaVerifierID, "--policy-uri", vsaPolicyURI)
		g.tollgate(t, "attach", "--image", img.DigestRef(), "--attestation", out, "--insecure-registry", g.host)
	}

	t.Run("19-vsa", func(t *testing.T) {
		good := g.push(t, "vsa:good", "vsa-good")
		summarize(t, good, ciPolicy, "verifier")
		g.pull(t, good)
		g.mustRun(t, good.Ref)
		if r := g.lastHook(t, good); !r.Allowed || r.Outcome != "verified" || r.Policy != "vsa" {
			t.Errorf("audit record: allowed=%v outcome=%q policy=%q, want a verified allowance by policy vsa", r.Allowed, r.Outcome, r.Policy)
		}

		// The provenance alone (attached by summarize's CI verification) is no VSA.
		provOnly := g.push(t, "vsa:provenance-only", "vsa-provenance-only")
		g.attach(t, provOnly, g.makeEvidence(t, provOnly, evidence{noLink: true}))
		g.pull(t, provOnly)
		g.mustReject(t, provOnly.Ref, "tollgate: denied", `policy "vsa"`,
			`evidence "provenance.json" set aside unread: not signed by a key the policy authorizes`)

		otherKey := g.push(t, "vsa:other-verifier", "vsa-other-verifier")
		summarize(t, otherKey, ciPolicy, "other-verifier")
		g.pull(t, otherKey)
		g.mustReject(t, otherKey.Ref, "tollgate: denied", `policy "vsa"`, "set aside unread: not signed by a key the policy authorizes")
		g.checkHookReason(t, otherKey, "bad_signature")

		otherPolicyImg := g.push(t, "vsa:other-policy", "vsa-other-policy")
		summarize(t, otherPolicyImg, otherPolicy, "verifier")
		g.pull(t, otherPolicyImg)
		g.mustReject(t, otherPolicyImg.Ref, "tollgate: denied", `verification summary "ci-gate"`,
			"policy digest "+strings.TrimSpace(g.tollgate(t, "policy", "digest", "--policy-dir", otherPolicy))+", want "+ciDigest)
		g.checkHookReason(t, otherPolicyImg, "condition_failed")
	})
}

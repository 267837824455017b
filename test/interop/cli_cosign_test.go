//go:build interop

package interop

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// cosignHost is the registry host:port of a cosign fixture.
func (f *cosignFixture) host() string { return strings.SplitN(f.repo, "/", 2)[0] }

// TestCLICosignVerifiesTollgateAttestation: `cosign verify-attestation --key` accepts the
// SLSA provenance `tollgate attest` signed (with the cosign key) and `tollgate attach` pushed.
func TestCLICosignVerifiesTollgateAttestation(t *testing.T) {
	f := newCosignFixture(t)
	ref := f.repo + ":cli"
	digest := cosignPushImage(t, ref)
	env := append(append([]string{}, f.env...), "GITHUB_ACTIONS=true", "GITHUB_REPOSITORY=acme/app", "GITHUB_RUN_ID=1",
		"GITHUB_SHA=0123456789abcdef0123456789abcdef01234567", "GITHUB_WORKFLOW_REF=acme/app/.github/workflows/ci.yml@refs/heads/main")
	mustTollgate(t, f.dir, env, "attest", "--image", f.repo+"@"+digest.String(), "--predicate-type", "slsa-v1",
		"--key", "cosign.key", "--passphrase-env", "COSIGN_PASSWORD", "--out", "prov.dsse.json")
	mustTollgate(t, f.dir, env, "attach", "--image", ref, "--attestation", "prov.dsse.json", "--insecure-registry", f.host())
	out := f.run(t, f.verifyArgs(f.repo+"@"+digest.String())...) // fails the test unless cosign verifies
	if !strings.Contains(string(out), `"payloadType":"application/vnd.in-toto+json"`) {
		t.Errorf("cosign verify-attestation output: %s", out)
	}
	// And tollgate reads it back the same way.
	mustTollgate(t, f.dir, env, "fetch", "--image", ref, "--out", "fetched", "--insecure-registry", f.host())
	mustTollgate(t, f.dir, env, "verify", "--attestation", filepath.Join("fetched", "prov.dsse.json"), "--key", "cosign.pub",
		"--predicate-type", "slsa-v1", "--image-digest", digest.String())
}

// TestCLIVerifyImageAcceptsCosignAttest: `tollgate verify --image` accepts what `cosign
// attest --key` pushed, under a policy that requires SLSA v1 provenance signed by that key,
// and denies an image cosign never attested.
func TestCLIVerifyImageAcceptsCosignAttest(t *testing.T) {
	f := newCosignFixture(t)
	ref := f.repo + ":attested"
	cosignPushImage(t, ref)
	// The fixture's predicate has empty externalParameters, which SLSA v1 verifiers reject;
	// attest a complete one.
	writeFile(t, filepath.Join(f.dir, "full.json"), []byte(`{"buildDefinition":{"buildType":"https://tollgate.dev/interop",`+
		`"externalParameters":{"source":"git+https://example.com/app"}},"runDetails":{"builder":{"id":"https://tollgate.dev/ci"}}}`))
	f.run(t, "attest", "--key", "cosign.key", "--type", "slsaprovenance1", "--predicate", "full.json",
		"--tlog-upload=false", "--allow-insecure-registry", "--yes", ref)
	unsigned := f.repo + ":unsigned"
	cosignPushImage(t, unsigned)

	pub, err := os.ReadFile(filepath.Join(f.dir, "cosign.pub"))
	if err != nil {
		t.Fatal(err)
	}
	policyDir := filepath.Join(f.dir, "policy")
	if err := os.MkdirAll(filepath.Join(policyDir, "keys"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(policyDir, "keys", "cosign.pub"), pub)
	writeFile(t, filepath.Join(policyDir, "app.yaml"), []byte(`apiVersion: tollgate.dev/v1alpha1
kind: ImagePolicy
metadata: {name: app}
spec:
  images: ["`+f.repo+`"]
  attestations:
    - name: provenance
      predicateType: slsa-v1
      keys: [keys/cosign.pub]
      conditions:
        - predicate.runDetails.builder.id == "https://tollgate.dev/ci"
`))
	out := mustTollgate(t, f.dir, f.env, "verify", "--image", ref, "--policy-dir", policyDir, "--insecure-registry", f.host())
	if !strings.Contains(out, "tollgate: verified") {
		t.Errorf("verify --image: %s", out)
	}
	code, out := tollgate(t, f.dir, f.env, "verify", "--image", unsigned, "--policy-dir", policyDir, "--insecure-registry", f.host())
	if code != 1 || !strings.Contains(out, "denied") {
		t.Errorf("unattested image: exit %d\n%s", code, out)
	}
}

package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"tollgate.dev/tollgate/cmd/internal/exit"
	"tollgate.dev/tollgate/policy/attest"
	"tollgate.dev/tollgate/policy/envelope"
	"tollgate.dev/tollgate/policy/vsa"
)

const (
	vsaVerifier  = "https://ci.example/verifier"
	vsaPolicyURI = "https://git.example/acme/policies"
)

// readVSA reads a VSA file as a node would: DSSE, an in-toto Statement, a VSA predicate.
func readVSA(t *testing.T, file string) (*attest.Statement, *vsa.Summary) {
	t.Helper()
	env, err := envelope.Parse([]byte(readString(t, file)))
	if err != nil {
		t.Fatal(err)
	}
	st, err := attest.FromEnvelope(env)
	if err != nil {
		t.Fatal(err)
	}
	if st.PredicateType != vsa.PredicateType {
		t.Fatalf("predicate type %s", st.PredicateType)
	}
	s, err := vsa.Parse(st.Predicate)
	if err != nil {
		t.Fatal(err)
	}
	return st, s
}

func writeSummaryPolicy(t *testing.T, dir, host, key, digest string) {
	t.Helper()
	write(t, filepath.Join(dir, "keys", "verifier.pub"), readString(t, key))
	write(t, filepath.Join(dir, "app.yaml"), `apiVersion: tollgate.dev/v1alpha1
kind: ImagePolicy
metadata: {name: app}
spec:
  images: ["`+host+`/acme/app"]
  verificationSummaries:
    - name: ci-gate
      verifier: `+vsaVerifier+`
      keys: [keys/verifier.pub]
      policyDigests: [`+digest+`]
      maxAge: 1h
      levels: [SLSA_BUILD_LEVEL_1]
`)
}

// The CI verifies an image against its policy and signs a VSA; the VSA travels through
// the registry; a node policy that requires only that VSA admits the image, and refuses it
// for another verifier's key or another policy digest.
func TestVerificationSummaryRoundTrip(t *testing.T) {
	host := loopbackRegistry(t)
	t.Chdir(t.TempDir())
	ref := host + "/acme/app:v1"
	digest := pushRandom(t, ref)
	for _, k := range []string{"ci", "verifier", "other"} {
		must(t, "keygen", k)
	}
	if r := tgEnv(t, githubEnv, "attest", "--image", ref, "--predicate-type", "slsa-v1", "--key", "ci",
		"--insecure-registry", host, "--out", "prov.dsse.json"); r.code != 0 {
		t.Fatal(r)
	}
	must(t, "attach", "--image", ref, "--attestation", "prov.dsse.json", "--insecure-registry", host)
	write(t, "ci-policy/keys/ci.pub", readString(t, "ci.pub"))
	write(t, "ci-policy/app.yaml", "apiVersion: tollgate.dev/v1alpha1\nkind: ImagePolicy\nmetadata: {name: app}\nspec:\n  images: [\""+host+"/acme/app\"]\n  attestations:\n    - {name: provenance, predicateType: slsa-v1, keys: [keys/ci.pub]}\n")
	policyDigest := strings.TrimSpace(must(t, "policy", "digest", "--policy-dir", "ci-policy").stdout)

	vsaFlags := []string{"--vsa-key", "verifier", "--verifier-id", vsaVerifier, "--policy-uri", vsaPolicyURI}
	r := must(t, append([]string{"verify", "--image", ref, "--policy-dir", "ci-policy", "--insecure-registry", host, "--vsa-out", "out/app.vsa.json"}, vsaFlags...)...)
	if !strings.Contains(r.stderr, "wrote out/app.vsa.json") || !strings.Contains(r.stderr, policyDigest) {
		t.Errorf("verify --vsa-out said: %s", r.stderr)
	}
	st, s := readVSA(t, "out/app.vsa.json")
	if !st.BoundTo(digest) || len(st.Subjects) != 1 {
		t.Errorf("subjects %v, want only %s", st.SubjectDigests(), digest)
	}
	if s.VerifierID != vsaVerifier || s.PolicyURI != vsaPolicyURI || "sha256:"+s.PolicyDigest["sha256"] != policyDigest ||
		s.Result != vsa.Passed || strings.Join(s.Levels, ",") != "SLSA_BUILD_LEVEL_1" || s.ResourceURI != host+"/acme/app@"+digest {
		t.Errorf("VSA says %+v", s)
	}

	// Nothing is written for a verification that fails.
	unsigned := host + "/acme/app:unsigned"
	pushRandom(t, unsigned)
	if r := tg(t, append([]string{"verify", "--image", unsigned, "--policy-dir", "ci-policy", "--insecure-registry", host, "--vsa-out", "bad.vsa.json"}, vsaFlags...)...); r.code != exit.Failed {
		t.Errorf("unsigned image: %s", r)
	}
	if _, err := os.Stat("bad.vsa.json"); !os.IsNotExist(err) {
		t.Errorf("a VSA was written for a failed verification: %v", err)
	}

	must(t, "attach", "--image", ref, "--attestation", "out/app.vsa.json", "--insecure-registry", host)
	writeSummaryPolicy(t, "node", host, "verifier.pub", policyDigest)
	r = must(t, "verify", "--image", ref, "--policy-dir", "node", "--insecure-registry", host)
	if !strings.Contains(r.stdout, "verified") {
		t.Errorf("node policy: %s", r.stdout)
	}
	writeSummaryPolicy(t, "node-other-key", host, "other.pub", policyDigest)
	if r := tg(t, "verify", "--image", ref, "--policy-dir", "node-other-key", "--insecure-registry", host); r.code != exit.Failed ||
		!strings.Contains(r.stdout, `evidence "app.vsa.json" set aside unread: not signed by a key the policy authorizes`) {
		t.Errorf("another verifier's key: %s", r)
	}
	otherDigest := "sha256:" + strings.Repeat("0", 64)
	writeSummaryPolicy(t, "node-other-policy", host, "verifier.pub", otherDigest)
	if r := tg(t, "verify", "--image", ref, "--policy-dir", "node-other-policy", "--insecure-registry", host); r.code != exit.Failed ||
		!strings.Contains(r.stdout, "policy digest "+policyDigest+", want "+otherDigest) {
		t.Errorf("another policy digest: %s", r)
	}
}

func TestVerificationSummaryOffline(t *testing.T) {
	t.Chdir(t.TempDir())
	digest := "sha256:" + strings.Repeat("a", 64)
	for _, k := range []string{"ci", "verifier"} {
		must(t, "keygen", k)
	}
	if r := tgEnv(t, githubEnv, "attest", "--image", "reg.example/app@"+digest, "--predicate-type", "slsa-v1", "--key", "ci", "--out", "prov.dsse.json"); r.code != 0 {
		t.Fatal(r)
	}
	base := []string{"verify", "--attestation", "prov.dsse.json", "--key", "ci.pub", "--predicate-type", "slsa-v1"}
	vsaFlags := []string{"--vsa-out", "off.vsa.json", "--vsa-key", "verifier", "--verifier-id", vsaVerifier, "--policy-uri", vsaPolicyURI}
	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"no key", []string{"--image-digest", digest, "--vsa-out", "x.json", "--verifier-id", vsaVerifier, "--policy-uri", vsaPolicyURI}, "--vsa-out needs --vsa-key"},
		{"no verifier id", []string{"--image-digest", digest, "--vsa-out", "x.json", "--vsa-key", "verifier", "--policy-uri", vsaPolicyURI}, "--vsa-out needs --verifier-id"},
		{"no subject", append([]string{"--vsa-resource-uri", "reg.example/app"}, vsaFlags...), "pass --image-digest"},
		{"no resource", append([]string{"--image-digest", digest}, vsaFlags...), "--vsa-resource-uri"},
		{"VSA flags without --vsa-out", []string{"--verifier-id", vsaVerifier}, "--vsa-out, which is not given"},
		{"level 4", append([]string{"--image-digest", digest, "--vsa-resource-uri", "reg.example/app", "--vsa-build-level", "4"}, vsaFlags...), "want 2 or 3"},
	} {
		if r := tg(t, append(base, c.args...)...); r.code != exit.Usage || !strings.Contains(r.stderr, c.want) {
			t.Errorf("%s: %s, want usage error %q", c.name, r, c.want)
		}
	}
	if _, err := os.Stat("off.vsa.json"); !os.IsNotExist(err) {
		t.Fatal("a VSA was written by a refused command line")
	}
	// The verification fails (another key): no VSA.
	if r := tg(t, append([]string{"verify", "--attestation", "prov.dsse.json", "--key", "verifier.pub", "--image-digest", digest, "--vsa-resource-uri", "reg.example/app"}, vsaFlags...)...); r.code != exit.Failed {
		t.Fatalf("wrong key: %s", r)
	}
	if _, err := os.Stat("off.vsa.json"); !os.IsNotExist(err) {
		t.Fatal("a VSA was written for a failed verification")
	}
	must(t, append(append(base, "--image-digest", digest, "--vsa-resource-uri", "reg.example/app", "--vsa-build-level", "3"), vsaFlags...)...)
	st, s := readVSA(t, "off.vsa.json")
	if !st.BoundTo(digest) || s.ResourceURI != "reg.example/app@"+digest || strings.Join(s.Levels, ",") != "SLSA_BUILD_LEVEL_3" || len(s.PolicyDigest["sha256"]) != 64 {
		t.Errorf("offline VSA: %+v", s)
	}
	// The same trust on the command line is the same policy digest; other trust is not.
	must(t, append(append(base, "--image-digest", digest, "--vsa-resource-uri", "reg.example/app"), vsaFlags...)...)
	if _, s2 := readVSA(t, "off.vsa.json"); s2.PolicyDigest["sha256"] != s.PolicyDigest["sha256"] {
		t.Error("the same offline verification names another policy digest")
	}
	must(t, append([]string{"verify", "--attestation", "prov.dsse.json", "--key", "ci.pub", "--image-digest", digest, "--vsa-resource-uri", "reg.example/app"}, vsaFlags...)...)
	if _, s3 := readVSA(t, "off.vsa.json"); s3.PolicyDigest["sha256"] == s.PolicyDigest["sha256"] || len(s3.Levels) != 1 {
		t.Errorf("without --predicate-type: digest %s (want another), levels %v", s3.PolicyDigest["sha256"], s3.Levels)
	}
}

// policy digest prints a digest only for a directory a node would load.
func TestPolicyDigestCommand(t *testing.T) {
	t.Chdir(t.TempDir())
	write(t, "p/keys/ci.pub", "not a key")
	write(t, "p/app.yaml", "apiVersion: tollgate.dev/v1alpha1\nkind: ImagePolicy\nmetadata: {name: app}\nspec:\n  images: [\"reg.example/app\"]\n  attestations:\n    - {name: provenance, predicateType: slsa-v1, keys: [keys/ci.pub]}\n")
	if r := tg(t, "policy", "digest", "--policy-dir", "p"); r.code != exit.Usage || r.stdout != "" || !strings.Contains(r.stderr, `key "keys/ci.pub"`) {
		t.Errorf("a policy directory that does not load: %s", r)
	}
	if r := tg(t, "policy", "digest"); r.code != exit.Usage || !strings.Contains(r.stderr, "--policy-dir") {
		t.Errorf("no --policy-dir: %s", r)
	}
}

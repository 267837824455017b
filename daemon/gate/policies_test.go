package gate

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"tollgate.dev/tollgate/policy"
	"tollgate.dev/tollgate/policy/envelope"
	"tollgate.dev/tollgate/policy/keys"
)

const testPredicate = "https://tollgate.dev/test/v1"

// realPolicyDir writes a policy directory for policy.Load: one enforce ImagePolicy for
func realPolicyDir(t testing.TB, dir string, ci *keys.Signer, mode policy.Mode) {
	t.Helper()
	pub, err := ci.MarshalPublic()
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "keys", "ci.pub"), string(pub))
	writeFile(t, filepath.Join(dir, "acme.yaml"), `apiVersion: tollgate.dev/v1alpha1
kind: ImagePolicy
metadata: {name: acme}
spec:
  images: ["registry.test/acme/*"]
  mode: `+string(mode)+`
  attestations:
    - name: provenance
      predicateType: `+testPredicate+`
      keys: [keys/ci.pub]
`)
	writeFile(t, filepath.Join(dir, "defaults.yaml"), `apiVersion: tollgate.dev/v1alpha1
kind: NodeDefaults
metadata: {name: node}
spec:
  unmatched: deny
  exemptions:
    repositories: ["registry.test/pause"]
`)
}

// signedStatement is a DSSE envelope with a Statement about digest, signed by s.
func signedStatement(t testing.TB, s *keys.Signer, repo, digest string) []byte {
	t.Helper()
	alg, hx, _ := strings.Cut(digest, ":")
	payload, _ := json.Marshal(map[string]any{
		"_type":         "https://in-toto.io/Statement/v1",
		"subject":       []any{map[string]any{"name": repo, "digest": map[string]string{alg: hx}}},
		"predicateType": testPredicate,
		"predicate":     map[string]any{"builder": "ci"},
	})
	env := envelope.NewDSSE(envelope.PayloadTypeInToto, payload)
	if err := env.Sign(s); err != nil {
		t.Fatal(err)
	}
	b, err := env.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

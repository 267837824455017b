// Package policytest writes a small real policy directory and signs Statements for it, for
// the tests of the packages that load and decide with it (the gate, tollgated's wiring).
package policytest

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"tollgate.dev/tollgate/policy"
	"tollgate.dev/tollgate/policy/envelope"
	"tollgate.dev/tollgate/policy/keys"
)

// Predicate is the predicate type the policy directory requires.
const Predicate = "https://tollgate.dev/test/v1"

// PolicyDir writes a policy directory for policy.Load into dir: one ImagePolicy in mode
// for registry.test/acme/* requiring a Statement of Predicate signed by keys/ci.pub (ci's
// public key), and NodeDefaults that exempt registry.test/pause and deny unmatched images.
func PolicyDir(t testing.TB, dir string, ci *keys.Signer, mode policy.Mode) {
	t.Helper()
	pub, err := ci.MarshalPublic()
	if err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(dir, "keys", "ci.pub"), string(pub))
	write(t, filepath.Join(dir, "acme.yaml"), `apiVersion: tollgate.dev/v1alpha1
kind: ImagePolicy
metadata: {name: acme}
spec:
  images: ["registry.test/acme/*"]
  mode: `+string(mode)+`
  attestations:
    - name: provenance
      predicateType: `+Predicate+`
      keys: [keys/ci.pub]
`)
	write(t, filepath.Join(dir, "defaults.yaml"), `apiVersion: tollgate.dev/v1alpha1
kind: NodeDefaults
metadata: {name: node}
spec:
  unmatched: deny
  exemptions:
    repositories: ["registry.test/pause"]
`)
}

// SignedStatement is a DSSE envelope with a Statement of Predicate about repo@digest,
// signed by s.
func SignedStatement(t testing.TB, s *keys.Signer, repo, digest string) []byte {
	t.Helper()
	alg, hx, _ := strings.Cut(digest, ":")
	payload, err := json.Marshal(map[string]any{
		"_type":         "https://in-toto.io/Statement/v1",
		"subject":       []any{map[string]any{"name": repo, "digest": map[string]string{alg: hx}}},
		"predicateType": Predicate,
		"predicate":     map[string]any{"builder": "ci"},
	})
	if err != nil {
		t.Fatal(err)
	}
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

func write(t testing.TB, p, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

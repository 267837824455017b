package policy

import (
	"crypto/sha512"
	"fmt"
	"strings"
	"testing"

	"tollgate.dev/tollgate/policy/envelope"
)

// floodLinks returns n distinct links named step, each carrying envelope.MaxSignatures
// signatures under keyid (an authorized key's, so that they are checked) that verify with
// no key.
func floodLinks(t *testing.T, step, keyid string, n int) map[string][]byte {
	t.Helper()
	ev := map[string][]byte{}
	for i := 0; i < n; i++ {
		env, err := envelope.NewMetablock(map[string]any{"_type": "link", "name": step, "command": []string{fmt.Sprint(i)},
			"materials": map[string]any{}, "products": map[string]any{}, "byproducts": map[string]any{}, "environment": map[string]any{}})
		if err != nil {
			t.Fatal(err)
		}
		for j := 0; j < envelope.MaxSignatures; j++ {
			s := sha512.Sum512([]byte(fmt.Sprint(step, i, j)))
			s[63] &= 0x0f // a canonical scalar: ed25519 does the full verification
			env.Signatures = append(env.Signatures, envelope.Signature{KeyID: keyid, Sig: s[:]})
		}
		b, err := env.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		ev[fmt.Sprintf("%s.flood%04d.link", step, i)] = b
	}
	return ev
}

// Statements and layouts draw on one signature-check budget per decision: a flood that
// stays under the budget in each alone exhausts it together, and the decision is a denial
// that says so.
func TestSignatureBudgetSharedWithLayouts(t *testing.T) {
	d, good := scenario(t, testNow.AddDate(1, 0, 0))
	s := mustLoad(t, d)
	links := floodLinks(t, "build", signer(t, "build").ID, 63) // 63 × 64 checks against the one "build" key
	// 3 × maxAdmitSignatures signatures without keyids, against the policy's 4 keys
	statements := floodStatements(t, 3)
	run := func(floods ...map[string][]byte) Decision {
		ev := map[string][]byte{}
		for _, f := range append(floods, good) {
			for k, v := range f {
				ev[k] = v
			}
		}
		return s.Evaluate(testRequest(), Evidence{Files: ev}, testNow)
	}
	if dec := run(links); !dec.Allowed {
		t.Fatalf("links flood alone, within the budget: denied: %s", dec.Message)
	}
	if dec := run(statements); !dec.Allowed {
		t.Fatalf("statements flood alone, within the budget: denied: %s", dec.Message)
	}
	dec := run(links, statements)
	if dec.Allowed {
		t.Fatalf("allowed after more than %d signature checks: %s", maxSignatureChecks, dec.Message)
	}
	if !strings.Contains(dec.Message, fmt.Sprintf("more than %d signature checks", maxSignatureChecks)) {
		t.Errorf("message does not say the signature-check budget ran out: %s", dec.Message)
	}
}

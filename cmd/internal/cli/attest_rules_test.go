package cli

import (
	"os"
	"strings"
	"testing"

	"tollgate.dev/tollgate/policy/envelope"
	"tollgate.dev/tollgate/policy/keys"
)

// TestVerifyAttestationNodeRules: the offline verifier reads Statements by the node's
// rules. Each envelope below is validly signed by the trusted key, and each is refused:
// a DSSE payload type that is not in-toto, a Statement in a Metablock, and a Statement
// naming "subject" twice (read as one subject by the signer's parser, another by ours).
// Without --image-digest the report says that no subject was bound.
func TestVerifyAttestationNodeRules(t *testing.T) {
	t.Chdir(t.TempDir())
	must(t, "keygen", "ci", "--type", "ecdsa")
	data, err := os.ReadFile("ci")
	if err != nil {
		t.Fatal(err)
	}
	signer, err := keys.ParsePrivate(data, nil)
	if err != nil {
		t.Fatal(err)
	}
	good, other := "sha256:"+strings.Repeat("ab", 32), "sha256:"+strings.Repeat("cd", 32)
	statement := func(subjects ...string) string {
		s := `{"_type":"https://in-toto.io/Statement/v1","predicateType":"https://example.com/review/v1"`
		for _, d := range subjects {
			s += `,"subject":[{"name":"app","digest":{"sha256":"` + strings.TrimPrefix(d, "sha256:") + `"}}]`
		}
		return s + `,"predicate":{"ok":true}}`
	}
	dsse := func(name, payloadType, payload string) {
		env := envelope.NewDSSE(payloadType, []byte(payload))
		if err := env.Sign(signer); err != nil {
			t.Fatal(err)
		}
		out, err := env.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		write(t, name, string(out))
	}
	dsse("good.json", envelope.PayloadTypeInToto, statement(good))
	dsse("json-type.json", "application/json", statement(good))
	dsse("dup.json", envelope.PayloadTypeInToto, statement(other, good))
	mb, err := envelope.NewMetablock(map[string]any{
		"_type": "https://in-toto.io/Statement/v1", "predicateType": "https://example.com/review/v1",
		"subject":   []any{map[string]any{"name": "app", "digest": map[string]any{"sha256": strings.Repeat("ab", 32)}}},
		"predicate": map[string]any{"ok": true},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := mb.Sign(signer); err != nil {
		t.Fatal(err)
	}
	out, err := mb.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	write(t, "metablock.json", string(out))

	verify := func(file string, extra ...string) result {
		return tg(t, append([]string{"verify", "--attestation", file, "--key", "ci.pub", "--predicate-type", "https://example.com/review/v1"}, extra...)...)
	}
	if r := verify("good.json", "--image-digest", good); r.code != 0 || strings.Contains(r.stdout, "no subject was bound") {
		t.Fatalf("the well-formed Statement: %s", r)
	}
	for file, want := range map[string]string{
		"json-type.json": `payload type "application/json" is not in-toto`,
		"metablock.json": "must travel in a DSSE envelope",
		"dup.json":       `member "subject" appears twice`,
	} {
		if r := verify(file, "--image-digest", good); r.code != 1 || !strings.Contains(r.stdout, want) {
			t.Errorf("%s: exit %d, want 1 with %q:\n%s", file, r.code, want, r)
		}
	}
	r := verify("good.json")
	if r.code != 0 || !strings.Contains(r.stdout, "no subject was bound") {
		t.Errorf("without --image-digest: %s; want it verified, saying no subject was bound", r)
	}
}

package intoto

import (
	"encoding/json"
	"testing"

	"tollgate.dev/tollgate/policy/envelope"
	"tollgate.dev/tollgate/policy/keys"
)

// A Metablock's signatures cover the canonical JSON of "signed", which keeps only the last
// of repeated members. Anyone holding a signed layout (a sublayout travels with untrusted
// evidence) can prepend members that canonicalization drops; encoding/json merges repeated
// objects and arrays of objects instead of replacing them, so the layout parsed must be
// the one signed, not the merge.
func TestReviewMetablockLayoutParsesSignedBytes(t *testing.T) {
	s := baseScenario(t)
	mallory := pubDict(t, tk.mallory)
	extraKeys, err := json.Marshal(map[string]json.RawMessage{tk.mallory.ID: mallory})
	if err != nil {
		t.Fatal(err)
	}
	// Earlier duplicates: a "keys" object (merged into the map) and a "steps" array whose
	// first element sets a member the signed step leaves out.
	delete(s.step("build"), "threshold")
	signed := s.signedLayout(t)
	prefix := `{"keys":` + string(extraKeys) + `,"steps":[{"threshold":7,"readme":"x"}],`
	tampered := &envelope.Signed{Format: envelope.Metablock, Signatures: signed.Signatures,
		Payload: append([]byte(prefix), signed.Payload[1:]...)}
	if _, err := tampered.Verify([]*keys.Key{tk.owner.Key}, 1); err != nil {
		t.Fatalf("the prepended duplicates should not change the signed bytes: %v", err)
	}
	l, err := ParseLayout(tampered)
	if err != nil {
		t.Fatalf("ParseLayout: %v", err)
	}
	if _, ok := l.Keys[tk.mallory.ID]; ok {
		t.Errorf("layout parsed with key %s, which its signers never signed", tk.mallory.ID[:8])
	}
	if l.Steps[0].Threshold != 1 {
		t.Errorf("step build parsed with threshold %d; the signed layout leaves it at 1", l.Steps[0].Threshold)
	}
}

// The same holds for a link Statement in a Metablock: prepended "subject" arrays merge
// their digests into the signed ones. Statements travel in DSSE envelopes, whose
// signatures cover the payload bytes themselves (policy.classify already refuses a
// Statement in a Metablock); a Metablock Statement is not a link.
func TestReviewMetablockStatementIsNoLink(t *testing.T) {
	s := baseScenario(t)
	doc := statementOf(s.link("package").doc)
	signed := signMetablock(t, doc, tk.carol)
	if _, err := ParseLink(signed); err == nil {
		t.Fatal("ParseLink accepted a link Statement in a Metablock")
	}
}

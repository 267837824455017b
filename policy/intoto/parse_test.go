package intoto

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"tollgate.dev/tollgate/policy/envelope"
	"tollgate.dev/tollgate/policy/keys"
	"tollgate.dev/tollgate/policy/reason"
)

func TestParseLayoutMalformed(t *testing.T) {
	testKeys(t)
	cases := []struct {
		name   string
		mutate func(l map[string]any)
		msg    string
	}{
		{"wrong type", func(l map[string]any) { l["_type"] = "link" }, `_type is "link"`},
		{"no expiry", func(l map[string]any) { delete(l, "expires") }, "no expires date"},
		{"bad expiry", func(l map[string]any) { l["expires"] = "next tuesday" }, "not an ISO 8601"},
		{"duplicate step", func(l map[string]any) {
			l["steps"] = append(l["steps"].([]any), l["steps"].([]any)[0])
		}, `two steps named "build"`},
		{"inspection shares a step name", func(l map[string]any) {
			l["inspect"].([]any)[0].(map[string]any)["name"] = "test"
		}, `inspection "test" has the name of another step`},
		{"unknown rule keyword", func(l map[string]any) {
			l["steps"].([]any)[0].(map[string]any)["expected_products"] = rules("PERMIT *")
		}, `unknown rule keyword "PERMIT"`},
		{"bad MATCH", func(l map[string]any) {
			l["steps"].([]any)[0].(map[string]any)["expected_products"] = rules("MATCH * FROM build")
		}, "MATCH rules read"},
		{"threshold zero", func(l map[string]any) { l["steps"].([]any)[0].(map[string]any)["threshold"] = 0 }, "threshold is 0"},
		{"threshold above keys", func(l map[string]any) { l["steps"].([]any)[0].(map[string]any)["threshold"] = 2 }, "threshold 2 exceeds the 1 distinct"},
		{"threshold not a number", func(l map[string]any) { l["steps"].([]any)[0].(map[string]any)["threshold"] = "one" }, "not valid in-toto layout JSON"},
		{"unknown pubkey", func(l map[string]any) {
			l["steps"].([]any)[0].(map[string]any)["pubkeys"] = []string{strings.Repeat("ab", 32)}
		}, "which the layout's keys do not list"},
		{"keyid mismatch", func(l map[string]any) {
			ks := l["keys"].(map[string]any)
			ks[tk.alice.ID] = ks[tk.bob.ID]
		}, "a key must be listed under its own keyid"},
		{"unnamed step", func(l map[string]any) { l["steps"].([]any)[0].(map[string]any)["name"] = "" }, "steps[0] has no name"},
		{"too many steps", func(l map[string]any) {
			var steps []any
			for i := 0; i <= MaxSteps; i++ {
				steps = append(steps, map[string]any{"name": strings.Repeat("s", i+1), "pubkeys": []string{tk.alice.ID}})
			}
			l["steps"] = steps
		}, "over the limit of 256"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := baseScenario(t)
			tc.mutate(s.layout)
			raw, err := json.Marshal(s.layout)
			if err != nil {
				t.Fatal(err)
			}
			_, err = ParseLayout(&envelope.Signed{Format: envelope.Metablock, Payload: raw})
			if err == nil || reason.KindOf(err) != reason.Malformed || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("ParseLayout = %v, want Malformed containing %q", err, tc.msg)
			}
		})
	}
	s := baseScenario(t)
	raw, _ := json.Marshal(s.layout)
	l, err := ParseLayout(&envelope.Signed{Format: envelope.Metablock, Payload: raw})
	if err != nil {
		t.Fatal(err)
	}
	if len(l.Steps) != 3 || l.Steps[1].Name != "test" || l.Steps[1].Threshold != 1 || len(l.Inspections) != 1 || l.Keys[tk.bob.ID] == nil {
		t.Fatalf("parsed layout = %+v", l)
	}
	if _, err := ParseLayout(&envelope.Signed{Format: envelope.DSSE, PayloadType: "text/plain", Payload: raw}); err == nil {
		t.Fatal("accepted a DSSE layout with a foreign payload type")
	}
}

func TestParseLink(t *testing.T) {
	testKeys(t)
	good := linkDocMap("build", []string{"make"}, arts("a", "1"), arts("b", "2"))
	for _, format := range []string{"", "dsse", "statement"} {
		spec := &linkSpec{doc: good, signers: []*keys.Signer{tk.alice}, format: format}
		s, err := envelope.Parse(spec.encode(t))
		if err != nil {
			t.Fatal(err)
		}
		l, err := ParseLink(s)
		if err != nil {
			t.Fatalf("format %q: %v", format, err)
		}
		if l.Name != "build" || l.Materials()["a"]["sha256"] != shaHex('1') || l.Products()["b"]["sha256"] != shaHex('2') {
			t.Fatalf("format %q: parsed %+v", format, l)
		}
	}
	bad := []struct {
		name, payload, msg string
	}{
		{"not JSON", `{`, "not valid"},
		{"layout", `{"_type":"layout"}`, "is a layout"},
		{"other statement", `{"_type":"https://in-toto.io/Statement/v1","predicateType":"https://slsa.dev/provenance/v1","subject":[],"predicate":{}}`, "not an in-toto link"},
		{"no name", `{"_type":"link","materials":{},"products":{}}`, "no name"},
		{"bad hex", `{"_type":"link","name":"x","materials":{"a":{"sha256":"xyz"}},"products":{}}`, "not hex"},
		{"null hash", `{"_type":"link","name":"x","materials":{"a":null},"products":{}}`, "hash object must be an object"},
		{"materials a list", `{"_type":"link","name":"x","materials":[],"products":{}}`, "artifacts must be an object"},
		{"escaped path", `{"_type":"link","name":"x","materials":{"a\u00e9\"":{"sha256":"zz"}},"products":{}}`, `artifact "aé\"": sha256 digest is not hex`},
		{"byproducts not object", `{"_type":"link","name":"x","byproducts":[1]}`, "must be an object"},
		{"statement duplicate subject", `{"_type":"https://in-toto.io/Statement/v1","predicateType":"https://in-toto.io/attestation/link/v0.3","subject":[{"name":"a","digest":{"sha256":"ab"}},{"name":"a","digest":{"sha256":"ab"}}],"predicate":{"name":"x"}}`, "twice"},
		{"statement without name", `{"_type":"https://in-toto.io/Statement/v1","predicateType":"https://in-toto.io/attestation/link/v0.3","subject":[],"predicate":{}}`, "no name"},
	}
	for _, tc := range bad {
		_, err := ParseLink(&envelope.Signed{Format: envelope.Metablock, Payload: []byte(tc.payload)})
		if err == nil || reason.KindOf(err) != reason.Malformed || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%s: ParseLink = %v, want Malformed containing %q", tc.name, err, tc.msg)
		}
	}
}

func TestNewLinksLimits(t *testing.T) {
	files := map[string][]byte{}
	for i := 0; i <= MaxEvidenceFiles; i++ {
		files[strings.Repeat("f", 1+i%50)+string(rune('a'+i%26))+itoa3(i)] = []byte("{}")
	}
	if _, err := NewLinks(files); err == nil || reason.KindOf(err) != reason.Malformed {
		t.Fatalf("NewLinks with %d files = %v, want Malformed", len(files), err)
	}
	defer func(n int) { evidenceBytesLimit = n }(evidenceBytesLimit)
	evidenceBytesLimit = 1000
	if _, err := NewLinks(map[string][]byte{"a": make([]byte, 600), "b": make([]byte, 401)}); err == nil {
		t.Fatal("NewLinks accepted more than the evidence byte limit")
	}
}

func itoa3(i int) string {
	return string([]byte{byte('0' + i/1000%10), byte('0' + i/100%10), byte('0' + i/10%10), byte('0' + i%10)})
}

// A sublayout delegates "test": bob signs a layout whose own steps (unit, lint) are signed
// by carol; its links live under "test.<bob[:8]>/".
func sublayoutScenario(t *testing.T) (*scenario, map[string]any, []*linkSpec) {
	s := baseScenario(t)
	sub := map[string]any{"_type": "layout", "expires": "2099-01-01T00:00:00Z", "readme": "",
		"keys": map[string]any{tk.carol.ID: pubDict(t, tk.carol)},
		"steps": []any{
			stepDoc("unit", 1, []*keys.Signer{tk.carol}, []string{"go", "test"}, rules("ALLOW foo.tar.gz", "DISALLOW *"), rules("CREATE unit.txt", "DISALLOW *")),
			stepDoc("lint", 1, []*keys.Signer{tk.carol}, []string{"lint"}, rules("MATCH unit.txt WITH PRODUCTS FROM unit", "DISALLOW *"), rules("ALLOW *")),
		},
		"inspect": []any{}}
	dir := "test." + tk.bob.ID[:8] + "/"
	subLinks := []*linkSpec{
		{file: dir + "unit." + tk.carol.ID[:8] + ".link", signers: []*keys.Signer{tk.carol},
			doc: linkDocMap("unit", []string{"go", "test"}, arts("foo.tar.gz", "f"), arts("unit.txt", "u"))},
		{file: dir + "lint." + tk.carol.ID[:8] + ".link", signers: []*keys.Signer{tk.carol},
			doc: linkDocMap("lint", []string{"lint"}, arts("unit.txt", "u"), arts("report.txt", "r"))},
	}
	// The outer step sees the summary: materials of "unit", products of "lint".
	s.step("test")["expected_materials"] = rules("MATCH foo.tar.gz WITH PRODUCTS FROM build", "DISALLOW *")
	s.step("test")["expected_products"] = rules("ALLOW report.txt", "DISALLOW *")
	var keep []*linkSpec
	for _, l := range s.links {
		if l.doc["name"] != "test" {
			keep = append(keep, l)
		}
	}
	s.links = append(keep, subLinks...)
	return s, sub, subLinks
}

func TestSublayout(t *testing.T) {
	testKeys(t)
	run := func(t *testing.T, s *scenario, sub map[string]any, signer *keys.Signer) error {
		files := s.files(t)
		files["test."+tk.bob.ID[:8]+".link"] = marshalSigned(t, signMetablock(t, sub, signer))
		links, err := NewLinks(files)
		if err != nil {
			t.Fatal(err)
		}
		res, err := Verify(s.signedLayout(t), []*keys.Key{tk.owner.Key}, links, WithImage(testImage()),
			WithTime(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)))
		if err == nil && len(res.Functionaries["test/unit"]) != 1 {
			t.Errorf("Functionaries = %v, want test/unit", res.Functionaries)
		}
		return err
	}
	t.Run("pass", func(t *testing.T) {
		s, sub, _ := sublayoutScenario(t)
		if err := run(t, s, sub, tk.bob); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("inner rule fails", func(t *testing.T) {
		s, sub, subLinks := sublayoutScenario(t)
		subLinks[1].doc["materials"] = arts("unit.txt", "9")
		err := run(t, s, sub, tk.bob)
		if err == nil || reason.KindOf(err) != reason.RuleViolation || !strings.HasPrefix(err.Error(), `step "test/lint": rule "MATCH unit.txt WITH PRODUCTS FROM unit"`) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("inner link missing", func(t *testing.T) {
		s, sub, _ := sublayoutScenario(t)
		s.links = s.links[:len(s.links)-1]
		err := run(t, s, sub, tk.bob)
		if err == nil || reason.KindOf(err) != reason.MissingEvidence || !strings.Contains(err.Error(), `step "test/lint"`) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("inner links outside the sublayout directory", func(t *testing.T) {
		s, sub, subLinks := sublayoutScenario(t)
		for _, l := range subLinks {
			l.file = l.file[strings.IndexByte(l.file, '/')+1:]
		}
		if err := run(t, s, sub, tk.bob); err == nil || reason.KindOf(err) != reason.MissingEvidence {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("sublayout signed by an unauthorized key", func(t *testing.T) {
		s, sub, _ := sublayoutScenario(t)
		err := run(t, s, sub, tk.mallory)
		if err == nil || reason.KindOf(err) != reason.Threshold || !strings.Contains(err.Error(), "a sublayout not signed") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("summary fails outer rule", func(t *testing.T) {
		s, sub, subLinks := sublayoutScenario(t)
		subLinks[0].doc["materials"] = arts("foo.tar.gz", "0")
		err := run(t, s, sub, tk.bob)
		if err == nil || reason.KindOf(err) != reason.RuleViolation || !strings.HasPrefix(err.Error(), `step "test": rule "MATCH foo.tar.gz WITH PRODUCTS FROM build"`) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("expired sublayout", func(t *testing.T) {
		s, sub, _ := sublayoutScenario(t)
		sub["expires"] = "2021-01-01T00:00:00Z"
		err := run(t, s, sub, tk.bob)
		if err == nil || reason.KindOf(err) != reason.Expired || !strings.Contains(err.Error(), `step "test": sublayout: layout expired on 2021-01-01T00:00:00Z`) {
			t.Fatalf("err = %v", err)
		}
	})
}

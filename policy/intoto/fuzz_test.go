package intoto

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"tollgate.dev/tollgate/policy/envelope"
	"tollgate.dev/tollgate/policy/internal/jsonlimit"
	"tollgate.dev/tollgate/policy/keys"
	"tollgate.dev/tollgate/policy/reason"
)

// Every failure must be a *reason.Error (it becomes a metric label and a denial message).
func checkReason(t *testing.T, err error) {
	t.Helper()
	var re *reason.Error
	if err != nil && !errors.As(err, &re) {
		t.Fatalf("error %v (%T) is not a *reason.Error", err, err)
	}
}

func FuzzParseLayout(f *testing.F) {
	testKeys(f)
	s := baseScenario(f)
	f.Add(marshalSigned(f, s.signedLayout(f)))
	raw, _ := json.Marshal(s.layout)
	f.Add(raw)
	f.Add([]byte(`{"_type":"layout","expires":"2030-01-01T00:00:00Z","keys":{},"steps":[{"name":"a","threshold":0}],"inspect":[]}`))
	f.Add([]byte(`{"_type":"layout","expires":"2030-01-01T00:00:00Z","steps":[{"name":"a","expected_products":[["MATCH","*","IN"]]}]}`))
	f.Add([]byte(`{"payloadType":"application/vnd.in-toto+json","payload":"e30=","signatures":[]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		if s, err := envelope.Parse(data); err == nil {
			_, err := ParseLayout(s)
			checkReason(t, err)
		}
		_, err := ParseLayout(&envelope.Signed{Format: envelope.Metablock, Payload: data})
		checkReason(t, err)
	})
}

func FuzzParseLink(f *testing.F) {
	testKeys(f)
	s := baseScenario(f)
	for _, format := range []string{"", "dsse", "statement"} {
		l := *s.link("test")
		l.format = format
		f.Add(l.encode(f))
	}
	raw, _ := json.Marshal(statementOf(s.link("build").doc))
	f.Add(raw)
	f.Add([]byte(`{"_type":"link","name":"x","materials":{"a":{"sha256":"00"}},"products":{"b":{}},"byproducts":[]}`))
	f.Add([]byte(`{"_type":"https://in-toto.io/Statement/v1","predicateType":"https://in-toto.io/Link/v1","subject":[{"name":"a","digest":{"sha256":"ab"}}],"predicate":{"_type":"link","name":"x"}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		if s, err := envelope.Parse(data); err == nil {
			l, err := ParseLink(s)
			checkReason(t, err)
			if err == nil && (l.mat == nil || l.prod == nil) {
				t.Fatal("parsed link without indexes")
			}
		}
		_, err := ParseLink(&envelope.Signed{Format: envelope.Metablock, Payload: data})
		checkReason(t, err)
		ls, err := NewLinks(map[string][]byte{"a.link": data, "sub.12345678/b.link": data})
		checkReason(t, err)
		_ = ls
	})
}

// FuzzVerify fuzzes the unsigned contents: the layout's steps and inspections and two
// links, which it then signs with the test keys (ALICE and BOB in the input stand for
// their keyids), so that the fuzzer reaches thresholds, rules, parameters and the image
// inspection rather than stopping at signatures.
func FuzzVerify(f *testing.F) {
	testKeys(f)
	s := baseScenario(f)
	body := func(steps, inspect any) []byte {
		b, _ := json.Marshal(map[string]any{"steps": steps, "inspect": inspect})
		return []byte(strings.NewReplacer(tk.alice.ID, "ALICE", tk.bob.ID, "BOB").Replace(string(b)))
	}
	buildDoc, _ := json.Marshal(s.link("build").doc)
	testDoc, _ := json.Marshal(s.link("test").doc)
	steps := s.layout["steps"].([]any)[:2]
	f.Add(body(steps, []any{}), buildDoc, testDoc, false)
	f.Add(body(steps, []any{map[string]any{"name": "image", "expected_materials": rules("MATCH image WITH PRODUCTS FROM test", "DISALLOW *")}}), buildDoc, testDoc, true)
	f.Add(body([]any{stepDoc("build", 1, []*keys.Signer{tk.alice}, nil, rules("MATCH * IN src WITH PRODUCTS IN {P} FROM test"), rules("REQUIRE foo.tar.gz", "MODIFY *", "DELETE *", "DISALLOW [!a-z]*"))}, []any{}), buildDoc, testDoc, false)
	f.Fuzz(func(t *testing.T, layoutBody, build, test []byte, bind bool) {
		var parts map[string]json.RawMessage
		if json.Unmarshal(layoutBody, &parts) != nil {
			return
		}
		ids := strings.NewReplacer("ALICE", tk.alice.ID, "BOB", tk.bob.ID)
		layout := map[string]json.RawMessage{
			"_type":   json.RawMessage(`"layout"`),
			"expires": json.RawMessage(`"2099-01-01T00:00:00Z"`),
			"keys":    mustJSON(map[string]any{tk.alice.ID: pubDict(t, tk.alice), tk.bob.ID: pubDict(t, tk.bob)}),
			"steps":   json.RawMessage(ids.Replace(string(parts["steps"]))),
			"inspect": json.RawMessage(ids.Replace(string(parts["inspect"]))),
		}
		for k, v := range layout {
			if len(v) == 0 {
				delete(layout, k)
			}
		}
		lb, err := json.Marshal(layout)
		if err != nil {
			return
		}
		signedLayout, err := envelope.NewMetablock(json.RawMessage(lb))
		if err != nil || signedLayout.Sign(tk.owner) != nil {
			return
		}
		files := map[string][]byte{}
		for i, l := range []struct {
			doc    []byte
			signer *keys.Signer
		}{{build, tk.alice}, {test, tk.bob}} {
			m, err := envelope.NewMetablock(json.RawMessage(l.doc))
			if err != nil || m.Sign(l.signer) != nil {
				continue
			}
			b, err := m.Marshal()
			if err != nil {
				continue
			}
			files[string(rune('a'+i))+".link"] = b
		}
		links, err := NewLinks(files)
		if err != nil {
			checkReason(t, err)
			return
		}
		opts := []Option{WithParameters(map[string]string{"P": "out"}), WithTime(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))}
		if bind {
			opts = append(opts, WithImage(testImage()))
		}
		_, err = Verify(signedLayout, []*keys.Key{tk.owner.Key}, links, opts...)
		checkReason(t, err)
	})
}

func mustJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// FuzzPattern: compiling and matching never panic, and the fast paths agree with the
// general matcher. Names and patterns come out of JSON decoding, so they are valid UTF-8.
func FuzzPattern(f *testing.F) {
	for _, s := range [][2]string{{"*.c", "a/b.c"}, {"[!a-c-e]x", "dx"}, {"[z-a]", "q"}, {"[]-]", "-"}, {"a*b?[!]c]", "ab?c"}} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, pat, name string) {
		if !utf8.ValidString(pat) || !utf8.ValidString(name) {
			return
		}
		p := compilePattern(pat)
		if got, want := p.match(name), matchTokens(p.tokens, name); got != want {
			t.Fatalf("pattern %q on %q: fast path %v, general %v", pat, name, got, want)
		}
	})
}

// refLinkDoc is what encoding/json makes of a link; FuzzDecodeLinkDoc holds the one-pass
// decoder to it.
type refLinkDoc struct {
	Type          string                       `json:"_type"`
	Name          *string                      `json:"name"`
	Command       []string                     `json:"command"`
	Materials     map[string]map[string]string `json:"materials"`
	Products      map[string]map[string]string `json:"products"`
	Byproducts    json.RawMessage              `json:"byproducts"`
	PredicateType string                       `json:"predicateType"`
}

func FuzzDecodeLinkDoc(f *testing.F) {
	testKeys(f)
	s := baseScenario(f)
	for _, l := range s.links {
		b, _ := json.Marshal(l.doc)
		f.Add(b)
	}
	f.Add([]byte(`{"_type":"link","name":"a\u00e9","materials":{"x":{"sha256":"ab","sha512":"cd"}},"products":null,"byproducts":{"return-value":0},"extra":[1,{"a":null}]}`))
	f.Add([]byte(` { "name" : "x" , "materials" : { } } `))
	f.Fuzz(func(t *testing.T, data []byte) {
		var top map[string]json.RawMessage
		if json.Unmarshal(data, &top) != nil {
			var doc linkDoc
			if decodeLinkDoc(data, &doc) == nil && jsonlimit.Check(data, jsonlimit.MaxBytes) == nil {
				t.Fatalf("accepted invalid JSON %q", data)
			}
			return
		}
		if top == nil { // JSON null: not a link either way
			return
		}
		for k := range top { // encoding/json matches names case-insensitively; we do not
			for _, known := range []string{"_type", "name", "command", "materials", "products", "byproducts", "environment", "predicateType", "subject", "predicate"} {
				if k != known && strings.EqualFold(k, known) {
					return
				}
			}
		}
		var ref refLinkDoc
		refErr := json.Unmarshal(data, &ref)
		var doc linkDoc
		err := decodeLinkDoc(data, &doc)
		if refErr != nil || err != nil {
			if refErr == nil && !strings.Contains(err.Error(), "digest is not hex") && !strings.Contains(err.Error(), "hash object") {
				t.Fatalf("decodeLinkDoc rejected %q: %v", data, err)
			}
			return
		}
		if doc.Type != ref.Type || (doc.Name == nil) != (ref.Name == nil) || (doc.Name != nil && *doc.Name != *ref.Name) ||
			!reflect.DeepEqual(doc.Command, ref.Command) || doc.PredicateType != ref.PredicateType {
			t.Fatalf("%q: decoded %+v, encoding/json %+v", data, doc, ref)
		}
		for _, side := range []struct {
			got  *artifactSet
			want map[string]map[string]string
		}{{doc.Materials.set, ref.Materials}, {doc.Products.set, ref.Products}} {
			got := map[string]map[string]string{}
			if side.got != nil {
				for p, h := range side.got.toMap() {
					got[p] = h
				}
			}
			want := side.want
			if want == nil {
				want = map[string]map[string]string{}
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("%q: artifacts %v, encoding/json %v", data, got, want)
			}
		}
	})
}

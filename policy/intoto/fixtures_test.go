package intoto

import (
	"bytes"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"tollgate.dev/tollgate/policy/envelope"
	"tollgate.dev/tollgate/policy/keys"
)

// Test keys are generated once per test binary: ed25519 is cheap, and every test signs
// real metadata with real keys.
var (
	keysOnce sync.Once
	tk       struct{ owner, owner2, alice, bob, carol, mallory *keys.Signer }
)

func testKeys(t testing.TB) {
	t.Helper()
	keysOnce.Do(func() {
		for i, p := range []**keys.Signer{&tk.owner, &tk.owner2, &tk.alice, &tk.bob, &tk.carol, &tk.mallory} {
			*p = seededKey(byte(i + 1))
		}
	})
	if tk.owner == nil {
		t.Fatal("test keys not generated")
	}
}

// seededKey derives an ed25519 key from a fixed seed, so keyids are stable across runs
// and fuzz seed corpora can name them.
func seededKey(n byte) *keys.Signer {
	priv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{n}, ed25519.SeedSize))
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		panic(err)
	}
	s, err := keys.ParsePrivate(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil)
	if err != nil {
		panic(err)
	}
	return s
}

func pubDict(t testing.TB, s *keys.Signer) json.RawMessage {
	t.Helper()
	b, err := s.Key.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// sha returns a distinct, valid digest per byte: the byte's hex, 32 times.
func sha(c byte) HashObj { return HashObj{"sha256": shaHex(c)} }

func shaHex(c byte) string { return strings.Repeat(fmt.Sprintf("%02x", c), 32) }

const (
	manifestHex = "1111111111111111111111111111111111111111111111111111111111111111"
	indexHex    = "2222222222222222222222222222222222222222222222222222222222222222"
	configHex   = "3333333333333333333333333333333333333333333333333333333333333333"
)

func testImage() Image {
	return Image{Digests: []string{"sha256:" + manifestHex}, ConfigDigest: "sha256:" + configHex}
}

// linkSpec is one evidence file of a scenario.
type linkSpec struct {
	file    string
	doc     map[string]any
	signers []*keys.Signer
	format  string // "", "dsse" (link payload) or "statement" (link/v0.3 Statement)
	tamper  func(data []byte) []byte
}

// scenario is a layout plus its evidence, mutated by test cases before being signed.
type scenario struct {
	layout       map[string]any
	layoutSigner []*keys.Signer
	links        []*linkSpec
	extraFiles   map[string][]byte
}

func rules(rs ...string) [][]string {
	out := [][]string{}
	for _, r := range rs {
		out = append(out, strings.Fields(r))
	}
	return out
}

func stepDoc(name string, threshold int, fs []*keys.Signer, cmd []string, mat, prod [][]string) map[string]any {
	ids := []string{}
	for _, f := range fs {
		ids = append(ids, f.ID)
	}
	return map[string]any{"_type": "step", "name": name, "threshold": threshold, "pubkeys": ids,
		"expected_command": cmd, "expected_materials": mat, "expected_products": prod}
}

func linkDocMap(name string, cmd []string, mat, prod map[string]HashObj) map[string]any {
	return map[string]any{"_type": "link", "name": name, "command": cmd, "materials": mat, "products": prod,
		"byproducts": map[string]any{"return-value": 0, "stderr": "", "stdout": ""}, "environment": map[string]any{}}
}

// baseScenario: build (alice) turns sources into foo.tar.gz, test (bob) checks it,
// package (carol) turns it into an image; the "image" inspection binds that image.
func baseScenario(t testing.TB) *scenario {
	testKeys(t)
	ks := map[string]any{}
	for _, s := range []*keys.Signer{tk.alice, tk.bob, tk.carol} {
		ks[s.ID] = pubDict(t, s)
	}
	steps := []any{
		stepDoc("build", 1, []*keys.Signer{tk.alice}, []string{"make"},
			rules("ALLOW src/*", "DISALLOW *"),
			rules("CREATE foo.tar.gz", "DISALLOW *")),
		stepDoc("test", 1, []*keys.Signer{tk.bob}, []string{"make", "test"},
			rules("MATCH foo.tar.gz WITH PRODUCTS FROM build", "DISALLOW *"),
			rules("CREATE report.txt", "DISALLOW *")),
		stepDoc("package", 1, []*keys.Signer{tk.carol}, []string{"pack"},
			rules("MATCH foo.tar.gz WITH PRODUCTS FROM build", "DISALLOW *"),
			rules("CREATE image", "DISALLOW *")),
	}
	inspect := []any{map[string]any{"_type": "inspection", "name": "image", "run": []string{},
		"expected_materials": rules("MATCH image WITH PRODUCTS FROM package", "ALLOW image-config", "DISALLOW *"),
		"expected_products":  rules("ALLOW *")}}
	return &scenario{
		layout: map[string]any{"_type": "layout", "expires": "2099-01-01T00:00:00Z", "readme": "test",
			"keys": ks, "steps": steps, "inspect": inspect},
		layoutSigner: []*keys.Signer{tk.owner},
		links: []*linkSpec{
			{file: "build." + tk.alice.ID[:8] + ".link", signers: []*keys.Signer{tk.alice},
				doc: linkDocMap("build", []string{"make"}, map[string]HashObj{"src/a.c": sha('a'), "src/b.c": sha('b')}, map[string]HashObj{"foo.tar.gz": sha('f')})},
			{file: "test." + tk.bob.ID[:8] + ".link", signers: []*keys.Signer{tk.bob},
				doc: linkDocMap("test", []string{"make", "test"}, map[string]HashObj{"foo.tar.gz": sha('f')}, map[string]HashObj{"report.txt": sha('r')})},
			{file: "package." + tk.carol.ID[:8] + ".link", signers: []*keys.Signer{tk.carol},
				doc: linkDocMap("package", []string{"pack"}, map[string]HashObj{"foo.tar.gz": sha('f')}, map[string]HashObj{"image": {"sha256": manifestHex}})},
		},
	}
}

func (s *scenario) step(name string) map[string]any {
	for _, st := range s.layout["steps"].([]any) {
		if m := st.(map[string]any); m["name"] == name {
			return m
		}
	}
	panic("no step " + name)
}

func (s *scenario) link(name string) *linkSpec {
	for _, l := range s.links {
		if l.doc["name"] == name {
			return l
		}
	}
	panic("no link " + name)
}

func (s *scenario) artifacts(link, side string) map[string]HashObj {
	return s.link(link).doc[side].(map[string]HashObj)
}

func signMetablock(t testing.TB, v any, signers ...*keys.Signer) *envelope.Signed {
	t.Helper()
	m, err := envelope.NewMetablock(v)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Sign(signers...); err != nil {
		t.Fatal(err)
	}
	return m
}

func marshalSigned(t testing.TB, s *envelope.Signed) []byte {
	t.Helper()
	b, err := s.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (l *linkSpec) encode(t testing.TB) []byte {
	t.Helper()
	var s *envelope.Signed
	switch l.format {
	case "":
		s = signMetablock(t, l.doc, l.signers...)
	case "dsse", "statement":
		payload, err := json.Marshal(l.doc)
		if l.format == "statement" {
			payload, err = json.Marshal(statementOf(l.doc))
		}
		if err != nil {
			t.Fatal(err)
		}
		s = envelope.NewDSSE(envelope.PayloadTypeInToto, payload)
		if err := s.Sign(l.signers...); err != nil {
			t.Fatal(err)
		}
	}
	b := marshalSigned(t, s)
	if l.tamper != nil {
		b = l.tamper(b)
	}
	return b
}

// statementOf converts a link document into a link/v0.3 Statement.
func statementOf(doc map[string]any) map[string]any {
	var subj, mats []any
	for p, h := range doc["products"].(map[string]HashObj) {
		subj = append(subj, map[string]any{"name": p, "digest": h})
	}
	for p, h := range doc["materials"].(map[string]HashObj) {
		mats = append(mats, map[string]any{"name": p, "digest": h})
	}
	return map[string]any{"_type": statementV1, "subject": subj, "predicateType": PredicateLinkV03,
		"predicate": map[string]any{"name": doc["name"], "command": doc["command"], "materials": mats,
			"byproducts": doc["byproducts"], "environment": doc["environment"]}}
}

func (s *scenario) files(t testing.TB) map[string][]byte {
	files := map[string][]byte{}
	for _, l := range s.links {
		files[l.file] = l.encode(t)
	}
	for k, v := range s.extraFiles {
		files[k] = v
	}
	return files
}

func (s *scenario) signedLayout(t testing.TB) *envelope.Signed {
	return signMetablock(t, s.layout, s.layoutSigner...)
}

func (s *scenario) verify(t testing.TB, layoutKeys []*keys.Key, opts ...Option) (*Result, error) {
	t.Helper()
	links, err := NewLinks(s.files(t))
	if err != nil {
		t.Fatal(err)
	}
	if layoutKeys == nil {
		layoutKeys = []*keys.Key{tk.owner.Key}
	}
	opts = append([]Option{WithTime(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))}, opts...)
	return Verify(s.signedLayout(t), layoutKeys, links, opts...)
}

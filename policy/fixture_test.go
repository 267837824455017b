package policy

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"tollgate.dev/tollgate/policy/attest"
	"tollgate.dev/tollgate/policy/envelope"
	"tollgate.dev/tollgate/policy/keys"
)

// Test fixtures: real keys, real signatures, real layouts and Statements.

func digestOf(s string) string {
	h := sha256.Sum256([]byte(s))
	return "sha256:" + hex.EncodeToString(h[:])
}

var (
	manifestDigest = digestOf("manifest")
	configDigest   = digestOf("config")
	otherDigest    = digestOf("other")
	testNow        = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	testRepo       = "ghcr.io/acme/api"
)

func testImage() Image {
	return Image{Ref: testRepo + ":v1", Repository: testRepo, ConfigDigest: configDigest, Digests: []string{manifestDigest}}
}

func testRequest() Request {
	return Request{Image: testImage(), Namespace: "default", Pod: "api-0", Container: "api"}
}

// signerCache keeps key generation out of the per-test cost (RSA would dominate).
var signerCache = map[string]*keys.Signer{}

func signer(t testing.TB, name string) *keys.Signer {
	t.Helper()
	if s, ok := signerCache[name]; ok {
		return s
	}
	s, err := keys.Generate("ed25519", 0)
	if err != nil {
		t.Fatalf("keys.Generate: %v", err)
	}
	signerCache[name] = s
	return s
}

func publicPEM(t testing.TB, s *keys.Signer) []byte {
	t.Helper()
	b, err := s.MarshalPublic()
	if err != nil {
		t.Fatalf("MarshalPublic: %v", err)
	}
	return b
}

// dir is a policy directory under construction.
type dir map[string][]byte

func (d dir) key(t testing.TB, name string) *keys.Signer {
	s := signer(t, name)
	d["keys/"+name+".pub"] = publicPEM(t, s)
	return s
}

func (d dir) clone() dir {
	c := dir{}
	for k, v := range d {
		c[k] = v
	}
	return c
}

func keyJSON(t testing.TB, s *keys.Signer) json.RawMessage {
	t.Helper()
	b, err := s.Key.MarshalJSON()
	if err != nil {
		t.Fatalf("Key.MarshalJSON: %v", err)
	}
	return b
}

type step struct {
	name      string
	threshold int
	signers   []*keys.Signer
	materials [][]string
	products  [][]string
}

// layout returns a Metablock layout signed by owners.
func layout(t testing.TB, expires time.Time, steps []step, inspections []map[string]any, owners ...*keys.Signer) []byte {
	t.Helper()
	ks := map[string]json.RawMessage{}
	var st []map[string]any
	for _, s := range steps {
		var ids []string
		for _, f := range s.signers {
			ks[f.ID] = keyJSON(t, f)
			ids = append(ids, f.ID)
		}
		th := s.threshold
		if th == 0 {
			th = 1
		}
		st = append(st, map[string]any{
			"_type": "step", "name": s.name, "threshold": th, "pubkeys": ids,
			"expected_command": []string{}, "expected_materials": orRules(s.materials), "expected_products": orRules(s.products),
		})
	}
	if inspections == nil {
		inspections = []map[string]any{}
	}
	doc := map[string]any{
		"_type": "layout", "expires": expires.UTC().Format("2006-01-02T15:04:05Z"), "readme": "",
		"keys": ks, "steps": st, "inspect": inspections,
	}
	env, err := envelope.NewMetablock(doc)
	if err != nil {
		t.Fatalf("NewMetablock: %v", err)
	}
	if err := env.Sign(owners...); err != nil {
		t.Fatalf("Sign: %v", err)
	}
	b, err := env.Marshal()
	if err != nil {
		t.Fatalf("Marshal: %v", err)
	}
	return b
}

func orRules(r [][]string) [][]string {
	if r == nil {
		return [][]string{}
	}
	return r
}

// link returns a Metablock link signed by functionaries.
func link(t testing.TB, name string, materials, products map[string]string, functionaries ...*keys.Signer) []byte {
	t.Helper()
	hashes := func(m map[string]string) map[string]any {
		out := map[string]any{}
		for p, dg := range m {
			alg, hx, _ := cut(dg)
			out[p] = map[string]string{alg: hx}
		}
		return out
	}
	doc := map[string]any{
		"_type": "link", "name": name, "command": []string{}, "materials": hashes(materials),
		"products": hashes(products), "byproducts": map[string]any{}, "environment": map[string]any{},
	}
	env, err := envelope.NewMetablock(doc)
	if err != nil {
		t.Fatalf("NewMetablock: %v", err)
	}
	if err := env.Sign(functionaries...); err != nil {
		t.Fatalf("Sign: %v", err)
	}
	b, err := env.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func cut(dg string) (string, string, bool) {
	for i := range dg {
		if dg[i] == ':' {
			return dg[:i], dg[i+1:], true
		}
	}
	return "", dg, false
}

// linkName is the file name in-toto gives a link: "<step>.<keyid8>.link".
func linkName(stepName string, s *keys.Signer) string {
	return fmt.Sprintf("%s.%s.link", stepName, s.ID[:8])
}

// statement returns a DSSE envelope (JSON) with a Statement over subjects, signed by signers.
func statement(t testing.TB, predicateType string, subjects []string, predicate any, signers ...*keys.Signer) []byte {
	t.Helper()
	var subs []map[string]any
	for _, dg := range subjects {
		alg, hx, _ := cut(dg)
		subs = append(subs, map[string]any{"name": testRepo, "digest": map[string]string{alg: hx}})
	}
	payload, err := json.Marshal(map[string]any{
		"_type": attest.StatementV1, "subject": subs, "predicateType": predicateType, "predicate": predicate,
	})
	if err != nil {
		t.Fatal(err)
	}
	env := envelope.NewDSSE(envelope.PayloadTypeInToto, payload)
	if err := env.Sign(signers...); err != nil {
		t.Fatalf("Sign: %v", err)
	}
	b, err := env.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func slsaV1(buildType, builder string) map[string]any {
	return map[string]any{
		"buildDefinition": map[string]any{
			"buildType":          buildType,
			"externalParameters": map[string]any{"repository": "https://github.com/acme/api", "ref": "refs/heads/main"},
			"resolvedDependencies": []any{map[string]any{
				"uri": "git+https://github.com/acme/api@refs/heads/main", "digest": map[string]string{"gitCommit": "0123456789abcdef0123456789abcdef01234567"},
			}},
		},
		"runDetails": map[string]any{"builder": map[string]any{"id": builder}},
	}
}

func mustLoad(t testing.TB, files dir) *Set {
	t.Helper()
	s, err := Load(files, 1)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return s
}

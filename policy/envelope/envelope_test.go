package envelope

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/secure-systems-lab/go-securesystemslib/cjson"

	"tollgate.dev/tollgate/policy/internal/jsonlimit"
	"tollgate.dev/tollgate/policy/keys"
	"tollgate.dev/tollgate/policy/reason"
)

var generated sync.Map // name -> *keys.Signer

// generate returns a cached key per name (type, optionally "type#n" for a second key).
func generate(t testing.TB, name string) *keys.Signer {
	t.Helper()
	if s, ok := generated.Load(name); ok {
		return s.(*keys.Signer)
	}
	typ, _, _ := strings.Cut(name, "#")
	s, err := keys.Generate(typ, 2048)
	if err != nil {
		t.Fatal(err)
	}
	generated.Store(name, s)
	return s
}

var allTypes = []string{keys.TypeRSA, keys.TypeED25519, keys.TypeECDSA}

func newLink(t testing.TB) *Signed {
	t.Helper()
	s, err := NewMetablock(map[string]any{"_type": "link", "name": "build", "byproducts": map[string]any{"return-value": 0}})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestRoundTrip(t *testing.T) {
	for _, typ := range allTypes {
		for _, format := range []Format{DSSE, Metablock} {
			t.Run(fmt.Sprintf("%s/%s", typ, format), func(t *testing.T) {
				signer := generate(t, typ)
				s := NewDSSE(PayloadTypeInToto, []byte(`{"_type":"https://in-toto.io/Statement/v1"}`))
				if format == Metablock {
					s = newLink(t)
				}
				if err := s.Sign(signer); err != nil {
					t.Fatal(err)
				}
				data, err := s.Marshal()
				if err != nil {
					t.Fatal(err)
				}
				back, err := Parse(data)
				if err != nil {
					t.Fatalf("Parse(%s): %v", data, err)
				}
				if back.Format != format || !bytes.Equal(back.Payload, s.Payload) || back.PayloadType != s.PayloadType {
					t.Errorf("round trip changed the envelope: %+v", back)
				}
				got, err := back.Verify([]*keys.Key{signer.Key}, 1)
				if err != nil || len(got) != 1 || got[0] != signer.Key {
					t.Errorf("Verify: %v %v", got, err)
				}
				// Signing again with the same key replaces, never duplicates.
				if err := back.Sign(signer); err != nil || len(back.Signatures) != 1 {
					t.Errorf("re-sign: %v, %d signatures", err, len(back.Signatures))
				}
			})
		}
	}
}

func TestPAE(t *testing.T) {
	// The DSSE specification's test vector.
	s := NewDSSE("http://example.com/HelloWorld", []byte("hello world"))
	got, err := s.SignedBytes()
	if err != nil || string(got) != "DSSEv1 29 http://example.com/HelloWorld 11 hello world" {
		t.Errorf("PAE = %q, %v", got, err)
	}
}

func TestParseDSSEEncodings(t *testing.T) {
	signer := generate(t, keys.TypeED25519)
	payload := []byte("\xff\xfe\xfd payload with bytes that need padding?")
	s := NewDSSE("text/plain", payload)
	if err := s.Sign(signer); err != nil {
		t.Fatal(err)
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding, base64.RawStdEncoding, base64.RawURLEncoding} {
		doc := fmt.Sprintf(`{"payloadType":"text/plain","payload":%q,"signatures":[{"keyid":%q,"sig":%q}]}`,
			enc.EncodeToString(payload), signer.ID, enc.EncodeToString(s.Signatures[0].Sig))
		back, err := Parse([]byte(doc))
		if err != nil {
			t.Fatalf("%v: %v", enc, err)
		}
		if _, err := back.Verify([]*keys.Key{signer.Key}, 1); err != nil {
			t.Errorf("%v: %v", enc, err)
		}
	}
}

func TestVerifySemantics(t *testing.T) {
	a, b, c := generate(t, keys.TypeED25519), generate(t, keys.TypeECDSA), generate(t, keys.TypeRSA)
	// aPEM is key a under a different keyid (PEM instead of JSON text for ECDSA would
	// also do); here: the same material loaded from its PKIX form.
	bPEM := mustParsePEM(t, b)
	if bPEM.ID == b.ID {
		t.Fatal("expected the PEM form of an ECDSA key to have another keyid than its JSON form")
	}

	signedBy := func(format Format, signers ...*keys.Signer) *Signed {
		s := NewDSSE(PayloadTypeInToto, []byte(`{"x":1}`))
		if format == Metablock {
			s = newLink(t)
		}
		if err := s.Sign(signers...); err != nil {
			t.Fatal(err)
		}
		return s
	}
	for _, format := range []Format{DSSE, Metablock} {
		t.Run(format.String(), func(t *testing.T) {
			type tc struct {
				name      string
				s         *Signed
				trusted   []*keys.Key
				threshold int
				want      int
				kind      reason.Kind
			}
			dup := signedBy(format, a)
			dup.Signatures = append(dup.Signatures, dup.Signatures[0]) // same signature twice
			emptyID := signedBy(format, a, b)
			for i := range emptyID.Signatures {
				emptyID.Signatures[i].KeyID = ""
			}
			unknownID := signedBy(format, a)
			unknownID.Signatures[0].KeyID = strings.Repeat("0", 64)
			tampered := signedBy(format, a)
			tampered.Payload = bytes.Replace(tampered.Payload, []byte(`1`), []byte(`2`), 1)
			if format == Metablock {
				tampered.Payload = bytes.Replace(tampered.Payload, []byte(`build`), []byte(`built`), 1)
			}
			for _, c := range []tc{
				{"one of one", signedBy(format, a), []*keys.Key{a.Key}, 1, 1, ""},
				{"three of three", signedBy(format, a, b, c), []*keys.Key{c.Key, b.Key, a.Key}, 3, 3, ""},
				{"two of three trusted, threshold two", signedBy(format, a, b), []*keys.Key{a.Key, b.Key, c.Key}, 2, 2, ""},
				{"untrusted extra signer ignored", signedBy(format, a, c), []*keys.Key{a.Key}, 1, 1, ""},
				{"threshold not met", signedBy(format, a), []*keys.Key{a.Key, b.Key}, 2, 1, reason.Threshold},
				{"duplicate signature counts once", dup, []*keys.Key{a.Key}, 2, 1, reason.Threshold},
				{"same key listed twice counts once", signedBy(format, b), []*keys.Key{b.Key, bPEM}, 2, 1, reason.Threshold},
				{"same key under two keyids signs twice, counts once", signedBy(format, b), []*keys.Key{bPEM, b.Key}, 2, 1, reason.Threshold},
				{"empty keyids tried against every key", emptyID, []*keys.Key{c.Key, b.Key, a.Key}, 2, 2, ""},
				{"unknown keyid tried against every key", unknownID, []*keys.Key{c.Key, a.Key}, 1, 1, ""},
				{"wrong key", signedBy(format, a), []*keys.Key{b.Key, c.Key}, 1, 0, reason.BadSignature},
				{"tampered payload", tampered, []*keys.Key{a.Key}, 1, 0, reason.BadSignature},
				{"no signatures", signedBy(format), []*keys.Key{a.Key}, 1, 0, reason.BadSignature},
				{"no trusted keys", signedBy(format, a), nil, 1, 0, reason.BadSignature},
				{"nil trusted key", signedBy(format, a), []*keys.Key{nil, a.Key}, 1, 1, ""},
				{"threshold zero", signedBy(format, a), []*keys.Key{a.Key}, 0, 0, reason.Malformed},
			} {
				got, err := c.s.Verify(c.trusted, c.threshold)
				if c.kind == "" && err != nil {
					t.Errorf("%s: %v", c.name, err)
				}
				if c.kind != "" && reason.KindOf(err) != c.kind || c.kind != "" && err == nil {
					t.Errorf("%s: got %v, want kind %s", c.name, err, c.kind)
				}
				if len(got) != c.want {
					t.Errorf("%s: %d verified keys, want %d", c.name, len(got), c.want)
				}
			}
		})
	}
	// The messages read as sentences an operator can act on.
	_, err := signedBy(DSSE, a).Verify([]*keys.Key{a.Key, b.Key}, 2)
	if err == nil || err.Error() != "1 of 2 required signatures from trusted keys" {
		t.Errorf("threshold message: %v", err)
	}
	s := signedBy(DSSE, a, c)
	s.Signatures[1].KeyID = ""
	_, err = s.Verify([]*keys.Key{b.Key}, 1)
	want := fmt.Sprintf("none of 2 DSSE signatures (%s, no keyid) verified with the trusted keys (%s)", a.ID[:8], b.ID[:8])
	if err == nil || err.Error() != want {
		t.Errorf("bad signature message:\n got %v\nwant %s", err, want)
	}
}

func mustParsePEM(t testing.TB, s *keys.Signer) *keys.Key {
	t.Helper()
	js, _ := s.MarshalPublic()
	var j struct{ KeyVal struct{ Public string } }
	if err := json.Unmarshal(js, &j); err != nil {
		t.Fatal(err)
	}
	k, err := keys.ParsePublic([]byte(j.KeyVal.Public))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestParseErrors(t *testing.T) {
	sigs := `"signatures":[{"keyid":"k","sig":"00ff"}]`
	for name, doc := range map[string]string{
		"not json":             `nope`,
		"array":                `[1,2]`,
		"neither":              `{` + sigs + `}`,
		"both":                 `{"signed":{},"payload":"","payloadType":"x",` + sigs + `}`,
		"signed not object":    `{"signed":"text",` + sigs + `}`,
		"bad hex":              `{"signed":{},"signatures":[{"keyid":"k","sig":"zz"}]}`,
		"empty sig":            `{"signed":{},"signatures":[{"keyid":"k","sig":""}]}`,
		"no signatures member": `{"signed":{}}`,
		"signatures not list":  `{"signed":{},"signatures":{}}`,
		"bad base64 payload":   `{"payloadType":"x","payload":"!!!",` + sigs + `}`,
		"bad base64 sig":       `{"payloadType":"x","payload":"","signatures":[{"sig":"***"}]}`,
		"payload not string":   `{"payloadType":"x","payload":5,` + sigs + `}`,
		"no payloadType":       `{"payload":"",` + sigs + `}`,
		"invalid utf-8":        "{\"signed\":{\"a\":\"\xff\"}," + sigs + "}",
		"too deep":             `{"signed":` + strings.Repeat(`{"a":`, jsonlimit.MaxDepth) + `1` + strings.Repeat(`}`, jsonlimit.MaxDepth) + `,` + sigs + `}`,
		"oversized":            `{"signed":{"a":"` + strings.Repeat("x", jsonlimit.MaxBytes) + `"},` + sigs + `}`,
		"too many signatures":  `{"signed":{},"signatures":[` + strings.TrimSuffix(strings.Repeat(`{"keyid":"k","sig":"00"},`, MaxSignatures+1), ",") + `]}`,
	} {
		if _, err := Parse([]byte(doc)); err == nil {
			t.Errorf("%s: accepted", name)
		} else if reason.KindOf(err) != reason.Malformed {
			t.Errorf("%s: kind %s, want malformed (%v)", name, reason.KindOf(err), err)
		}
	}
	// A float in "signed" parses but cannot be verified (Python cannot canonicalize it either).
	s, err := Parse([]byte(`{"signed":{"a":1.5},"signatures":[{"keyid":"k","sig":"00"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Verify([]*keys.Key{generate(t, keys.TypeED25519).Key}, 1); reason.KindOf(err) != reason.Malformed {
		t.Errorf("float: %v", err)
	}
	if _, err := NewMetablock(map[string]any{"f": 1.5}); err == nil {
		t.Error("NewMetablock accepted a float")
	}
	if _, err := NewMetablock([]int{1}); err == nil {
		t.Error("NewMetablock accepted a non-object")
	}
}

func TestCanonicalJSON(t *testing.T) {
	for in, want := range map[string]string{
		`{"b":1,"a":[true,false,null],"c":{"z":"","y":-0}}`: `{"a":[true,false,null],"b":1,"c":{"y":0,"z":""}}`,
		`{"s":"\u00e9\ud83d\ude00\"\\\n\t\u0001/<>"}`:       "{\"s\":\"é😀\\\"\\\\\n\t\x01/<>\"}",
		`{"big":123456789012345678901234567890}`:            `{"big":123456789012345678901234567890}`,
		`{"é":1,"e":2,"z":3,"É":4}`:                         `{"e":2,"z":3,"É":4,"é":1}`,
	} {
		got, err := canonicalJSON([]byte(in))
		if err != nil || string(got) != want {
			t.Errorf("canonicalJSON(%s) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{`{"f":1.0}`, `{"e":1e3}`, `{} {}`, `{`} {
		if _, err := canonicalJSON([]byte(bad)); err == nil {
			t.Errorf("canonicalJSON(%s) accepted", bad)
		}
	}
}

// sameAsCJSON checks our canonical form against go-securesystemslib's cjson, which
// in-toto-golang signs with. They differ only where cjson is wrong for Python (-0) or
// refuses (integers beyond int64).
func sameAsCJSON(t testing.TB, payload []byte) {
	ours, err := canonicalJSON(payload)
	if err != nil {
		return
	}
	var v any
	if err := jsonlimit.Decode(payload, jsonlimit.MaxBytes, &v); err != nil {
		return
	}
	theirs, err := cjson.EncodeCanonical(v)
	if err != nil || bytes.Contains(theirs, []byte("-0")) {
		return
	}
	if !bytes.Equal(ours, theirs) {
		t.Fatalf("canonical forms differ for %q:\nours   %q\ncjson  %q", payload, ours, theirs)
	}
}

func TestMarshalMetablockPythonShape(t *testing.T) {
	s := newLink(t)
	if err := s.Sign(generate(t, keys.TypeED25519)); err != nil {
		t.Fatal(err)
	}
	data, _ := s.Marshal()
	if !bytes.HasPrefix(data, []byte(`{"signatures":[{"keyid":"`)) || !bytes.Contains(data, []byte(`,"signed":{`)) {
		t.Errorf("metablock layout: %s", data)
	}
	var m struct {
		Signatures []struct{ Sig string }
	}
	if err := json.Unmarshal(data, &m); err != nil || len(m.Signatures) != 1 {
		t.Fatal(err)
	}
	if _, err := hex.DecodeString(m.Signatures[0].Sig); err != nil {
		t.Errorf("metablock signature is not hex: %v", err)
	}
}

package keys

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/secure-systems-lab/go-securesystemslib/encrypted"

	"tollgate.dev/tollgate/policy/reason"
	"tollgate.dev/tollgate/test/toolcheck"
)

// Key generation dominates test time; generate each type once.
var (
	genOnce sync.Map // type -> *Signer
)

func mustGenerate(t testing.TB, typ string) *Signer {
	t.Helper()
	if s, ok := genOnce.Load(typ); ok {
		return s.(*Signer)
	}
	s, err := Generate(typ, 2048)
	if err != nil {
		t.Fatalf("Generate(%s): %v", typ, err)
	}
	genOnce.Store(typ, s)
	return s
}

func pemPKCS8(t testing.TB, s *Signer) []byte {
	der, err := x509.MarshalPKCS8PrivateKey(s.priv)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

func pemPKIX(t testing.TB, s *Signer) []byte {
	der, err := x509.MarshalPKIXPublicKey(s.Public)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

func TestRoundTrip(t *testing.T) {
	msg := []byte("payload")
	for _, typ := range []string{TypeRSA, TypeED25519, TypeECDSA} {
		for _, pass := range []string{"", "pässwörd"} {
			t.Run(typ+"/"+map[bool]string{true: "encrypted", false: "clear"}[pass != ""], func(t *testing.T) {
				s := mustGenerate(t, typ)
				priv, err := s.MarshalPrivate([]byte(pass))
				if err != nil {
					t.Fatal(err)
				}
				if pass != "" && strings.Contains(string(priv), "PRIVATE KEY-----\nMI") && !strings.Contains(string(priv), "ENCRYPTED") {
					t.Fatal("encrypted key written in clear")
				}
				back, err := ParsePrivate(priv, []byte(pass))
				if err != nil {
					t.Fatalf("ParsePrivate: %v", err)
				}
				if back.ID != s.ID || back.Scheme != s.Scheme || back.Type != typ {
					t.Errorf("round trip changed the key: %s/%s/%s -> %s/%s/%s", s.ID, s.Scheme, s.Type, back.ID, back.Scheme, back.Type)
				}
				pubData, err := s.MarshalPublic()
				if err != nil {
					t.Fatal(err)
				}
				pub, err := ParsePublic(pubData)
				if err != nil {
					t.Fatalf("ParsePublic: %v", err)
				}
				if pub.ID != s.ID || !pub.SameMaterial(s.Key) {
					t.Errorf("public key round trip: %s vs %s", pub.ID, s.ID)
				}
				sig, err := back.Sign(msg)
				if err != nil {
					t.Fatal(err)
				}
				if err := pub.Verify(msg, sig); err != nil {
					t.Errorf("Verify: %v", err)
				}
				js, err := pub.MarshalJSON()
				if err != nil {
					t.Fatal(err)
				}
				fromJSON, err := ParseJSON(js)
				if err != nil || fromJSON.ID != s.ID {
					t.Errorf("MarshalJSON/ParseJSON: %v %v", err, fromJSON)
				}
				if pass != "" {
					_, err := ParsePrivate(priv, []byte("not it"))
					if !errors.Is(err, ErrWrongPassphrase) && typ != TypeRSA {
						t.Errorf("wrong passphrase: got %v, want ErrWrongPassphrase", err)
					}
					if err == nil {
						t.Errorf("wrong passphrase accepted")
					} else if strings.Contains(err.Error(), pass) || strings.Contains(err.Error(), "not it") {
						t.Errorf("error leaks the passphrase: %v", err)
					}
					if _, err := ParsePrivate(priv, nil); !errors.Is(err, ErrPassphraseRequired) {
						t.Errorf("no passphrase: got %v, want ErrPassphraseRequired", err)
					}
				}
			})
		}
	}
}

func TestVerifyFailures(t *testing.T) {
	msg := []byte("the exact bytes")
	for _, typ := range []string{TypeRSA, TypeED25519, TypeECDSA} {
		t.Run(typ, func(t *testing.T) {
			s := mustGenerate(t, typ)
			other, err := Generate(typ, 2048)
			if err != nil {
				t.Fatal(err)
			}
			sig, _ := s.Sign(msg)
			tampered := append([]byte{}, sig...)
			tampered[len(tampered)/2] ^= 1
			for name, c := range map[string]struct {
				k    *Key
				data []byte
				sig  []byte
			}{
				"tampered data":      {s.Key, []byte("the exact bytez"), sig},
				"tampered signature": {s.Key, msg, tampered},
				"wrong key":          {other.Key, msg, sig},
				"empty signature":    {s.Key, msg, nil},
				"garbage signature":  {s.Key, msg, []byte("xx")},
				"nil key":            {nil, msg, sig},
			} {
				err := c.k.Verify(c.data, c.sig)
				if reason.KindOf(err) != reason.BadSignature || err == nil {
					t.Errorf("%s: got %v, want a BadSignature error", name, err)
				}
			}
			if err := s.Verify(msg, sig); err != nil {
				t.Errorf("valid signature: %v", err)
			}
		})
	}
}

// TestRSAPSSSaltLengths: Python signs PSS with the digest length, other tools with the
// maximum; both verify.
func TestRSAPSSSaltLengths(t *testing.T) {
	s := mustGenerate(t, TypeRSA)
	msg := []byte("salt")
	d := digest(rsaSchemes[SchemeRSAPSSSHA256].hash, msg)
	for _, salt := range []int{rsa.PSSSaltLengthAuto, rsa.PSSSaltLengthEqualsHash, 0, 20} {
		sig, err := rsa.SignPSS(rand.Reader, s.priv.(*rsa.PrivateKey), rsaSchemes[SchemeRSAPSSSHA256].hash, d, &rsa.PSSOptions{SaltLength: salt})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Verify(msg, sig); err != nil {
			t.Errorf("salt length %d: %v", salt, err)
		}
	}
	// PKCS#1 v1.5 signatures verify only for keys that declare that scheme.
	sig, _ := rsa.SignPKCS1v15(rand.Reader, s.priv.(*rsa.PrivateKey), rsaSchemes[SchemeRSAPKCS1SHA256].hash, d)
	if err := s.Verify(msg, sig); err == nil {
		t.Errorf("PKCS#1 v1.5 signature accepted by a PSS key")
	}
	js := strings.Replace(mustJSON(t, s.Key), SchemeRSAPSSSHA256, SchemeRSAPKCS1SHA256, 1)
	k, err := ParseJSON([]byte(js))
	if err != nil {
		t.Fatal(err)
	}
	if err := k.Verify(msg, sig); err != nil {
		t.Errorf("PKCS#1 v1.5 key: %v", err)
	}
}

func mustJSON(t testing.TB, k *Key) string {
	b, err := k.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestPEMFormats(t *testing.T) {
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	p521, _ := ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	rsaS := mustGenerate(t, TypeRSA)
	ecS := mustGenerate(t, TypeECDSA)
	rsaKey := rsaS.priv.(*rsa.PrivateKey)
	sec1 := func(k *ecdsa.PrivateKey) []byte {
		der, _ := x509.MarshalECPrivateKey(k)
		return pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der})
	}
	for _, tc := range []struct {
		name       string
		data       []byte
		typ        string
		scheme     string
		sameAsFrom *Key
	}{
		{"rsa pkcs1", pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(rsaKey)}), TypeRSA, SchemeRSAPSSSHA256, rsaS.Key},
		{"rsa pkcs8", pemPKCS8(t, rsaS), TypeRSA, SchemeRSAPSSSHA256, rsaS.Key},
		{"ecdsa sec1 p256", sec1(ecS.priv.(*ecdsa.PrivateKey)), TypeECDSA, SchemeECDSAP256SHA256, ecS.Key},
		{"ecdsa sec1 p384", sec1(p384), TypeECDSA, SchemeECDSAP384SHA384, nil},
		{"ecdsa sec1 p521", sec1(p521), TypeECDSA, SchemeECDSAP521SHA512, nil},
		{"ed25519 pkcs8", pemPKCS8(t, mustGenerate(t, TypeED25519)), TypeED25519, SchemeED25519, mustGenerate(t, TypeED25519).Key},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := ParsePrivate(tc.data, nil)
			if err != nil {
				t.Fatal(err)
			}
			if s.Type != tc.typ || s.Scheme != tc.scheme {
				t.Errorf("got %s/%s, want %s/%s", s.Type, s.Scheme, tc.typ, tc.scheme)
			}
			if tc.sameAsFrom != nil && !s.SameMaterial(tc.sameAsFrom) {
				t.Errorf("material differs from the generated key")
			}
			sig, err := s.Sign([]byte("m"))
			if err != nil {
				t.Fatal(err)
			}
			pub, err := ParsePublic(pemPKIX(t, s))
			if err != nil {
				t.Fatal(err)
			}
			if pub.ID != s.ID {
				t.Errorf("public keyid %s != private keyid %s", pub.ID, s.ID)
			}
			if err := pub.Verify([]byte("m"), sig); err != nil {
				t.Error(err)
			}
		})
	}
	// PKCS#1 public keys are read and get the PKIX keyid.
	pkcs1 := pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(&rsaKey.PublicKey)})
	k, err := ParsePublic(pkcs1)
	if err != nil || k.ID != mustParsePublic(t, pemPKIX(t, rsaS)).ID {
		t.Errorf("PKCS#1 public key: %v", err)
	}
	// CRLF line endings and surrounding text do not change the keyid.
	crlf := "comment\r\n" + strings.ReplaceAll(string(pemPKIX(t, rsaS)), "\n", "\r\n") + "\r\n\r\n"
	if k, err := ParsePublic([]byte(crlf)); err != nil || k.ID != mustParsePublic(t, pemPKIX(t, rsaS)).ID {
		t.Errorf("CRLF PEM: %v", err)
	}
}

var smallRSAError = regexp.MustCompile(`key [0-9a-f]{64}: RSA key has 1024 bits; keys under 2048 bits are refused`)

func mustParsePublic(t testing.TB, data []byte) *Key {
	k, err := ParsePublic(data)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestParseErrors(t *testing.T) {
	rsaS := mustGenerate(t, TypeRSA)
	small, _ := rsa.GenerateKey(rand.Reader, 1024)
	smallPub, _ := x509.MarshalPKIXPublicKey(&small.PublicKey)
	edJSON := mustJSON(t, mustGenerate(t, TypeED25519).Key)
	ecJSON := mustJSON(t, mustGenerate(t, TypeECDSA).Key)
	for name, data := range map[string]string{
		"empty":                 "",
		"garbage":               "hello",
		"private PEM as public": string(pemPKCS8(t, rsaS)),
		"certificate request":   "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n",
		"bad PKIX":              "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
		"small rsa":             string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: smallPub})),
		"unknown keytype":       strings.Replace(edJSON, `"keytype":"ed25519"`, `"keytype":"dsa"`, 1),
		"unknown scheme":        strings.Replace(edJSON, `"scheme":"ed25519"`, `"scheme":"ed448"`, 1),
		"ecdsa scheme mismatch": strings.Replace(ecJSON, SchemeECDSAP256SHA256, SchemeECDSAP384SHA384, 1),
		"no public":             `{"keytype":"ed25519","scheme":"ed25519","keyval":{}}`,
		"short ed25519":         `{"keytype":"ed25519","scheme":"ed25519","keyval":{"public":"abcd"}}`,
		"non-hex ed25519":       `{"keytype":"ed25519","scheme":"ed25519","keyval":{"public":"` + strings.Repeat("zz", 32) + `"}}`,
		"rsa keyval not PEM":    `{"keytype":"rsa","scheme":"rsassa-pss-sha256","keyval":{"public":"abcd"}}`,
		"type mismatch":         strings.Replace(ecJSON, `"keytype":"ecdsa"`, `"keytype":"rsa"`, 1),
		"too deep":              strings.Repeat("[", 100) + strings.Repeat("]", 100),
		"too big":               "{" + strings.Repeat(" ", maxKeyBytes) + "}",
	} {
		if _, err := ParsePublic([]byte(data)); err == nil {
			t.Errorf("%s: accepted", name)
		} else if reason.KindOf(err) != reason.Malformed {
			t.Errorf("%s: kind %s, want malformed", name, reason.KindOf(err))
		}
		if _, err := ParsePrivate([]byte(data), nil); err == nil && name != "private PEM as public" {
			t.Errorf("%s: accepted as a private key", name)
		}
	}
	// A small RSA key is refused with an error naming it by the keyid a layout lists,
	// in PEM and in securesystemslib JSON.
	smallPEM := string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: smallPub}))
	smallJSON := `{"keytype":"rsa","scheme":"rsassa-pss-sha256","keyval":{"public":` + strconv.Quote(smallPEM) + `}}`
	for _, data := range []string{smallPEM, smallJSON} {
		_, err := ParsePublic([]byte(data))
		if err == nil || !smallRSAError.MatchString(err.Error()) {
			t.Errorf("1024-bit RSA key: error %v, want one matching %s", err, smallRSAError)
		}
	}
	// A JSON private key whose private part belongs to another key is refused.
	a, b := mustGenerate(t, TypeED25519), mustGenerate(t, TypeRSA)
	_ = b
	other, _ := Generate(TypeED25519, 0)
	pa, _ := a.MarshalPrivate(nil)
	po, _ := other.MarshalPrivate(nil)
	mixed := strings.Replace(string(pa), privateHex(t, pa), privateHex(t, po), 1)
	if _, err := ParsePrivate([]byte(mixed), nil); err == nil {
		t.Errorf("mismatched private and public parts accepted")
	}
}

func privateHex(t testing.TB, js []byte) string {
	i := strings.Index(string(js), `"private":"`)
	if i < 0 {
		t.Fatalf("no private member")
	}
	rest := string(js)[i+len(`"private":"`):]
	return rest[:strings.Index(rest, `"`)]
}

func TestCosignKey(t *testing.T) {
	// A cosign key built as cosign builds it: PKCS#8 DER, scrypt + secretbox.
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.MarshalPKCS8PrivateKey(ec)
	for _, pass := range []string{"", "cosign pass"} {
		enc, err := encrypted.Encrypt(der, []byte(pass))
		if err != nil {
			t.Fatal(err)
		}
		data := pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED SIGSTORE PRIVATE KEY", Bytes: enc})
		s, err := ParsePrivate(data, []byte(pass))
		if err != nil {
			t.Fatalf("passphrase %q: %v", pass, err)
		}
		if s.Scheme != SchemeECDSAP256SHA256 || !s.SameMaterial(&Key{Public: &ec.PublicKey}) {
			t.Errorf("cosign key loaded as %s", s.Key)
		}
		if _, err := ParsePrivate(data, []byte("wrong")); !errors.Is(err, ErrWrongPassphrase) {
			t.Errorf("wrong passphrase: %v", err)
		}
	}
}

// TestRealCosignKey uses keys from the cosign binary when it is installed.
func TestRealCosignKey(t *testing.T) {
	cosign := toolcheck.Require(t, "cosign")
	dir := t.TempDir()
	toolcheck.Run(t, dir, nil, []string{"COSIGN_PASSWORD=pw-123"}, cosign, "generate-key-pair")
	privData := readFile(t, dir+"/cosign.key")
	pubData := readFile(t, dir+"/cosign.pub")
	s, err := ParsePrivate(privData, []byte("pw-123"))
	if err != nil {
		t.Fatal(err)
	}
	pub, err := ParsePublic(pubData)
	if err != nil {
		t.Fatal(err)
	}
	if pub.ID != s.ID {
		t.Errorf("cosign.pub keyid %s, cosign.key keyid %s", pub.ID, s.ID)
	}
	// cosign verifies a blob signature we make with its key.
	blob := []byte("blob for cosign")
	sig, err := s.Sign(blob)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, dir+"/blob", blob)
	writeFile(t, dir+"/blob.sig", []byte(b64(sig)))
	toolcheck.Run(t, dir, nil, nil, cosign, "verify-blob", "--key", "cosign.pub", "--signature", "blob.sig",
		"--insecure-ignore-tlog=true", "blob")
	if _, err := ParsePrivate(privData, []byte("nope")); !errors.Is(err, ErrWrongPassphrase) {
		t.Errorf("wrong passphrase: %v", err)
	}
}

func TestGenerate(t *testing.T) {
	if _, err := Generate("dsa", 0); err == nil {
		t.Error("unknown type generated")
	}
	if _, err := Generate(TypeRSA, 1024); err == nil {
		t.Error("1024-bit RSA generated")
	}
	s := mustGenerate(t, TypeED25519)
	if len(s.Public.(ed25519.PublicKey)) != ed25519.PublicKeySize || len(s.ID) != 64 {
		t.Errorf("bad ed25519 key %v", s.Key)
	}
}

func TestSameMaterial(t *testing.T) {
	a := mustGenerate(t, TypeECDSA)
	fromPEM := mustParsePublic(t, pemPKIX(t, a)) // different text, so a different keyid
	if fromPEM.ID == a.ID {
		t.Fatalf("expected the PEM and JSON forms to have different keyids")
	}
	if !fromPEM.SameMaterial(a.Key) || !(&Key{Public: a.Public}).SameMaterial(a.Key) {
		t.Error("same key not recognized")
	}
	if a.SameMaterial(mustGenerate(t, TypeRSA).Key) || a.SameMaterial(nil) || (*Key)(nil).SameMaterial(a.Key) {
		t.Error("different keys reported the same")
	}
}

// TestMarshalJSONLiteral: a Key built as a struct literal (as other packages may do in
// tests) still marshals with the right public text.
func TestMarshalJSONLiteral(t *testing.T) {
	s := mustGenerate(t, TypeRSA)
	lit := &Key{ID: s.ID, Type: s.Type, Scheme: s.Scheme, Public: s.Public}
	k, err := ParseJSON([]byte(mustJSON(t, lit)))
	if err != nil || k.ID != s.ID {
		t.Errorf("literal key: %v %v", err, k)
	}
}

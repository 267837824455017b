package keys

import (
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	intoto "github.com/in-toto/in-toto-golang/in_toto"

	"tollgate.dev/tollgate/test/toolcheck"
)

func hexString(b []byte) string { return hex.EncodeToString(b) }

// TestPythonGeneratedKeys: keys written by in-toto-keygen load here with Python's keyid,
// and signatures cross both ways.
func TestPythonGeneratedKeys(t *testing.T) {
	toolcheck.RequirePythonInToto(t)
	for _, tc := range []struct {
		name, typ, password string
	}{
		{"rsa", TypeRSA, ""},
		{"rsa encrypted", TypeRSA, "correct horse"},
		{"ed25519", TypeED25519, ""},
		{"ed25519 encrypted", TypeED25519, "correct horse"},
		{"ecdsa", TypeECDSA, ""},
		{"ecdsa encrypted", TypeECDSA, "correct horse"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			args := []string{"-t", tc.typ}
			if tc.typ == TypeRSA {
				args = []string{"-b", "2048"} // keep the test fast; size does not matter here
			}
			stdin := ""
			if tc.password != "" {
				args = append(args, "-p")
				stdin = tc.password + "\n" + tc.password + "\n"
			}
			toolcheck.Run(t, dir, []byte(stdin), nil, toolcheck.InTotoKeygen, append(args, "key")...)
			privPath, pubPath := filepath.Join(dir, "key"), filepath.Join(dir, "key.pub")
			privData, _ := os.ReadFile(privPath)
			pubData, _ := os.ReadFile(pubPath)

			signer, err := ParsePrivate(privData, []byte(tc.password))
			if err != nil {
				t.Fatalf("ParsePrivate: %v", err)
			}
			pub, err := ParsePublic(pubData)
			if err != nil {
				t.Fatalf("ParsePublic: %v", err)
			}
			msg := []byte("tollgate interop message")
			ours, err := signer.Sign(msg)
			if err != nil {
				t.Fatal(err)
			}
			py := pyKey(t, tc.typ, privPath, pubPath, tc.password, msg, ours)
			if signer.ID != py.PrivKeyID || pub.ID != py.PubKeyID || pub.ID != signer.ID {
				t.Errorf("keyids differ: ours private %s public %s; python private %s public %s",
					signer.ID, pub.ID, py.PrivKeyID, py.PubKeyID)
			}
			if tc.password == "" && tc.typ != TypeRSA {
				// The private JSON file also reads as a public key, private part ignored.
				if k, err := ParsePublic(privData); err != nil || k.ID != signer.ID {
					t.Errorf("private JSON as public key: %v", err)
				}
				var stored struct{ KeyID string }
				if err := json.Unmarshal(privData, &stored); err != nil || stored.KeyID != signer.ID {
					t.Errorf("keyid stored in the private key file is %q, ours %s", stored.KeyID, signer.ID)
				}
			}
			if py.Verified == nil || !*py.Verified {
				t.Errorf("python did not verify our signature")
			}
			pySig, _ := hex.DecodeString(py.Sig)
			if err := pub.Verify(msg, pySig); err != nil {
				t.Errorf("python's signature does not verify here: %v", err)
			}
			if tc.password != "" {
				if _, err := ParsePrivate(privData, []byte("wrong")); err == nil {
					t.Errorf("wrong passphrase accepted")
				}
				if _, err := ParsePrivate(privData, nil); err == nil {
					t.Errorf("encrypted key loaded without a passphrase")
				}
			}
		})
	}
}

// TestOurKeysInPython: keys written by MarshalPrivate/MarshalPublic load in Python with
// our keyid, and signatures cross both ways.
func TestOurKeysInPython(t *testing.T) {
	toolcheck.RequirePythonInToto(t)
	for _, tc := range []struct {
		name, typ, password string
	}{
		{"rsa", TypeRSA, ""},
		{"rsa encrypted", TypeRSA, "s3cret pass"},
		{"ed25519", TypeED25519, ""},
		{"ed25519 encrypted", TypeED25519, "s3cret pass"},
		{"ecdsa", TypeECDSA, ""},
		{"ecdsa encrypted", TypeECDSA, "s3cret pass"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			signer, err := Generate(tc.typ, 2048)
			if err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			priv, err := signer.MarshalPrivate([]byte(tc.password))
			if err != nil {
				t.Fatal(err)
			}
			pub, err := signer.MarshalPublic()
			if err != nil {
				t.Fatal(err)
			}
			privPath, pubPath := filepath.Join(dir, "key"), filepath.Join(dir, "key.pub")
			writeFile(t, privPath, priv)
			writeFile(t, pubPath, pub)
			msg := []byte("signed by tollgate")
			sig, err := signer.Sign(msg)
			if err != nil {
				t.Fatal(err)
			}
			py := pyKey(t, tc.typ, privPath, pubPath, tc.password, msg, sig)
			if py.PrivKeyID != signer.ID || py.PubKeyID != signer.ID {
				t.Errorf("python computes keyids %s (private) %s (public), ours %s", py.PrivKeyID, py.PubKeyID, signer.ID)
			}
			if py.Verified == nil || !*py.Verified {
				t.Errorf("python did not verify our signature")
			}
			pySig, _ := hex.DecodeString(py.Sig)
			if err := signer.Verify(msg, pySig); err != nil {
				t.Errorf("python's signature with our key does not verify: %v", err)
			}
		})
	}
}

// TestInTotoGolangKeyIDs: PEM keys get in-toto-golang's keyid (LoadKeyDefaults).
func TestInTotoGolangKeyIDs(t *testing.T) {
	for _, typ := range []string{TypeRSA, TypeED25519, TypeECDSA} {
		t.Run(typ, func(t *testing.T) {
			s := mustGenerate(t, typ)
			dir := t.TempDir()
			privPEM := pemPKCS8(t, s)
			pubPEM := pemPKIX(t, s)
			for name, data := range map[string][]byte{"private": privPEM, "public": pubPEM} {
				p := filepath.Join(dir, name+".pem")
				writeFile(t, p, data)
				var k intoto.Key
				if err := k.LoadKeyDefaults(p); err != nil {
					t.Fatalf("in-toto-golang: %v", err)
				}
				var ours *Key
				if name == "private" {
					sg, err := ParsePrivate(data, nil)
					if err != nil {
						t.Fatal(err)
					}
					ours = sg.Key
				} else {
					var err error
					if ours, err = ParsePublic(data); err != nil {
						t.Fatal(err)
					}
				}
				if k.KeyID != ours.ID {
					t.Errorf("%s PEM: in-toto-golang keyid %s, ours %s", name, k.KeyID, ours.ID)
				}
				// The key dict we write parses in in-toto-golang with the same keyid.
				js, err := ours.MarshalJSON()
				if err != nil {
					t.Fatal(err)
				}
				back, err := ParseJSON(js)
				if err != nil || back.ID != ours.ID {
					t.Errorf("MarshalJSON round trip: %v, keyid %v", err, back)
				}
			}
		})
	}
}

func writeFile(t testing.TB, p string, data []byte) {
	t.Helper()
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// pyKeyDictScript checks our MarshalJSON output the way a layout's "keys" are checked
// and used by Python: schema, keyid, and signature verification with the dict itself.
const pyKeyDictScript = `
import json, sys
from securesystemslib import formats, keys
spec = json.load(sys.stdin)
key = json.loads(spec["key"])
formats.ANY_PUBKEY_DICT_SCHEMA.check_match({key["keyid"]: key})
_, keyids = keys.format_metadata_to_key(key)
ok = keys.verify_signature(key, {"keyid": key["keyid"], "sig": spec["sig"]}, bytes.fromhex(spec["msg"]))
print(json.dumps({"keyid_ok": key["keyid"] in keyids, "verified": ok}))
`

func TestKeyDictInPython(t *testing.T) {
	toolcheck.RequirePythonInToto(t)
	for _, typ := range []string{TypeRSA, TypeED25519, TypeECDSA} {
		t.Run(typ, func(t *testing.T) {
			s := mustGenerate(t, typ)
			for _, k := range []*Key{s.Key, mustParsePublic(t, pemPKIX(t, s))} {
				js, err := k.MarshalJSON()
				if err != nil {
					t.Fatal(err)
				}
				msg := []byte("layout bytes")
				sig, _ := s.Sign(msg)
				in, _ := json.Marshal(map[string]string{"key": string(js), "sig": hexString(sig), "msg": hexString(msg)})
				var out struct {
					KeyIDOK  bool `json:"keyid_ok"`
					Verified bool `json:"verified"`
				}
				res := toolcheck.Run(t, t.TempDir(), in, nil, toolcheck.Python, "-c", pyKeyDictScript)
				if err := json.Unmarshal(res, &out); err != nil {
					t.Fatal(err)
				}
				if !out.KeyIDOK || !out.Verified {
					t.Errorf("python on %s: keyid matches %v, signature verifies %v", js, out.KeyIDOK, out.Verified)
				}
			}
		})
	}
}

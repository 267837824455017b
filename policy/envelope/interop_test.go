package envelope

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"

	intoto "github.com/in-toto/in-toto-golang/in_toto"

	"tollgate.dev/tollgate/policy/keys"
	"tollgate.dev/tollgate/policy/reason"
	"tollgate.dev/tollgate/test/toolcheck"
)

// trickyStdout exercises canonical JSON: non-ASCII (Latin, CJK, astral), quotes,
// backslashes, control characters and a slash, all as Python records them.
const trickyStdout = `printf 'h\303\251llo \344\270\226 \360\237\230\200 "quoted" back\\\\slash\ttab/slash\001\n'`

// TestPythonLinksVerify: links recorded and signed by in-toto-run verify here, for every
// key type, and stop verifying when tampered or checked against another key.
func TestPythonLinksVerify(t *testing.T) {
	toolcheck.RequirePythonInToto(t)
	for _, typ := range []string{keys.TypeRSA, keys.TypeED25519, keys.TypeECDSA} {
		t.Run(typ, func(t *testing.T) {
			dir := t.TempDir()
			args := []string{"-t", typ}
			if typ == keys.TypeRSA {
				args = []string{"-b", "2048"}
			}
			toolcheck.Run(t, dir, nil, nil, toolcheck.InTotoKeygen, append(args, "func")...)
			writeFile(t, filepath.Join(dir, "src.txt"), []byte("source\n"))
			toolcheck.Run(t, dir, nil, nil, toolcheck.InTotoRun, "-n", "build", "-k", "func", "-t", typ,
				"-m", "src.txt", "-p", "src.txt", "-s", "--", "sh", "-c", trickyStdout)
			pub, err := keys.ParsePublic(readFile(t, filepath.Join(dir, "func.pub")))
			if err != nil {
				t.Fatal(err)
			}
			link := readFile(t, filepath.Join(dir, "build."+pub.ID[:8]+".link"))
			if !strings.Contains(string(link), `\u00e9`) {
				t.Fatalf("expected Python to escape non-ASCII in the link file:\n%s", link)
			}
			s, err := Parse(link)
			if err != nil {
				t.Fatal(err)
			}
			if s.Format != Metablock || len(s.Signatures) != 1 || s.Signatures[0].KeyID != pub.ID {
				t.Fatalf("parsed %v with signatures %+v; want one metablock signature by %s", s.Format, s.Signatures, pub.ID)
			}
			got, err := s.Verify([]*keys.Key{pub}, 1)
			if err != nil {
				t.Fatalf("python link does not verify: %v", err)
			}
			if len(got) != 1 || got[0] != pub {
				t.Errorf("verified keys %v", got)
			}

			tampered := strings.Replace(string(link), `\u00e9`, `e`, 1)
			ts, err := Parse([]byte(tampered))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := ts.Verify([]*keys.Key{pub}, 1); reason.KindOf(err) != reason.BadSignature {
				t.Errorf("tampered link: %v", err)
			}
			other, _ := keys.Generate(keys.TypeED25519, 0)
			if _, err := s.Verify([]*keys.Key{other.Key}, 1); reason.KindOf(err) != reason.BadSignature {
				t.Errorf("wrong key: %v", err)
			}
		})
	}
}

// pyVerifyScript loads a link with in-toto's Metablock and verifies it with each public
// key file given as type:path, printing the canonical bytes' SHA-256 too.
const pyVerifyScript = `
import json, sys, hashlib
from in_toto.models.metadata import Metablock
from securesystemslib import interface, formats
mb = Metablock.load(sys.argv[1])
out = {"canonical_sha256": hashlib.sha256(mb.signed.signable_bytes).hexdigest(), "verified": []}
for arg in sys.argv[2:]:
    typ, path = arg.split(":", 1)
    key = list(interface.import_publickeys_from_file([path], [typ]).values())[0]
    mb.verify_signature(key)
    out["verified"].append(key["keyid"])
print(json.dumps(out))
`

// TestOurMetablockVerifiesInPython: a link signed here by all three key types verifies
// in Python, and both sides canonicalize "signed" to the same bytes.
func TestOurMetablockVerifiesInPython(t *testing.T) {
	toolcheck.RequirePythonInToto(t)
	link := map[string]any{
		"_type":     "link",
		"name":      "build",
		"command":   []string{"sh", "-c", `echo "hi" \ there`},
		"materials": map[string]any{"src/é.txt": map[string]string{"sha256": strings.Repeat("a", 64)}},
		"products":  map[string]any{"out/\"q\".bin": map[string]string{"sha256": strings.Repeat("b", 64)}},
		"byproducts": map[string]any{
			"stdout": "héllo 世 😀 \"quoted\" back\\slash\ttab/slash\x01<&>\n", "stderr": "", "return-value": 0,
		},
		"environment": map[string]any{"big": json.Number("12345678901234567890"), "neg": -7},
	}
	s, err := NewMetablock(link)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	args := []string{"-c", pyVerifyScript, filepath.Join(dir, "build.link")}
	for _, typ := range []string{keys.TypeRSA, keys.TypeED25519, keys.TypeECDSA} {
		signer := generate(t, typ)
		if err := s.Sign(signer); err != nil {
			t.Fatal(err)
		}
		pub, _ := signer.MarshalPublic()
		p := filepath.Join(dir, typ+".pub")
		writeFile(t, p, pub)
		args = append(args, typ+":"+p)
	}
	data, err := s.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "build.link"), data)
	var out struct {
		CanonicalSHA256 string   `json:"canonical_sha256"`
		Verified        []string `json:"verified"`
	}
	if err := json.Unmarshal(toolcheck.Run(t, dir, nil, nil, toolcheck.Python, args...), &out); err != nil {
		t.Fatal(err)
	}
	if len(out.Verified) != 3 {
		t.Errorf("python verified %v", out.Verified)
	}
	canon, err := s.SignedBytes()
	if err != nil {
		t.Fatal(err)
	}
	if sum := sha256.Sum256(canon); hex.EncodeToString(sum[:]) != out.CanonicalSHA256 {
		t.Errorf("canonical JSON differs from Python's:\n%s", canon)
	}
}

// TestCosignDSSE: cosign's attestations (DSSE, empty keyid) verify here, and ours verify
// in cosign.
func TestCosignDSSE(t *testing.T) {
	cosign := toolcheck.Require(t, "cosign")
	dir := t.TempDir()
	env := []string{"COSIGN_PASSWORD=pw"}
	toolcheck.Run(t, dir, nil, env, cosign, "generate-key-pair")
	writeFile(t, filepath.Join(dir, "blob"), []byte("the artifact\n"))
	writeFile(t, filepath.Join(dir, "pred.json"), []byte(`{"builder":"tollgate-test"}`))
	toolcheck.Run(t, dir, nil, env, cosign, "attest-blob", "--key", "cosign.key", "--predicate", "pred.json",
		"--type", "custom", "--tlog-upload=false", "--output-signature", "att.json", "-y", "blob")
	pub, err := keys.ParsePublic(readFile(t, filepath.Join(dir, "cosign.pub")))
	if err != nil {
		t.Fatal(err)
	}
	s, err := Parse(readFile(t, filepath.Join(dir, "att.json")))
	if err != nil {
		t.Fatal(err)
	}
	if s.Format != DSSE || s.PayloadType != PayloadTypeInToto || len(s.Signatures) != 1 || s.Signatures[0].KeyID != "" {
		t.Fatalf("cosign attestation parsed as %v %q %+v", s.Format, s.PayloadType, s.Signatures)
	}
	if _, err := s.Verify([]*keys.Key{generate(t, keys.TypeECDSA).Key, pub}, 1); err != nil {
		t.Fatalf("cosign attestation does not verify: %v", err)
	}

	// Our envelope, signed with the cosign key, passes cosign verify-blob-attestation.
	signer, err := keys.ParsePrivate(readFile(t, filepath.Join(dir, "cosign.key")), []byte("pw"))
	if err != nil {
		t.Fatal(err)
	}
	ours := NewDSSE(PayloadTypeInToto, s.Payload)
	if err := ours.Sign(signer); err != nil {
		t.Fatal(err)
	}
	data, err := ours.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "ours.json"), data)
	toolcheck.Run(t, dir, nil, nil, cosign, "verify-blob-attestation", "--key", "cosign.pub", "--signature", "ours.json",
		"--type", "custom", "--insecure-ignore-tlog=true", "blob")
}

func writeFile(t testing.TB, p string, data []byte) {
	t.Helper()
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestInTotoGolangMetablock: links signed by in-toto-golang verify here, and ours verify
// in in-toto-golang, for every key type (keys shared as PKCS#8 PEM files).
func TestInTotoGolangMetablock(t *testing.T) {
	for _, typ := range allTypes {
		t.Run(typ, func(t *testing.T) {
			dir := t.TempDir()
			p := filepath.Join(dir, "key.pem")
			writeFile(t, p, pkcs8PEM(t, typ))
			var theirKey intoto.Key
			if err := theirKey.LoadKeyDefaults(p); err != nil {
				t.Fatal(err)
			}
			ours, err := keys.ParsePrivate(readFile(t, p), nil)
			if err != nil {
				t.Fatal(err)
			}
			if ours.ID != theirKey.KeyID {
				t.Fatalf("keyids differ: ours %s, in-toto-golang %s", ours.ID, theirKey.KeyID)
			}
			link := intoto.Link{
				Type: "link", Name: "build", Command: []string{"make", `"q" \ é`},
				Materials:   map[string]intoto.HashObj{"a/é.txt": {"sha256": strings.Repeat("c", 64)}},
				Products:    map[string]intoto.HashObj{},
				ByProducts:  map[string]any{"stdout": "ok 😀\n", "return-value": 0},
				Environment: map[string]any{},
			}
			mb := intoto.Metablock{Signed: link}
			if err := mb.Sign(theirKey); err != nil {
				t.Fatal(err)
			}
			lp := filepath.Join(dir, "build.link")
			if err := mb.Dump(lp); err != nil {
				t.Fatal(err)
			}
			s, err := Parse(readFile(t, lp))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := s.Verify([]*keys.Key{ours.Key}, 1); err != nil {
				t.Errorf("in-toto-golang link does not verify here: %v", err)
			}

			s.Signatures = nil
			if err := s.Sign(ours); err != nil {
				t.Fatal(err)
			}
			data, err := s.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			writeFile(t, lp, data)
			var back intoto.Metablock
			//lint:ignore SA1019 the point is in-toto-golang's Metablock reader, which LoadMetadata wraps
			if err := back.Load(lp); err != nil {
				t.Fatal(err)
			}
			if err := back.VerifySignature(theirKey); err != nil {
				t.Errorf("our link does not verify in in-toto-golang: %v", err)
			}
		})
	}
}

// pkcs8PEM generates a fresh key of typ as a PKCS#8 PEM, the format both read.
func pkcs8PEM(t testing.TB, typ string) []byte {
	t.Helper()
	var priv any
	var err error
	switch typ {
	case keys.TypeRSA:
		priv, err = rsa.GenerateKey(rand.Reader, 2048)
	case keys.TypeED25519:
		_, priv, err = ed25519.GenerateKey(rand.Reader)
	case keys.TypeECDSA:
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	}
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

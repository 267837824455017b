package keys

import (
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"tollgate.dev/tollgate/test/toolcheck"
)

// Interop tests run the real Python in-toto 1.3.1 (Debian's, under /usr/bin/python3) and
// cosign, found by test/toolcheck: a missing tool skips the test unless
// TOLLGATE_REQUIRE_TOOLS=1, as in CI.

// pyKeyScript loads a key pair with securesystemslib's interface (as the in-toto CLIs
// do), signs msg, and verifies sig if given.
const pyKeyScript = `
import json, sys
from securesystemslib import interface, keys
spec = json.load(sys.stdin)
priv = interface.import_privatekey_from_file(spec["priv"], key_type=spec["type"], password=spec.get("password"))
pub = list(interface.import_publickeys_from_file([spec["pub"]], [spec["type"]]).values())[0]
msg = bytes.fromhex(spec["msg"])
out = {"priv_keyid": priv["keyid"], "pub_keyid": pub["keyid"], "sig": keys.create_signature(priv, msg)["sig"]}
if spec.get("sig"):
    out["verified"] = keys.verify_signature(pub, {"keyid": pub["keyid"], "sig": spec["sig"]}, msg)
print(json.dumps(out))
`

type pyKeyResult struct {
	PrivKeyID string `json:"priv_keyid"`
	PubKeyID  string `json:"pub_keyid"`
	Sig       string `json:"sig"`
	Verified  *bool  `json:"verified"`
}

func pyKey(t testing.TB, typ, priv, pub, password string, msg, sig []byte) pyKeyResult {
	t.Helper()
	spec := map[string]any{"type": typ, "priv": priv, "pub": pub, "msg": hexString(msg)}
	if password != "" {
		spec["password"] = password
	}
	if sig != nil {
		spec["sig"] = hexString(sig)
	}
	in, _ := json.Marshal(spec)
	out := toolcheck.Run(t, filepath.Dir(priv), in, nil, toolcheck.Python, "-c", pyKeyScript)
	var r pyKeyResult
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("python output %q: %v", out, err)
	}
	return r
}

func readFile(t testing.TB, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

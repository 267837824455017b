// Package keys reads, writes and uses the signing keys of in-toto and cosign.
//
// A key's identity is its keyid, and the keyid must be the one Python in-toto and
// in-toto-golang compute: the hex SHA-256 of the canonical JSON of
//
//	{"keyid_hash_algorithms": ["sha256","sha512"], "keytype": T, "keyval": {"public": P}, "scheme": S}
//
// where P is the exact text of the public key (hex for ed25519, PEM for RSA and ECDSA).
// Because the text, not the key, is hashed, this package keeps the text a key was read
// with (Key.public) and only produces new text where Python would:
//
//   - securesystemslib JSON keys keep keyval.public verbatim;
//   - PEM keys (RSA, ECDSA) get Go's 64-column PEM without a trailing newline, which is
//     what Python's extract_pem yields for any standard PEM file and what in-toto-golang
//     writes;
//   - generated ECDSA keys keep the trailing newline Python's in-toto-keygen writes into
//     its JSON key files.
package keys

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"slices"

	"github.com/secure-systems-lab/go-securesystemslib/cjson"
)

// Key types as they appear in Key.Type.
const (
	TypeRSA     = "rsa"
	TypeED25519 = "ed25519"
	TypeECDSA   = "ecdsa"
)

// Signature schemes as they appear in Key.Scheme.
const (
	SchemeRSAPSSSHA256    = "rsassa-pss-sha256"
	SchemeRSAPKCS1SHA256  = "rsa-pkcs1v15-sha256"
	SchemeED25519         = "ed25519"
	SchemeECDSAP256SHA256 = "ecdsa-sha2-nistp256"
	SchemeECDSAP384SHA384 = "ecdsa-sha2-nistp384"
	SchemeECDSAP521SHA512 = "ecdsa-sha2-nistp521"
)

// MinRSABits is the smallest RSA modulus accepted. Python in-toto refuses to generate
// smaller keys; a trust root should not accept them either.
const MinRSABits = 2048

// MaxRSABits bounds the cost of one RSA verification.
const MaxRSABits = 16384

// maxKeyBytes bounds one key file; real keys are a few KiB.
const maxKeyBytes = 256 << 10

// defaultHashAlgorithms is securesystemslib's settings.HASH_ALGORITHMS. Python always
// hashes the keyid over this list, whatever the key dict declares, so this package does
// too (see keyID).
func defaultHashAlgorithms() []string { return []string{"sha256", "sha512"} }

// Key is a public verification key.
type Key struct {
	ID             string           // keyid exactly as Python in-toto / in-toto-golang compute it
	Type           string           // "rsa" | "ed25519" | "ecdsa"
	Scheme         string           // signature scheme, see the Scheme* constants
	HashAlgorithms []string         // keyid_hash_algorithms as declared (default sha256, sha512)
	Public         crypto.PublicKey // *rsa.PublicKey, ed25519.PublicKey or *ecdsa.PublicKey

	keytype string // keytype as written (legacy "ecdsa-sha2-nistp256" stays so); hashed into ID
	public  string // keyval.public exactly as hashed into ID
	der     []byte // PKIX DER of Public
}

// keyID computes the keyid the way securesystemslib's _get_keyid does.
func keyID(keytype, scheme, public string) (string, error) {
	meta := map[string]any{
		"keyid_hash_algorithms": defaultHashAlgorithms(),
		"keytype":               keytype,
		"keyval":                map[string]any{"public": public},
		"scheme":                scheme,
	}
	canon, err := cjson.EncodeCanonical(meta)
	if err != nil {
		return "", fmt.Errorf("canonicalizing key: %w", err)
	}
	sum := sha256.Sum256(canon)
	return hex.EncodeToString(sum[:]), nil
}

// newKey checks that keytype, scheme and pub agree and computes the keyid over
// publicText.
func newKey(keytype, scheme string, hashAlgs []string, pub crypto.PublicKey, publicText string) (*Key, error) {
	typ, err := normalizeType(keytype)
	if err != nil {
		return nil, err
	}
	id, err := keyID(keytype, scheme, publicText)
	if err != nil {
		return nil, err
	}
	if err := checkScheme(typ, scheme, pub); err != nil {
		return nil, fmt.Errorf("key %s: %w", id, err) // the keyid an operator finds in the layout
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("encoding public key: %w", err)
	}
	if len(hashAlgs) == 0 {
		hashAlgs = defaultHashAlgorithms()
	}
	return &Key{
		ID: id, Type: typ, Scheme: scheme, HashAlgorithms: slices.Clone(hashAlgs), Public: pub,
		keytype: keytype, public: publicText, der: der,
	}, nil
}

// normalizeType maps a securesystemslib keytype to Key.Type.
func normalizeType(keytype string) (string, error) {
	switch keytype {
	case TypeRSA, TypeED25519, TypeECDSA:
		return keytype, nil
	case "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384":
		// Legacy securesystemslib keytypes; Python still accepts them.
		return TypeECDSA, nil
	}
	return "", fmt.Errorf("unsupported key type %q (want rsa, ed25519 or ecdsa)", keytype)
}

// checkScheme rejects schemes that do not fit the key. ECDSA schemes must name the
// key's curve, as in-toto-golang requires; the scheme then fixes the hash.
func checkScheme(typ, scheme string, pub crypto.PublicKey) error {
	switch p := pub.(type) {
	case *rsa.PublicKey:
		if typ != TypeRSA {
			return fmt.Errorf("key type %q does not match an RSA key", typ)
		}
		switch bits := p.N.BitLen(); {
		case bits < MinRSABits:
			return fmt.Errorf("RSA key has %d bits; keys under %d bits are refused", bits, MinRSABits)
		case bits > MaxRSABits:
			return fmt.Errorf("RSA key has %d bits, over the limit of %d", bits, MaxRSABits)
		}
		if _, ok := rsaSchemes[scheme]; !ok {
			return fmt.Errorf("unsupported RSA scheme %q", scheme)
		}
	case ed25519.PublicKey:
		if typ != TypeED25519 {
			return fmt.Errorf("key type %q does not match an ed25519 key", typ)
		}
		if scheme != SchemeED25519 {
			return fmt.Errorf("unsupported ed25519 scheme %q", scheme)
		}
	case *ecdsa.PublicKey:
		if typ != TypeECDSA {
			return fmt.Errorf("key type %q does not match an ECDSA key", typ)
		}
		want, err := ecdsaSchemeFor(p)
		if err != nil {
			return err
		}
		if scheme != want {
			return fmt.Errorf("scheme %q does not match the key's curve %s (want %q)", scheme, p.Curve.Params().Name, want)
		}
	default:
		return fmt.Errorf("unsupported public key type %T", pub)
	}
	return nil
}

// ecdsaSchemeFor names the scheme securesystemslib uses for a curve.
func ecdsaSchemeFor(p *ecdsa.PublicKey) (string, error) {
	if p == nil || p.Curve == nil {
		return "", fmt.Errorf("ECDSA key without a curve")
	}
	switch p.Curve.Params().BitSize {
	case 256:
		return SchemeECDSAP256SHA256, nil
	case 384:
		return SchemeECDSAP384SHA384, nil
	case 521:
		return SchemeECDSAP521SHA512, nil
	}
	return "", fmt.Errorf("unsupported ECDSA curve %s", p.Curve.Params().Name)
}

// pemPublic is the canonical PEM text of a PKIX key: 64 columns, no trailing newline.
func pemPublic(der []byte) string {
	return string(bytes.TrimSpace(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})))
}

// material returns the PKIX DER of the key, computing it for a Key built as a literal.
func (k *Key) material() []byte {
	if k == nil {
		return nil
	}
	if k.der != nil {
		return k.der
	}
	der, err := x509.MarshalPKIXPublicKey(k.Public)
	if err != nil {
		return nil
	}
	return der
}

// SameMaterial reports whether k and o hold the same public key, whatever their keyids,
// schemes or text. A key listed twice under two keyids must count once towards a
// threshold.
func (k *Key) SameMaterial(o *Key) bool {
	a, b := k.material(), o.material()
	return a != nil && b != nil && bytes.Equal(a, b)
}

// ShortID is the keyid prefix Python uses in link file names ("<step>.<8 hex>.link").
func (k *Key) ShortID() string {
	if len(k.ID) > 8 {
		return k.ID[:8]
	}
	return k.ID
}

// publicText returns keyval.public, deriving it for a Key built as a literal.
func (k *Key) publicText() string {
	if k.public != "" {
		return k.public
	}
	if pub, ok := k.Public.(ed25519.PublicKey); ok {
		return hex.EncodeToString(pub)
	}
	if der := k.material(); der != nil {
		return pemPublic(der)
	}
	return ""
}

// keyType returns the keytype as written, defaulting to Type.
func (k *Key) keyType() string {
	if k.keytype != "" {
		return k.keytype
	}
	return k.Type
}

// jsonKey is the securesystemslib public key dict. Fields are in sorted order so the
// output is also the canonical order.
type jsonKey struct {
	KeyID               string   `json:"keyid,omitempty"`
	KeyIDHashAlgorithms []string `json:"keyid_hash_algorithms"`
	KeyType             string   `json:"keytype"`
	KeyVal              struct {
		Public string `json:"public"`
	} `json:"keyval"`
	Scheme string `json:"scheme"`
}

// MarshalJSON writes the securesystemslib public key dict, as the "keys" values of a
// layout hold them: keyid, keyid_hash_algorithms, keytype, keyval.public, scheme.
func (k *Key) MarshalJSON() ([]byte, error) {
	if k == nil || k.Public == nil {
		return nil, fmt.Errorf("keys: cannot marshal an empty key")
	}
	j := jsonKey{KeyID: k.ID, KeyIDHashAlgorithms: k.HashAlgorithms, KeyType: k.keyType(), Scheme: k.Scheme}
	if len(j.KeyIDHashAlgorithms) == 0 {
		j.KeyIDHashAlgorithms = defaultHashAlgorithms()
	}
	j.KeyVal.Public = k.publicText()
	return marshalNoEscape(j)
}

// String names the key for messages: type and short keyid, never material.
func (k *Key) String() string {
	if k == nil {
		return "<nil key>"
	}
	return fmt.Sprintf("%s key %s", k.Type, k.ShortID())
}

package keys

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"strings"

	"tollgate.dev/tollgate/policy/internal/jsonlimit"
	"tollgate.dev/tollgate/policy/reason"
)

func malformed(err error) *reason.Error {
	return reason.New(reason.Malformed, "invalid key").Wrap(err)
}

// ParsePublic reads a public key: PEM ("PUBLIC KEY" PKIX or "RSA PUBLIC KEY" PKCS#1) or
// a securesystemslib JSON key dict (a private part, if present, is ignored). PEM keys get
// the default scheme of their type: rsassa-pss-sha256, ed25519, or the ECDSA scheme of
// the curve.
func ParsePublic(data []byte) (*Key, error) {
	if len(data) > maxKeyBytes {
		return nil, malformed(fmt.Errorf("key file is %d bytes, over the limit of %d", len(data), maxKeyBytes))
	}
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) > 0 && trimmed[0] == '{' {
		return ParseJSON(trimmed)
	}
	k, err := parsePublicPEM(data)
	if err != nil {
		return nil, malformed(err)
	}
	return k, nil
}

func parsePublicPEM(data []byte) (*Key, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, fmt.Errorf("no PEM block and not a JSON key")
	}
	var pub crypto.PublicKey
	var err error
	switch block.Type {
	case "PUBLIC KEY":
		pub, err = x509.ParsePKIXPublicKey(block.Bytes)
	case "RSA PUBLIC KEY":
		pub, err = x509.ParsePKCS1PublicKey(block.Bytes)
	default:
		if strings.Contains(block.Type, "PRIVATE KEY") {
			return nil, fmt.Errorf("PEM block %q is a private key; a public key is needed here", block.Type)
		}
		return nil, fmt.Errorf("PEM block %q is not a public key", block.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("parsing %s: %w", block.Type, err)
	}
	return keyFromPublic(pub)
}

// keyFromPublic builds a Key for a bare public key with the default scheme of its type
// and the text in-toto-golang (and Python, for standard PEM files) hashes.
func keyFromPublic(pub crypto.PublicKey) (*Key, error) {
	switch p := pub.(type) {
	case *rsa.PublicKey:
		der, err := x509.MarshalPKIXPublicKey(p)
		if err != nil {
			return nil, err
		}
		return newKey(TypeRSA, SchemeRSAPSSSHA256, nil, p, pemPublic(der))
	case ed25519.PublicKey:
		return newKey(TypeED25519, SchemeED25519, nil, p, hex.EncodeToString(p))
	case *ecdsa.PublicKey:
		scheme, err := ecdsaSchemeFor(p)
		if err != nil {
			return nil, err
		}
		der, err := x509.MarshalPKIXPublicKey(p)
		if err != nil {
			return nil, err
		}
		return newKey(TypeECDSA, scheme, nil, p, pemPublic(der))
	}
	return nil, fmt.Errorf("unsupported public key type %T", pub)
}

// sslibKey is a securesystemslib key dict, public or private.
type sslibKey struct {
	KeyType             string   `json:"keytype"`
	Scheme              string   `json:"scheme"`
	KeyID               string   `json:"keyid"`
	KeyIDHashAlgorithms []string `json:"keyid_hash_algorithms"`
	KeyVal              struct {
		Public  *string `json:"public"`
		Private string  `json:"private"`
	} `json:"keyval"`
}

// ParseJSON reads one securesystemslib key dict, as layouts hold them under "keys".
// keyval.public is hashed into the keyid verbatim, as Python does; a "keyid" member of
// the dict is ignored (the keyid is always derived from the material).
func ParseJSON(raw []byte) (*Key, error) {
	var j sslibKey
	if err := jsonlimit.Decode(raw, maxKeyBytes, &j); err != nil {
		return nil, malformed(fmt.Errorf("decoding key JSON: %w", err))
	}
	k, err := keyFromSSLib(&j)
	if err != nil {
		return nil, malformed(err)
	}
	return k, nil
}

func keyFromSSLib(j *sslibKey) (*Key, error) {
	if j.KeyVal.Public == nil || *j.KeyVal.Public == "" {
		return nil, fmt.Errorf("key has no keyval.public")
	}
	if j.Scheme == "" {
		return nil, fmt.Errorf("key has no scheme")
	}
	typ, err := normalizeType(j.KeyType)
	if err != nil {
		return nil, err
	}
	text := *j.KeyVal.Public
	var pub crypto.PublicKey
	switch typ {
	case TypeED25519:
		b, err := hex.DecodeString(text)
		if err != nil || len(b) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("ed25519 keyval.public is not %d hex-encoded bytes", ed25519.PublicKeySize)
		}
		pub = ed25519.PublicKey(b)
	default:
		block, _ := pem.Decode([]byte(text))
		if block == nil || block.Type != "PUBLIC KEY" {
			return nil, fmt.Errorf("%s keyval.public is not a PEM \"PUBLIC KEY\"", typ)
		}
		if pub, err = x509.ParsePKIXPublicKey(block.Bytes); err != nil {
			return nil, fmt.Errorf("parsing %s keyval.public: %w", typ, err)
		}
	}
	return newKey(j.KeyType, j.Scheme, j.KeyIDHashAlgorithms, pub, text)
}

// marshalNoEscape encodes v as compact JSON without HTML escaping.
func marshalNoEscape(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

package keys

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
)

// DefaultRSABits is the RSA size Generate uses when asked for 0 bits (Python's default).
const DefaultRSABits = 3072

// Signer is a private key together with its public Key.
type Signer struct {
	*Key
	priv crypto.Signer
}

// newSigner pairs priv with the Key for its public half.
func newSigner(priv crypto.Signer, k *Key) (*Signer, error) {
	if !k.SameMaterial(&Key{Public: priv.Public()}) {
		return nil, errors.New("private and public parts of the key do not match")
	}
	return &Signer{Key: k, priv: priv}, nil
}

// signerFromPrivate builds a Signer for a bare private key (a PEM file) with the
// default scheme of its type and in-toto-golang's public text.
func signerFromPrivate(priv crypto.Signer) (*Signer, error) {
	k, err := keyFromPublic(priv.Public())
	if err != nil {
		return nil, err
	}
	return newSigner(priv, k)
}

// Generate creates a new key: "ed25519", "ecdsa" (P-256, as in-toto-keygen) or "rsa"
// (rsaBits, DefaultRSABits when 0).
func Generate(typ string, rsaBits int) (*Signer, error) {
	switch typ {
	case TypeED25519:
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, err
		}
		return signerFromPrivate(priv)
	case TypeECDSA:
		priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, err
		}
		der, err := x509.MarshalPKIXPublicKey(priv.Public())
		if err != nil {
			return nil, err
		}
		// in-toto-keygen -t ecdsa writes pyca/cryptography's PEM, newline included, and
		// hashes it so; keep that text so the keyid survives a trip through Python.
		k, err := newKey(TypeECDSA, SchemeECDSAP256SHA256, nil, priv.Public(), pemPublic(der)+"\n")
		if err != nil {
			return nil, err
		}
		return newSigner(priv, k)
	case TypeRSA:
		if rsaBits == 0 {
			rsaBits = DefaultRSABits
		}
		if rsaBits < MinRSABits || rsaBits > MaxRSABits {
			return nil, fmt.Errorf("keys: RSA size %d is outside %d..%d bits", rsaBits, MinRSABits, MaxRSABits)
		}
		priv, err := rsa.GenerateKey(rand.Reader, rsaBits)
		if err != nil {
			return nil, err
		}
		return signerFromPrivate(priv)
	}
	return nil, fmt.Errorf("keys: cannot generate key type %q (want rsa, ed25519 or ecdsa)", typ)
}

// Sign signs data with the key's scheme. RSA-PSS uses a salt as long as the digest,
// which is what Python signs with and what every PSS verifier accepts.
func (s *Signer) Sign(data []byte) ([]byte, error) {
	if s == nil || s.Key == nil || s.priv == nil {
		return nil, errors.New("keys: no private key to sign with")
	}
	switch priv := s.priv.(type) {
	case *rsa.PrivateKey:
		sch, ok := rsaSchemes[s.Scheme]
		if !ok {
			return nil, fmt.Errorf("keys: unsupported RSA scheme %q", s.Scheme)
		}
		d := digest(sch.hash, data)
		if sch.pss {
			return rsa.SignPSS(rand.Reader, priv, sch.hash, d, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: sch.hash})
		}
		return rsa.SignPKCS1v15(rand.Reader, priv, sch.hash, d)
	case ed25519.PrivateKey:
		return ed25519.Sign(priv, data), nil
	case *ecdsa.PrivateKey:
		h, ok := ecdsaHash[s.Scheme]
		if !ok {
			return nil, fmt.Errorf("keys: unsupported ECDSA scheme %q", s.Scheme)
		}
		return ecdsa.SignASN1(rand.Reader, priv, digest(h, data))
	}
	return nil, fmt.Errorf("keys: unsupported private key type %T", s.priv)
}

// pyPublicJSON is the public key file in-toto-keygen writes for ed25519 and ecdsa
// (json.dumps of format_keyval_to_metadata), in its member order.
type pyPublicJSON struct {
	KeyType             string   `json:"keytype"`
	Scheme              string   `json:"scheme"`
	KeyIDHashAlgorithms []string `json:"keyid_hash_algorithms"`
	KeyVal              struct {
		Public string `json:"public"`
	} `json:"keyval"`
}

// pyPrivateJSON is the private key file in-toto-keygen writes (json.dumps of the key
// dict), keyid included.
type pyPrivateJSON struct {
	KeyType             string   `json:"keytype"`
	Scheme              string   `json:"scheme"`
	KeyID               string   `json:"keyid"`
	KeyIDHashAlgorithms []string `json:"keyid_hash_algorithms"`
	KeyVal              struct {
		Public  string `json:"public"`
		Private string `json:"private"`
	} `json:"keyval"`
}

// MarshalPublic writes the public key the way in-toto-keygen writes "<name>.pub": PEM
// (PKIX) for RSA, securesystemslib JSON for ed25519 and ecdsa.
func (s *Signer) MarshalPublic() ([]byte, error) {
	if s == nil || s.Key == nil {
		return nil, errors.New("keys: no key to marshal")
	}
	if s.Type == TypeRSA {
		return []byte(s.publicText() + "\n"), nil
	}
	j := pyPublicJSON{KeyType: s.keyType(), Scheme: s.Scheme, KeyIDHashAlgorithms: s.hashAlgs()}
	j.KeyVal.Public = s.publicText()
	return marshalNoEscape(j)
}

func (k *Key) hashAlgs() []string {
	if len(k.HashAlgorithms) == 0 {
		return defaultHashAlgorithms()
	}
	return k.HashAlgorithms
}

// MarshalPrivate writes the private key in a format Python in-toto reads for its type:
//   - RSA: PEM, PKCS#1 "RSA PRIVATE KEY" in clear; with a passphrase PKCS#8
//     "ENCRYPTED PRIVATE KEY" (PBES2, PBKDF2-HMAC-SHA256, AES-256-CBC), which
//     pyca/cryptography reads and which is stronger than the legacy OpenSSL encryption
//     in-toto-keygen itself writes;
//   - ed25519, ecdsa: securesystemslib JSON as in-toto-keygen writes it, and with a
//     passphrase securesystemslib's encrypted form of that JSON.
func (s *Signer) MarshalPrivate(passphrase []byte) ([]byte, error) {
	if s == nil || s.Key == nil || s.priv == nil {
		return nil, errors.New("keys: no private key to marshal")
	}
	if priv, ok := s.priv.(*rsa.PrivateKey); ok {
		if len(passphrase) == 0 {
			return pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(priv)}), nil
		}
		der, err := x509.MarshalPKCS8PrivateKey(priv)
		if err != nil {
			return nil, err
		}
		return encryptPKCS8(der, passphrase)
	}
	j := pyPrivateJSON{KeyType: s.keyType(), Scheme: s.Scheme, KeyID: s.ID, KeyIDHashAlgorithms: s.hashAlgs()}
	j.KeyVal.Public = s.publicText()
	switch priv := s.priv.(type) {
	case ed25519.PrivateKey:
		j.KeyVal.Private = hex.EncodeToString(priv.Seed())
	case *ecdsa.PrivateKey:
		der, err := x509.MarshalECPrivateKey(priv)
		if err != nil {
			return nil, err
		}
		j.KeyVal.Private = string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}))
	default:
		return nil, fmt.Errorf("keys: unsupported private key type %T", s.priv)
	}
	plain, err := marshalNoEscape(j)
	if err != nil {
		return nil, err
	}
	if len(passphrase) == 0 {
		return plain, nil
	}
	return sslibEncrypt(plain, passphrase)
}

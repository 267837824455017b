package keys

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"

	"github.com/secure-systems-lab/go-securesystemslib/encrypted"

	"tollgate.dev/tollgate/policy/internal/jsonlimit"
)

// ErrPassphraseRequired is returned (wrapped) when a key is encrypted and no passphrase
// was given, so a CLI can prompt and retry.
var ErrPassphraseRequired = errors.New("the key is encrypted and needs a passphrase")

// ErrWrongPassphrase is returned (wrapped) when decryption fails: the passphrase is wrong
// or the file is corrupted (the formats cannot tell the two apart).
var ErrWrongPassphrase = errors.New("wrong passphrase, or the encrypted key is corrupted")

// ParsePrivate reads a private key:
//   - PEM: PKCS#8 "PRIVATE KEY", PKCS#1 "RSA PRIVATE KEY", SEC1 "EC PRIVATE KEY";
//     encrypted as PKCS#8 "ENCRYPTED PRIVATE KEY" (PBES2) or with legacy OpenSSL
//     "Proc-Type: 4,ENCRYPTED" headers (what in-toto-keygen -p writes for RSA);
//   - securesystemslib JSON (in-toto-keygen's ed25519 and ecdsa files), also in
//     securesystemslib's encrypted form (in-toto-keygen -p -t ed25519|ecdsa);
//   - cosign keys ("ENCRYPTED SIGSTORE PRIVATE KEY": scrypt + secretbox; the passphrase
//     may be empty, as cosign allows).
//
// A passphrase given for an unencrypted key is ignored. Errors never contain key
// material or the passphrase.
func ParsePrivate(data, passphrase []byte) (*Signer, error) {
	if len(data) > maxKeyBytes {
		return nil, malformed(fmt.Errorf("key file is %d bytes, over the limit of %d", len(data), maxKeyBytes))
	}
	s, err := parsePrivate(bytes.TrimSpace(data), passphrase)
	if err != nil {
		return nil, malformed(err)
	}
	return s, nil
}

func parsePrivate(data, passphrase []byte) (*Signer, error) {
	switch {
	case len(data) > 0 && data[0] == '{':
		return parsePrivateJSON(data)
	case isSSLibEncrypted(data):
		if len(passphrase) == 0 {
			return nil, ErrPassphraseRequired
		}
		plain, err := sslibDecrypt(data, passphrase)
		if err != nil {
			return nil, err
		}
		return parsePrivateJSON(plain)
	}
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, errors.New("neither a PEM private key nor a securesystemslib JSON key")
	}
	der, err := decryptPEM(block, passphrase)
	if err != nil {
		return nil, err
	}
	priv, err := parsePrivateDER(block.Type, der)
	if err != nil {
		//lint:ignore SA1019 see decryptPEM.
		if x509.IsEncryptedPEMBlock(block) { //nolint:staticcheck
			// Legacy PEM encryption has no integrity check: a wrong passphrase often
			// decrypts "successfully" into garbage.
			return nil, ErrWrongPassphrase
		}
		return nil, err
	}
	return signerFromPrivate(priv)
}

// decryptPEM returns the DER inside block, decrypting it if it is encrypted.
func decryptPEM(block *pem.Block, passphrase []byte) ([]byte, error) {
	switch block.Type {
	case "ENCRYPTED SIGSTORE PRIVATE KEY", "ENCRYPTED COSIGN PRIVATE KEY":
		der, err := encrypted.Decrypt(block.Bytes, passphrase)
		if err != nil {
			if len(passphrase) == 0 {
				return nil, fmt.Errorf("decrypting cosign key: %w", ErrPassphraseRequired)
			}
			return nil, fmt.Errorf("decrypting cosign key: %w", ErrWrongPassphrase)
		}
		return der, nil
	case "ENCRYPTED PRIVATE KEY":
		if len(passphrase) == 0 {
			return nil, ErrPassphraseRequired
		}
		return decryptPKCS8(block.Bytes, passphrase)
	}
	//lint:ignore SA1019 legacy PEM encryption is what in-toto-keygen -p writes for RSA.
	if x509.IsEncryptedPEMBlock(block) { //nolint:staticcheck
		if len(passphrase) == 0 {
			return nil, ErrPassphraseRequired
		}
		//lint:ignore SA1019 see above.
		der, err := x509.DecryptPEMBlock(block, passphrase) //nolint:staticcheck
		if err != nil {
			return nil, ErrWrongPassphrase
		}
		return der, nil
	}
	return block.Bytes, nil
}

// parsePrivateDER parses a private key by its PEM type; the encrypted types hold PKCS#8.
func parsePrivateDER(pemType string, der []byte) (crypto.Signer, error) {
	var (
		key any
		err error
	)
	switch pemType {
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(der)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(der)
	case "PRIVATE KEY", "ENCRYPTED PRIVATE KEY", "ENCRYPTED SIGSTORE PRIVATE KEY", "ENCRYPTED COSIGN PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(der)
	default:
		return nil, fmt.Errorf("PEM block %q is not a private key", pemType)
	}
	if err != nil {
		// A legacy-encrypted PEM decrypted with a wrong passphrase usually ends here.
		return nil, fmt.Errorf("parsing %s: the key is malformed or the passphrase is wrong", pemType)
	}
	switch k := key.(type) {
	case *rsa.PrivateKey:
		return k, nil
	case *ecdsa.PrivateKey:
		return k, nil
	case ed25519.PrivateKey:
		return k, nil
	}
	return nil, fmt.Errorf("unsupported private key type %T", key)
}

// parsePrivateJSON reads a securesystemslib private key dict. The keyid is computed from
// keyval.public exactly as written, as Python does; the private part must match it.
func parsePrivateJSON(data []byte) (*Signer, error) {
	var j sslibKey
	if err := jsonlimit.Decode(data, maxKeyBytes, &j); err != nil {
		return nil, errors.New("decoding key JSON failed")
	}
	if j.KeyVal.Private == "" {
		return nil, errors.New("the JSON key has no private part")
	}
	k, err := keyFromSSLib(&j)
	if err != nil {
		return nil, err
	}
	var priv crypto.Signer
	switch k.Type {
	case TypeED25519:
		b, err := hex.DecodeString(j.KeyVal.Private)
		switch {
		case err != nil:
			return nil, errors.New("ed25519 keyval.private is not hex")
		case len(b) == ed25519.SeedSize: // Python: the 32-byte seed
			priv = ed25519.NewKeyFromSeed(b)
		case len(b) == ed25519.PrivateKeySize: // in-toto-golang: seed and public key
			priv = ed25519.NewKeyFromSeed(b[:ed25519.SeedSize])
		default:
			return nil, errors.New("ed25519 keyval.private has the wrong length")
		}
	default:
		block, _ := pem.Decode([]byte(j.KeyVal.Private))
		if block == nil {
			return nil, fmt.Errorf("%s keyval.private is not PEM", k.Type)
		}
		der, err := decryptPEM(block, nil)
		if err != nil {
			return nil, err
		}
		if priv, err = parsePrivateDER(block.Type, der); err != nil {
			return nil, err
		}
	}
	return newSigner(priv, k)
}

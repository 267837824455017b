package keys

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"errors"
	"fmt"

	"tollgate.dev/tollgate/policy/reason"
)

// rsaScheme is how one RSA scheme signs: padding and hash.
type rsaScheme struct {
	pss  bool
	hash crypto.Hash
}

// rsaSchemes are the securesystemslib RSA schemes this package accepts. MD5, SHA-1 and
// SHA-224 variants exist in securesystemslib but are refused here.
var rsaSchemes = map[string]rsaScheme{
	"rsassa-pss-sha256":   {pss: true, hash: crypto.SHA256},
	"rsassa-pss-sha384":   {pss: true, hash: crypto.SHA384},
	"rsassa-pss-sha512":   {pss: true, hash: crypto.SHA512},
	"rsa-pkcs1v15-sha256": {hash: crypto.SHA256},
	"rsa-pkcs1v15-sha384": {hash: crypto.SHA384},
	"rsa-pkcs1v15-sha512": {hash: crypto.SHA512},
}

// ecdsaHash is the digest each ECDSA scheme signs (securesystemslib's _SCHEME_HASHER;
// go-securesystemslib picks the same by curve size).
var ecdsaHash = map[string]crypto.Hash{
	SchemeECDSAP256SHA256: crypto.SHA256,
	SchemeECDSAP384SHA384: crypto.SHA384,
	SchemeECDSAP521SHA512: crypto.SHA512,
}

func digest(h crypto.Hash, data []byte) []byte {
	d := h.New()
	d.Write(data)
	return d.Sum(nil)
}

var errMismatch = errors.New("signature does not match the data")

// Verify checks sig over data with the key's scheme, with Go's crypto packages. RSA-PSS
// accepts any salt length, as pyca/cryptography's PSS.AUTO does (see verifyRSA). ECDSA signatures are ASN.1 DER, as securesystemslib and
// cosign write them.
func (k *Key) Verify(data, sig []byte) error {
	if k == nil || k.Public == nil {
		return reason.New(reason.BadSignature, "no public key to verify the signature with")
	}
	err := k.verify(data, sig)
	if err != nil {
		return reason.New(reason.BadSignature, "signature by %s does not verify", k).Wrap(err)
	}
	return nil
}

func (k *Key) verify(data, sig []byte) error {
	switch pub := k.Public.(type) {
	case *rsa.PublicKey:
		s, ok := rsaSchemes[k.Scheme]
		if !ok {
			return fmt.Errorf("unsupported RSA scheme %.64q", k.Scheme)
		}
		return verifyRSA(pub, s, digest(s.hash, data), sig)
	case ed25519.PublicKey:
		if k.Scheme != SchemeED25519 {
			return fmt.Errorf("unsupported ed25519 scheme %.64q", k.Scheme)
		}
		if len(pub) != ed25519.PublicKeySize || !ed25519.Verify(pub, data, sig) {
			return errMismatch
		}
		return nil
	case *ecdsa.PublicKey:
		h, ok := ecdsaHash[k.Scheme]
		if !ok {
			return fmt.Errorf("unsupported ECDSA scheme %.64q", k.Scheme)
		}
		if !ecdsa.VerifyASN1(pub, digest(h, data), sig) {
			return errMismatch
		}
		return nil
	}
	return errors.New("unsupported public key type")
}

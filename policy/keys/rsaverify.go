package keys

import (
	"crypto"
	"crypto/rsa"
	"errors"
	"fmt"
)

// verifyRSA checks sig, made with scheme s, over the digest d (already Hash(M)), with
// crypto/rsa. PSS accepts any salt length (PSSSaltLengthAuto), as pyca/cryptography's
// PSS.AUTO does: Python in-toto signs with the maximum salt, other tools with the digest
// length. The cost at 3072 bits (BenchmarkRSAVerify) is paid where no hook waits on it: a
// layout's signature at policy load, link and Statement signatures in pre-verification.
func verifyRSA(pub *rsa.PublicKey, s rsaScheme, d, sig []byte) error {
	// Parsing refuses these; a Key built as a literal reaches here unchecked, and
	// crypto/rsa panics on a nil key and takes a negative modulus by its absolute value.
	if pub == nil || pub.N == nil || pub.N.Sign() <= 0 {
		return errors.New("RSA key has no valid modulus")
	}
	if bits := pub.N.BitLen(); bits < MinRSABits {
		return fmt.Errorf("RSA key has %d bits; keys under %d bits are refused", bits, MinRSABits)
	}
	// crypto.Hash.New panics on a hash that is not linked in; the schemes use SHA-2 only.
	switch s.hash {
	case crypto.SHA256, crypto.SHA384, crypto.SHA512:
	default:
		return fmt.Errorf("unsupported RSA hash %v", s.hash)
	}
	if len(d) != s.hash.Size() {
		return fmt.Errorf("RSA digest length %d, want %d for %v", len(d), s.hash.Size(), s.hash)
	}
	if s.pss {
		return rsa.VerifyPSS(pub, s.hash, d, sig, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthAuto})
	}
	return rsa.VerifyPKCS1v15(pub, s.hash, d, sig)
}

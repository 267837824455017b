package keys

// RSA signature verification on math/big, written from RFC 8017.
//
// crypto/rsa routes every operation through crypto/internal/fips140/bigmod, which has
// assembly for 1024-, 1536- and 2048-bit moduli only and recomputes the Montgomery
// constant on each call. Python in-toto generates RSA-3072 keys by default, and there
// one crypto/rsa verification costs about 200-250 µs, most of a layout check; math/big
// takes about a third of that (BenchmarkRSAVerify). Verification handles public data
// only, so it needs no constant-time arithmetic: math/big has assembly for any length,
// and with e < 2^31 the exponentiation is a few dozen multiplications. Signing stays
// on crypto/rsa, which must protect the private key.

import (
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"math/big"
)

// rsaMinBits is crypto/rsa's smallest accepted modulus under its default GODEBUG
// (rsa1024min=1). rsa1024min=0 is deliberately not honoured: it exists for legacy
// tests, and a verifier must not start trusting weaker keys because of an environment
// variable. Key parsing already requires MinRSABits.
const rsaMinBits = 1024

// rsaMaxE is crypto/rsa's largest public exponent, 2^31-1: it keeps the accepted keys
// independent of the size of int, and bounds the cost of the exponentiation.
const rsaMaxE = 1<<31 - 1

// digestInfoPrefix is the DER encoding of DigestInfo up to the digest octets for each
// hash, from RFC 8017 §9.2 note 1.
var digestInfoPrefix = map[crypto.Hash][]byte{
	crypto.SHA256: {0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20},
	crypto.SHA384: {0x30, 0x41, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02, 0x05, 0x00, 0x04, 0x30},
	crypto.SHA512: {0x30, 0x51, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x03, 0x05, 0x00, 0x04, 0x40},
}

// newRSAHash returns a fresh hash for the SHA-2 functions the RSA schemes use. The
// constructors are called directly so that an unsupported crypto.Hash yields an error
// rather than crypto.Hash.New's panic.
func newRSAHash(h crypto.Hash) (hash.Hash, error) {
	switch h {
	case crypto.SHA256:
		return sha256.New(), nil
	case crypto.SHA384:
		return sha512.New384(), nil
	case crypto.SHA512:
		return sha512.New(), nil
	}
	return nil, fmt.Errorf("unsupported RSA hash %v", h)
}

// verifyRSA checks sig, made with scheme s, over the digest d (already Hash(M)).
func verifyRSA(pub *rsa.PublicKey, s rsaScheme, d, sig []byte) error {
	if err := checkRSAPublicKey(pub); err != nil {
		return err
	}
	h, err := newRSAHash(s.hash)
	if err != nil {
		return err
	}
	if len(d) != h.Size() {
		return fmt.Errorf("RSA digest length %d, want %d for %v", len(d), h.Size(), s.hash)
	}
	em, err := rsavp1(pub, sig)
	if err != nil {
		return err
	}
	if s.pss {
		return verifyPSS(em, pub.N.BitLen()-1, d, h)
	}
	return verifyPKCS1v15(em, d, s.hash)
}

// checkRSAPublicKey accepts the public keys crypto/rsa accepts for verification: an
// odd modulus of at least rsaMinBits and an odd exponent in 3..2^31-1. A negative
// modulus is refused too; crypto/rsa would silently use its absolute value.
func checkRSAPublicKey(pub *rsa.PublicKey) error {
	if pub == nil || pub.N == nil {
		return errors.New("RSA key has no modulus")
	}
	if pub.N.Sign() <= 0 {
		return errors.New("RSA modulus is not positive")
	}
	if bits := pub.N.BitLen(); bits < rsaMinBits {
		return fmt.Errorf("RSA modulus has %d bits, want at least %d", bits, rsaMinBits)
	}
	if pub.N.Bit(0) == 0 {
		return errors.New("RSA modulus is even")
	}
	// An even e is never invertible modulo λ(n), so no private key can match it.
	if pub.E < 3 || pub.E > rsaMaxE || pub.E&1 == 0 {
		return fmt.Errorf("RSA public exponent %d is not an odd number in 3..%d", pub.E, rsaMaxE)
	}
	return nil
}

// rsavp1 is RSAVP1 (RFC 8017 §5.2.2) with the length check of §8.1.2/§8.2.2 step 1,
// returning m = s^e mod n as I2OSP(m, k), k being the modulus length in octets.
func rsavp1(pub *rsa.PublicKey, sig []byte) ([]byte, error) {
	k := (pub.N.BitLen() + 7) / 8
	if len(sig) != k {
		return nil, fmt.Errorf("RSA signature length %d, want %d", len(sig), k)
	}
	s := new(big.Int).SetBytes(sig)
	if s.Cmp(pub.N) >= 0 {
		return nil, errors.New("RSA signature representative out of range")
	}
	m := new(big.Int).Exp(s, big.NewInt(int64(pub.E)), pub.N)
	return m.FillBytes(make([]byte, k)), nil
}

// verifyPSS is EMSA-PSS-VERIFY (RFC 8017 §9.1.2) with the salt length recovered from
// the encoding, as crypto/rsa's PSSSaltLengthAuto and pyca's PSS.AUTO do. em is the
// k-octet RSAVP1 output; emBits is modBits-1.
func verifyPSS(em []byte, emBits int, mHash []byte, h hash.Hash) error {
	// §8.1.2 step 2c: EM is I2OSP(m, emLen). When modBits-1 is a multiple of 8, emLen
	// is k-1, and m must fit: its leading octet is zero.
	emLen := (emBits + 7) / 8
	if len(em) > emLen {
		if em[0] != 0 {
			return errors.New("RSA-PSS: encoded message longer than the modulus allows")
		}
		em = em[1:]
	}
	hLen := h.Size()
	// Step 3, for the shortest salt; the salt length is only known after unmasking.
	if emLen < hLen+2 {
		return errors.New("RSA-PSS: modulus too short for the hash")
	}
	// Step 4.
	if em[emLen-1] != 0xbc {
		return errors.New("RSA-PSS: trailer is not 0xbc")
	}
	// Step 5.
	maskedDB, hashed := em[:emLen-hLen-1], em[emLen-hLen-1:emLen-1]
	// Step 6: the bits above emBits must be zero, which keeps EM below n.
	topBits := byte(0xff >> (8*emLen - emBits))
	if maskedDB[0]&^topBits != 0 {
		return errors.New("RSA-PSS: leftmost bits of the encoding are not zero")
	}
	// Steps 7 to 9.
	db := mgf1(h, hashed, len(maskedDB))
	subtle.XORBytes(db, db, maskedDB)
	db[0] &= topBits
	// Step 10 with the salt length unknown: DB is PS (zeros) || 0x01 || salt, so the
	// first non-zero octet must be 0x01 and everything after it is the salt.
	ps := 0
	for ps < len(db) && db[ps] == 0 {
		ps++
	}
	if ps == len(db) || db[ps] != 0x01 {
		return errors.New("RSA-PSS: inconsistent padding")
	}
	salt := db[ps+1:]
	// Steps 12 to 14: H' = Hash(0x00*8 || mHash || salt).
	h.Reset()
	h.Write(make([]byte, 8))
	h.Write(mHash)
	h.Write(salt)
	if subtle.ConstantTimeCompare(h.Sum(nil), hashed) != 1 {
		return errors.New("RSA-PSS: hash does not match the message")
	}
	return nil
}

// mgf1 is MGF1 (RFC 8017 §B.2.1): Hash(seed || C) for C = 0, 1, ... as 32-bit
// big-endian counters, concatenated and cut to length octets. h is reset and reused.
func mgf1(h hash.Hash, seed []byte, length int) []byte {
	out := make([]byte, 0, length+h.Size())
	var counter [4]byte
	for c := uint32(0); len(out) < length; c++ {
		binary.BigEndian.PutUint32(counter[:], c)
		h.Reset()
		h.Write(seed)
		h.Write(counter[:])
		out = h.Sum(out)
	}
	return out[:length]
}

// verifyPKCS1v15 is RSASSA-PKCS1-V1_5-VERIFY (RFC 8017 §8.2.2) steps 3 and 4: it builds
// the one valid encoding of the digest and compares. Parsing EM instead would invite
// the DigestInfo parsing flaws behind Bleichenbacher's 2006 forgeries.
func verifyPKCS1v15(em, digest []byte, hashID crypto.Hash) error {
	prefix, ok := digestInfoPrefix[hashID]
	if !ok {
		return fmt.Errorf("unsupported RSA hash %v", hashID)
	}
	// EMSA-PKCS1-v1_5-ENCODE (§9.2): 0x00 0x01 PS 0x00 T, PS at least eight 0xff.
	tLen := len(prefix) + len(digest)
	if len(em) < tLen+11 {
		return errors.New("RSA PKCS#1 v1.5: modulus too short for the hash")
	}
	want := make([]byte, len(em))
	want[1] = 0x01
	psEnd := len(em) - tLen - 1
	for i := 2; i < psEnd; i++ {
		want[i] = 0xff
	}
	copy(want[psEnd+1:], prefix)
	copy(want[psEnd+1+len(prefix):], digest)
	if subtle.ConstantTimeCompare(em, want) != 1 {
		return errors.New("RSA PKCS#1 v1.5: encoding does not match the digest")
	}
	return nil
}

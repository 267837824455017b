package keys

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/binary"
	"encoding/pem"
	"fmt"
	"hash"
	"math/big"
	"os"
	"slices"
	"sync"
	"testing"
)

// rsaTestKeys caches generated keys by [size, index]: a 4096-bit key takes seconds to
// generate, and every test and benchmark here can share them. Each entry generates
// once, and parallel tests generate different keys concurrently.
var rsaTestKeys sync.Map // [2]int -> func() (*rsa.PrivateKey, error)

// rsaTestKey returns the n-th cached key of the given size, generating it on first use.
func rsaTestKey(tb testing.TB, bits, n int) *rsa.PrivateKey {
	tb.Helper()
	gen, _ := rsaTestKeys.LoadOrStore([2]int{bits, n}, sync.OnceValues(func() (*rsa.PrivateKey, error) {
		return rsa.GenerateKey(rand.Reader, bits)
	}))
	k, err := gen.(func() (*rsa.PrivateKey, error))()
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

// loadRSATestKey reads a fixed test-only key from testdata, so that fuzz failures
// reproduce with the same modulus.
func loadRSATestKey(tb testing.TB, bits int) *rsa.PrivateKey {
	tb.Helper()
	data, err := os.ReadFile(fmt.Sprintf("testdata/rsa%d-test.pem", bits))
	if err != nil {
		tb.Fatal(err)
	}
	block, _ := pem.Decode(data)
	if block == nil {
		tb.Fatalf("no PEM block in the %d-bit test key", bits)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		tb.Fatal(err)
	}
	return k.(*rsa.PrivateKey)
}

// rsaSchemeNames lists rsaSchemes in a fixed order, for tables and fuzz modes.
func rsaSchemeNames() []string {
	var names []string
	for name := range rsaSchemes {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

// rawRSASign is the bare private-key operation em^d mod n via the CRT, output in k
// octets. It lets tests choose the encoded message a signature recovers to, which
// crypto/rsa's API does not.
func rawRSASign(priv *rsa.PrivateKey, em []byte) []byte {
	p, q, pre := priv.Primes[0], priv.Primes[1], priv.Precomputed
	m := new(big.Int).Mod(new(big.Int).SetBytes(em), priv.N)
	m1 := new(big.Int).Exp(m, pre.Dp, p)
	m2 := new(big.Int).Exp(m, pre.Dq, q)
	h := m1.Sub(m1, m2)
	h.Mul(h, pre.Qinv).Mod(h, p)
	s := h.Mul(h, q).Add(h, m2)
	return s.FillBytes(make([]byte, priv.Size()))
}

// rawRSAPublic is s^e mod n in k octets, to see the encoding inside a signature.
func rawRSAPublic(pub *rsa.PublicKey, sig []byte) []byte {
	m := new(big.Int).Exp(new(big.Int).SetBytes(sig), big.NewInt(int64(pub.E)), pub.N)
	return m.FillBytes(make([]byte, pub.Size()))
}

// encodePSSForTest is EMSA-PSS-ENCODE (RFC 8017 §9.1.1) with a chosen salt, returned
// left-padded to k octets. crypto/rsa cannot sign with an empty salt (SaltLength 0
// means "auto"), nor with a salt the test picks.
func encodePSSForTest(pub *rsa.PublicKey, h crypto.Hash, mHash, salt []byte) []byte {
	emBits := pub.N.BitLen() - 1
	emLen := (emBits + 7) / 8
	hLen := h.Size()
	hh := h.New()
	hh.Write(make([]byte, 8))
	hh.Write(mHash)
	hh.Write(salt)
	hashed := hh.Sum(nil)
	db := make([]byte, emLen-hLen-1)
	db[len(db)-len(salt)-1] = 0x01
	copy(db[len(db)-len(salt):], salt)
	mask := mgf1(h.New(), hashed, len(db))
	for i := range db {
		db[i] ^= mask[i]
	}
	db[0] &= 0xff >> (8*emLen - emBits)
	em := append(append(db, hashed...), 0xbc)
	return append(make([]byte, pub.Size()-emLen), em...)
}

// encodePKCS1v15ForTest is EMSA-PKCS1-v1_5-ENCODE (RFC 8017 §9.2) in k octets, with
// DigestInfo from encoding/asn1.
func encodePKCS1v15ForTest(pub *rsa.PublicKey, h crypto.Hash, d []byte) []byte {
	t := digestInfoForTest(h, d)
	em := append([]byte{0x00, 0x01}, bytes.Repeat([]byte{0xff}, pub.Size()-len(t)-3)...)
	return append(append(em, 0x00), t...)
}

// digestInfoForTest is DER DigestInfo (RFC 8017 §9.2 step 2, appendix A.2.4).
func digestInfoForTest(h crypto.Hash, d []byte) []byte {
	oid := map[crypto.Hash]asn1.ObjectIdentifier{
		crypto.SHA256: {2, 16, 840, 1, 101, 3, 4, 2, 1},
		crypto.SHA384: {2, 16, 840, 1, 101, 3, 4, 2, 2},
		crypto.SHA512: {2, 16, 840, 1, 101, 3, 4, 2, 3},
	}[h]
	der, err := asn1.Marshal(struct {
		Alg    pkix.AlgorithmIdentifier
		Digest []byte
	}{pkix.AlgorithmIdentifier{Algorithm: oid, Parameters: asn1.NullRawValue}, d})
	if err != nil {
		panic(err)
	}
	return der
}

// maxPSSSalt is the longest salt the key's encoding has room for.
func maxPSSSalt(pub *rsa.PublicKey, h crypto.Hash) int {
	return (pub.N.BitLen()-1+7)/8 - h.Size() - 2
}

// rsaSigned is a valid signature and the scheme it was made with.
type rsaSigned struct {
	name string
	sch  rsaScheme
	sig  []byte
}

// rsaValidSignatures signs msg under every scheme: PSS with salt lengths 0, 1, the
// digest length (Python's choice) and the maximum (other tools' choice).
func rsaValidSignatures(t testing.TB, priv *rsa.PrivateKey, msg []byte) []rsaSigned {
	var out []rsaSigned
	for _, name := range rsaSchemeNames() {
		sch := rsaSchemes[name]
		d := digest(sch.hash, msg)
		if !sch.pss {
			sig, err := rsa.SignPKCS1v15(nil, priv, sch.hash, d)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, rsaSigned{name, sch, sig})
			continue
		}
		salt0 := rawRSASign(priv, encodePSSForTest(&priv.PublicKey, sch.hash, d, nil))
		out = append(out, rsaSigned{name + "/salt0", sch, salt0})
		for _, salt := range []struct {
			name string
			opt  int
		}{{"1", 1}, {"hlen", rsa.PSSSaltLengthEqualsHash}, {"max", rsa.PSSSaltLengthAuto}} {
			if salt.opt == rsa.PSSSaltLengthEqualsHash && sch.hash.Size() > maxPSSSalt(&priv.PublicKey, sch.hash) {
				continue // SHA-512 with a 64-octet salt does not fit a 1024-bit key
			}
			sig, err := rsa.SignPSS(rand.Reader, priv, sch.hash, d, &rsa.PSSOptions{SaltLength: salt.opt})
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, rsaSigned{name + "/salt" + salt.name, sch, sig})
		}
	}
	return out
}

// rsaKeyWithExponent builds a key with public exponent e, which rsa.GenerateKey cannot.
func rsaKeyWithExponent(t *testing.T, bits, e int) *rsa.PrivateKey {
	one, bigE := big.NewInt(1), big.NewInt(int64(e))
	prime := func() *big.Int {
		for {
			p, err := rand.Prime(rand.Reader, bits/2)
			if err != nil {
				t.Fatal(err)
			}
			// e must be invertible modulo p-1.
			if new(big.Int).GCD(nil, nil, bigE, new(big.Int).Sub(p, one)).Cmp(one) == 0 {
				return p
			}
		}
	}
	p, q := prime(), prime()
	for p.Cmp(q) == 0 {
		q = prime()
	}
	phi := new(big.Int).Mul(new(big.Int).Sub(p, one), new(big.Int).Sub(q, one))
	priv := &rsa.PrivateKey{
		PublicKey: rsa.PublicKey{N: new(big.Int).Mul(p, q), E: e},
		D:         new(big.Int).ModInverse(bigE, phi),
		Primes:    []*big.Int{p, q},
	}
	if err := priv.Validate(); err != nil {
		t.Fatal(err)
	}
	priv.Precompute()
	return priv
}

// topBitEM is the largest value below n ending in 0xbc: an encoding with the 0xbc
// trailer whose bit emBits is set, yet still a valid RSA input.
func topBitEM(n *big.Int) []byte {
	em := new(big.Int).Sub(n, big.NewInt(1))
	low := new(big.Int).Sub(em, big.NewInt(0xbc))
	em.Sub(em, low.Mod(low, big.NewInt(256)))
	return em.FillBytes(make([]byte, (n.BitLen()+7)/8))
}

// mgf1 is MGF1 (RFC 8017 §B.2.1): Hash(seed || C) for C = 0, 1, ... as 32-bit
// big-endian counters, concatenated and cut to length octets.
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

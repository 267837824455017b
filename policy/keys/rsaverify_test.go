package keys

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"fmt"
	"math/big"
	"strings"
	"testing"

	"tollgate.dev/tollgate/policy/internal/benchcpu"
)

// TestRSAVerifyRegression: for every size, scheme and salt length, a valid signature
// (from crypto/rsa signing, and PSS encodings built here for the salts it cannot choose:
// empty, and Python in-toto's maximum) verifies, and its tampered variants do not. 2049-
// bit moduli make the PSS encoding one octet shorter than the modulus. (These were the
// differential tests against crypto/rsa when verification was hand-written; they stay
// as regression tests of the schemes and salt lengths Python and cosign use.)
func TestRSAVerifyRegression(t *testing.T) {
	msg := []byte("in-toto link")
	for _, bits := range []int{2048, 2049, 3072, 4096} {
		t.Run(fmt.Sprint(bits), func(t *testing.T) {
			t.Parallel()
			priv, other := rsaTestKey(t, bits, 0), rsaTestKey(t, bits, 1)
			pub := &priv.PublicKey
			otherSigs := rsaValidSignatures(t, other, msg)
			for i, v := range rsaValidSignatures(t, priv, msg) {
				for _, tc := range rsaTamperCases(pub, v, otherSigs[i].sig, msg) {
					if err := verifyRSA(pub, tc.sch, tc.d, tc.sig); (err == nil) != tc.valid {
						t.Errorf("%s %s: accepted=%v, want %v (%v)", v.name, tc.name, err == nil, tc.valid, err)
					}
				}
			}
		})
	}
}

// rsaTamper is one verification of a differential case and its expected verdict.
type rsaTamper struct {
	name  string
	sch   rsaScheme
	d     []byte
	sig   []byte
	valid bool
}

// rsaTamperCases are v itself and the ways it can be broken: in the signature, the
// digest, the scheme, the length, the range of s, and the key.
func rsaTamperCases(pub *rsa.PublicKey, v rsaSigned, otherSig, msg []byte) []rsaTamper {
	d := digest(v.sch.hash, msg)
	k := pub.Size()
	flip := func(b []byte, bit int) []byte {
		b = bytes.Clone(b)
		b[bit/8] ^= 1 << (bit % 8)
		return b
	}
	wrongHash := rsaScheme{pss: v.sch.pss, hash: crypto.SHA384}
	if v.sch.hash == crypto.SHA384 {
		wrongHash.hash = crypto.SHA512
	}
	nPlus := func(i int64) []byte {
		return new(big.Int).Add(pub.N, big.NewInt(i)).FillBytes(make([]byte, k))
	}
	cases := []rsaTamper{
		{"valid", v.sch, d, v.sig, true},
		{"sig first bit", v.sch, d, flip(v.sig, 7), false},
		{"sig middle bit", v.sch, d, flip(v.sig, 4*k), false},
		{"sig last bit", v.sch, d, flip(v.sig, 8*k-8), false},
		{"digest bit", v.sch, flip(d, 3), v.sig, false},
		{"wrong hash", wrongHash, digest(wrongHash.hash, msg), v.sig, false},
		{"other padding", rsaScheme{pss: !v.sch.pss, hash: v.sch.hash}, d, v.sig, false},
		{"one byte short", v.sch, d, v.sig[:k-1], false},
		{"one byte long", v.sch, d, append(bytes.Clone(v.sig), 0), false},
		{"leading zero added", v.sch, d, append([]byte{0}, v.sig...), false},
		{"s = n", v.sch, d, nPlus(0), false},
		{"s = n+1", v.sch, d, nPlus(1), false},
		{"s = n-1", v.sch, d, nPlus(-1), false},
		{"s = 1", v.sch, d, big.NewInt(1).FillBytes(make([]byte, k)), false},
		{"all zero", v.sch, d, make([]byte, k), false},
		{"empty", v.sch, d, nil, false},
		{"other key", v.sch, d, otherSig, false},
	}
	// s+n recovers the same m as s; RFC 8017 §5.2.2 step 1 still refuses it.
	if sn := new(big.Int).Add(new(big.Int).SetBytes(v.sig), pub.N); sn.BitLen() <= 8*k {
		cases = append(cases, rsaTamper{"s+n", v.sch, d, sn.FillBytes(make([]byte, k)), false})
	}
	return cases
}

// TestRSAVerifyKeyChecks: keys crypto/rsa refuses, or would panic on, are refused with
// an error, and a key under MinRSABits is refused even when built as a literal.
func TestRSAVerifyKeyChecks(t *testing.T) {
	priv := rsaTestKey(t, 2048, 0)
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	sch := rsaSchemes[SchemeRSAPKCS1SHA256]
	d := digest(sch.hash, []byte("m"))
	sig, err := rsa.SignPKCS1v15(nil, priv, sch.hash, d)
	if err != nil {
		t.Fatal(err)
	}
	smallSig, err := rsa.SignPKCS1v15(nil, small, sch.hash, d)
	if err != nil {
		t.Fatal(err)
	}
	n := priv.N
	withN := func(n *big.Int) *rsa.PublicKey { return &rsa.PublicKey{N: n, E: priv.E} }
	withE := func(e int) *rsa.PublicKey { return &rsa.PublicKey{N: n, E: e} }
	for _, tc := range []struct {
		name    string
		pub     *rsa.PublicKey
		sig     []byte
		wantErr string
	}{
		{"nil key", nil, sig, "no valid modulus"},
		{"nil N", withN(nil), sig, "no valid modulus"},
		{"zero N", withN(new(big.Int)), sig, "no valid modulus"},
		{"negative N", withN(new(big.Int).Neg(n)), sig, "no valid modulus"},
		{"N = 1", withN(big.NewInt(1)), sig, "has 1 bits"},
		{"1024-bit key, valid signature", &small.PublicKey, smallSig, "1024 bits; keys under 2048 bits are refused"},
		{"even N", withN(new(big.Int).Sub(n, big.NewInt(1))), sig, "crypto/rsa"},
		{"E = -3", withE(-3), sig, "crypto/rsa"},
		{"E = 0", withE(0), sig, "crypto/rsa"},
		{"E = 1", withE(1), sig, "crypto/rsa"},
		{"E = 2", withE(2), sig, "crypto/rsa"},
		{"E = 65536", withE(65536), sig, "crypto/rsa"},
		{"E = 2^31", withE(1 << 31), sig, "crypto/rsa"},
		{"E = 3, wrong key", withE(3), sig, "crypto/rsa"},
		{"valid", &priv.PublicKey, sig, ""},
	} {
		err := verifyRSA(tc.pub, sch, d, tc.sig)
		if tc.wantErr == "" && err != nil {
			t.Errorf("%s: %v", tc.name, err)
		}
		if tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
			t.Errorf("%s: error %v, want %q", tc.name, err, tc.wantErr)
		}
	}
}

// TestRSAVerifySmallExponent: e = 3 keys are valid RSA keys and verify.
func TestRSAVerifySmallExponent(t *testing.T) {
	priv := rsaKeyWithExponent(t, 2048, 3)
	for _, v := range rsaValidSignatures(t, priv, []byte("m")) {
		d := digest(v.sch.hash, []byte("m"))
		if err := verifyRSA(&priv.PublicKey, v.sch, d, v.sig); err != nil {
			t.Errorf("%s: %v", v.name, err)
		}
	}
}

// TestRSAVerifyErrors: odd inputs are refused without a panic, with a reason.
func TestRSAVerifyErrors(t *testing.T) {
	priv := rsaTestKey(t, 3072, 0)
	pub := &priv.PublicKey
	pss := rsaSchemes[SchemeRSAPSSSHA256]
	d := digest(pss.hash, []byte("m"))
	sig, err := rsa.SignPSS(rand.Reader, priv, pss.hash, d, nil)
	if err != nil {
		t.Fatal(err)
	}
	em := rawRSAPublic(pub, sig)
	resign := func(edit func(em []byte)) []byte {
		em := bytes.Clone(em)
		edit(em)
		return rawRSASign(priv, em)
	}
	const refused = "verification error" // crypto/rsa says no more, on purpose
	for _, tc := range []struct {
		name    string
		sch     rsaScheme
		d, sig  []byte
		wantErr string
	}{
		{"short", pss, d, sig[:300], refused},
		{"empty", pss, d, nil, refused},
		{"huge", pss, d, make([]byte, 1<<20), refused},
		{"s = n", pss, d, pub.N.FillBytes(make([]byte, 384)), refused},
		{"nil digest", pss, nil, sig, "digest length 0, want 32"},
		{"long digest", pss, make([]byte, 64), sig, "digest length 64, want 32"},
		{"SHA-1", rsaScheme{pss: true, hash: crypto.SHA1}, d[:20], sig, "unsupported RSA hash"},
		{"hash 0", rsaScheme{hash: 0}, nil, sig, "unsupported RSA hash"},
		{"hash 99", rsaScheme{hash: 99}, nil, sig, "unsupported RSA hash"},
		{"trailer", pss, d, resign(func(em []byte) { em[383] = 0xbd }), refused},
		{"top bit", pss, d, rawRSASign(priv, topBitEM(pub.N)), refused},
		{"padding", pss, d, resign(func(em []byte) { em[0] ^= 0x02 }), refused},
		{"hash", pss, d, resign(func(em []byte) { em[380] ^= 0x01 }), refused},
		{"digest", pss, digest(pss.hash, []byte("n")), sig, refused},
		{"pkcs1", rsaSchemes[SchemeRSAPKCS1SHA256], d, sig, refused},
	} {
		err := verifyRSA(pub, tc.sch, tc.d, tc.sig)
		if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
			t.Errorf("%s: error %v, want %q", tc.name, err, tc.wantErr)
		}
	}
	// With a 2049-bit modulus the encoding has 256 octets, k 257: m must fit in 256.
	odd := rsaTestKey(t, 2049, 0)
	tooBig := rawRSASign(odd, new(big.Int).Sub(odd.N, big.NewInt(1)).Bytes())
	if err := verifyRSA(&odd.PublicKey, pss, d, tooBig); err == nil {
		t.Error("2049-bit key, m >= 2^2048: accepted")
	}
}

// BenchmarkRSAVerify is one RSA-PSS-SHA256 verification with crypto/rsa, by key size and
// salt length (the digest length, and Python in-toto's maximum).
func BenchmarkRSAVerify(b *testing.B) {
	sch := rsaSchemes[SchemeRSAPSSSHA256]
	d := digest(sch.hash, []byte(strings.Repeat("in-toto link bytes ", 50)))
	for _, bits := range []int{2048, 3072, 4096} {
		priv := rsaTestKey(b, bits, 0)
		for _, salt := range []struct {
			name string
			len  int
		}{{"hlen", rsa.PSSSaltLengthEqualsHash}, {"max", rsa.PSSSaltLengthAuto}} {
			sig, err := rsa.SignPSS(rand.Reader, priv, sch.hash, d, &rsa.PSSOptions{SaltLength: salt.len})
			if err != nil {
				b.Fatal(err)
			}
			b.Run(fmt.Sprintf("%d/salt-%s", bits, salt.name), func(b *testing.B) {
				b.ReportAllocs()
				defer benchcpu.Report(b)()
				for b.Loop() {
					if err := verifyRSA(&priv.PublicKey, sch, d, sig); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

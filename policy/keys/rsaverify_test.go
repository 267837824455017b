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
)

// TestDigestInfoPrefix: the prefixes are DigestInfo's DER up to the digest octets.
func TestDigestInfoPrefix(t *testing.T) {
	for h, prefix := range digestInfoPrefix {
		d := make([]byte, h.Size())
		if want := digestInfoForTest(h, d); !bytes.Equal(append(bytes.Clone(prefix), d...), want) {
			t.Errorf("%v: prefix %x, DigestInfo %x", h, prefix, want)
		}
	}
}

// TestRSAVerifyDifferential: for every size, scheme and salt length, a valid signature
// and its tampered variants get the same verdict from verifyRSA and crypto/rsa. 1025-
// and 2049-bit moduli make the PSS encoding one octet shorter than the modulus.
func TestRSAVerifyDifferential(t *testing.T) {
	msg := []byte("in-toto link")
	for _, bits := range []int{1024, 1025, 2048, 2049, 3072, 4096} {
		t.Run(fmt.Sprint(bits), func(t *testing.T) {
			t.Parallel()
			priv, other := rsaTestKey(t, bits, 0), rsaTestKey(t, bits, 1)
			pub := &priv.PublicKey
			otherSigs := rsaValidSignatures(t, other, msg)
			for i, v := range rsaValidSignatures(t, priv, msg) {
				for _, tc := range rsaTamperCases(pub, v, otherSigs[i].sig, msg) {
					ours := verifyRSA(pub, tc.sch, tc.d, tc.sig)
					std := stdlibVerifyRSA(pub, tc.sch, tc.d, tc.sig)
					if (ours == nil) != (std == nil) {
						t.Errorf("%s %s: tollgate %v, crypto/rsa %v", v.name, tc.name, ours, std)
					}
					if (ours == nil) != tc.valid {
						t.Errorf("%s %s: accepted=%v, want %v (%v)", v.name, tc.name, ours == nil, tc.valid, ours)
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

// TestRSAVerifyKeyChecks: public keys are refused as crypto/rsa refuses them.
func TestRSAVerifyKeyChecks(t *testing.T) {
	priv := rsaTestKey(t, 2048, 0)
	small := rsaTestKey(t, 1024, 0)
	sch := rsaSchemes[SchemeRSAPKCS1SHA256]
	d := digest(sch.hash, []byte("m"))
	sig, err := rsa.SignPKCS1v15(nil, priv, sch.hash, d)
	if err != nil {
		t.Fatal(err)
	}
	n := priv.N
	odd1023 := new(big.Int).Rsh(small.N, 1)
	odd1023.SetBit(odd1023, 0, 1)
	withN := func(n *big.Int) *rsa.PublicKey { return &rsa.PublicKey{N: n, E: priv.E} }
	withE := func(e int) *rsa.PublicKey { return &rsa.PublicKey{N: n, E: e} }
	for _, tc := range []struct {
		name    string
		pub     *rsa.PublicKey
		wantErr string
	}{
		{"nil N", withN(nil), "no modulus"},
		{"zero N", withN(new(big.Int)), "not positive"},
		{"N = 1", withN(big.NewInt(1)), "has 1 bits"},
		{"even N", withN(new(big.Int).Sub(n, big.NewInt(1))), "even"},
		{"1023-bit N", withN(odd1023), "1023 bits"},
		{"E = -3", withE(-3), "exponent -3"},
		{"E = 0", withE(0), "exponent 0"},
		{"E = 1", withE(1), "exponent 1"},
		{"E = 2", withE(2), "exponent 2"},
		{"E = 4", withE(4), "exponent 4"},
		{"E = 65536", withE(65536), "exponent 65536"},
		{"E = 2^31", withE(1 << 31), "exponent"},
		{"E = 2^31+1", withE(1<<31 + 1), "exponent"},
		{"E = 3", withE(3), "encoding does not match"},
		{"E = 2^31-1", withE(1<<31 - 1), "encoding does not match"},
		{"E = 65539", withE(65539), "encoding does not match"},
		{"valid", &priv.PublicKey, ""},
	} {
		ours := verifyRSA(tc.pub, sch, d, sig)
		if std := stdlibVerifyRSA(tc.pub, sch, d, sig); (ours == nil) != (std == nil) {
			t.Errorf("%s: tollgate %v, crypto/rsa %v", tc.name, ours, std)
		}
		if tc.wantErr == "" && ours != nil {
			t.Errorf("%s: %v", tc.name, ours)
		}
		if tc.wantErr != "" && (ours == nil || !strings.Contains(ours.Error(), tc.wantErr)) {
			t.Errorf("%s: error %v, want %q", tc.name, ours, tc.wantErr)
		}
	}
	// crypto/rsa panics on a nil key and takes a negative modulus by its absolute
	// value; verifyRSA refuses both.
	if err := verifyRSA(nil, sch, d, sig); err == nil {
		t.Error("nil key accepted")
	}
	if err := verifyRSA(withN(new(big.Int).Neg(n)), sch, d, sig); err == nil || !strings.Contains(err.Error(), "not positive") {
		t.Errorf("negative modulus: %v", err)
	}
}

// TestRSAVerifySmallExponent: e = 3 keys are valid for crypto/rsa and verify too.
func TestRSAVerifySmallExponent(t *testing.T) {
	priv := rsaKeyWithExponent(t, 2048, 3)
	for _, v := range rsaValidSignatures(t, priv, []byte("m")) {
		d := digest(v.sch.hash, []byte("m"))
		if err := verifyRSA(&priv.PublicKey, v.sch, d, v.sig); err != nil {
			t.Errorf("%s: %v", v.name, err)
		}
		if err := stdlibVerifyRSA(&priv.PublicKey, v.sch, d, v.sig); err != nil {
			t.Errorf("%s: crypto/rsa: %v", v.name, err)
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
	for _, tc := range []struct {
		name    string
		sch     rsaScheme
		d, sig  []byte
		wantErr string
	}{
		{"short", pss, d, sig[:300], "RSA signature length 300, want 384"},
		{"empty", pss, d, nil, "RSA signature length 0, want 384"},
		{"huge", pss, d, make([]byte, 1<<20), "RSA signature length 1048576, want 384"},
		{"s = n", pss, d, pub.N.FillBytes(make([]byte, 384)), "out of range"},
		{"nil digest", pss, nil, sig, "digest length 0, want 32"},
		{"long digest", pss, make([]byte, 64), sig, "digest length 64, want 32"},
		{"SHA-1", rsaScheme{pss: true, hash: crypto.SHA1}, d[:20], sig, "unsupported RSA hash"},
		{"hash 0", rsaScheme{hash: 0}, nil, sig, "unsupported RSA hash"},
		{"hash 99", rsaScheme{hash: 99}, nil, sig, "unsupported RSA hash"},
		{"trailer", pss, d, resign(func(em []byte) { em[383] = 0xbd }), "trailer is not 0xbc"},
		{"top bit", pss, d, rawRSASign(priv, topBitEM(pub.N)), "leftmost bits"},
		{"padding", pss, d, resign(func(em []byte) { em[0] ^= 0x02 }), "inconsistent padding"},
		{"hash", pss, d, resign(func(em []byte) { em[380] ^= 0x01 }), "RSA-PSS:"},
		{"digest", pss, digest(pss.hash, []byte("n")), sig, "hash does not match"},
		{"pkcs1", rsaSchemes[SchemeRSAPKCS1SHA256], d, sig, "encoding does not match"},
	} {
		err := verifyRSA(pub, tc.sch, tc.d, tc.sig)
		if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
			t.Errorf("%s: error %v, want %q", tc.name, err, tc.wantErr)
		}
	}
	// With a 2049-bit modulus the encoding has 256 octets, k 257: m must fit in 256.
	odd := rsaTestKey(t, 2049, 0)
	tooBig := rawRSASign(odd, new(big.Int).Sub(odd.N, big.NewInt(1)).Bytes())
	if err := verifyRSA(&odd.PublicKey, pss, d, tooBig); err == nil || !strings.Contains(err.Error(), "longer than the modulus") {
		t.Errorf("2049-bit key, m >= 2^2048: %v", err)
	}
}

// BenchmarkRSAVerify compares crypto/rsa with verifyRSA on the PSS signatures Python
// in-toto makes (SHA-256, digest-length salt).
func BenchmarkRSAVerify(b *testing.B) {
	sch := rsaSchemes[SchemeRSAPSSSHA256]
	d := digest(sch.hash, []byte(strings.Repeat("in-toto link bytes ", 50)))
	for _, bits := range []int{2048, 3072, 4096} {
		priv := rsaTestKey(b, bits, 0)
		sig, err := rsa.SignPSS(rand.Reader, priv, sch.hash, d, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash})
		if err != nil {
			b.Fatal(err)
		}
		for _, impl := range []struct {
			name   string
			verify func(*rsa.PublicKey, rsaScheme, []byte, []byte) error
		}{{"stdlib", stdlibVerifyRSA}, {"tollgate", verifyRSA}} {
			b.Run(fmt.Sprintf("%d/%s", bits, impl.name), func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					if err := impl.verify(&priv.PublicKey, sch, d, sig); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

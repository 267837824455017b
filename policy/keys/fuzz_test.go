package keys

import (
	"bytes"
	"crypto/rsa"
	"crypto/subtle"
	"os"
	"slices"
	"strings"
	"testing"
)

func publicSeeds(f *testing.F) []*Signer {
	var signers []*Signer
	for _, typ := range []string{TypeRSA, TypeED25519, TypeECDSA} {
		s, err := Generate(typ, 2048)
		if err != nil {
			f.Fatal(err)
		}
		signers = append(signers, s)
	}
	return signers
}

func FuzzParsePublic(f *testing.F) {
	for _, s := range publicSeeds(f) {
		pub, _ := s.MarshalPublic()
		f.Add(pub)
		js, _ := s.Key.MarshalJSON()
		f.Add(js)
		f.Add(pemPKIX(f, s))
	}
	f.Add([]byte(`{"keytype":"ecdsa-sha2-nistp256","scheme":"ecdsa-sha2-nistp256","keyval":{"public":"-----BEGIN PUBLIC KEY-----\nAA==\n-----END PUBLIC KEY-----"}}`))
	f.Add([]byte("-----BEGIN RSA PUBLIC KEY-----\nMAA=\n-----END RSA PUBLIC KEY-----\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		k, err := ParsePublic(data)
		if err != nil {
			return
		}
		if k.ID == "" || k.Public == nil || !k.SameMaterial(k) {
			t.Fatalf("incomplete key %+v", k)
		}
		// Whatever parses, verifies without panicking and round-trips through JSON.
		_ = k.Verify([]byte("data"), []byte("sig"))
		js, err := k.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		back, err := ParseJSON(js)
		if err != nil || back.ID != k.ID {
			t.Fatalf("JSON round trip: %v", err)
		}
	})
}

func FuzzParsePrivate(f *testing.F) {
	for _, s := range publicSeeds(f) {
		priv, _ := s.MarshalPrivate(nil)
		f.Add(priv, []byte(nil))
		f.Add(pemPKCS8(f, s), []byte(nil))
		// Encrypted seeds cost a full KDF per execution, which slows fuzzing to a
		// crawl; one per encrypted format is enough.
		if s.Type != TypeECDSA {
			enc, _ := s.MarshalPrivate([]byte("pw"))
			f.Add(enc, []byte("pw"))
		}
	}
	f.Add([]byte("00@@@@1@@@@00@@@@00000000000000000000000000000000@@@@00"), []byte("pw"))
	f.Add([]byte("-----BEGIN ENCRYPTED PRIVATE KEY-----\nMAA=\n-----END ENCRYPTED PRIVATE KEY-----\n"), []byte("pw"))
	f.Add([]byte("-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\ne30=\n-----END ENCRYPTED SIGSTORE PRIVATE KEY-----\n"), []byte(""))
	f.Fuzz(func(t *testing.T, data, pass []byte) {
		s, err := ParsePrivate(data, pass)
		if err != nil {
			// Errors are fixed sentences; a passphrase long enough to be recognizable
			// must never appear in one.
			if len(pass) > 8 && strings.Contains(err.Error(), string(pass)) {
				t.Fatalf("error contains the passphrase: %v", err)
			}
			return
		}
		sig, err := s.Sign([]byte("m"))
		if err != nil {
			t.Fatalf("parsed key cannot sign: %v", err)
		}
		if err := s.Verify([]byte("m"), sig); err != nil {
			t.Fatalf("parsed key does not verify its own signature: %v", err)
		}
	})
}

func BenchmarkVerify(b *testing.B) {
	msg := []byte(strings.Repeat("in-toto link bytes ", 50))
	for _, typ := range []string{TypeRSA, TypeED25519, TypeECDSA} {
		b.Run(typ, func(b *testing.B) {
			s := mustGenerate(b, typ)
			sig, err := s.Sign(msg)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if err := s.Verify(msg, sig); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkParseJSON(b *testing.B) {
	js, _ := mustGenerate(b, TypeECDSA).Key.MarshalJSON()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseJSON(js); err != nil {
			b.Fatal(err)
		}
	}
}

// FuzzRSAVerify checks that verifyRSA never panics, accepts every valid signature the
// harness builds (any PSS salt length), and refuses a tampered one unless the tampering
// left the encoding valid. Fixed test keys (testdata) make failures reproduce. The mode
// byte picks:
//
//	bit 0     key: 2048 or 3072 bits (TOLLGATE_FUZZ_RSA_BITS=2048|3072 pins one)
//	bits 1-3  scheme, in rsaSchemeNames order (mod 6)
//	bits 4-5  what sig is: 0 the signature; 1 the encoded message, signed raw here;
//	          2 a PSS salt (PKCS#1 v1.5: ignored), encoded and signed validly;
//	          3 an XOR delta, aligned right, over a valid encoding before signing
//	bits 6-7  for 3, the PSS salt length: 0, 1, digest length, maximum
//
// Random signatures almost never reach the padding checks; modes 1 to 3 let the
// fuzzer work on the encoding itself. An XOR over PSS's maskedDB flips the same bits
// of DB, so mode 3 explores the padding and salt boundaries precisely.
func FuzzRSAVerify(f *testing.F) {
	privs := []*rsa.PrivateKey{loadRSATestKey(f, 2048), loadRSATestKey(f, 3072)}
	pin := -1
	switch os.Getenv("TOLLGATE_FUZZ_RSA_BITS") {
	case "2048":
		pin = 0
	case "3072":
		pin = 1
	}
	names := rsaSchemeNames()
	data := []byte("in-toto link")
	for ki, priv := range privs {
		for _, v := range rsaValidSignatures(f, priv, data) {
			mode := byte(ki) | byte(slices.Index(names, strings.Split(v.name, "/")[0]))<<1
			f.Add(v.sig, data, mode)
			f.Add(v.sig[1:], data, mode)
			f.Add(make([]byte, len(v.sig)), data, mode)
			f.Add(rawRSAPublic(&priv.PublicKey, v.sig), data, mode|1<<4)
			f.Add([]byte("salt"), data, mode|2<<4)
			for class := range byte(4) {
				f.Add([]byte(nil), data, mode|3<<4|class<<6)
				f.Add([]byte{1}, data, mode|3<<4|class<<6)
			}
		}
	}
	f.Fuzz(func(t *testing.T, sig, data []byte, mode byte) {
		ki := int(mode & 1)
		if pin >= 0 {
			ki = pin
		}
		priv := privs[ki]
		pub := &priv.PublicKey
		sch := rsaSchemes[names[int(mode>>1&7)%len(names)]]
		d := digest(sch.hash, data)
		switch mode >> 4 & 3 {
		case 1:
			sig = rawRSASign(priv, sig)
		case 2:
			sig = fuzzValidRSASig(priv, sch, d, sig)
		case 3:
			var tampered bool
			sig, tampered = fuzzTamperedRSASig(priv, sch, d, sig, int(mode>>6))
			if err := verifyRSA(pub, sch, d, sig); tampered == (err == nil) {
				t.Fatalf("tampered=%v, verification error %v", tampered, err)
			}
			return
		}
		err := verifyRSA(pub, sch, d, sig)
		if mode>>4&3 == 2 && err != nil {
			t.Fatalf("valid signature refused: %v", err)
		}
	})
}

// fuzzValidRSASig signs d validly; for PSS with salt (cut to the longest that fits).
func fuzzValidRSASig(priv *rsa.PrivateKey, sch rsaScheme, d, salt []byte) []byte {
	return rawRSASign(priv, fuzzValidRSAEncoding(&priv.PublicKey, sch, d, salt))
}

// fuzzValidRSAEncoding is the encoded message of a valid signature over d, in k octets.
// It is built here rather than recovered from a crypto/rsa signature: each private-key
// operation costs milliseconds at 3072 bits, and the fuzzer needs as few as possible.
func fuzzValidRSAEncoding(pub *rsa.PublicKey, sch rsaScheme, d, salt []byte) []byte {
	if !sch.pss {
		return encodePKCS1v15ForTest(pub, sch.hash, d)
	}
	salt = salt[:min(len(salt), maxPSSSalt(pub, sch.hash))]
	return encodePSSForTest(pub, sch.hash, d, salt)
}

// fuzzTamperedRSASig XORs delta into the end of a valid encoding of d and signs the
// result, reporting whether the encoding changed. class picks the PSS salt length; the
// salt bytes are fixed.
func fuzzTamperedRSASig(priv *rsa.PrivateKey, sch rsaScheme, d, delta []byte, class int) ([]byte, bool) {
	pub := &priv.PublicKey
	saltLen := []int{0, 1, sch.hash.Size(), maxPSSSalt(pub, sch.hash)}[class]
	em := fuzzValidRSAEncoding(pub, sch, d, bytes.Repeat([]byte{0x5a}, saltLen))
	delta = delta[max(0, len(delta)-len(em)):]
	subtle.XORBytes(em[len(em)-len(delta):], em[len(em)-len(delta):], delta)
	return rawRSASign(priv, em), slices.ContainsFunc(delta, func(b byte) bool { return b != 0 })
}

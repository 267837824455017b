package keys

import (
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

package envelope

import (
	"bytes"
	"testing"

	"tollgate.dev/tollgate/policy/keys"
)

func FuzzParseEnvelope(f *testing.F) {
	signer, err := keys.Generate(keys.TypeED25519, 0)
	if err != nil {
		f.Fatal(err)
	}
	dsse := NewDSSE(PayloadTypeInToto, []byte(`{"_type":"https://in-toto.io/Statement/v1","subject":[]}`))
	meta, _ := NewMetablock(map[string]any{"_type": "link", "name": "é\"\\", "n": 1})
	for _, s := range []*Signed{dsse, meta} {
		if err := s.Sign(signer); err != nil {
			f.Fatal(err)
		}
		data, _ := s.Marshal()
		f.Add(data)
	}
	for _, seed := range []string{
		`{"signed":{"a":[1,-0,"\u00e9"]},"signatures":[{"keyid":"","sig":"00"}]}`,
		`{"payloadType":"x","payload":"aGk","signatures":[{"sig":"AA=="}]}`,
		`{"payloadType":"x","payload":"aGk-_w","signatures":[]}`,
		`{"signed":{},"payload":"","signatures":[]}`,
		`{"signed":{"a":1e5},"signatures":[]}`,
		`[[[[[[[[]]]]]]]]`,
		`{"signed":{"a":"\ud800"},"signatures":[{"keyid":"k","sig":"abcd"}]}`,
	} {
		f.Add([]byte(seed))
	}
	trusted := []*keys.Key{signer.Key}
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := Parse(data)
		if err != nil {
			return
		}
		if len(s.Signatures) > MaxSignatures {
			t.Fatalf("%d signatures accepted", len(s.Signatures))
		}
		// Verification never panics and never succeeds for a key that signed nothing
		// here (the seeds' valid signatures are by signer, which is fine).
		_, _ = s.Verify(trusted, 1)
		if s.Format == Metablock {
			sameAsCJSON(t, s.Payload)
		}
		// Marshal and Parse are inverse.
		out, err := s.Marshal()
		if err != nil {
			t.Fatalf("Marshal of a parsed envelope: %v", err)
		}
		back, err := Parse(out)
		if err != nil {
			t.Fatalf("re-Parse of %q: %v", out, err)
		}
		if back.Format != s.Format || back.PayloadType != s.PayloadType || len(back.Signatures) != len(s.Signatures) {
			t.Fatalf("round trip changed the envelope")
		}
		if s.Format == DSSE && !bytes.Equal(back.Payload, s.Payload) {
			t.Fatalf("round trip changed the DSSE payload")
		}
	})
}

func BenchmarkVerify(b *testing.B) {
	for _, typ := range allTypes {
		for _, format := range []Format{DSSE, Metablock} {
			b.Run(typ+"/"+format.String(), func(b *testing.B) {
				signer := generate(b, typ)
				s := NewDSSE(PayloadTypeInToto, bytes.Repeat([]byte(`{"k":"v"}`), 100))
				if format == Metablock {
					s = newLink(b)
				}
				if err := s.Sign(signer); err != nil {
					b.Fatal(err)
				}
				trusted := []*keys.Key{signer.Key}
				b.ReportAllocs()
				for b.Loop() {
					if _, err := s.Verify(trusted, 1); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkCanonicalLargeLink measures canonicalization of a 100,000-artifact link.
func BenchmarkCanonicalLargeLink(b *testing.B) {
	products := make(map[string]any, 100000)
	for i := range 100000 {
		products["dir/file-"+itoa(i)] = map[string]string{"sha256": "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"}
	}
	s, err := NewMetablock(map[string]any{"_type": "link", "products": products})
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(s.Payload)))
	for b.Loop() {
		if _, err := s.SignedBytes(); err != nil {
			b.Fatal(err)
		}
	}
}

func itoa(i int) string {
	var buf [20]byte
	n := len(buf)
	for {
		n--
		buf[n] = byte('0' + i%10)
		if i /= 10; i == 0 {
			return string(buf[n:])
		}
	}
}

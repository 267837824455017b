package vsa

import (
	"strings"
	"testing"
	"time"
)

// FuzzParse: no predicate makes Parse panic, and whatever it accepts, a Rule can judge.
func FuzzParse(f *testing.F) {
	raw, err := sample().Predicate([]Input{{URI: "a", Digest: map[string]string{"sha256": "00"}}})
	if err != nil {
		f.Fatal(err)
	}
	f.Add([]byte(raw))
	f.Add([]byte(`{"verifier":{"id":"x"},"timeVerified":"2026-06-01T11:00:00Z","resourceUri":"r","policy":{"uri":"p"},"verificationResult":"FAILED","verifiedLevels":["FAILED"]}`))
	f.Add([]byte(`{"timeVerified":"9999-12-31T23:59:59Z","dependencyLevels":{"SLSA_BUILD_LEVEL_1":3}}`))
	f.Add([]byte(`{}`))
	f.Add([]byte(`null`))
	r := &Rule{VerifierID: "x", PolicyDigests: []string{"sha256:" + strings.Repeat("b", 64)}, MaxAge: time.Hour, Levels: []string{"SLSA_BUILD_LEVEL_1"}}
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := Parse(data)
		if err != nil {
			return
		}
		if s.VerifierID == "" || s.ResourceURI == "" || (s.Result != Passed && s.Result != Failed) {
			t.Fatalf("accepted an incomplete summary: %+v", s)
		}
		_ = r.Check(s, []string{"sha256:" + strings.Repeat("a", 64)}, when)
	})
}

package vsa

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"tollgate.dev/tollgate/policy/reason"
)

var when = time.Date(2026, 6, 1, 11, 0, 0, 0, time.UTC)

func sample() *Summary {
	return &Summary{VerifierID: "https://ci.example/verifier", TimeVerified: when, ResourceURI: "reg.example/app@sha256:" + strings.Repeat("a", 64),
		PolicyURI: "https://git.example/p", PolicyDigest: map[string]string{"sha256": strings.Repeat("b", 64)}, Result: Passed,
		Levels: []string{"SLSA_BUILD_LEVEL_1"}, SLSAVersion: "1.0"}
}

func TestPredicateRoundTrip(t *testing.T) {
	in := sample()
	raw, err := in.Predicate([]Input{{URI: "prov.json", Digest: map[string]string{"sha256": strings.Repeat("c", 64)}}})
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	// The field names of the VSA v1 spec, not the proto's snake_case ones.
	for _, f := range []string{"verifier", "timeVerified", "resourceUri", "policy", "inputAttestations", "verificationResult", "verifiedLevels", "slsaVersion"} {
		if _, ok := m[f]; !ok {
			t.Errorf("predicate has no %q: %s", f, raw)
		}
	}
	out, err := Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	if out.VerifierID != in.VerifierID || !out.TimeVerified.Equal(in.TimeVerified) || out.ResourceURI != in.ResourceURI ||
		out.PolicyURI != in.PolicyURI || out.PolicyDigest["sha256"] != in.PolicyDigest["sha256"] || out.Result != Passed ||
		strings.Join(out.Levels, ",") != "SLSA_BUILD_LEVEL_1" || out.SLSAVersion != "1.0" {
		t.Fatalf("round trip: %+v, want %+v", out, in)
	}
	in.Levels = nil
	if raw, err = in.Predicate(nil); err != nil || !strings.Contains(string(raw), `"verifiedLevels":[]`) {
		t.Fatalf("empty levels: %s, %v (the spec requires the field)", raw, err)
	}
}

func TestParseRefuses(t *testing.T) {
	good := `{"verifier":{"id":"https://v"},"timeVerified":"2026-06-01T11:00:00Z","resourceUri":"r@sha256:aa","policy":{"uri":"https://p","digest":{"sha256":"bb"}},"verificationResult":"PASSED","verifiedLevels":["SLSA_BUILD_LEVEL_1"]}`
	if _, err := Parse([]byte(good)); err != nil {
		t.Fatalf("good predicate: %v", err)
	}
	cases := []struct{ name, from, to, want string }{
		{"no verifier", `"verifier":{"id":"https://v"},`, ``, "no verifier.id"},
		{"no time", `"timeVerified":"2026-06-01T11:00:00Z",`, ``, "no timeVerified"},
		{"bad time", `2026-06-01T11:00:00Z`, `yesterday`, "not a verification summary v1"},
		{"no resource", `"resourceUri":"r@sha256:aa",`, ``, "no resourceUri"},
		{"no policy", `"policy":{"uri":"https://p","digest":{"sha256":"bb"}},`, ``, "no policy"},
		{"unknown result", `"PASSED"`, `"OK"`, `verificationResult "OK" is neither PASSED nor FAILED`},
		{"no result", `"verificationResult":"PASSED",`, ``, `verificationResult "" is neither`},
		{"levels not a list", `["SLSA_BUILD_LEVEL_1"]`, `"SLSA_BUILD_LEVEL_1"`, "not a verification summary v1"},
		{"too many levels", `["SLSA_BUILD_LEVEL_1"]`, `[` + strings.Repeat(`"X",`, maxLevels) + `"X"]`, "over the limit"},
		{"too deep", `"verifier":{"id":"https://v"}`, `"x":` + strings.Repeat("[", 70) + strings.Repeat("]", 70) + `,"verifier":{"id":"https://v"}`, "nests deeper"},
		{"verifier id too long", `"id":"https://v"`, `"id":"https://` + strings.Repeat("v", maxFieldBytes) + `"`, "over 2048 bytes"},
		{"not an object", good, `[]`, "not a verification summary v1"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if !strings.Contains(good, c.from) {
				t.Fatalf("fixture has no %q", c.from)
			}
			_, err := Parse([]byte(strings.Replace(good, c.from, c.to, 1)))
			if err == nil || !strings.Contains(err.Error(), c.want) || reason.KindOf(err) != reason.Malformed {
				t.Fatalf("error %v, want a malformed %q", err, c.want)
			}
		})
	}
}

func TestLevels(t *testing.T) {
	r := &Rule{Levels: []string{"SLSA_BUILD_LEVEL_2", "ACME_REVIEWED"}}
	cases := []struct {
		have    []string
		missing string
	}{
		{[]string{"SLSA_BUILD_LEVEL_2", "ACME_REVIEWED"}, ""},
		{[]string{"SLSA_BUILD_LEVEL_3", "ACME_REVIEWED"}, ""},
		{[]string{"SLSA_BUILD_LEVEL_1", "ACME_REVIEWED"}, "SLSA_BUILD_LEVEL_2"},
		{[]string{"SLSA_SOURCE_LEVEL_4", "ACME_REVIEWED"}, "SLSA_BUILD_LEVEL_2"},
		{[]string{"SLSA_BUILD_LEVEL_3"}, "ACME_REVIEWED"},
		{[]string{"SLSA_BUILD_LEVEL_x", "ACME_REVIEWED_2"}, "SLSA_BUILD_LEVEL_2,ACME_REVIEWED"},
		{nil, "SLSA_BUILD_LEVEL_2,ACME_REVIEWED"},
	}
	for _, c := range cases {
		if got := strings.Join(r.missingLevels(c.have), ","); got != c.missing {
			t.Errorf("have %v: missing %q, want %q", c.have, got, c.missing)
		}
	}
	for _, l := range []string{"", "FAILED", "SLSA_FOO", "has space", "SLSA_BUILD_LEVEL_10"} {
		if CheckLevel(l) == nil {
			t.Errorf("CheckLevel(%q) accepted it", l)
		}
	}
	for _, l := range []string{"SLSA_BUILD_LEVEL_0", "SLSA_SOURCE_LEVEL_3", "ACME_REVIEWED"} {
		if err := CheckLevel(l); err != nil {
			t.Errorf("CheckLevel(%q): %v", l, err)
		}
	}
}

// Rule.Check at its edges: exactly maxAge old passes, a second more does not; a clock a
// little ahead of the node's is tolerated, more is not.
func TestCheckTimeEdges(t *testing.T) {
	s := sample()
	digests := []string{"sha256:" + strings.Repeat("a", 64)}
	r := &Rule{VerifierID: s.VerifierID, PolicyDigests: []string{"sha256:" + strings.Repeat("b", 64)}, MaxAge: time.Hour}
	for _, c := range []struct {
		now  time.Time
		kind reason.Kind
	}{
		{when.Add(time.Hour), ""},
		{when.Add(time.Hour + time.Second), reason.Expired},
		{when.Add(-MaxClockSkew), ""},
		{when.Add(-MaxClockSkew - time.Second), reason.ConditionFailed},
	} {
		err := r.Check(s, digests, c.now)
		if (err == nil) != (c.kind == "") || (err != nil && err.Kind != c.kind) {
			t.Errorf("at %v: %v, want kind %q", c.now, err, c.kind)
		}
	}
	if err := r.Check(s, []string{"SHA256:" + strings.Repeat("A", 64)}, when); err != nil {
		t.Errorf("digests compare without case: %v", err)
	}
}

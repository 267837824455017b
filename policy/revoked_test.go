package policy

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"tollgate.dev/tollgate/policy/reason"
)

// ndFile is a NodeDefaults document with the given spec lines.
func ndFile(spec string) []byte {
	return []byte("apiVersion: tollgate.dev/v1alpha1\nkind: NodeDefaults\nmetadata: {name: node}\nspec:\n" + spec)
}

// revokedLines are spec lines revoking digests, with why as the reason (none if empty).
func revokedLines(why string, digests ...string) string {
	s := "  revoked:\n    digests: [" + strings.Join(digests, ", ") + "]\n"
	if why != "" {
		s += fmt.Sprintf("    reason: %q\n", why)
	}
	return s
}

// A revoked image is denied whatever evidence it carries (every case has the evidence that
// verifies it), and whatever else NodeDefaults or the policies say.
func TestEvaluateRevoked(t *testing.T) {
	const why = "CVE-2026-1234: build host compromised"
	indexDigest := digestOf("index")
	auditAPI := strings.Replace(apiPolicy, `images: ["ghcr.io/acme/*"]`, `images: ["ghcr.io/acme/*"]`+"\n  mode: audit", 1)
	bgUntil := "2026-06-01T13:00:00Z"
	breakGlass := "  breakGlass: {enabled: true, until: \"" + bgUntil + "\", reason: INC-9}\n"
	fromIndex := testRequest()
	fromIndex.Image.Digests = []string{indexDigest, manifestDigest}
	otherRepo := testRequest()
	otherRepo.Image.Repository, otherRepo.Image.Ref = "quay.io/x/y", "quay.io/x/y:1"
	tests := []struct {
		name  string
		files map[string][]byte
		req   Request
		want  string // the revoked digest as the message names it
	}{
		{"by config digest", map[string][]byte{"nd.yaml": ndFile(revokedLines(why, configDigest))}, testRequest(),
			"config digest " + configDigest},
		{"by manifest digest", map[string][]byte{"nd.yaml": ndFile(revokedLines(why, manifestDigest))}, testRequest(),
			"digest " + manifestDigest},
		{"by index digest", map[string][]byte{"nd.yaml": ndFile(revokedLines(why, indexDigest))}, fromIndex,
			"digest " + indexDigest},
		{"written in upper case", map[string][]byte{"nd.yaml": ndFile(revokedLines(why, strings.ToUpper(manifestDigest)))}, testRequest(),
			"digest " + manifestDigest},
		{"exempt repository", map[string][]byte{"nd.yaml": ndFile(revokedLines(why, manifestDigest) +
			"  exemptions: {repositories: [\"ghcr.io/acme/*\"]}\n")}, testRequest(), "digest " + manifestDigest},
		{"exempt digest", map[string][]byte{"nd.yaml": ndFile(revokedLines(why, manifestDigest) +
			"  exemptions: {digests: [" + manifestDigest + "]}\n")}, testRequest(), "digest " + manifestDigest},
		{"audit-mode policy", map[string][]byte{"api.yaml": []byte(auditAPI), "nd.yaml": ndFile(revokedLines(why, configDigest))},
			testRequest(), "config digest " + configDigest},
		{"unmatched images allowed", map[string][]byte{"nd.yaml": ndFile(revokedLines(why, configDigest) + "  unmatched: allow\n")},
			otherRepo, "config digest " + configDigest},
		{"break-glass active", map[string][]byte{"nd.yaml": ndFile(revokedLines(why, manifestDigest) + breakGlass)}, testRequest(),
			"digest " + manifestDigest},
		{"no reason given", map[string][]byte{"nd.yaml": ndFile(revokedLines("", manifestDigest))}, testRequest(),
			"digest " + manifestDigest},
	}
	d, ev := scenario(t, testNow.Add(time.Hour))
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			files := d.clone()
			for k, v := range tt.files {
				files[k] = v
			}
			dec := mustLoad(t, files).Evaluate(tt.req, Evidence{Files: ev}, testNow)
			msg := "tollgate: denied " + tt.req.Image.Name() + ": " + tt.want + " is revoked by NodeDefaults"
			if strings.Contains(string(tt.files["nd.yaml"]), "reason:") {
				msg += ": " + why
			}
			wantDecision(t, dec, false, Denied, reason.Revoked, msg)
			if dec.Mode != Enforce || !dec.Cacheable || dec.Policy != "" || len(dec.Reasons) != 1 {
				t.Errorf("decision %+v: want one reason, enforce, cacheable, no policy", dec)
			}
			bg := strings.Contains(tt.name, "break-glass")
			note := "break-glass (until " + bgUntil + ") does not apply to a revoked image"
			if bg != strings.Contains(dec.Message, note) || bg != (len(dec.Warnings) == 1 && dec.Warnings[0] == note) {
				t.Errorf("message %q, warnings %q: break-glass active = %v", dec.Message, dec.Warnings, bg)
			}
			if bg && !dec.ValidUntil.Equal(time.Date(2026, 6, 1, 13, 0, 0, 0, time.UTC)) {
				t.Errorf("ValidUntil %v: the note about break-glass must not outlive it", dec.ValidUntil)
			}
			t.Log(dec.Message)
		})
	}
}

// Revoking other digests changes nothing for an image, nor does a revocation without
// digests: it verifies as before, and fails as before.
func TestEvaluateNotRevoked(t *testing.T) {
	for _, spec := range []string{revokedLines("CVE-1", otherDigest), "  revoked: {reason: nothing yet}\n"} {
		d, ev := scenario(t, testNow.Add(time.Hour))
		files := d.clone()
		files["nd.yaml"] = ndFile(spec)
		s, plain := mustLoad(t, files), mustLoad(t, d)
		wantDecision(t, s.Evaluate(testRequest(), Evidence{Files: ev}, testNow), true, Verified, "")
		delete(ev, "provenance.intoto.json")
		got, want := s.Evaluate(testRequest(), Evidence{Files: ev}, testNow), plain.Evaluate(testRequest(), Evidence{Files: ev}, testNow)
		if got.Outcome != Denied || got.Message != want.Message || got.Reasons[0].Kind != want.Reasons[0].Kind {
			t.Errorf("%s: %s %q, want %s %q", spec, got.Outcome, got.Message, want.Outcome, want.Message)
		}
	}
}

func TestLoadRevoked(t *testing.T) {
	files := baseDir(t)
	files["nd.yaml"] = ndFile(revokedLines("CVE-1", strings.ToUpper(manifestDigest), configDigest, configDigest))
	if n := mustLoad(t, files).Revoked(); n != 2 {
		t.Errorf("Revoked() = %d, want 2 (upper case normalized, duplicates counted once)", n)
	}
	if n := mustLoad(t, baseDir(t)).Revoked(); n != 0 {
		t.Errorf("Revoked() without NodeDefaults = %d", n)
	}
	if n := (*Set)(nil).Revoked(); n != 0 {
		t.Errorf("nil Set: Revoked() = %d", n)
	}
}

// A bad revocation list fails the whole load, naming the file and the entry.
func TestLoadRevokedBad(t *testing.T) {
	many := make([]string, maxRevoked+1)
	for i := range many {
		many[i] = digestOf(fmt.Sprint(i))
	}
	tests := []struct {
		name  string
		spec  string
		wants []string
	}{
		{"short digest", revokedLines("", manifestDigest, "sha256:abc"), []string{`spec.revoked.digests[1]: "sha256:abc" is not a digest`}},
		{"other algorithm", revokedLines("", "sha512:"+manifestDigest[7:]), []string{"spec.revoked.digests[0]", "is not a digest"}},
		{"no algorithm", revokedLines("", manifestDigest[7:]), []string{"spec.revoked.digests[0]", manifestDigest[7:]}},
		{"not hex", revokedLines("", "sha256:"+strings.Repeat("g", 64)), []string{"spec.revoked.digests[0]"}},
		{"too many", revokedLines("", many...), []string{fmt.Sprintf("spec.revoked.digests: %d entries, over the limit of %d", maxRevoked+1, maxRevoked)}},
		{"oversized reason", revokedLines(strings.Repeat("x", maxRevokedReason+1), manifestDigest),
			[]string{fmt.Sprintf("spec.revoked.reason: %d bytes, over the limit of %d", maxRevokedReason+1, maxRevokedReason)}},
		{"reason on two lines", revokedLines("CVE-1\nsee the ticket", manifestDigest), []string{"spec.revoked.reason", "one line"}},
		{"unknown field", "  revoked: {digests: [" + manifestDigest + "], until: tomorrow}\n", []string{`unknown field "until"`}},
		{"digests not a list", "  revoked: {digests: " + manifestDigest + "}\n", []string{"nd.yaml", "NodeDefaults"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			files := baseDir(t)
			files["nd.yaml"] = ndFile(tt.spec)
			s, err := Load(files, 1)
			if err == nil {
				t.Fatalf("Load succeeded (%d revoked), want an error", s.Revoked())
			}
			for _, w := range append([]string{"nd.yaml: NodeDefaults"}, tt.wants...) {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not mention %q:\n%v", w, err)
				}
			}
		})
	}
}

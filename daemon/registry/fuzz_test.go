package registry

import (
	"path"
	"slices"
	"strings"
	"testing"
	"time"
)

func FuzzSanitizeName(f *testing.F) {
	for _, s := range []string{
		"build.abcd1234.link", "sub.abcd1234/x.link", "provenance.intoto.json", "", "/etc/passwd",
		"../x", "a/../b", "a//b", "./a", "a/", `a\b`, "a\x00b", "\xff", strings.Repeat("a/", 9) + "a",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		got, err := SanitizeName(name)
		if err != nil {
			if got != "" {
				t.Fatalf("error with a name: %q", got)
			}
			return
		}
		if got != name {
			t.Fatalf("SanitizeName changed %q to %q", name, got)
		}
		if path.IsAbs(got) || path.Clean(got) != got || got == "." || strings.ContainsAny(got, "\\\x00") {
			t.Fatalf("accepted unclean name %q", got)
		}
		if slices.Contains(strings.Split(got, "/"), "..") {
			t.Fatalf("accepted %q with ..", got)
		}
		// What Fetch builds from a title is clean too.
		n := fileName(name, "sha256:"+zeros, MediaTypeDSSE, func(s string) bool { return s == name })
		if _, err := SanitizeName(n); err != nil {
			t.Fatalf("fileName(%q) = %q: %v", name, n, err)
		}
	})
}

func FuzzParseReferrers(f *testing.F) {
	d := "sha256:" + zeros
	for _, s := range []string{
		`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}`,
		`{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"` + d + `","size":10,"artifactType":"application/vnd.in-toto+json"}]}`,
		`{"schemaVersion":2,"manifests":[{"digest":"` + d + `","size":-1}]}`,
		`{"schemaVersion":2,"manifests":[{"digest":"sha256:zz","size":1,"artifactType":"application/spdx+json"}]}`,
		`{"schemaVersion":1}`, `[]`, `null`, `{`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		refs, err := parseReferrers(raw)
		if err != nil {
			return
		}
		for i, r := range refs {
			if r.check() != nil || !evidenceArtifact(r.ArtifactType) {
				t.Fatalf("returned unusable referrer %+v", r)
			}
			if i > 0 && refs[i-1].Digest > r.Digest {
				t.Fatalf("not sorted by digest")
			}
		}
		if m, err := parseManifest(raw); err == nil {
			if _, err := evidenceLayers(m); err != nil {
				return
			}
		}
	})
}

// FuzzParseRetryAfter: any header value parses to a non-negative wait or to none; the
// transport caps what it waits, so only the sign matters here.
func FuzzParseRetryAfter(f *testing.F) {
	for _, s := range []string{"0", "3", "4294967295", "-1", "1.5", " 7 ", "Wed, 21 Oct 2015 07:28:00 GMT",
		"Sunday, 06-Nov-94 08:49:37 GMT", "Sun Nov  6 08:49:37 1994", "", "soon", "99999999999999999999"} {
		f.Add(s)
	}
	now := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, v string) {
		d, ok := parseRetryAfter(v, now)
		if d < 0 || (!ok && d != 0) {
			t.Fatalf("parseRetryAfter(%q) = %v, %v", v, d, ok)
		}
	})
}

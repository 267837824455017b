package registry

import "testing"

func TestSanitizeName(t *testing.T) {
	for _, tt := range []struct {
		name string
		ok   bool
	}{
		{"build.abcd1234.link", true},
		{"sub.abcd1234/x.link", true},
		{"a/b/c/d/e/f/g/h.link", true},
		{"a/b/c/d/e/f/g/h/i.link", false},
		{"", false},
		{"/etc/passwd", false},
		{"../x.link", false},
		{"sub/../../x.link", false},
		{"./x.link", false},
		{"a//b", false},
		{"dir/", false},
		{`sub\x.link`, false},
		{"x\n.link", false},
		{"\xff.link", false},
	} {
		got, err := SanitizeName(tt.name)
		if (err == nil) != tt.ok || (tt.ok && got != tt.name) {
			t.Errorf("SanitizeName(%q) = %q, %v; want ok=%v", tt.name, got, err, tt.ok)
		}
	}
}

func TestFileName(t *testing.T) {
	d1, d2 := "sha256:"+zeros, "sha256:1111111111111111111111111111111111111111111111111111111111111111"
	taken := func(names ...string) func(string) bool {
		return func(s string) bool {
			for _, n := range names {
				if n == s {
					return true
				}
			}
			return false
		}
	}
	for _, tt := range []struct {
		desc, title, digest, mt string
		taken                   func(string) bool
		want                    string
	}{
		{"title", "build.abcd1234.link", d1, MediaTypeInTotoLink, taken(), "build.abcd1234.link"},
		{"no title", "", d1, MediaTypeDSSE, taken(), "sha256-" + zeros + ".dsse.json"},
		{"bundle", "", d1, MediaTypeSigstoreBundle, taken(), "sha256-" + zeros + ".sigstore.json"},
		{"hostile title", "../../etc/x", d1, MediaTypeDSSE, taken(), "sha256-" + zeros + ".dsse.json"},
		{"taken in a dir", "sub.ab/x.link", d2, MediaTypeInTotoLink, taken("sub.ab/x.link"), "sub.ab/sha256-" + d2[7:] + ".link"},
		{"taken at top", "x.link", d2, MediaTypeInTotoLink, taken("x.link"), "sha256-" + d2[7:] + ".link"},
		// The node evidence directory and the disk cache skip (and the cache refuses)
		// hidden names: one such title must not keep every other file from being cached.
		{"hidden title", ".x.link", d1, MediaTypeInTotoLink, taken(), "sha256-" + zeros + ".link"},
		{"hidden element", "sub.ab/.x.link", d1, MediaTypeInTotoLink, taken(), "sha256-" + zeros + ".link"},
		{"config map internals", "..data/x.link", d1, MediaTypeInTotoLink, taken(), "sha256-" + zeros + ".link"},
		{"impersonated digest name", "", d1, MediaTypeDSSE, taken("sha256-" + zeros + ".dsse.json"), "sha256-" + zeros + ".dsse.json.1"},
	} {
		if got := fileName(tt.title, tt.digest, tt.mt, tt.taken); got != tt.want {
			t.Errorf("%s: fileName = %q, want %q", tt.desc, got, tt.want)
		}
	}
}

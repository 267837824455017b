package evidence

import (
	"strings"
	"testing"
)

// FuzzDigestPath: a digest becomes part of a file path, so nothing that parses may escape
// the tree.
func FuzzDigestPath(f *testing.F) {
	for _, s := range []string{digestOf("a"), "sha256:../../x", "sha512:" + strings.Repeat("f", 128), "", ":", "sha256:"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := digestPath(s)
		if err != nil {
			return
		}
		if strings.Contains(p, "..") || strings.HasPrefix(p, "/") || strings.Count(p, "/") != 1 {
			t.Fatalf("digest %q gives unsafe path %q", s, p)
		}
	})
}

// FuzzValidName: names from a registry become file paths in the disk cache.
func FuzzValidName(f *testing.F) {
	for _, s := range []string{"a.link", "sub.abcd/x.link", "../x", "a/./b", ".x", "a\\b", "a//b", "/a"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if validName(s, DefaultLimits.MaxDepth) != nil {
			return
		}
		for _, e := range strings.Split(s, "/") {
			if e == "" || e == "." || e == ".." || strings.HasPrefix(e, ".") {
				t.Fatalf("name %q accepted with element %q", s, e)
			}
		}
		if strings.HasPrefix(s, "/") || strings.Contains(s, "\\") {
			t.Fatalf("name %q accepted", s)
		}
	})
}

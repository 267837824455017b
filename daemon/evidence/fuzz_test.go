package evidence

import (
	"errors"
	"os"
	"path/filepath"
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

// FuzzCheckSums: any sums file is either accepted or refused as ErrDamaged, never a panic;
// what writeSums wrote for the files read is always accepted.
func FuzzCheckSums(f *testing.F) {
	f.Add([]byte("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855  a.link\n"), "a.link", []byte(""))
	f.Add([]byte("garbage"), "a.link", []byte("x"))
	f.Add([]byte("  \n\n"), "sub/b.link", []byte("{"))
	f.Fuzz(func(t *testing.T, sums []byte, name string, data []byte) {
		dir := t.TempDir()
		files := map[string][]byte{name: data}
		if err := os.WriteFile(filepath.Join(dir, sumsFile), sums, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := checkSums(dir, files); err != nil && !errors.Is(err, ErrDamaged) {
			t.Fatalf("error not ErrDamaged: %v", err)
		}
		if strings.ContainsAny(name, "\n\r") {
			return // not a name Store accepts
		}
		os.Remove(filepath.Join(dir, sumsFile))
		if err := writeSums(dir, files); err != nil {
			t.Fatal(err)
		}
		if err := checkSums(dir, files); err != nil {
			t.Fatalf("own sums refused: %v", err)
		}
	})
}

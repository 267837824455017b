package input

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestExpandNargs(t *testing.T) {
	cases := []struct {
		in, want []string
	}{
		{nil, nil},
		{[]string{"verify", "-k", "a.pub", "b.pub", "-d", "links"}, []string{"verify", "-k", "a.pub", "-k", "b.pub", "-d", "links"}},
		{[]string{"run", "-m", "a", "b", "-p", "c", "--", "cp", "a", "c"}, []string{"run", "-m", "a", "-m", "b", "-p", "c", "--", "cp", "a", "c"}},
		// The first value is taken as is, even one starting with "-"; bare words after it
		// repeat the flag.
		{[]string{"record", "--materials", "-x", "y"}, []string{"record", "--materials", "-x", "--materials", "y"}},
		{[]string{"keygen", "-k", "a", "b"}, []string{"keygen", "-k", "a", "b"}},
		{[]string{"verify", "-k"}, []string{"verify", "-k"}},
	}
	for _, tc := range cases {
		if got := ExpandNargs(tc.in); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("ExpandNargs(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestDigest(t *testing.T) {
	good := "sha256:" + strings.Repeat("ab", 32)
	if alg, hex, err := Digest(good); err != nil || alg != "sha256" || hex != good[7:] {
		t.Errorf("Digest(%q) = %q %q %v", good, alg, hex, err)
	}
	for _, bad := range []string{"", "sha256", "sha256:", "sha512:" + strings.Repeat("a", 64), "sha256:" + strings.Repeat("A", 64), good + "0", good[:70]} {
		if _, _, err := Digest(bad); err == nil {
			t.Errorf("Digest(%q) accepted", bad)
		}
	}
}

func TestFileBounds(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	if err := os.WriteFile(p, []byte("12345"), 0o644); err != nil {
		t.Fatal(err)
	}
	if data, err := File(p, 5); err != nil || string(data) != "12345" {
		t.Errorf("File at the limit = %q, %v", data, err)
	}
	if _, err := File(p, 4); err == nil || !strings.Contains(err.Error(), "larger than the limit of 4 bytes") {
		t.Errorf("File over the limit: %v", err)
	}
	if _, err := File(dir, 10); err == nil || !strings.Contains(err.Error(), "is a directory") {
		t.Errorf("File on a directory: %v", err)
	}
	if _, err := PublicKey(filepath.Join(dir, "missing.pub")); err == nil || !strings.Contains(err.Error(), "reading public key") {
		t.Errorf("PublicKey on a missing file: %v", err)
	}
	if _, err := PublicKey(p); err == nil || !strings.Contains(err.Error(), "public key "+p) {
		t.Errorf("PublicKey on garbage: %v", err)
	}
}

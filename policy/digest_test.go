package policy

import (
	"strings"
	"testing"
)

func TestDigest(t *testing.T) {
	base := map[string][]byte{"p.yaml": []byte("a"), "keys/k.pub": []byte("k"), "layouts/root.layout": []byte("l")}
	want := Digest(base)
	if !strings.HasPrefix(want, "sha256:") || len(want) != len("sha256:")+64 {
		t.Fatalf("Digest = %q", want)
	}
	same := []map[string][]byte{
		{"./p.yaml": []byte("a"), "keys/k.pub": []byte("k"), "layouts/root.layout": []byte("l")},
		{"p.yaml": []byte("a"), "keys/k.pub": []byte("k"), "layouts/root.layout": []byte("l"), "..data/p.yaml": []byte("x"), ".git/HEAD": []byte("y")},
	}
	for i, files := range same {
		for range 3 { // map order varies between runs of the loop
			if got := Digest(files); got != want {
				t.Errorf("same set %d: %s, want %s", i, got, want)
			}
		}
	}
	differ := []map[string][]byte{
		{"p.yaml": []byte("b"), "keys/k.pub": []byte("k"), "layouts/root.layout": []byte("l")},
		{"q.yaml": []byte("a"), "keys/k.pub": []byte("k"), "layouts/root.layout": []byte("l")},
		{"p.yaml": []byte("a"), "keys/k.pub": []byte("k")},
		{"p.yaml": []byte("a"), "keys/k.pub": []byte("k"), "layouts/root.layout": []byte("l"), "README": nil},
		// A path cannot pass for another one plus content: each line is one file.
		{"p.yaml": []byte("a"), "keys/k.pub": []byte("k"), "layouts/root.layout\n": []byte("l")},
	}
	for i, files := range differ {
		if Digest(files) == want {
			t.Errorf("different set %d has the same digest", i)
		}
	}
}

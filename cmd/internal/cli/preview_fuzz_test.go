package cli

import (
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
)

// FuzzParseImageList: any --images file parses or is refused with a line-naming error;
// whatever it returns is a bounded list of valid references; nothing panics.
func FuzzParseImageList(f *testing.F) {
	for _, seed := range []string{
		"registry.example/a:1\n", "# comment\n\nregistry.example/a@sha256:" + strings.Repeat("0", 64) + "\n",
		"a b\n", "\r\n\t\n", "UPPER/case\n", "localhost:5000/x\n#\n", "\x00\xff\n", "",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		refs, err := parseImageList(data)
		if err != nil {
			if refs != nil {
				t.Fatalf("refs returned with an error: %q", refs)
			}
			return
		}
		if len(refs) == 0 || len(refs) > maxImageListRefs {
			t.Fatalf("%d references", len(refs))
		}
		for _, r := range refs {
			if _, err := name.ParseReference(r); err != nil || strings.ContainsAny(r, " \t\n") {
				t.Fatalf("returned %q: %v", r, err)
			}
		}
	})
}

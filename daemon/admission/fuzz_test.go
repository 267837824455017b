package admission

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzReview feeds arbitrary bytes to the review decoding and the image extraction that
// run before any policy or registry work: they must never panic, and a review they accept
// must have a request and a uid, and yield only images of its own object.
func FuzzReview(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "reviews", "*.json"))
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		s := string(b)
		for _, k := range []string{"IMAGE", "IMAGE2", "IMAGE3", "OLD_IMAGE"} {
			s = strings.ReplaceAll(s, "{{"+k+"}}", "ghcr.io/acme/"+strings.ToLower(k)+":v1")
		}
		f.Add([]byte(strings.ReplaceAll(s, "{{LABEL}}", "x")))
	}
	f.Add([]byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u","kind":{"version":"v1","kind":"Pod"},"operation":"CREATE","object":null}}`))
	f.Add([]byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u","kind":{"group":"batch","version":"v1","kind":"CronJob"},"operation":"UPDATE","object":{"spec":{}},"oldObject":{}}}`))
	f.Add([]byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u","kind":{"version":"v1","kind":"ReplicationController"},"operation":"CREATE","object":{"spec":{"template":null}}}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := decodeReview(data)
		if err != nil {
			return
		}
		if r.Request == nil || r.Request.UID == "" {
			t.Fatal("accepted a review without a request uid")
		}
		images, checked, err := reviewImages(r.Request)
		if (!checked || err != nil) && len(images) > 0 {
			t.Fatalf("images %v with checked=%v err=%v", images, checked, err)
		}
		for _, ci := range images {
			if ci.Image == "" || !strings.Contains(string(data), ci.Image) && !strings.Contains(string(data), `\`) {
				t.Fatalf("image %q is not in the review", ci.Image)
			}
			_, _ = parseImageRef(ci.Image)
		}
	})
}

package admission

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
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
		images, spec, checked, err := reviewImages(r.Request)
		if (!checked || err != nil) && len(images) > 0 {
			t.Fatalf("images %v with checked=%v err=%v", images, checked, err)
		}
		for _, ci := range images {
			if ci.Image == "" || !strings.Contains(string(data), ci.Image) && !strings.Contains(string(data), `\`) {
				t.Fatalf("image %q is not in the review", ci.Image)
			}
			_, _ = parseImageRef(ci.Image)
		}
		from := string(data)
		if strings.Contains(from, `\`) {
			from = "" // a JSON escape may spell a value differently
		}
		checkPlacement(t, podPlatforms(spec, fuzzDefault), from)
	})
}

var fuzzDefault = platform{OS: "linux", Arch: "arm", Variant: "v7"}

// checkPlacement asserts what a placement may be whatever the pod says: one to
// maxPodPlatforms distinct platforms, each with an os and arch that are the configured
// ones or sane values taken from the pod (found in data, unless data is empty), and the
// configured platform alone, not named in messages, when the pod chose nothing.
func checkPlacement(t *testing.T, pl placement, data string) {
	t.Helper()
	if len(pl.platforms) == 0 || len(pl.platforms) > maxPodPlatforms {
		t.Fatalf("%d platforms: %v", len(pl.platforms), pl.platforms)
	}
	if !pl.chosen && (len(pl.platforms) != 1 || pl.platforms[0] != fuzzDefault) {
		t.Fatalf("not chosen by the pod, yet %v", pl.platforms)
	}
	seen := map[platform]bool{}
	for _, p := range pl.platforms {
		if seen[p] {
			t.Fatalf("%v twice in %v", p, pl.platforms)
		}
		seen[p] = true
		for _, v := range []struct{ got, def string }{{p.OS, fuzzDefault.OS}, {p.Arch, fuzzDefault.Arch}} {
			if v.got != v.def && (!saneLabelValue(v.got) || data != "" && !strings.Contains(data, v.got)) {
				t.Fatalf("platform %v: %q is neither configured nor a sane value of the pod", p, v.got)
			}
		}
		if p.Variant != "" && (p.Arch != fuzzDefault.Arch || p.Variant != fuzzDefault.Variant) {
			t.Fatalf("platform %v: a variant the configuration did not give for that arch", p)
		}
	}
}

// FuzzPodPlatforms feeds pod-controlled strings to the platform choice: nodeSelector
// values and the In values of two required node affinity terms.
func FuzzPodPlatforms(f *testing.F) {
	f.Add("arm64", "linux", "amd64,arm64", "arm64", "windows")
	f.Add("", "", "amd64", "amd64", "")
	f.Add("../x", strings.Repeat("a", 300), "ppc64le,s390x,riscv64,386,arm", "", "linux,windows")
	f.Add("ARM64", "linux\x00", "arm,arm", "arm", "")
	f.Fuzz(func(t *testing.T, selArch, selOS, term1, term2, osIn string) {
		spec := &corev1.PodSpec{NodeSelector: map[string]string{}}
		if selArch != "" {
			spec.NodeSelector[labelArch] = selArch
		}
		if selOS != "" {
			spec.NodeSelector[labelOS] = selOS
		}
		var terms []corev1.NodeSelectorTerm
		for _, vals := range []string{term1, term2} {
			if vals == "" {
				continue
			}
			exprs := []corev1.NodeSelectorRequirement{{Key: labelArch, Operator: corev1.NodeSelectorOpIn, Values: strings.Split(vals, ",")}}
			if osIn != "" {
				exprs = append(exprs, corev1.NodeSelectorRequirement{Key: labelOS, Operator: corev1.NodeSelectorOpIn, Values: strings.Split(osIn, ",")})
			}
			terms = append(terms, corev1.NodeSelectorTerm{MatchExpressions: exprs})
		}
		if len(terms) > 0 {
			spec.Affinity = &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{
				RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{NodeSelectorTerms: terms}}}
		}
		pl := podPlatforms(spec, fuzzDefault)
		checkPlacement(t, pl, strings.Join([]string{selArch, selOS, term1, term2, osIn}, "\n"))
		if again := podPlatforms(spec, fuzzDefault); !slices.Equal(again.platforms, pl.platforms) {
			t.Fatalf("not deterministic: %v then %v", pl.platforms, again.platforms)
		}
	})
}

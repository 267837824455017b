package admission

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

// in is a required node affinity term: key In values, for each key/values pair given.
func in(pairs ...any) corev1.NodeSelectorTerm {
	var t corev1.NodeSelectorTerm
	for i := 0; i+1 < len(pairs); i += 2 {
		t.MatchExpressions = append(t.MatchExpressions, corev1.NodeSelectorRequirement{
			Key: pairs[i].(string), Operator: corev1.NodeSelectorOpIn, Values: pairs[i+1].([]string)})
	}
	return t
}

func required(terms ...corev1.NodeSelectorTerm) *corev1.Affinity {
	return &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{
		RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{NodeSelectorTerms: terms}}}
}

func TestPodPlatforms(t *testing.T) {
	amd := platform{OS: "linux", Arch: "amd64"}
	armv7 := platform{OS: "linux", Arch: "arm", Variant: "v7"}
	arches := func(vs ...string) []string { return vs }
	many := make([]string, maxLabelValues+1)
	for i := range many {
		many[i] = fmt.Sprintf("arch%d", i)
	}
	cases := []struct {
		name   string
		def    platform
		sel    map[string]string
		aff    *corev1.Affinity
		want   string // platforms, comma-separated
		chosen bool
	}{
		{name: "nothing pinned", def: amd, want: "linux/amd64"},
		{name: "selector arm64", def: amd, sel: map[string]string{labelArch: "arm64"}, want: "linux/arm64", chosen: true},
		{name: "selector the configured arch", def: amd, sel: map[string]string{labelArch: "amd64", labelOS: "linux"}, want: "linux/amd64"},
		{name: "selector os only", def: amd, sel: map[string]string{labelOS: "windows"}, want: "windows/amd64", chosen: true},
		{name: "variant kept for its arch", def: armv7, sel: map[string]string{labelArch: "arm"}, want: "linux/arm/v7"},
		{name: "variant dropped for another arch", def: armv7, sel: map[string]string{labelArch: "arm64"}, want: "linux/arm64", chosen: true},
		{name: "other labels ignored", def: amd, sel: map[string]string{"beta.kubernetes.io/arch": "arm64", "zone": "a"}, want: "linux/amd64"},
		{name: "affinity one value", def: amd, aff: required(in(labelArch, arches("arm64"))), want: "linux/arm64", chosen: true},
		{name: "affinity terms agree", def: amd, aff: required(in(labelArch, arches("arm64")), in(labelArch, arches("arm64"), "zone", arches("a"))),
			want: "linux/arm64", chosen: true},
		{name: "affinity two values", def: amd, aff: required(in(labelArch, arches("arm64", "amd64"))), want: "linux/amd64,linux/arm64", chosen: true},
		{name: "affinity terms disagree", def: amd, aff: required(in(labelArch, arches("arm64")), in(labelArch, arches("ppc64le"))),
			want: "linux/arm64,linux/ppc64le", chosen: true},
		{name: "a term that does not pin: anywhere", def: amd, aff: required(in(labelArch, arches("arm64")), in("zone", arches("a"))), want: "linux/amd64"},
		{name: "NotIn names no set", def: amd, aff: required(corev1.NodeSelectorTerm{MatchExpressions: []corev1.NodeSelectorRequirement{
			{Key: labelArch, Operator: corev1.NodeSelectorOpNotIn, Values: []string{"amd64"}}}}), want: "linux/amd64"},
		{name: "expressions of a term intersect", def: amd, aff: required(in(labelArch, arches("amd64", "arm64"), labelArch, arches("arm64"))),
			want: "linux/arm64", chosen: true},
		{name: "selector and affinity intersect", def: amd, sel: map[string]string{labelArch: "arm64"},
			aff: required(in(labelArch, arches("amd64", "arm64"))), want: "linux/arm64", chosen: true},
		{name: "unschedulable: configured", def: amd, sel: map[string]string{labelArch: "arm64"}, aff: required(in(labelArch, arches("amd64"))), want: "linux/amd64"},
		{name: "os times arch", def: amd, aff: required(in(labelOS, arches("windows", "linux"), labelArch, arches("arm64", "amd64"))),
			want: "linux/amd64,linux/arm64,windows/amd64,windows/arm64", chosen: true},
		{name: "capped, configured first", def: amd, aff: required(in(labelArch, arches("s390x", "riscv64", "ppc64le", "arm64", "amd64", "386"))),
			want: "linux/amd64,linux/386,linux/arm64,linux/ppc64le", chosen: true},
		{name: "too many values: anywhere", def: amd, aff: required(in(labelArch, many)), want: "linux/amd64"},
		{name: "garbage: long", def: amd, sel: map[string]string{labelArch: strings.Repeat("a", 300)}, want: "linux/amd64"},
		{name: "garbage: path", def: amd, sel: map[string]string{labelArch: "../x", labelOS: "linux/../../etc"}, want: "linux/amd64"},
		{name: "garbage: upper case, empty", def: amd, sel: map[string]string{labelArch: "ARM64", labelOS: ""}, want: "linux/amd64"},
		{name: "garbage among affinity values", def: amd, aff: required(in(labelArch, arches("arm64", "../x"))), want: "linux/amd64"},
		{name: "garbage selector, sane affinity", def: amd, sel: map[string]string{labelArch: "arm64\n"},
			aff: required(in(labelArch, arches("arm64"))), want: "linux/arm64", chosen: true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			pl := podPlatforms(&corev1.PodSpec{NodeSelector: c.sel, Affinity: c.aff}, c.def)
			var got []string
			for _, p := range pl.platforms {
				got = append(got, p.String())
			}
			if strings.Join(got, ",") != c.want || pl.chosen != c.chosen {
				t.Errorf("platforms %v chosen=%v, want %s chosen=%v", got, pl.chosen, c.want, c.chosen)
			}
		})
	}
	if pl := podPlatforms(nil, amd); !slices.Equal(pl.platforms, []platform{amd}) || pl.chosen {
		t.Errorf("nil spec: %+v", pl)
	}
}

// TestParseImageRefCanonical: the webhook keys references as the node does: one spelling
// of the registry host, a port out of range refused.
func TestParseImageRefCanonical(t *testing.T) {
	for in, want := range map[string]imageRef{
		"ghcr.io:0443/acme/api:v1": {Ref: "ghcr.io/acme/api:v1", Repository: "ghcr.io/acme/api", Pull: "ghcr.io/acme/api:v1"},
		"localhost:05000/x":        {Ref: "localhost:5000/x:latest", Repository: "localhost:5000/x", Pull: "localhost:5000/x:latest"},
		"nginx@sha256:" + strings.Repeat("a", 64): {Ref: "docker.io/library/nginx@sha256:" + strings.Repeat("a", 64),
			Repository: "docker.io/library/nginx", Pull: "docker.io/library/nginx@sha256:" + strings.Repeat("a", 64), Pinned: true},
	} {
		if got, err := parseImageRef(in); err != nil || got != want {
			t.Errorf("parseImageRef(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	if _, err := parseImageRef("ghcr.io:70000/acme/api"); err == nil || !strings.Contains(err.Error(), "out of range") {
		t.Errorf("port 70000: %v; want an error saying it is out of range", err)
	}
}

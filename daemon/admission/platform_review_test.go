package admission

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

// placed returns the review of fixture with the pod spec at specPath (under the object)
// given a nodeSelector and a required node affinity, as a user's manifest would.
func placed(t *testing.T, name string, vars map[string]string, specPath string, sel map[string]string, aff *corev1.Affinity) []byte {
	t.Helper()
	var review map[string]any
	if err := json.Unmarshal(fixture(t, name, vars), &review); err != nil {
		t.Fatal(err)
	}
	spec := review["request"].(map[string]any)["object"].(map[string]any)
	for _, f := range strings.Split(specPath, ".") {
		spec = spec[f].(map[string]any)
	}
	if sel != nil {
		spec["nodeSelector"] = sel
	}
	if aff != nil {
		spec["affinity"] = aff
	}
	b, err := json.Marshal(review)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// pinCase is a review of an image of the world by a pod spec that pins platforms, and
// what the webhook should answer.
type pinCase struct {
	name    string
	fixture string // default pod-create.json
	image   string // repository in the world
	sel     map[string]string
	aff     *corev1.Affinity
	answer
}

var specPaths = map[string]string{"pod-create.json": "spec", "deployment-create.json": "spec.template.spec",
	"cronjob-create.json": "spec.jobTemplate.spec.template.spec"}

func (c pinCase) run(t *testing.T, wh *webhook) {
	w := wh.w
	if c.fixture == "" {
		c.fixture = "pod-create.json"
	}
	vars := map[string]string{"IMAGE": w.ref(c.image), "IMAGE2": unmatched, "IMAGE3": unmatched}
	before := counter(t, wh, c.result)
	r := wh.send(t, placed(t, c.fixture, vars, specPaths[c.fixture], c.sel, c.aff))
	c.check(t, wh, r, before)
}

// answer is what the webhook must reply to one review.
type answer struct {
	allowed  bool
	result   string   // the tollgate_admission_decisions_total result it counts
	message  []string // substrings of the status message
	absent   []string // not in it
	causes   []string // field paths of the denied containers
	warnings []string // substrings, one warning each
}

// check holds r to the answer; before is the decision counter's value before the review.
func (a answer) check(t *testing.T, wh *webhook, r reviewResult, before float64) {
	t.Helper()
	resp := r.review.Response
	if resp.Allowed != a.allowed {
		t.Fatalf("allowed=%v, want %v: %s", resp.Allowed, a.allowed, r.raw)
	}
	for _, m := range a.message {
		if !strings.Contains(r.message(), m) {
			t.Errorf("message %q lacks %q", r.message(), m)
		}
	}
	for _, m := range a.absent {
		if strings.Contains(r.message(), m) {
			t.Errorf("message %q has %q", r.message(), m)
		}
	}
	if !a.allowed && (resp.Result.Code != http.StatusForbidden || resp.Result.Reason != "Forbidden") {
		t.Errorf("status %+v: want 403 Forbidden", resp.Result)
	}
	if got := r.causes(); strings.Join(got, ",") != strings.Join(a.causes, ",") {
		t.Errorf("causes %v, want %v", got, a.causes)
	}
	if len(resp.Warnings) != len(a.warnings) {
		t.Errorf("warnings %q, want %d", resp.Warnings, len(a.warnings))
	}
	for i, wn := range a.warnings {
		if i < len(resp.Warnings) && !strings.Contains(resp.Warnings[i], wn) {
			t.Errorf("warning %q lacks %q", resp.Warnings[i], wn)
		}
	}
	if after := counter(t, wh, a.result); after != before+1 {
		t.Errorf("tollgate_admission_decisions_total{result=%q} went %v → %v", a.result, before, after)
	}
}

// TestPinnedPlatforms: an index is checked for the platforms the pod spec confines it to
// (the node pulls that manifest), and for --platform when it confines it to none.
func TestPinnedPlatforms(t *testing.T) {
	wh := startWebhook(t, nil)
	w := wh.w
	arm := func(repo string) string { return w.host + "/" + repo + "@" + w.images[repo].arm }
	amd := func(repo string) string { return w.host + "/" + repo + "@" + w.images[repo].platform }
	arm64 := map[string]string{labelArch: "arm64"}
	both := required(in(labelArch, []string{"amd64", "arm64"}))
	cases := []pinCase{
		{name: "no pinning: --platform", image: "acme/multi", answer: answer{allowed: true, result: ResultAllowed}},
		{name: "no pinning: --platform, no evidence for it", image: "acme/multiarm",
			answer: answer{result: ResultDenied, message: []string{"tollgate: denied " + amd("acme/multiarm") + `: policy "acme"`}, absent: []string{"(platform"}, causes: []string{"spec.containers[0].image"}}},
		{name: "selector arm64, evidence for amd64 only", image: "acme/multi", sel: arm64,
			answer: answer{result: ResultDenied, message: []string{"tollgate: denied " + arm("acme/multi") + `: policy "acme"`, "(platform linux/arm64)"}, absent: []string{amd("acme/multi")}, causes: []string{"spec.containers[0].image"}}},
		{name: "selector arm64, evidence for arm64", image: "acme/multiarm", sel: arm64,
			answer: answer{allowed: true, result: ResultAllowed}},
		{name: "affinity arm64, evidence for amd64 only", image: "acme/multi", aff: required(in(labelArch, []string{"arm64"})),
			answer: answer{result: ResultDenied, message: []string{"denied " + arm("acme/multi"), "(platform linux/arm64)"}, causes: []string{"spec.containers[0].image"}}},
		{name: "affinity arm64 in every term, evidence for arm64", image: "acme/multiarm", aff: required(in(labelArch, []string{"arm64"}), in(labelArch, []string{"arm64"}, labelOS, []string{"linux"})),
			answer: answer{allowed: true, result: ResultAllowed}},
		{name: "affinity amd64+arm64, arm64 fails", image: "acme/multi", aff: both,
			answer: answer{result: ResultDenied, message: []string{"denied " + arm("acme/multi"), "(platform linux/arm64)"}, absent: []string{amd("acme/multi"), "linux/amd64"}, causes: []string{"spec.containers[0].image"}}},
		{name: "affinity amd64+arm64, amd64 fails", image: "acme/multiarm", aff: both,
			answer: answer{result: ResultDenied, message: []string{"denied " + amd("acme/multiarm"), "(platform linux/amd64)"}, absent: []string{"linux/arm64"}, causes: []string{"spec.containers[0].image"}}},
		{name: "affinity amd64+arm64, both verified", image: "acme/multiboth", aff: both,
			answer: answer{allowed: true, result: ResultAllowed}},
		{name: "terms disagree: both checked", image: "acme/multi", aff: required(in(labelArch, []string{"amd64"}), in(labelArch, []string{"arm64"})),
			answer: answer{result: ResultDenied, message: []string{"(platform linux/arm64)"}, causes: []string{"spec.containers[0].image"}}},
		{name: "plain manifest, two platforms: one verdict", image: "acme/none", aff: both,
			answer: answer{result: ResultDenied, message: []string{"tollgate: denied " + w.pinned("acme/none") + `: policy "acme"`}, absent: []string{"(platform", "; "}, causes: []string{"spec.containers[0].image"}}},
		{name: "plain manifest, verified, on arm64", image: "acme/good", sel: arm64,
			answer: answer{allowed: true, result: ResultAllowed}},
		{name: "index without the pinned platform", image: "acme/multi", sel: map[string]string{labelArch: "s390x"},
			answer: answer{allowed: true, result: ResultFailOpen, warnings: []string{"has no image for platform linux/s390x"}}},
		{name: "garbage selector: 300 characters", image: "acme/multi", sel: map[string]string{labelArch: strings.Repeat("x", 300)},
			answer: answer{allowed: true, result: ResultAllowed}},
		{name: "garbage selector: a path", image: "acme/multi", sel: map[string]string{labelArch: "../x", labelOS: "../../etc"},
			answer: answer{allowed: true, result: ResultAllowed}},
		{name: "garbage selector: configured platform checked", image: "acme/multiarm", sel: map[string]string{labelArch: "../arm64"},
			answer: answer{result: ResultDenied, message: []string{"denied " + amd("acme/multiarm")}, absent: []string{"(platform"}, causes: []string{"spec.containers[0].image"}}},
		{name: "deployment template pinned to arm64, amd64 evidence only", fixture: "deployment-create.json", image: "acme/multi", sel: arm64,
			answer: answer{result: ResultDenied, message: []string{"denied " + arm("acme/multi"), "(platform linux/arm64)"}, causes: []string{"spec.template.spec.containers[0].image"}}},
		{name: "deployment template pinned to arm64, arm64 evidence", fixture: "deployment-create.json", image: "acme/multiarm", sel: arm64,
			answer: answer{allowed: true, result: ResultAllowed}},
		{name: "cronjob template, affinity amd64+arm64", fixture: "cronjob-create.json", image: "acme/multi", aff: both,
			answer: answer{result: ResultDenied, message: []string{"(platform linux/arm64)"}, causes: []string{"spec.jobTemplate.spec.template.spec.containers[0].image"}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { c.run(t, wh) })
	}
	resp, err := http.Get(wh.health + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if b, _ := io.ReadAll(resp.Body); strings.Contains(string(b), "arm64") || strings.Contains(string(b), "s390x") {
		t.Error("a platform of a pod reached the metrics")
	}
}

// TestPlatformCache: the resolution of one reference is cached per platform, so a pod
// pinned to arm64 never reuses the amd64 answer; each answer is then reused, and a plain
// manifest is resolved once for every platform.
func TestPlatformCache(t *testing.T) {
	wh := startWebhook(t, nil) // fresh caches
	w := wh.w
	review := func(repo string, sel map[string]string) reviewResult {
		vars := map[string]string{"IMAGE": w.ref(repo), "IMAGE2": unmatched, "IMAGE3": unmatched}
		return wh.send(t, placed(t, "pod-create.json", vars, "spec", sel, nil))
	}
	arm64 := map[string]string{labelArch: "arm64"}
	steps := []struct {
		name    string
		repo    string
		sel     map[string]string
		allowed bool
		cached  bool // no registry request
	}{
		{"amd64 first", "acme/multi", nil, true, false},
		{"arm64: not the amd64 answer", "acme/multi", arm64, false, false},
		{"amd64 again: cached", "acme/multi", nil, true, true},
		{"arm64 again: cached", "acme/multi", arm64, false, true},
		{"plain manifest on amd64", "acme/good", nil, true, false},
		{"plain manifest on arm64: the same content, cached", "acme/good", arm64, true, true},
	}
	for _, s := range steps {
		before := w.count(s.repo)
		r := review(s.repo, s.sel)
		if r.review.Response.Allowed != s.allowed {
			t.Errorf("%s: allowed=%v, want %v: %s", s.name, r.review.Response.Allowed, s.allowed, r.raw)
		}
		if n := w.count(s.repo) - before; (n == 0) != s.cached {
			t.Errorf("%s: %d registry requests, want cached=%v", s.name, n, s.cached)
		}
	}
}

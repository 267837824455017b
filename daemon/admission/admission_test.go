package admission

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"

	"tollgate.dev/tollgate/daemon"
	"tollgate.dev/tollgate/daemon/registry"
	"tollgate.dev/tollgate/policy"
)

// reviewResult is a decoded answer of the webhook.
type reviewResult struct {
	status int
	review admissionv1.AdmissionReview
	raw    string
}

func (wh *webhook) send(t testing.TB, body []byte) reviewResult {
	t.Helper()
	code, out := wh.post(t, body, "application/json")
	r := reviewResult{status: code, raw: string(out)}
	if code != http.StatusOK {
		t.Fatalf("status %d: %s", code, out)
	}
	if err := json.Unmarshal(out, &r.review); err != nil {
		t.Fatalf("response is not an AdmissionReview: %v\n%s", err, out)
	}
	if r.review.APIVersion != "admission.k8s.io/v1" || r.review.Kind != "AdmissionReview" || r.review.Response == nil {
		t.Fatalf("response: %s", out)
	}
	return r
}

func (r reviewResult) message() string {
	if r.review.Response.Result == nil {
		return ""
	}
	return r.review.Response.Result.Message
}

func (r reviewResult) causes() []string {
	var out []string
	if s := r.review.Response.Result; s != nil && s.Details != nil {
		for _, c := range s.Details.Causes {
			out = append(out, c.Field)
		}
	}
	return out
}

// ref names an image of the world by repository ("acme/good"), with its tag.
func (w *world) ref(repo string) string { return w.host + "/" + repo + ":v1" }

// pinned is how the node's messages name an image: repository@digest decided on.
func (w *world) pinned(repo string) string {
	p := w.images[repo]
	if p.platform != "" {
		return w.host + "/" + repo + "@" + p.platform
	}
	return w.host + "/" + repo + "@" + p.digest
}

const unmatched = "docker.io/library/busybox:1.36" // no policy: NodeDefaults allows, no registry asked

func TestReviews(t *testing.T) {
	wh := startWebhook(t, nil)
	w := wh.w
	good, multi, none, rogue := w.ref("acme/good"), w.ref("acme/multi"), w.ref("acme/none"), w.ref("acme/rogue")
	templates := map[string]string{
		"deployment-create.json":  "spec.template.spec",
		"statefulset-create.json": "spec.template.spec",
		"daemonset-create.json":   "spec.template.spec",
		"replicaset-create.json":  "spec.template.spec",
		"job-create.json":         "spec.template.spec",
		"cronjob-create.json":     "spec.jobTemplate.spec.template.spec",
	}
	type tc struct {
		name    string
		fixture string
		vars    map[string]string
		answer
	}
	cases := []tc{
		{name: "pod create, all verified or unmatched", fixture: "pod-create.json",
			vars:   map[string]string{"IMAGE": good, "IMAGE2": multi, "IMAGE3": unmatched},
			answer: answer{allowed: true, result: ResultAllowed}},
		{name: "pod create, digest reference", fixture: "pod-create.json",
			vars:   map[string]string{"IMAGE": w.host + "/acme/good@" + w.images["acme/good"].digest, "IMAGE2": unmatched, "IMAGE3": unmatched},
			answer: answer{allowed: true, result: ResultAllowed}},
		{name: "pod create, untrusted signer", fixture: "pod-create.json",
			vars: map[string]string{"IMAGE": rogue, "IMAGE2": good, "IMAGE3": unmatched},
			answer: answer{allowed: false, result: ResultDenied,
				message: []string{"tollgate: denied " + w.pinned("acme/rogue") + `: policy "acme"`},
				causes:  []string{"spec.containers[0].image"}}},
		{name: "pod create, two containers denied", fixture: "pod-create.json",
			vars: map[string]string{"IMAGE": rogue, "IMAGE2": none, "IMAGE3": none},
			answer: answer{allowed: false, result: ResultDenied,
				message: []string{"tollgate: denied " + w.pinned("acme/none") + `: policy "acme"`, "; tollgate: denied " + w.pinned("acme/rogue")},
				causes:  []string{"spec.initContainers[0].image", "spec.containers[0].image", "spec.containers[1].image"}}},
		{name: "pod create, audit mode", fixture: "pod-create.json",
			vars:   map[string]string{"IMAGE": w.ref("audit/none"), "IMAGE2": good, "IMAGE3": unmatched},
			answer: answer{allowed: true, result: ResultAudit, warnings: []string{"tollgate: allowed in audit mode " + w.pinned("audit/none")}}},
		{name: "pod create, exempt repository", fixture: "pod-create.json",
			vars:   map[string]string{"IMAGE": w.ref("acme/exempt"), "IMAGE2": unmatched, "IMAGE3": unmatched},
			answer: answer{allowed: true, result: ResultAllowed}},
		{name: "pod update, image changed to a denied one", fixture: "pod-update.json",
			vars:   map[string]string{"IMAGE": none, "OLD_IMAGE": good, "IMAGE3": rogue, "LABEL": "front"},
			answer: answer{allowed: false, result: ResultDenied, message: []string{"denied " + w.pinned("acme/none")}, causes: []string{"spec.containers[0].image"}}},
		{name: "pod update, no new image (labels only)", fixture: "pod-update.json",
			vars:   map[string]string{"IMAGE": rogue, "OLD_IMAGE": rogue, "IMAGE3": none, "LABEL": "back"},
			answer: answer{allowed: true, result: ResultSkipped}},
		{name: "ephemeral container added", fixture: "pod-ephemeral.json",
			vars:   map[string]string{"IMAGE": none, "OLD_IMAGE": good},
			answer: answer{allowed: false, result: ResultDenied, causes: []string{"spec.ephemeralContainers[0].image"}}},
		{name: "image volumes verified (KEP-4639)", fixture: "pod-imagevolume.json",
			vars:   map[string]string{"IMAGE": good, "VOLUME": multi, "VOLUME2": unmatched},
			answer: answer{allowed: true, result: ResultAllowed}},
		{name: "image volume denied, container verified", fixture: "pod-imagevolume.json",
			vars: map[string]string{"IMAGE": good, "VOLUME": rogue, "VOLUME2": good},
			answer: answer{allowed: false, result: ResultDenied,
				message: []string{"tollgate: denied " + w.pinned("acme/rogue") + `: policy "acme"`},
				causes:  []string{"spec.volumes[1].image.reference"}}},
		{name: "same image as container and volume: one check, two causes", fixture: "pod-imagevolume.json",
			vars: map[string]string{"IMAGE": none, "VOLUME": unmatched, "VOLUME2": none},
			answer: answer{allowed: false, result: ResultDenied,
				causes: []string{"spec.containers[0].image", "spec.volumes[2].image.reference"}}},
		{name: "image volume in audit mode", fixture: "pod-imagevolume.json",
			vars:   map[string]string{"IMAGE": good, "VOLUME": unmatched, "VOLUME2": w.ref("audit/none")},
			answer: answer{allowed: true, result: ResultAudit, warnings: []string{"tollgate: allowed in audit mode " + w.pinned("audit/none")}}},
		{name: "wrong kind is not checked", fixture: "configmap-create.json",
			vars: map[string]string{"IMAGE": rogue}, answer: answer{allowed: true, result: ResultSkipped}},
		{name: "delete is not checked", fixture: "pod-delete.json",
			vars: map[string]string{"IMAGE": rogue}, answer: answer{allowed: true, result: ResultSkipped}},
	}
	for f, spec := range templates {
		cases = append(cases,
			tc{name: f + " verified", fixture: f,
				vars:   map[string]string{"IMAGE": good, "IMAGE2": multi, "IMAGE3": unmatched},
				answer: answer{allowed: true, result: ResultAllowed}},
			tc{name: f + " init container denied", fixture: f,
				vars: map[string]string{"IMAGE": good, "IMAGE2": none, "IMAGE3": unmatched},
				answer: answer{allowed: false, result: ResultDenied, message: []string{"tollgate: denied " + w.pinned("acme/none")},
					causes: []string{spec + ".initContainers[0].image"}}})
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := counter(t, wh, c.result)
			r := wh.send(t, fixture(t, c.fixture, c.vars))
			resp := r.review.Response
			var sent admissionv1.AdmissionReview
			json.Unmarshal(fixture(t, c.fixture, c.vars), &sent)
			if resp.UID != sent.Request.UID {
				t.Errorf("uid %q, want %q", resp.UID, sent.Request.UID)
			}
			c.check(t, wh, r, before)
		})
	}
	if n := w.count("acme/exempt"); n != 0 {
		t.Errorf("the exempt repository was asked %d times; exemptions need no registry", n)
	}
}

// TestSameMessageAsNode: a denial reads exactly as the node's for the same content: the
// webhook's message is policy.Set.Evaluate's, over the same evidence.
func TestSameMessageAsNode(t *testing.T) {
	wh := startWebhook(t, nil)
	w := wh.w
	p := w.images["acme/rogue"]
	set, err := policy.Load(w.policyFiles(t), 1)
	if err != nil {
		t.Fatal(err)
	}
	files, err := registry.New(registry.WithInsecure(w.host)).Fetch(context.Background(), w.host+"/acme/rogue", p.digest)
	if err != nil || len(files) == 0 {
		t.Fatalf("fetch evidence: %v (%d files)", err, len(files))
	}
	node := set.Evaluate(policy.Request{Image: policy.Image{
		Ref: p.ref, Repository: w.host + "/acme/rogue", ConfigDigest: p.config, Digests: []string{p.digest},
	}}, policy.Evidence{Files: files}, time.Now())
	if node.Allowed || node.Message == "" {
		t.Fatalf("the node allows the rogue image: %+v", node)
	}
	r := wh.send(t, fixture(t, "pod-create.json", map[string]string{"IMAGE": p.ref, "IMAGE2": unmatched, "IMAGE3": unmatched}))
	if r.message() != node.Message {
		t.Errorf("webhook: %s\nnode:    %s", r.message(), node.Message)
	}
}

// TestCannotVerify: a registry outage or a deadline allows with a warning (--fail-open, the
// default: the node gate still decides), or denies with --fail-open=false.
func TestCannotVerify(t *testing.T) {
	open := startWebhook(t, func(c *Config) { c.Timeout = daemon.Duration(time.Second) })
	closed := startWebhook(t, func(c *Config) { c.Timeout = daemon.Duration(time.Second); c.FailOpen = false })
	w := open.w
	cases := []struct {
		name string
		wh   *webhook
		repo string
		want string // in the warning or message
	}{
		{"registry down, fail open", open, "acme/down", "503"},
		{"evidence fetch fails, fail open", open, "acme/nofetch", "503"},
		{"slow registry, fail open", open, "acme/slow", "deadline"},
		{"registry down, fail closed", closed, "acme/down", "503"},
		{"slow registry, fail closed", closed, "acme/slow", "deadline"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := c.wh.send(t, fixture(t, "pod-create.json", map[string]string{"IMAGE": w.ref(c.repo), "IMAGE2": unmatched, "IMAGE3": unmatched}))
			resp := r.review.Response
			if c.wh == open {
				if !resp.Allowed || len(resp.Warnings) != 1 {
					t.Fatalf("want allowed with one warning: %s", r.raw)
				}
				wn := resp.Warnings[0]
				for _, s := range []string{"could not verify " + w.ref(c.repo) + " in time; the node gate will decide", c.want} {
					if !strings.Contains(wn, s) {
						t.Errorf("warning %q lacks %q", wn, s)
					}
				}
				return
			}
			if resp.Allowed {
				t.Fatalf("fail-closed allowed: %s", r.raw)
			}
			for _, s := range []string{"tollgate: denied " + w.ref(c.repo), "fails closed", c.want} {
				if !strings.Contains(r.message(), s) {
					t.Errorf("message %q lacks %q", r.message(), s)
				}
			}
		})
	}
	// A plain-HTTP registry outside the insecure list is a refusal by configuration, not a
	// slow registry.
	strict := startWebhook(t, func(c *Config) { c.InsecureRegistries = nil })
	r := strict.send(t, fixture(t, "pod-create.json", map[string]string{"IMAGE": w.ref("acme/good"), "IMAGE2": unmatched, "IMAGE3": unmatched}))
	if ws := r.review.Response.Warnings; len(ws) != 1 || strings.Contains(ws[0], "in time") ||
		!strings.Contains(ws[0], "could not verify "+w.ref("acme/good")+": its registry is refused by configuration") ||
		!strings.Contains(ws[0], "not in the insecure list (--insecure-registry "+w.host+")") {
		t.Errorf("plain-HTTP registry not listed: warnings %q; want a refusal by configuration naming the flag", ws)
	}
	// An outage is never cached as a verdict: the next review asks the registry again.
	before := w.count("acme/down")
	open.send(t, fixture(t, "pod-create.json", map[string]string{"IMAGE": w.ref("acme/down"), "IMAGE2": unmatched, "IMAGE3": unmatched}))
	if w.count("acme/down") == before {
		t.Error("a registry error was cached: the registry was not asked again")
	}
}

// TestCachedAndCoalesced: identical concurrent reviews cost the registry what one does,
// and a repeated review costs it nothing.
func TestCachedAndCoalesced(t *testing.T) {
	body := func(w *world) []byte {
		return fixture(t, "deployment-create.json", map[string]string{"IMAGE": w.ref("acme/multi"), "IMAGE2": unmatched, "IMAGE3": unmatched})
	}
	one := startWebhook(t, nil)
	w := one.w
	before := w.count("acme/multi")
	one.send(t, body(w))
	single := w.count("acme/multi") - before
	if single == 0 {
		t.Fatal("no registry request for a first review")
	}
	one.send(t, body(w))
	if extra := w.count("acme/multi") - before - single; extra != 0 {
		t.Errorf("a repeated review made %d registry requests; want 0 (cached)", extra)
	}

	many := startWebhook(t, nil) // fresh caches
	before = w.count("acme/multi")
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if r := many.send(t, body(w)); !r.review.Response.Allowed {
				t.Errorf("denied: %s", r.raw)
			}
		}()
	}
	wg.Wait()
	if n := w.count("acme/multi") - before; n != single {
		t.Errorf("16 concurrent reviews made %d registry requests; one review makes %d", n, single)
	}
}

// TestPolicyReload: the webhook follows the policy directory like the node does.
func TestPolicyReload(t *testing.T) {
	wh := startWebhook(t, nil)
	w := wh.w
	body := fixture(t, "pod-create.json", map[string]string{"IMAGE": w.ref("acme/rogue"), "IMAGE2": unmatched, "IMAGE3": unmatched})
	if r := wh.send(t, body); r.review.Response.Allowed {
		t.Fatalf("allowed before the reload: %s", r.raw)
	}
	files := w.policyFiles(t)
	files["acme.yaml"] = []byte(strings.Replace(string(files["acme.yaml"]), "mode: enforce", "mode: audit", 1))
	writeFiles(t, wh.policyDir, files)
	if changed, err := wh.srv.ReloadPolicy(); err != nil || !changed {
		t.Fatalf("reload: changed=%v err=%v", changed, err)
	}
	r := wh.send(t, body)
	if !r.review.Response.Allowed || len(r.review.Response.Warnings) != 1 || !strings.Contains(r.review.Response.Warnings[0], "audit") {
		t.Errorf("after switching to audit: %s", r.raw)
	}
	// A bad file keeps the last good set in force, and readiness says so.
	writeFiles(t, wh.policyDir, map[string][]byte{"broken.yaml": []byte("apiVersion: tollgate.dev/v1alpha1\nkind: ImagePolicy\nspec: [\n")})
	if _, err := wh.srv.ReloadPolicy(); err == nil {
		t.Fatal("a broken policy file loaded")
	}
	if r := wh.send(t, body); !r.review.Response.Allowed {
		t.Errorf("the last good set is not in force: %s", r.raw)
	}
	if ok, msg := wh.srv.Ready(); ok || !strings.Contains(msg, "stays in force") {
		t.Errorf("Ready() = %v, %q", ok, msg)
	}
}

func TestHealthEndpoints(t *testing.T) {
	wh := startWebhook(t, nil)
	wh.send(t, fixture(t, "configmap-create.json", map[string]string{"IMAGE": "x"}))
	for path, want := range map[string][]string{
		"/healthz": {"ok"},
		"/readyz":  {"policy: generation 1 loaded", "tls: serving certificate valid until"},
		"/metrics": {`tollgate_admission_decisions_total{result="skipped"} 1`, `tollgate_admission_decisions_total{result="denied"} 0`,
			"tollgate_admission_duration_seconds_bucket", "tollgate_admission_policy_generation 1"},
	} {
		resp, err := http.Get(wh.health + path)
		if err != nil {
			t.Fatal(err)
		}
		var b strings.Builder
		_, _ = ioCopy(&b, resp)
		if resp.StatusCode != http.StatusOK {
			t.Errorf("%s: %d %s", path, resp.StatusCode, b.String())
		}
		for _, s := range want {
			if !strings.Contains(b.String(), s) {
				t.Errorf("%s lacks %q:\n%s", path, s, b.String())
			}
		}
	}
	if strings.Contains(get(t, wh.health+"/metrics"), "tollgate_nri_connected") {
		t.Error("the webhook exports the node daemon's NRI metrics")
	}
}

// counter reads tollgate_admission_decisions_total{result}.
func counter(t *testing.T, wh *webhook, result string) float64 {
	t.Helper()
	mfs, err := wh.srv.metrics.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "tollgate_admission_decisions_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "result" && l.GetValue() == result {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	t.Fatalf("no tollgate_admission_decisions_total{result=%q}", result)
	return 0
}

// TestUnverifiableSetups: an index without the configured platform, and a webhook whose
// policy directory never loaded, are "cannot verify": allowed with a warning (fail-open).
func TestUnverifiableSetups(t *testing.T) {
	cases := []struct {
		name string
		edit func(*Config)
		want string
	}{
		{"platform missing from the index", func(c *Config) { c.Platform = "linux/s390x" }, "has no image for platform linux/s390x"},
		{"no policy loaded", func(c *Config) { c.PolicyDir = "/nonexistent/policy" }, "no policy set is loaded in the webhook"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			wh := startWebhook(t, c.edit)
			r := wh.send(t, fixture(t, "pod-create.json", map[string]string{"IMAGE": wh.w.ref("acme/multi"), "IMAGE2": unmatched, "IMAGE3": unmatched}))
			resp := r.review.Response
			if !resp.Allowed || len(resp.Warnings) == 0 || !strings.Contains(resp.Warnings[0], c.want) {
				t.Errorf("want allowed with a warning naming %q: %s", c.want, r.raw)
			}
		})
	}
}

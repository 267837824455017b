package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"tollgate.dev/tollgate/policy"
	"tollgate.dev/tollgate/policy/envelope"
	"tollgate.dev/tollgate/policy/keys"
)

const testPredicate = "https://tollgate.dev/test/v1"

// realPolicyDir writes a policy directory for policy.Load: one enforce ImagePolicy for
// registry.test/acme/* requiring a Statement signed by keys/ci.pub, and NodeDefaults that
// exempt registry.test/pause and deny unmatched images.
func realPolicyDir(t testing.TB, dir string, ci *keys.Signer, mode policy.Mode) {
	t.Helper()
	pub, err := ci.MarshalPublic()
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "keys", "ci.pub"), string(pub))
	writeFile(t, filepath.Join(dir, "acme.yaml"), `apiVersion: tollgate.dev/v1alpha1
kind: ImagePolicy
metadata: {name: acme}
spec:
  images: ["registry.test/acme/*"]
  mode: `+string(mode)+`
  attestations:
    - name: provenance
      predicateType: `+testPredicate+`
      keys: [keys/ci.pub]
`)
	writeFile(t, filepath.Join(dir, "defaults.yaml"), `apiVersion: tollgate.dev/v1alpha1
kind: NodeDefaults
metadata: {name: node}
spec:
  unmatched: deny
  exemptions:
    repositories: ["registry.test/pause"]
`)
}

// signedStatement is a DSSE envelope with a Statement about digest, signed by s.
func signedStatement(t testing.TB, s *keys.Signer, repo, digest string) []byte {
	t.Helper()
	alg, hx, _ := strings.Cut(digest, ":")
	payload, _ := json.Marshal(map[string]any{
		"_type":         "https://in-toto.io/Statement/v1",
		"subject":       []any{map[string]any{"name": repo, "digest": map[string]string{alg: hx}}},
		"predicateType": testPredicate,
		"predicate":     map[string]any{"builder": "ci"},
	})
	env := envelope.NewDSSE(envelope.PayloadTypeInToto, payload)
	if err := env.Sign(s); err != nil {
		t.Fatal(err)
	}
	b, err := env.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

type fakeRuntime struct {
	d      *Daemon
	ran    atomic.Bool
	listed atomic.Int64
	reqs   []policy.Request
}

func (r *fakeRuntime) Run(ctx context.Context) error {
	r.ran.Store(true)
	r.d.SetNRIConnected(true)
	<-ctx.Done()
	r.d.SetNRIConnected(false)
	return ctx.Err()
}

func (r *fakeRuntime) RunningContainers(context.Context) ([]policy.Request, error) {
	r.listed.Add(1)
	return r.reqs, nil
}

// isCached reports whether the hook would serve img from the cache right now.
func isCached(g *Gate, img policy.Image) bool {
	snap := g.policies.Current()
	ik := makeImageKey(&img, snap.Generation)
	ie, ok := g.index.get(ik.evidenceHash(), img.Repository, img.Digests)
	if !ok {
		return false
	}
	_, ok = g.cache.get(&cacheKey{imageKey: ik, evidence: ie.version}, img.Digests, g.clock().UnixNano())
	return ok
}

type fakeWatcher struct{ img policy.Image }

func (w fakeWatcher) Watch(ctx context.Context, fn func(policy.Image)) error {
	fn(w.img)
	<-ctx.Done()
	return ctx.Err()
}

func TestDaemonEndToEnd(t *testing.T) {
	root := t.TempDir()
	cfg := DefaultConfig()
	cfg.PolicyDir = filepath.Join(root, "policy")
	cfg.EvidenceDir = filepath.Join(root, "evidence")
	cfg.CacheDir = filepath.Join(root, "cache")
	cfg.AuditLog = filepath.Join(root, "log", "audit.jsonl")
	cfg.Listen = "127.0.0.1:0"
	cfg.NodeName = "node-1"

	ci, err := keys.Generate("ed25519", 0)
	if err != nil {
		t.Fatal(err)
	}
	realPolicyDir(t, cfg.PolicyDir, ci, policy.Enforce)
	api := imageIn("registry.test/acme", "api")
	writeFile(t, filepath.Join(cfg.EvidenceDir, strings.Replace(api.Digests[0], ":", "/", 1), "provenance.dsse.json"),
		string(signedStatement(t, ci, api.Repository, api.Digests[0])))

	// The registry has evidence for one image only, which an image event pre-verifies.
	pulled := imageIn("registry.test/acme", "pulled")
	fetcher := &fakeFetcher{}
	fetcher.set(pulled.Digests[0], map[string][]byte{"att.dsse.json": signedStatement(t, ci, pulled.Repository, pulled.Digests[0])}, nil)
	d, err := New(cfg, WithFetcher(fetcher), WithWatchOptions(WatchOptions{Debounce: 20 * time.Millisecond, Poll: 100 * time.Millisecond}))
	if err != nil {
		t.Fatal(err)
	}
	rt := &fakeRuntime{d: d, reqs: []policy.Request{{Image: api, Namespace: "prod", Pod: "api-0", Container: "api"}}}
	d.Attach(rt)
	d.SetImageWatcher(fakeWatcher{pulled})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	waitFor(t, func() bool { return d.Addr() != "" })
	readyz := func() (int, string) {
		resp, err := http.Get("http://" + d.Addr() + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	waitFor(t, func() bool { code, _ := readyz(); return code == 200 })

	g := d.Gate()
	decide := func(img policy.Image) policy.Decision {
		return g.Decide(context.Background(), policy.Request{Image: img, Namespace: "prod", Pod: "p", Container: "c"})
	}
	cases := []struct {
		name    string
		img     policy.Image
		allowed bool
		outcome policy.Outcome
		msg     string
	}{
		{"verified from the node evidence directory", api, true, policy.Verified, "verified"},
		{"exempt repository", imageIn("registry.test", "pause"), true, policy.Exempt, "exempt"},
		{"no matching policy", imageIn("other.test/x", "y"), false, policy.Unmatched, "no policy matches"},
		{"no evidence on the node yet", imageIn("registry.test/acme", "web"), false, policy.Denied, "not on the node yet"},
	}
	for _, c := range cases {
		dec := decide(c.img)
		if dec.Allowed != c.allowed || dec.Outcome != c.outcome || !strings.Contains(dec.Message, c.msg) {
			t.Errorf("%s: allowed=%v outcome=%s %q", c.name, dec.Allowed, dec.Outcome, dec.Message)
		}
	}
	if dec := decide(api); !dec.Allowed {
		t.Fatalf("cached verdict: %s", dec.Message)
	}
	// The image event's pre-verification fetched the evidence; the hook is served from the cache.
	waitFor(t, func() bool { return isCached(d.Gate(), pulled) })
	hits := metricValue(t, d.Metrics(), "tollgate_cache_hits_total")
	if dec := decide(pulled); !dec.Allowed || dec.Outcome != policy.Verified {
		t.Fatalf("pre-verified image: %s", dec.Message)
	}
	if metricValue(t, d.Metrics(), "tollgate_cache_hits_total") != hits+1 {
		t.Error("the pre-verified image was not served from the cache")
	}

	// A broken policy file: the last good set stays, readiness says why.
	writeFile(t, filepath.Join(cfg.PolicyDir, "broken.yaml"), "apiVersion: tollgate.dev/v1alpha1\nkind: ImagePolicy\nspec: {nonsense: 1}\n")
	waitFor(t, func() bool { code, _ := readyz(); return code == 503 })
	if _, body := readyz(); !strings.Contains(body, "generation 1 stays in force") {
		t.Errorf("/readyz: %s", body)
	}
	if dec := decide(api); !dec.Allowed {
		t.Fatalf("the last good set is not in force: %s", dec.Message)
	}
	// Fixed, and changed to audit: a new generation, and the running containers re-checked.
	os.Remove(filepath.Join(cfg.PolicyDir, "broken.yaml"))
	realPolicyDir(t, cfg.PolicyDir, ci, policy.Audit)
	waitFor(t, func() bool { code, _ := readyz(); return code == 200 && d.Policies().Current().Generation == 2 })
	waitFor(t, func() bool { return rt.listed.Load() == 1 })
	if dec := decide(imageIn("registry.test/acme", "web")); !dec.Allowed || dec.Outcome != policy.AuditFail {
		t.Errorf("audit mode without evidence: allowed=%v outcome=%s", dec.Allowed, dec.Outcome)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	if !rt.ran.Load() {
		t.Fatal("the runtime was not run")
	}
	data, err := os.ReadFile(cfg.AuditLog)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	hooks := 0
	for _, l := range lines {
		var r map[string]any
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatalf("audit line %q: %v", l, err)
		}
		if r["path"] == PathHook {
			hooks++
			if r["node"] != "node-1" || r["namespace"] != "prod" {
				t.Errorf("audit record %v", r)
			}
		}
	}
	if hooks != 8 {
		t.Errorf("%d hook decisions in the audit log, want 8", hooks)
	}
}

func TestNewRejectsInvalidConfig(t *testing.T) {
	cfg := DefaultConfig()
	cfg.HookDeadline = Duration(3 * time.Second)
	if _, err := New(cfg); err == nil || !strings.Contains(err.Error(), "hook-deadline") {
		t.Fatalf("err = %v", err)
	}
}

type failingRuntime struct{}

func (failingRuntime) Run(context.Context) error { return errors.New("nri socket gone") }

// A runtime that fails stops the daemon with its error (systemd or the kubelet restarts it),
// and Run still shuts everything down.
func TestRunStopsOnRuntimeFailure(t *testing.T) {
	root := t.TempDir()
	cfg := DefaultConfig()
	cfg.PolicyDir, cfg.EvidenceDir, cfg.CacheDir = filepath.Join(root, "p"), filepath.Join(root, "e"), filepath.Join(root, "c")
	cfg.AuditLog, cfg.Listen = "", "127.0.0.1:0"
	d, err := New(cfg, WithPolicyLoader(fakeLoad))
	if err != nil {
		t.Fatal(err)
	}
	d.Attach(failingRuntime{})
	errc := make(chan error, 1)
	go func() { errc <- d.Run(context.Background()) }()
	select {
	case err := <-errc:
		if err == nil || !strings.Contains(err.Error(), "nri socket gone") {
			t.Fatalf("Run = %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not stop")
	}
}

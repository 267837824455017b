package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"

	"tollgate.dev/tollgate/daemon"
	"tollgate.dev/tollgate/daemon/gate"
	"tollgate.dev/tollgate/daemon/policystore"
	"tollgate.dev/tollgate/daemon/policytest"
	"tollgate.dev/tollgate/policy"
	"tollgate.dev/tollgate/policy/keys"
)

// mapFetcher serves evidence by digest, as a registry would.
type mapFetcher map[string]map[string][]byte

func (f mapFetcher) Fetch(_ context.Context, _ string, digests ...string) (map[string][]byte, error) {
	out := map[string][]byte{}
	for _, d := range digests {
		maps.Copy(out, f[d])
	}
	return out, nil
}

func testImage(repo, name string) policy.Image {
	digest := func(s string) string {
		h := sha256.Sum256([]byte(s))
		return "sha256:" + hex.EncodeToString(h[:])
	}
	return policy.Image{
		Ref:          repo + "/" + name + ":v1",
		Repository:   repo + "/" + name,
		ConfigDigest: digest("config-" + name),
		Digests:      []string{digest("manifest-" + name)},
	}
}

// writeFile replaces p at once (through a hidden file and a rename), so that the policy
// watch never loads a half-written file as a generation of its own.
func writeFile(t testing.TB, p, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(filepath.Dir(p), ".tmp-"+filepath.Base(p))
	if err := os.WriteFile(tmp, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, p); err != nil {
		t.Fatal(err)
	}
}

func waitFor(t testing.TB, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached in 5s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// metricValue returns the value of one series on the node's /metrics, or 0 when absent.
func metricValue(t testing.TB, n *node, series string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + n.cfg.Listen + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, series+" "); ok {
			v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			if err != nil {
				t.Fatalf("series %s: %v", series, err)
			}
			return v
		}
	}
	return 0
}

// freeAddr is a loopback address with a port nothing listens on now.
func freeAddr(t testing.TB) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func testConfig(t testing.TB) daemon.Config {
	root := t.TempDir()
	cfg := daemon.DefaultConfig()
	cfg.PolicyDir = filepath.Join(root, "policy")
	cfg.EvidenceDir = filepath.Join(root, "evidence")
	cfg.CacheDir = filepath.Join(root, "cache")
	cfg.AuditLog = filepath.Join(root, "log", "audit.jsonl")
	cfg.Listen = freeAddr(t)
	cfg.NodeName = "node-1"
	return cfg
}

// The node's parts, wired as run wires them, with a fake runtime beside them: decisions
// from node evidence, exemptions, unmatched images and missing evidence; an image event
// pre-verifying from the registry into the cache; a broken policy file keeping the last
// good set (and /readyz saying why); a fixed one re-checking the running containers; and
// every hook decision in the audit log.
func TestNodeEndToEnd(t *testing.T) {
	cfg := testConfig(t)
	ci, err := keys.Generate("ed25519", 0)
	if err != nil {
		t.Fatal(err)
	}
	policytest.PolicyDir(t, cfg.PolicyDir, ci, policy.Enforce)
	api := testImage("registry.test/acme", "api")
	writeFile(t, filepath.Join(cfg.EvidenceDir, strings.Replace(api.Digests[0], ":", "/", 1), "provenance.dsse.json"),
		string(policytest.SignedStatement(t, ci, api.Repository, api.Digests[0])))

	// The registry has evidence for one image only, which an image event pre-verifies.
	pulled := testImage("registry.test/acme", "pulled")
	fetcher := mapFetcher{pulled.Digests[0]: {"att.dsse.json": policytest.SignedStatement(t, ci, pulled.Repository, pulled.Digests[0])}}
	var listed atomic.Int64
	running := containerLister(func(context.Context) ([]policy.Request, error) {
		listed.Add(1)
		return []policy.Request{{Image: api, Namespace: "prod", Pod: "api-0", Container: "api"}}, nil
	})
	n, err := newNode(cfg, zap.NewNop(), nodeParts{fetcher: fetcher, containers: running,
		watch: policystore.WatchOptions{Debounce: 20 * time.Millisecond, Poll: 100 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	var ran atomic.Bool
	runtime := task{"nri plugin", func(ctx context.Context) error {
		ran.Store(true)
		n.health.SetNRIConnected(true)
		<-ctx.Done()
		n.health.SetNRIConnected(false)
		return ctx.Err()
	}}
	events := task{"image events", func(ctx context.Context) error {
		n.pre.PreverifyAsync(pulled)
		<-ctx.Done()
		return ctx.Err()
	}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.serve(ctx, runtime, events) }()
	readyz := func() (int, string) {
		resp, err := http.Get("http://" + n.cfg.Listen + "/readyz")
		if err != nil {
			return 0, err.Error() // not listening yet
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	waitFor(t, func() bool { code, _ := readyz(); return code == 200 })

	decide := func(img policy.Image) policy.Decision {
		return n.gate.Decide(context.Background(), policy.Request{Image: img, Namespace: "prod", Pod: "p", Container: "c"})
	}
	// The image event's pre-verification fetched the evidence and cached the verdict.
	waitFor(t, func() bool {
		return metricValue(t, n, `tollgate_decision_duration_seconds_count{path="preverify"}`) == 1
	})
	cases := []struct {
		name    string
		img     policy.Image
		allowed bool
		outcome policy.Outcome
		msg     string
	}{
		{"verified from the node evidence directory", api, true, policy.Verified, "verified"},
		{"exempt repository", testImage("registry.test", "pause"), true, policy.Exempt, "exempt"},
		{"no matching policy", testImage("other.test/x", "y"), false, policy.Unmatched, "no policy matches"},
		// The hook waits for the fetch: the answer is the verdict, not "pending".
		{"no evidence on the node or in the registry", testImage("registry.test/acme", "web"), false, policy.Denied, "no in-toto evidence found"},
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
	hits := metricValue(t, n, "tollgate_cache_hits_total")
	if dec := decide(pulled); !dec.Allowed || dec.Outcome != policy.Verified {
		t.Fatalf("pre-verified image: %s", dec.Message)
	}
	if metricValue(t, n, "tollgate_cache_hits_total") != hits+1 {
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
	policytest.PolicyDir(t, cfg.PolicyDir, ci, policy.Audit)
	waitFor(t, func() bool { code, _ := readyz(); return code == 200 && n.store.Current().Generation == 2 })
	waitFor(t, func() bool { return listed.Load() == 1 })
	if dec := decide(testImage("registry.test/acme", "web")); !dec.Allowed || dec.Outcome != policy.AuditFail {
		t.Errorf("audit mode without evidence: allowed=%v outcome=%s", dec.Allowed, dec.Outcome)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("serve did not return after cancel")
	}
	if !ran.Load() {
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
		if r["path"] == gate.PathHook {
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

type containerLister func(context.Context) ([]policy.Request, error)

func (f containerLister) RunningContainers(ctx context.Context) ([]policy.Request, error) {
	return f(ctx)
}

func TestNewNodeRejectsInvalidConfig(t *testing.T) {
	cfg := daemon.DefaultConfig()
	cfg.HookDeadline = daemon.Duration(3 * time.Second)
	if _, err := newNode(cfg, zap.NewNop(), nodeParts{}); err == nil || !strings.Contains(err.Error(), "hook-deadline") {
		t.Fatalf("err = %v", err)
	}
}

// A task that fails stops the node with its error (systemd or the kubelet restarts it),
// and serve still shuts everything down.
func TestServeStopsOnTaskFailure(t *testing.T) {
	cfg := testConfig(t)
	cfg.AuditLog = ""
	n, err := newNode(cfg, zap.NewNop(), nodeParts{})
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() {
		errc <- n.serve(context.Background(), task{"nri plugin", func(context.Context) error { return errors.New("nri socket gone") }})
	}()
	select {
	case err := <-errc:
		if err == nil || !strings.Contains(err.Error(), "nri plugin: nri socket gone") {
			t.Fatalf("serve = %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("serve did not stop")
	}
}

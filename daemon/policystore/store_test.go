package policystore

import (
	"context"
	"errors"
	"io"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"tollgate.dev/tollgate/daemon/metrics"
	"tollgate.dev/tollgate/policy"
)

// fakeLoad accepts any directory whose files do not contain "broken".
func fakeLoad(files map[string][]byte, gen uint64) (Evaluator, error) {
	for name, b := range files {
		if strings.Contains(string(b), "broken") {
			return nil, errors.New(name + ": line 1: broken policy")
		}
	}
	return nopEval{}, nil
}

// nopEval is a policy set that decides nothing: the store never evaluates.
type nopEval struct{}

func (nopEval) Evaluate(policy.Request, policy.Evidence, time.Time) policy.Decision {
	return policy.Decision{}
}

func writeFile(t testing.TB, p, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestPolicyReload(t *testing.T) {
	dir := t.TempDir()
	m := metrics.New("test")
	s := New(dir, WithLoadFunc(fakeLoad), WithMetrics(m))
	var seen []uint64
	s.OnChange(func(sn *Snapshot) { seen = append(seen, sn.Generation) })

	steps := []struct {
		name     string
		write    string // content of policy.yaml
		changed  bool
		wantErr  bool
		wantGen  uint64
		ready    bool
		errCount float64
	}{
		{"good", "ok: 1", true, false, 1, true, 0},
		{"unchanged", "ok: 1", false, false, 1, true, 0},
		{"bad keeps the last good set", "broken", false, true, 1, false, 1},
		{"the same bad content is reported once", "broken", false, true, 1, false, 1},
		{"fixed", "ok: 2", true, false, 2, true, 1},
		{"back to bad", "broken again", false, true, 2, false, 2},
		{"back to the content in force", "ok: 2", false, false, 2, true, 2},
	}
	for _, st := range steps {
		writeFile(t, filepath.Join(dir, "policy.yaml"), st.write)
		changed, err := s.Reload()
		if changed != st.changed || (err != nil) != st.wantErr {
			t.Fatalf("%s: Reload = %v, %v; want changed=%v err=%v", st.name, changed, err, st.changed, st.wantErr)
		}
		if g := s.Current().Generation; g != st.wantGen {
			t.Fatalf("%s: generation %d, want %d", st.name, g, st.wantGen)
		}
		ok, msg := s.Status()
		if ok != st.ready {
			t.Fatalf("%s: ready = %v (%s)", st.name, ok, msg)
		}
		if !ok && !strings.Contains(msg, "broken policy") {
			t.Fatalf("%s: readiness does not explain the error: %s", st.name, msg)
		}
		if n := metricValue(t, m, "tollgate_policy_reload_errors_total"); n != st.errCount {
			t.Fatalf("%s: reload errors %v, want %v", st.name, n, st.errCount)
		}
		if g := metricValue(t, m, "tollgate_policy_generation"); g != float64(st.wantGen) {
			t.Fatalf("%s: generation gauge %v", st.name, g)
		}
	}
	if len(seen) != 2 || seen[0] != 1 || seen[1] != 2 {
		t.Fatalf("change listeners saw generations %v, want [1 2]", seen)
	}
}

func TestPolicyDirMissingAndBounds(t *testing.T) {
	s := New(filepath.Join(t.TempDir(), "absent"), WithLoadFunc(fakeLoad))
	if _, err := s.Reload(); err == nil {
		t.Fatal("missing directory: no error")
	}
	if ok, msg := s.Status(); ok || !strings.Contains(msg, "no policy set loaded") {
		t.Fatalf("status %v %q", ok, msg)
	}

	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "big.yaml"), strings.Repeat("x", 2048))
	s = New(dir, WithLoadFunc(fakeLoad), WithDirLimits(DirLimits{MaxFileBytes: 1024, MaxFiles: 10, MaxTotalBytes: 1 << 20, MaxDepth: 2}))
	if _, err := s.Reload(); err == nil || !strings.Contains(err.Error(), "over the limit") {
		t.Fatalf("oversized file: err = %v", err)
	}
}

// A ConfigMap volume: real files under "..<timestamp>", "..data" pointing there, and the
// visible names linking through "..data". An update swaps "..data".
func TestPolicyDirConfigMapLayout(t *testing.T) {
	dir := t.TempDir()
	var got atomic.Pointer[map[string][]byte]
	load := func(files map[string][]byte, gen uint64) (Evaluator, error) {
		got.Store(&files)
		return nopEval{}, nil
	}
	writeFile(t, filepath.Join(dir, "..2026_01", "policy.yaml"), "v1")
	writeFile(t, filepath.Join(dir, "..2026_01", "keys", "ci.pub"), "key")
	must(t, os.Symlink("..2026_01", filepath.Join(dir, "..data")))
	must(t, os.Symlink("..data/policy.yaml", filepath.Join(dir, "policy.yaml")))
	must(t, os.Symlink("..data/keys", filepath.Join(dir, "keys")))

	s := New(dir, WithLoadFunc(load))
	s.Reload()
	files := *got.Load()
	if string(files["policy.yaml"]) != "v1" || string(files["keys/ci.pub"]) != "key" || len(files) != 2 {
		t.Fatalf("files read: %v", keysOf(files))
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	go func() { s.Watch(ctx, WatchOptions{Debounce: 20 * time.Millisecond, Poll: time.Hour}); close(done) }()
	// Wait until the watch is live: touch a file until a reload follows (no poll helps).
	for i := 0; s.Current().Generation == 1; i++ {
		if i > 250 {
			t.Fatal("the watch never reacted to a file event")
		}
		writeFile(t, filepath.Join(dir, "probe"), strconv.Itoa(i))
		time.Sleep(20 * time.Millisecond)
	}
	waitFor(t, func() bool { _, ok := (*got.Load())["probe"]; return ok })
	gen := s.Current().Generation

	// The kubelet's atomic update: new timestamped dir, new ..data link renamed over the old.
	writeFile(t, filepath.Join(dir, "..2026_02", "policy.yaml"), "v2")
	writeFile(t, filepath.Join(dir, "..2026_02", "keys", "ci.pub"), "key")
	must(t, os.Symlink("..2026_02", filepath.Join(dir, "..data_tmp")))
	must(t, os.Rename(filepath.Join(dir, "..data_tmp"), filepath.Join(dir, "..data")))
	waitFor(t, func() bool { return string((*got.Load())["policy.yaml"]) == "v2" })
	if s.Current().Generation <= gen {
		t.Fatal("no new generation for the swapped content")
	}
	for name := range *got.Load() {
		if strings.HasPrefix(name, ".") {
			t.Fatalf("a ConfigMap internal was read: %s", name)
		}
	}
	cancel()
	<-done
}

func TestPolicyWatchPollFallback(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "a.yaml"), "v1")
	s := New(dir, WithLoadFunc(fakeLoad))
	s.Reload()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// Debounce longer than the test: only the poll can pick the change up.
	go s.Watch(ctx, WatchOptions{Debounce: time.Hour, Poll: 20 * time.Millisecond})
	writeFile(t, filepath.Join(dir, "a.yaml"), "v2")
	waitFor(t, func() bool { return s.Current().Generation == 2 })
}

func TestReadyz(t *testing.T) {
	dir := t.TempDir()
	m := metrics.New("test")
	s := New(dir, WithLoadFunc(fakeLoad), WithMetrics(m))
	h := metrics.NewHealth("/run/nri.sock", m, s)
	srv := httptest.NewServer(h.Handler())
	defer srv.Close()
	get := func(path string) (int, string) {
		resp, err := srv.Client().Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, _ := get("/healthz"); code != 200 {
		t.Fatalf("/healthz = %d", code)
	}
	steps := []struct {
		name   string
		setup  func()
		code   int
		substr []string
	}{
		{"nothing yet", func() {}, 503, []string{"nri: not connected", "no policy set loaded"}},
		{"policy loaded, NRI down", func() { writeFile(t, filepath.Join(dir, "p.yaml"), "ok"); s.Reload() }, 503, []string{"nri: not connected", "generation 1 loaded"}},
		{"ready", func() { h.SetNRIConnected(true) }, 200, []string{"nri: connected", "generation 1 loaded"}},
		{"reload error", func() { writeFile(t, filepath.Join(dir, "p.yaml"), "broken"); s.Reload() }, 503, []string{"reload from", "generation 1 stays in force", "broken policy"}},
		{"fixed", func() { writeFile(t, filepath.Join(dir, "p.yaml"), "ok2"); s.Reload() }, 200, []string{"generation 2 loaded"}},
		{"NRI lost", func() { h.SetNRIConnected(false) }, 503, []string{"nri: not connected"}},
	}
	for _, st := range steps {
		st.setup()
		code, body := get("/readyz")
		if code != st.code {
			t.Fatalf("%s: /readyz = %d, want %d:\n%s", st.name, code, st.code, body)
		}
		for _, sub := range st.substr {
			if !strings.Contains(body, sub) {
				t.Fatalf("%s: /readyz body lacks %q:\n%s", st.name, sub, body)
			}
		}
	}
	if n := metricValue(t, m, "tollgate_nri_disconnects_total"); n != 1 {
		t.Errorf("disconnects %v, want 1", n)
	}
	if n := metricValue(t, m, "tollgate_nri_connected"); n != 0 {
		t.Errorf("connected gauge %v, want 0", n)
	}
}

func keysOf(m map[string][]byte) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

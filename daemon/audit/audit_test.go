package audit

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"tollgate.dev/tollgate/policy"
	"tollgate.dev/tollgate/policy/reason"
)

func entry(i int) Entry {
	return Entry{
		Time: time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC),
		Node: "node-1",
		Path: "hook",
		Request: policy.Request{
			Image:     policy.Image{Ref: fmt.Sprintf("ghcr.io/acme/api:%d", i), ConfigDigest: "sha256:cc", Digests: []string{"sha256:aa"}},
			Namespace: "prod", Pod: "api-0", Container: "api",
		},
		Decision: policy.Decision{
			Outcome: policy.Denied, Mode: policy.Enforce, Policy: "api",
			Reasons: []*reason.Error{reason.New(reason.Threshold, "0 of 1 links").InStep("test")},
			Message: "tollgate: denied",
		},
		Latency:    1500 * time.Microsecond,
		Generation: 3,
	}
}

func TestRecordContent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	w, err := Open(path, Options{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	w.Log(entry(1))
	w.Close()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var r map[string]any
	if err := json.Unmarshal(data, &r); err != nil {
		t.Fatalf("not one JSON line: %v\n%s", err, data)
	}
	want := map[string]any{
		"time": "2026-06-01T12:00:00Z", "node": "node-1", "path": "hook", "namespace": "prod",
		"pod": "api-0", "container": "api", "image": "ghcr.io/acme/api@sha256:aa", "config_digest": "sha256:cc",
		"policy": "api", "mode": "enforce", "outcome": "denied", "allowed": false, "latency_ms": 1.5,
		"policy_generation": float64(3), "message": "tollgate: denied",
	}
	for k, v := range want {
		if r[k] != v {
			t.Errorf("%s = %v, want %v", k, r[k], v)
		}
	}
	reasons, _ := r["reasons"].([]any)
	if len(reasons) != 1 || !strings.Contains(fmt.Sprint(reasons[0]), `step "test": 0 of 1 links`) {
		t.Errorf("reasons = %v", r["reasons"])
	}
	if d, _ := r["digests"].([]any); len(d) != 1 || d[0] != "sha256:aa" {
		t.Errorf("digests = %v", r["digests"])
	}
}

func TestRotation(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	w, err := Open(path, Options{MaxBytes: 2048, Keep: 2}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	const n = 200
	for i := range n {
		wg.Go(func() {
			for !w.Log(entry(i)) { // the test wants every line; the daemon would drop
				time.Sleep(time.Millisecond)
			}
		})
	}
	wg.Wait()
	w.Close()
	for _, p := range []string{path, path + ".1", path + ".2"} {
		info, err := os.Stat(p)
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		if info.Size() > 2048 {
			t.Errorf("%s is %d bytes, over the 2048 bound", p, info.Size())
		}
		lines := readLines(t, p)
		if len(lines) == 0 {
			t.Errorf("%s is empty", p)
		}
		for _, l := range lines {
			var r Record
			if err := json.Unmarshal([]byte(l), &r); err != nil || r.Outcome != "denied" {
				t.Fatalf("%s: torn or bad line %q: %v", p, l, err)
			}
		}
	}
	if _, err := os.Stat(path + ".3"); err == nil {
		t.Error("more rotated files kept than Keep")
	}
}

func TestAppendsAcrossRestarts(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	for i := range 2 {
		w, err := Open(path, Options{}, nil)
		if err != nil {
			t.Fatal(err)
		}
		w.Log(entry(i))
		w.Close()
	}
	if n := len(readLines(t, path)); n != 2 {
		t.Fatalf("%d lines after two runs, want 2", n)
	}
}

// Log never blocks: a full queue drops and counts.
func TestDropWhenFull(t *testing.T) {
	w := &Writer{opts: Options{Buffer: 2}, wake: make(chan struct{}, 1)} // no writer goroutine: the queue only fills
	for i := range 5 {
		w.Log(entry(i))
	}
	if w.Dropped() != 3 {
		t.Fatalf("dropped %d, want 3", w.Dropped())
	}
}

func readLines(t *testing.T, p string) []string {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		out = append(out, sc.Text())
	}
	return out
}

// Hook records say which image of the container they are about.
func TestRecordSubject(t *testing.T) {
	e := entry(1)
	if r := NewRecord(e); r.Subject != SubjectImage || r.Volume != "" {
		t.Errorf("container image record: subject %q volume %q", r.Subject, r.Volume)
	}
	e.FromVolume, e.Volume = true, "/opt/tools"
	if r := NewRecord(e); r.Subject != SubjectVolume || r.Volume != "/opt/tools" {
		t.Errorf("image volume record: subject %q volume %q", r.Subject, r.Volume)
	}
	e.Path = "preverify"
	if r := NewRecord(e); r.Subject != "" {
		t.Errorf("pre-verification record: subject %q, want none", r.Subject)
	}
}

// The queue holds no memory while the writer keeps up: nothing is allocated up front for
// Buffer entries, and a burst's buffer is let go once written.
func TestQueueGrowsOnlyWithTheBacklog(t *testing.T) {
	w, err := Open(filepath.Join(t.TempDir(), "audit.jsonl"), Options{Buffer: 100_000}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c := cap(w.queue); c != 0 {
		t.Errorf("a new writer's queue has room for %d entries, want none", c)
	}
	for i := range 5000 {
		w.Log(entry(i))
	}
	w.Close()
	if d := w.Dropped(); d != 0 {
		t.Errorf("dropped %d of 5000 entries under a 100,000 bound", d)
	}
	if n := len(readLines(t, w.path)); n != 5000 {
		t.Errorf("%d lines, want 5000", n)
	}
}

package gate

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"tollgate.dev/tollgate/daemon/policystore"
	"tollgate.dev/tollgate/policy"
)

// A reload's re-check of many running containers is one log line (issue 12 item 8), with
// the counts of what the reload changed, compared with the policies before it (the same
// comparison as `tollgate preview`), and a few example images; no line per image or
// container. Every container still gets its audit record path and failure count.
func TestRecheckLogsOneSummaryLine(t *testing.T) {
	core, logs := observer.New(zapcore.DebugLevel)
	audit := &fakeEval{mode: policy.Audit}
	e := newGateEnv(t, audit, WithLogger(zap.New(core)))
	const bad, good = 12, 5
	var reqs []policy.Request
	for i := range bad + good {
		content, name := "good", fmt.Sprintf("good-%d", i)
		if i < bad {
			content, name = "bad", fmt.Sprintf("bad-%d", i)
		}
		img := testImage(name)
		writeEvidence(t, e.nodeDir, img.Digests[0], map[string]string{"a.link": content})
		for c := range 2 { // two containers of each image: images are counted once
			reqs = append(reqs, policy.Request{Image: img, Namespace: "ns", Pod: name, Container: fmt.Sprint("c", c)})
		}
	}
	exempt := testImage("tool")
	exempt.Repository = "exempt/tool"
	reqs = append(reqs, policy.Request{Image: exempt, Namespace: "ns", Pod: "tool", Container: "c"})
	lister := listerFunc(func(context.Context) ([]policy.Request, error) { return reqs, nil })
	pre := NewPreverifier(e.gate, nil, lister)
	pre.PolicyChanged(e.Current()) // start-up: generation 1, audit mode

	// The reload: the same policies, now enforced.
	e.snap.Store(&policystore.Snapshot{Generation: 2, Policies: &fakeEval{}})
	logs.TakeAll()
	if n := pre.recheck(context.Background(), &reloadPass{queued: 3}); n != 2*bad {
		t.Errorf("recheck found %d failing containers, want %d", n, 2*bad)
	}
	lines := infoLines(t, logs)
	if len(lines) != 1 {
		t.Fatalf("%d log lines at info or above for one re-check of %d containers, want 1", len(lines), len(reqs))
	}
	l := lines[0]
	if l.Level != zapcore.WarnLevel || !strings.Contains(l.Message, "re-check after policy reload") {
		t.Errorf("summary line: %s %q", l.Level, l.Message)
	}
	m := l.ContextMap()
	want := map[string]int64{"images": bad + good + 1, "containers": int64(len(reqs)), "failing_containers": 2 * bad,
		"newly_denied": bad, "newly_allowed": 0, "changed": 0, "unchanged": good + 1, "errors": 0, "images_queued": 3}
	for k, v := range want {
		if got, ok := m[k].(int64); !ok || got != v {
			t.Errorf("%s = %v, want %d", k, m[k], v)
		}
	}
	if m["from_generation"] != uint64(1) || m["generation"] != uint64(2) {
		t.Errorf("generations %v -> %v, want 1 -> 2", m["from_generation"], m["generation"])
	}
	ex, _ := m["newly_denied_examples"].([]any)
	if len(ex) != 5 || !strings.HasPrefix(fmt.Sprint(ex[0]), "registry.test/bad-0") {
		t.Errorf("newly denied examples = %v, want the first 5", m["newly_denied_examples"])
	}
	if n := metricValue(t, e.metrics, `tollgate_recheck_failures_total{mode="enforce"}`); n != 2*bad {
		t.Errorf("recheck failures counted %v, want %d", n, 2*bad)
	}
	if n := metricValue(t, e.metrics, `tollgate_recheck_changes_total{change="newly_denied"}`); n != bad {
		t.Errorf("newly denied running images counted %v, want %d", n, bad)
	}

	// The next pass compares with generation 2: nothing changed.
	logs.TakeAll()
	pre.recheck(context.Background(), nil)
	m = logs.FilterMessageSnippet("re-check after policy reload").All()[0].ContextMap()
	if m["newly_denied"] != int64(0) || m["unchanged"] != int64(bad+good+1) || m["from_generation"] != uint64(2) {
		t.Errorf("second pass: %v", m)
	}
}

// With the registry down during a reload, every image that needs a fetch fails its
// pre-verification: the reload's summary line counts them (and names the first cause)
// rather than logging a warning per image.
func TestReloadPreverifyFailuresSummarised(t *testing.T) {
	core, logs := observer.New(zapcore.DebugLevel)
	e := newGateEnv(t, &fakeEval{}, WithLogger(zap.New(core)))
	e.fetcher.set("", nil, errRegistryDown)
	const n = 20
	imgs := make([]policy.Image, n)
	for i := range imgs {
		imgs[i] = testImage(fmt.Sprintf("img-%d", i))
	}
	pre := NewPreverifier(e.gate, &fakeImageLister{log: &orderLog{}, imgs: imgs}, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go pre.Run(ctx)
	logs.TakeAll()
	pre.recheck(ctx, pre.preverifyImages(ctx, "policy reload"))
	lines := infoLines(t, logs)
	if len(lines) != 1 {
		t.Fatalf("%d log lines at info or above for a reload with %d failed pre-verifications, want 1", len(lines), n)
	}
	m := lines[0].ContextMap()
	if lines[0].Level != zapcore.WarnLevel || m["images_queued"] != int64(n) || m["preverify_errors"] != int64(n) ||
		!strings.Contains(fmt.Sprint(m["first_preverify_error"]), "connection refused") {
		t.Errorf("summary: %s %v", lines[0].Level, m)
	}
	if got := len(logs.FilterMessage("pre-verification failed").All()); got != n {
		t.Errorf("%d per-image failures at debug level, want %d", got, n)
	}
}

// infoLines returns the lines logged at info level or above, and shows them.
func infoLines(t *testing.T, logs *observer.ObservedLogs) []observer.LoggedEntry {
	t.Helper()
	var lines []observer.LoggedEntry
	for _, l := range logs.All() {
		if l.Level >= zapcore.InfoLevel {
			lines = append(lines, l)
			t.Logf("%s %s %v", l.Level, l.Message, l.ContextMap())
		}
	}
	return lines
}

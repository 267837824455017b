//go:build e2e

package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"tollgate.dev/tollgate/daemon/audit"
	"tollgate.dev/tollgate/test/tools/testimage"
)

// get fetches a path of tollgated's HTTP endpoint.
func (g *gate) get(path string) (int, string, error) {
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + g.listen + path)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	return resp.StatusCode, string(b), err
}

// waitReady waits until /readyz answers 200.
func (g *gate) waitReady(t *testing.T, limit time.Duration) {
	t.Helper()
	var last string
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		code, body, err := g.get("/readyz")
		if err == nil && code == http.StatusOK {
			return
		}
		last = fmt.Sprintf("%d %s %v", code, body, err)
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("tollgated not ready after %s: %s", limit, last)
}

// metrics reads /metrics into series → value ("name{a=\"x\",b=\"y\"}" → 3).
func (g *gate) metrics(t *testing.T) map[string]float64 {
	t.Helper()
	code, body, err := g.get("/metrics")
	if err != nil || code != http.StatusOK {
		t.Fatalf("/metrics: %d %v", code, err)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(strings.NewReader(body))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err == nil {
			out[line[:i]] = v
		}
	}
	return out
}

// metric sums the series of name whose labels include every label given ("k=v").
func metric(m map[string]float64, name string, labels ...string) float64 {
	sum := 0.0
	for series, v := range m {
		n, rest, _ := strings.Cut(series, "{")
		if n != name {
			continue
		}
		ok := true
		for _, l := range labels {
			k, val, _ := strings.Cut(l, "=")
			ok = ok && strings.Contains("{"+rest, fmt.Sprintf("%s=%q", k, val))
		}
		if ok {
			sum += v
		}
	}
	return sum
}

// hasMetric reports whether any series of name exists.
func hasMetric(m map[string]float64, name string) bool {
	for series := range m {
		if n, _, _ := strings.Cut(series, "{"); n == name {
			return true
		}
	}
	return false
}

// audits reads the audit log.
func (g *gate) audits(t *testing.T) []audit.Record {
	t.Helper()
	data, err := os.ReadFile(g.auditLog)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	var out []audit.Record
	for _, line := range bytes.Split(data, []byte("\n")) {
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		var r audit.Record
		if err := json.Unmarshal(line, &r); err != nil {
			t.Fatalf("audit log line is not JSON: %v: %s", err, line)
		}
		out = append(out, r)
	}
	return out
}

// waitAudit waits for an audit record that match accepts, among those after skip.
func (g *gate) waitAudit(t *testing.T, what string, limit time.Duration, match func(audit.Record) bool) audit.Record {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		for _, r := range g.audits(t) {
			if match(r) {
				return r
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no audit record for %s after %s", what, limit)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// pull pulls img through CRI and waits until tollgated has pre-verified it (an audit record
// on the preverify path for its config digest with a verdict, not an infrastructure error).
func (g *gate) pull(t *testing.T, img *testimage.Pushed) {
	t.Helper()
	before := len(g.audits(t))
	g.env.MustPull(t, img.Ref)
	g.waitAudit(t, "pre-verification of "+img.Ref, 30*time.Second, func(r audit.Record) bool {
		before--
		return before < 0 && r.Path == "preverify" && r.ConfigDigest == img.ConfigDigest
	})
}

// name returns a fresh container name.
func (g *gate) name(prefix string) string { return fmt.Sprintf("%s-%d", prefix, g.counter.Add(1)) }

// mustRun creates and starts a container from ref and checks it is running.
func (g *gate) mustRun(t *testing.T, ref string) string {
	t.Helper()
	id, err := g.env.RunContainer(g.pod, g.name("ok"), ref)
	if err != nil {
		t.Fatalf("container from %s should run: %s", ref, errMessage(err))
	}
	st, err := g.env.InspectContainer(id)
	if err != nil {
		t.Fatal(err)
	}
	if st.State != StateRunning {
		t.Fatalf("container from %s: state %s, want %s", ref, st.State, StateRunning)
	}
	t.Logf("e2e: %s runs (container %.12s)", ref, id)
	return id
}

// mustReject tries to create a container from ref and checks that the create fails with a
// message holding every one of want.
func (g *gate) mustReject(t *testing.T, ref string, want ...string) string {
	t.Helper()
	id, err := g.env.CreateContainer(g.pod, g.name("no"), ref)
	if err == nil {
		t.Fatalf("container from %s was created (%.12s); want a rejection containing %q", ref, id, want)
	}
	msg := errMessage(err)
	for _, w := range want {
		if !strings.Contains(msg, w) {
			t.Errorf("rejection of %s: message\n  %s\nlacks %q", ref, msg, w)
		}
	}
	t.Logf("e2e: %s rejected: %s", ref, msg)
	return msg
}

// errMessage is containerd's message from a crictl failure.
func errMessage(err error) string {
	var ce *CommandError
	if errors.As(err, &ce) {
		return ce.Message()
	}
	return err.Error()
}

// nriConnections counts the plugins that containerd reports connected so far.
func (g *gate) nriConnections() int {
	return strings.Count(g.env.ContainerdLog(), "connected and synchronized")
}

// waitReconnect waits until containerd logs more plugin connections than before.
func (g *gate) waitReconnect(t *testing.T, before int, limit time.Duration) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for g.nriConnections() <= before {
		if time.Now().After(deadline) {
			t.Fatalf("tollgated did not reconnect to NRI within %s", limit)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// signal sends sig to tollgated.
func (g *gate) signal(t *testing.T, sig syscall.Signal) {
	t.Helper()
	if err := g.proc.Signal(sig); err != nil {
		t.Fatal(err)
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	// Write beside and rename: the daemon watches the policy directory and must never
	// see half a file.
	tmp := filepath.Join(filepath.Dir(path), ".tmp-"+filepath.Base(path))
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	writeFile(t, to, string(readFile(t, from)))
}

// copyDir copies the regular files of from (one level) into to.
func copyDir(t *testing.T, from, to string) {
	t.Helper()
	ents, err := os.ReadDir(from)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if e.Type().IsRegular() {
			copyFile(t, filepath.Join(from, e.Name()), filepath.Join(to, e.Name()))
		}
	}
}

// lastRecord returns the newest audit record of path for img's content.
func (g *gate) lastRecord(t *testing.T, img *testimage.Pushed, path string) audit.Record {
	t.Helper()
	var found *audit.Record
	deadline := time.Now().Add(5 * time.Second)
	for found == nil {
		recs := g.audits(t)
		for i := len(recs) - 1; i >= 0; i-- {
			if recs[i].Path == path && recs[i].ConfigDigest == img.ConfigDigest {
				found = &recs[i]
				break
			}
		}
		if found == nil {
			if time.Now().After(deadline) {
				t.Fatalf("no %s audit record for %s (%s)", path, img.Ref, img.ConfigDigest)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return *found
}

// lastHook is the newest hook decision about img.
func (g *gate) lastHook(t *testing.T, img *testimage.Pushed) audit.Record {
	t.Helper()
	return g.lastRecord(t, img, "hook")
}

// checkHookReason checks that the newest hook decision about img denied it for kind.
func (g *gate) checkHookReason(t *testing.T, img *testimage.Pushed, kind string) {
	t.Helper()
	r := g.lastHook(t, img)
	if r.Allowed {
		t.Errorf("audit record of %s says allowed", img.Ref)
	}
	for _, rr := range r.Reasons {
		if rr.Kind == kind {
			return
		}
	}
	t.Errorf("audit record of %s: reasons %+v, want one of kind %s", img.Ref, r.Reasons, kind)
}

// waitMetric waits until the metric (summed over the series with labels "k=v") reaches
// at least want.
func (g *gate) waitMetric(t *testing.T, name string, want float64, limit time.Duration, labels ...string) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		got := metric(g.metrics(t), name, labels...)
		if got >= want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s = %v after %s, want ≥ %v", name, got, limit, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// runEventually creates a container from ref, retrying while Tollgate says the evidence is
// still being fetched (as the kubelet would), and checks it runs.
func (g *gate) runEventually(t *testing.T, ref string, limit time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		id, err := g.env.RunContainer(g.pod, g.name("ok"), ref)
		if err == nil {
			t.Logf("e2e: %s runs (container %.12s)", ref, id)
			return id
		}
		msg := errMessage(err)
		if !strings.Contains(msg, "retry") || time.Now().After(deadline) {
			t.Fatalf("container from %s should run: %s", ref, msg)
		}
		t.Logf("e2e: %s not yet: %s", ref, msg)
		time.Sleep(500 * time.Millisecond)
	}
}

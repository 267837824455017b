//go:build e2e

package e2e

import (
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"tollgate.dev/tollgate/daemon/audit"
	"tollgate.dev/tollgate/test/tools/testimage"
)

// scenarioContainerdRestart is scenario 9: containerd restarts; tollgated reconnects (NRI
// and image events) and keeps enforcing.
func (g *gate) scenarioContainerdRestart(t *testing.T) {
	env, signed, unsigned := g.env, g.signed, g.unsigned
	before := g.nriConnections()
	drops := metric(g.metrics(t), "tollgate_nri_disconnects_total")
	if err := env.RestartContainerd(); err != nil {
		t.Fatal(err)
	}
	g.waitReconnect(t, before, 30*time.Second)
	g.waitReady(t, 15*time.Second)
	m := g.metrics(t)
	if got := metric(m, "tollgate_nri_disconnects_total"); got != drops+1 {
		t.Errorf("tollgate_nri_disconnects_total = %v after one containerd restart, want %v", got, drops+1)
	}
	if metric(m, "tollgate_nri_connected") != 1 {
		t.Error("tollgate_nri_connected is not 1 after the reconnection")
	}
	g.mustRun(t, signed.Ref)
	g.mustReject(t, unsigned.Ref, "tollgate: denied")
	// Image events flow again: a fresh pull is pre-verified.
	img := g.pushSigned(t, "app:after-restart", "after-restart")
	g.pull(t, img)
	g.mustRun(t, img.Ref)
}

// scenarioFailClosed is scenario 6: with required_plugins, a create is rejected while
// tollgated is stopped, after it crashed, and when it exceeds NRI's request timeout
// (SIGSTOP: no test hook in the daemon); once it is back, creates succeed.
func (g *gate) scenarioFailClosed(t *testing.T) {
	signed, unsigned := g.signed, g.unsigned
	const notPresent = `required plugin "tollgate" not present`
	// The first create after the plugin went away may still reach its closed
	// connection ("ttrpc: closed"); containerd then drops it ("not present").
	rejectedGone := func(t *testing.T) {
		t.Helper()
		msg := g.mustReject(t, signed.Ref)
		if !strings.Contains(msg, "ttrpc: closed") && !strings.Contains(msg, notPresent) {
			t.Errorf("rejection without the plugin: %q, want ttrpc: closed or %q", msg, notPresent)
		}
		g.mustReject(t, signed.Ref, notPresent)
	}
	t.Run("not-running", func(t *testing.T) {
		g.stop(t)
		rejectedGone(t)
		g.start(t)
		g.mustRun(t, signed.Ref)
	})
	t.Run("killed-while-connected", func(t *testing.T) {
		g.kill(t)
		rejectedGone(t)
		g.start(t)
		g.mustRun(t, signed.Ref)
	})
	t.Run("request-timeout", func(t *testing.T) {
		// A stopped process answers nothing: NRI's request timeout (2s) passes.
		g.signal(t, syscall.SIGSTOP)
		resumed := false
		defer func() {
			if !resumed {
				g.signal(t, syscall.SIGCONT)
			}
		}()
		stalled := g.name("stalled")
		if id, err := g.env.CreateContainer(g.pod, stalled, signed.Ref); err == nil {
			t.Fatalf("container from %s was created (%.12s) while tollgated was stopped", signed.Ref, id)
		} else if msg := errMessage(err); !strings.Contains(msg, "context deadline exceeded") {
			t.Errorf("rejection while stopped: %q, want context deadline exceeded", msg)
		}
		g.mustReject(t, signed.Ref, notPresent)
		before := g.nriConnections()
		g.signal(t, syscall.SIGCONT)
		resumed = true
		g.waitReconnect(t, before, 30*time.Second)
		g.waitReady(t, 10*time.Second)
		g.mustRun(t, signed.Ref)
		g.mustReject(t, unsigned.Ref, "tollgate: denied")
		// Issue 12, item 5: the request containerd gave up on was read when tollgated
		// resumed. Its one record says no answer reached containerd, never "allowed".
		var recs []audit.Record
		for _, r := range g.audits(t) {
			if r.Path == "hook" && r.Container == stalled {
				recs = append(recs, r)
			}
		}
		if len(recs) != 1 {
			t.Fatalf("%d hook records for the create containerd gave up on, want exactly 1: %+v", len(recs), recs)
		}
		if r := recs[0]; r.Allowed || r.Outcome != audit.OutcomeNoAnswer || !strings.Contains(r.Message, "no answer reached containerd") {
			t.Errorf("record of the create containerd gave up on: outcome=%s allowed=%v decided=%s %q", r.Outcome, r.Allowed, r.Decided, r.Message)
		}
		if metric(g.metrics(t), "tollgate_hook_unanswered_total") < 1 {
			t.Error("tollgate_hook_unanswered_total did not count the answer containerd never got")
		}
	})
}

// scenarioAirGapped is scenario 10: with the registry unreachable, a fresh tollgated
// decides from the node evidence directory and its disk cache: signed images run, unsigned
// ones are still rejected.
func (g *gate) scenarioAirGapped(t *testing.T) {
	env, signed, unsigned := g.env, g.signed, g.unsigned
	// An image whose evidence reaches the node out of band, in the evidence directory.
	img := g.push(t, "app:airgap", "airgap")
	ev := g.makeEvidence(t, img, evidence{})
	hex := strings.TrimPrefix(img.Digest, "sha256:")
	dst := filepath.Join(g.evidenceDir, "sha256", hex)
	copyDir(t, filepath.Join(ev, "links"), dst)
	copyFile(t, filepath.Join(ev, "provenance.json"), filepath.Join(dst, "provenance.json"))
	g.pull(t, img)

	env.Registry.SetOffline(true)
	defer env.Registry.SetOffline(false)
	// A fresh daemon: nothing in memory, the registry unreachable.
	g.stop(t)
	g.start(t)
	g.mustRun(t, img.Ref)    // node evidence directory
	g.mustRun(t, signed.Ref) // disk cache of an earlier fetch
	g.mustReject(t, unsigned.Ref, "tollgate: denied")
	// The daemon did try the registry, and could not reach it.
	g.waitMetric(t, "tollgate_registry_requests_total", 1, 30*time.Second, "outcome=error")
	for _, want := range []*testimage.Pushed{img, signed} {
		if r := g.lastHook(t, want); !r.Allowed || r.Outcome != "verified" {
			t.Errorf("%s offline: %+v", want.Ref, r)
		}
	}
}

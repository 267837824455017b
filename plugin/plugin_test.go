package plugin

// These tests drive the plugin through NRI's real runtime side, pkg/adaptation (the code
// containerd embeds), over a unix socket in a temporary directory, with containerd's
// default validator requiring the plugin, as the shipped containerd snippet does.

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/containerd/nri/pkg/api"

	"tollgate.dev/tollgate/daemon/ctrd"
	"tollgate.dev/tollgate/policy"
)

// The daemon wires ctrd's client in as the plugin's Resolver.
var _ Resolver = (*ctrd.Client)(nil)

const (
	testConfig      = "sha256:1111111111111111111111111111111111111111111111111111111111111111"
	testManifest    = "sha256:2222222222222222222222222222222222222222222222222222222222222222"
	toleration      = "tollgate.dev/tolerate-missing-plugin"
	connectDeadline = 10 * time.Second
)

func TestAllowAndRequestFields(t *testing.T) {
	for _, createHook := range []bool{false, true} {
		t.Run(fmt.Sprintf("CreateContainer subscribed=%v", createHook), func(t *testing.T) {
			testAllow(t, WithCreateContainerHook(createHook))
		})
	}
}

func testAllow(t *testing.T, opts ...Option) {
	sock := filepath.Join(t.TempDir(), "nri.sock")
	rt := startRuntime(t, sock, nil, nil)
	dec := &fakeDecider{decision: allow}
	c := startPlugin(t, sock, dec, fakeResolver{}, opts...)
	wait(t, c.up, "connect")
	rt.settle()

	if err := rt.create("ghcr.io/acme/api:1.0", testConfig, nil); err != nil {
		t.Fatalf("allowed create failed: %v", err)
	}
	got := dec.requests()
	if len(got) != 1 {
		t.Fatalf("decider saw %d requests, want 1", len(got))
	}
	want := policy.Request{
		Image: policy.Image{Ref: "ghcr.io/acme/api:1.0", Repository: "ghcr.io/acme/api",
			ConfigDigest: testConfig, Digests: []string{testManifest}},
		Namespace: "shop", Pod: "api-7d9f", Container: "api",
	}
	if fmt.Sprint(got[0]) != fmt.Sprint(want) {
		t.Errorf("request = %+v\nwant      %+v", got[0], want)
	}
}

func TestDenials(t *testing.T) {
	const msg = `tollgate: denied ghcr.io/acme/api@sha256:ab12: policy "api": step "test": 0 of 1 required links signed by an authorized functionary`
	tests := []struct {
		name     string
		decider  *fakeDecider
		resolver Resolver
		opts     []Option
		want     []string
	}{
		{
			name:     "decision message reaches the caller unchanged",
			decider:  &fakeDecider{decision: policy.Decision{Outcome: policy.Denied, Message: msg}},
			resolver: fakeResolver{},
			want:     []string{"reason: " + msg},
		},
		{
			name:     "resolve failure denies with the cause",
			decider:  &fakeDecider{decision: allow},
			resolver: fakeResolver{err: errors.New("containerd: image not found")},
			want:     []string{"tollgate: denied ghcr.io/acme/api@" + testConfig + ": cannot establish the image identity from containerd: containerd: image not found"},
		},
		{
			name:     "plugin's own hook deadline denies before NRI's timeout",
			decider:  &fakeDecider{decision: allow, delay: func() time.Duration { return 500 * time.Millisecond }},
			resolver: fakeResolver{},
			opts:     []Option{WithDeadline(50 * time.Millisecond)},
			want:     []string{"tollgate: denied ghcr.io/acme/api@" + testManifest + ": no decision within the hook deadline (context deadline exceeded)"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sock := filepath.Join(t.TempDir(), "nri.sock")
			rt := startRuntime(t, sock, nil, nil)
			c := startPlugin(t, sock, tt.decider, tt.resolver, tt.opts...)
			wait(t, c.up, "connect")
			rt.settle()
			err := rt.create("ghcr.io/acme/api:1.0", testConfig, nil)
			if err == nil {
				t.Fatal("create succeeded, want it rejected")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\ndoes not contain %q", err, w)
				}
			}
		})
	}
}

func TestEmptyConfigDigestDenies(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "nri.sock")
	rt := startRuntime(t, sock, nil, nil)
	c := startPlugin(t, sock, &fakeDecider{decision: allow}, fakeResolver{})
	wait(t, c.up, "connect")
	rt.settle()
	err := rt.create("ghcr.io/acme/api:1.0", "", nil)
	if err == nil || !strings.Contains(err.Error(), "no image config digest") {
		t.Fatalf("create error = %v, want a denial for the missing config digest", err)
	}
}

func TestAbsentPluginRejectedByRequiredPlugins(t *testing.T) {
	rt := startRuntime(t, filepath.Join(t.TempDir(), "nri.sock"), nil, nil)
	err := rt.create("ghcr.io/acme/api:1.0", testConfig, nil)
	if err == nil || !strings.Contains(err.Error(), `required plugin "tollgate" not present`) {
		t.Fatalf("create without the plugin: error = %v, want required plugin not present", err)
	}
	// Tollgate's own pod carries the toleration, or it could never start.
	if err := rt.create("ghcr.io/acme/tollgate:1", testConfig, map[string]string{toleration: "true"}); err != nil {
		t.Fatalf("tolerated create failed: %v", err)
	}
}

// A decision that would take longer than the runtime's request timeout: the create is
// rejected, and the plugin answers in time (ttrpc carries NRI's deadline over, and the
// plugin cuts the hook's deadline short of it), so it stays connected and the operator
// reads Tollgate's reason rather than a bare timeout.
func TestStalledDecisionDeniedBeforeRequestTimeout(t *testing.T) {
	setRequestTimeout(t, time.Second)
	sock := filepath.Join(t.TempDir(), "nri.sock")
	rt := startRuntime(t, sock, nil, nil)
	var calls atomic.Int64
	dec := &fakeDecider{decision: allow, delay: func() time.Duration {
		if calls.Add(1) == 1 {
			return 2 * time.Second
		}
		return 0
	}}
	c := startPlugin(t, sock, dec, fakeResolver{}, WithDeadline(0))
	wait(t, c.up, "connect")
	rt.settle()

	err := rt.create("ghcr.io/acme/api:1.0", testConfig, nil)
	if err == nil || !strings.Contains(err.Error(), "tollgate: denied ghcr.io/acme/api@"+testManifest+": no decision within") {
		t.Fatalf("stalled decision: error = %v, want Tollgate's deadline denial", err)
	}
	if err := rt.create("ghcr.io/acme/api:1.0", testConfig, nil); err != nil {
		t.Fatalf("next create failed: %v (the plugin should have stayed connected)", err)
	}
	if n := c.downs.Load(); n != 0 {
		t.Errorf("disconnects = %d, want 0", n)
	}
}

// A plugin that does not answer at all (process stalled): NRI's request timeout rejects
// the create, drops the plugin, required_plugins rejects the next create, and the plugin
// comes back once it runs again.
func TestUnresponsivePluginFailsClosedThenReconnects(t *testing.T) {
	setRequestTimeout(t, 200*time.Millisecond)
	dir := t.TempDir()
	back, front := filepath.Join(dir, "runtime.sock"), filepath.Join(dir, "nri.sock")
	rt := startRuntime(t, back, nil, nil)
	px := startProxy(t, front, back)
	c := startPlugin(t, front, &fakeDecider{decision: allow}, fakeResolver{})
	wait(t, c.up, "connect")
	rt.settle()

	px.freeze()
	err := rt.create("ghcr.io/acme/api:1.0", testConfig, nil)
	if err == nil || !strings.Contains(err.Error(), "validator plugin 10-tollgate failed") ||
		!strings.Contains(err.Error(), "deadline exceeded") {
		t.Fatalf("unanswered validation: error = %v, want the create rejected on timeout", err)
	}
	err = rt.create("ghcr.io/acme/api:1.0", testConfig, nil)
	if err == nil || !strings.Contains(err.Error(), `required plugin "tollgate" not present`) {
		t.Fatalf("create after the timeout: error = %v, want required plugin not present", err)
	}
	px.thaw()
	wait(t, c.down, "disconnect after the timeout")
	wait(t, c.up, "reconnect")
	rt.settle()
	if err := rt.create("ghcr.io/acme/api:1.0", testConfig, nil); err != nil {
		t.Fatalf("create after reconnecting failed: %v", err)
	}
}

// containerd restarts: its socket disappears and every connection closes. The plugin
// counts the disconnect, retries with backoff, and registers with the new instance.
func TestReconnectAfterRuntimeRestart(t *testing.T) {
	dir := t.TempDir()
	back, front := filepath.Join(dir, "runtime.sock"), filepath.Join(dir, "nri.sock")
	rt := startRuntime(t, back, nil, nil)
	px := startProxy(t, front, back)
	c := startPlugin(t, front, &fakeDecider{decision: allow}, fakeResolver{})
	wait(t, c.up, "connect")
	rt.settle()
	if err := rt.create("ghcr.io/acme/api:1.0", testConfig, nil); err != nil {
		t.Fatalf("create before the restart failed: %v", err)
	}

	rt.stop()
	px.stop()
	wait(t, c.down, "disconnect")
	if n := c.downs.Load(); n != 1 {
		t.Errorf("disconnects counted = %d, want 1", n)
	}

	rt2 := startRuntime(t, back, nil, nil)
	if err := rt2.create("ghcr.io/acme/api:1.0", testConfig, nil); err == nil {
		t.Fatal("create on the restarted runtime before the plugin is back succeeded")
	}
	time.Sleep(150 * time.Millisecond) // let a few dials fail against the missing socket
	px.start()
	wait(t, c.up, "reconnect")
	rt2.settle()
	if err := rt2.create("ghcr.io/acme/api:1.0", testConfig, nil); err != nil {
		t.Fatalf("create after reconnecting failed: %v", err)
	}
}

// Synchronize answers at once and audits the running containers in the background.
func TestSynchronizeAuditsWithoutBlocking(t *testing.T) {
	setRequestTimeout(t, 300*time.Millisecond)
	pods := []*api.PodSandbox{{Id: "p1", Name: "web-1", Namespace: "shop"}}
	ctrs := []*api.Container{
		{Id: "c1", PodSandboxId: "p1", Name: "web", Image: &api.Image{Name: "ghcr.io/acme/web:1", ConfigDigest: testConfig}},
		{Id: "c2", PodSandboxId: "p1", Name: "sidecar", Image: &api.Image{Name: "ghcr.io/acme/side:1"}},
	}
	sock := filepath.Join(t.TempDir(), "nri.sock")
	rt := startRuntime(t, sock, pods, ctrs)
	slow := &fakeDecider{
		decision: policy.Decision{Outcome: policy.Denied, Message: "tollgate: denied ghcr.io/acme/web:1: no evidence"},
		delay:    func() time.Duration { return time.Second }, // far past the sync timeout
	}
	type audited struct {
		req policy.Request
		d   policy.Decision
		err error
	}
	results := make(chan audited, 4)
	c := startPlugin(t, sock, &fakeDecider{decision: allow}, fakeResolver{},
		WithSyncDecider(slow),
		WithAuditFunc(func(req policy.Request, d policy.Decision, err error) { results <- audited{req, d, err} }))
	wait(t, c.up, "connect") // would not happen if the audit held up Synchronize
	rt.settle()
	if err := rt.create("ghcr.io/acme/api:1.0", testConfig, nil); err != nil {
		t.Fatalf("create while the audit runs failed: %v", err)
	}

	got := map[string]audited{}
	for range 2 {
		select {
		case a := <-results:
			got[a.req.Container+fmt.Sprint(a.err != nil)] = a
		case <-time.After(connectDeadline):
			t.Fatal("audit did not report")
		}
	}
	if a, ok := got["webfalse"]; !ok || a.d.Allowed || a.req.Pod != "web-1" || a.req.Namespace != "shop" {
		t.Errorf("audit of web = %+v, want a denial for shop/web-1", a)
	}
	if _, ok := got["true"]; !ok {
		t.Errorf("audit of the container without a config digest did not report a resolve error: %v", got)
	}
}

func TestNewValidates(t *testing.T) {
	d, r := &fakeDecider{}, fakeResolver{}
	for _, tc := range []struct {
		name string
		d    Decider
		r    Resolver
		opts []Option
	}{
		{"nil decider", nil, r, nil},
		{"nil resolver", d, nil, nil},
		{"bad index", d, r, []Option{WithIndex("x")}},
		{"bad name", d, r, []Option{WithName("a-b/c")}},
		{"bad backoff", d, r, []Option{WithBackoff(time.Second, time.Millisecond)}},
	} {
		if _, err := New(tc.d, tc.r, tc.opts...); err == nil {
			t.Errorf("%s: New succeeded", tc.name)
		}
	}
}

// With CreateContainer subscribed, a plugin that does not answer it would let the create
// through on a runtime that ignores failure policies (NRI ≤ 0.12.3: the plugin is dropped
// after being listed as present, and the validator skips it). NRI 0.12.5 honours the
// FailRequest policy the plugin asks for, and fails the create instead.
func TestFailRequestPolicyOnCreateContainer(t *testing.T) {
	setRequestTimeout(t, 200*time.Millisecond)
	dir := t.TempDir()
	back, front := filepath.Join(dir, "runtime.sock"), filepath.Join(dir, "nri.sock")
	rt := startRuntime(t, back, nil, nil)
	px := startProxy(t, front, back)
	c := startPlugin(t, front, &fakeDecider{decision: allow}, fakeResolver{}, WithCreateContainerHook(true))
	wait(t, c.up, "connect")
	rt.settle()

	px.freeze()
	defer px.thaw()
	err := rt.create("ghcr.io/acme/api:1.0", testConfig, nil)
	if err == nil || !strings.Contains(err.Error(), "plugin 10-tollgate failed to handle CreateContainer request") {
		t.Fatalf("unanswered CreateContainer: error = %v, want the create failed by the FailRequest policy", err)
	}
}

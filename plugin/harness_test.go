package plugin

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/containerd/nri/pkg/adaptation"
	"github.com/containerd/nri/pkg/api"
	nrilog "github.com/containerd/nri/pkg/log"
	validator "github.com/containerd/nri/plugins/default-validator/builtin"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"tollgate.dev/tollgate/policy"
)

// Test harness: NRI's runtime side, the plugin under test, fakes and a socket proxy.

func TestMain(m *testing.M) {
	// NRI logs through logrus by default; keep test output to our own lines.
	if os.Getenv("TOLLGATE_TEST_NRI_LOG") == "" {
		nrilog.Set(quietLogger{})
	}
	os.Exit(m.Run())
}

type quietLogger struct{}

func (quietLogger) Debugf(context.Context, string, ...any) {}
func (quietLogger) Infof(context.Context, string, ...any)  {}
func (quietLogger) Warnf(context.Context, string, ...any)  {}
func (quietLogger) Errorf(context.Context, string, ...any) {}

// fakeDecider answers with a fixed decision, optionally after a delay, and records requests.
// Like the gate, it honours the hook's deadline: when ctx ends first it denies, saying so.
type fakeDecider struct {
	mu       sync.Mutex
	decision policy.Decision
	delay    func() time.Duration
	seen     []policy.Request
}

func (f *fakeDecider) Decide(ctx context.Context, req policy.Request) policy.Decision {
	if f.delay != nil {
		t := time.NewTimer(f.delay())
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			return policy.Decision{Outcome: policy.Denied, Message: fmt.Sprintf(
				"tollgate: denied %s: no decision within the hook deadline (%v)", req.Image.Name(), ctx.Err())}
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.seen = append(f.seen, req)
	return f.decision
}

func (f *fakeDecider) requests() []policy.Request {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]policy.Request(nil), f.seen...)
}

// fakeResolver takes the identity from the NRI Image field, or fails. Image volumes are
// looked up by target in volumes.
type fakeResolver struct {
	err     error
	volumes map[string]policy.Image
}

func (f fakeResolver) ResolveVolume(_ context.Context, target string) (policy.Image, error) {
	img, ok := f.volumes[target]
	if !ok {
		return policy.Image{}, fmt.Errorf("no image in containerd namespace \"k8s.io\" has target %s", target)
	}
	return img, nil
}

func (f fakeResolver) Resolve(_ context.Context, c *api.Container) (policy.Image, error) {
	if f.err != nil {
		return policy.Image{}, f.err
	}
	return policy.Image{
		Ref:          c.GetImage().GetName(),
		Repository:   strings.Split(c.GetImage().GetName(), ":")[0],
		ConfigDigest: c.GetImage().GetConfigDigest(),
		Digests:      []string{c.GetImage().GetDigest()},
	}, nil
}

var allow = policy.Decision{Allowed: true, Outcome: policy.Verified, Mode: policy.Enforce, Message: "tollgate: allowed"}

// runtime is NRI's runtime side as containerd runs it.
type runtime struct {
	t    *testing.T
	sock string
	a    *adaptation.Adaptation
	pods []*api.PodSandbox
	ctrs []*api.Container
}

func startRuntime(t *testing.T, sock string, pods []*api.PodSandbox, ctrs []*api.Container) *runtime {
	t.Helper()
	r := &runtime{t: t, sock: sock, pods: pods, ctrs: ctrs}
	dir := t.TempDir()
	a, err := adaptation.New("containerd", "v2.4.2",
		func(ctx context.Context, cb adaptation.SyncCB) error {
			_, err := cb(ctx, r.pods, r.ctrs)
			return err
		},
		func(context.Context, []*api.ContainerUpdate) ([]*api.ContainerUpdate, error) { return nil, nil },
		adaptation.WithPluginPath(filepath.Join(dir, "plugins")),
		adaptation.WithPluginConfigPath(filepath.Join(dir, "conf.d")),
		adaptation.WithSocketPath(sock),
		adaptation.WithDefaultValidator(&validator.DefaultValidatorConfig{
			Enable:                    true,
			RequiredPlugins:           []string{DefaultName},
			TolerateMissingAnnotation: toleration,
		}),
	)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Start(); err != nil {
		t.Fatal(err)
	}
	r.a = a
	t.Cleanup(r.stop)
	return r
}

func (r *runtime) stop() {
	if r.a != nil {
		r.a.Stop()
		r.a = nil
	}
}

// settle waits until a plugin that has synchronized is fully registered.
func (r *runtime) settle() { r.a.BlockPluginSync().Unblock() }

var podSeq atomic.Int64

func (r *runtime) create(image, config string, annotations map[string]string) error {
	n := podSeq.Add(1)
	pod := &api.PodSandbox{Id: fmt.Sprintf("pod%d", n), Name: "api-7d9f", Namespace: "shop", Annotations: annotations}
	ctr := &api.Container{
		Id: fmt.Sprintf("ctr%d", n), PodSandboxId: pod.Id, Name: "api",
		Image: &api.Image{Name: image, Digest: testManifest, ConfigDigest: config},
	}
	_, err := r.a.CreateContainer(context.Background(), &api.CreateContainerRequest{Pod: pod, Container: ctr})
	return err
}

// conn tracks the plugin's connection callbacks.
type conn struct {
	up, down chan struct{}
	downs    atomic.Int64
}

func newConn() *conn { return &conn{up: make(chan struct{}, 16), down: make(chan struct{}, 16)} }

func (c *conn) opts() Option {
	return WithConnectionCallbacks(
		func() { c.up <- struct{}{} },
		func(error) { c.downs.Add(1); c.down <- struct{}{} })
}

func wait(t *testing.T, ch chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(connectDeadline):
		t.Fatalf("timed out waiting for %s", what)
	}
}

func startPlugin(t *testing.T, sock string, d Decider, r Resolver, opts ...Option) *conn {
	t.Helper()
	c := newConn()
	opts = append([]Option{
		WithSocket(sock), WithLogger(zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel))),
		WithBackoff(10*time.Millisecond, 100*time.Millisecond), c.opts(),
	}, opts...)
	p, err := New(d, r, opts...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("Run returned %v, want context.Canceled", err)
		}
	})
	return c
}

func setRequestTimeout(t *testing.T, d time.Duration) {
	adaptation.SetPluginRequestTimeout(d)
	t.Cleanup(func() { adaptation.SetPluginRequestTimeout(adaptation.DefaultPluginRequestTimeout) })
}

// proxy stands in for containerd's socket so a test can make it vanish, connections and
// all, the way a containerd restart does, or hold every byte, the way a stalled plugin
// process would.
type proxy struct {
	t           *testing.T
	front, back string
	gate        sync.RWMutex // write-locked while frozen
	frozen      atomic.Bool
	mu          sync.Mutex
	l           net.Listener
	conns       []net.Conn
}

func startProxy(t *testing.T, front, back string) *proxy {
	p := &proxy{t: t, front: front, back: back}
	p.start()
	t.Cleanup(p.stop)
	return p
}

func (p *proxy) start() {
	l, err := net.Listen("unix", p.front)
	if err != nil {
		p.t.Fatal(err)
	}
	p.mu.Lock()
	p.l = l
	p.mu.Unlock()
	go func() {
		for {
			in, err := l.Accept()
			if err != nil {
				return
			}
			out, err := net.Dial("unix", p.back)
			if err != nil {
				in.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, in, out)
			p.mu.Unlock()
			go p.pipe(out, in)
			go p.pipe(in, out)
		}
	}()
}

func (p *proxy) pipe(dst, src net.Conn) {
	defer dst.Close()
	defer src.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			p.gate.RLock()
			_, werr := dst.Write(buf[:n])
			p.gate.RUnlock()
			if werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func (p *proxy) freeze() {
	if !p.frozen.Swap(true) {
		p.gate.Lock()
	}
}

func (p *proxy) thaw() {
	if p.frozen.Swap(false) {
		p.gate.Unlock()
	}
}

func (p *proxy) stop() {
	p.thaw()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.l != nil {
		p.l.Close()
		p.l = nil
	}
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
	os.Remove(p.front)
}

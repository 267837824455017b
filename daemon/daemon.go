package daemon

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"tollgate.dev/tollgate/daemon/audit"
	"tollgate.dev/tollgate/daemon/evidence"
	"tollgate.dev/tollgate/policy"
)

// Runtime is the runtime side of the node gate: the NRI plugin (package plugin) with its
// containerd client (daemon/ctrd). Run serves until ctx is done, reconnecting as needed;
// an error before then stops the daemon.
type Runtime interface {
	Run(ctx context.Context) error
}

// ContainerLister lists the running containers, with their images resolved from
// containerd's stores, for the re-check after a policy reload. A Runtime may implement it.
type ContainerLister interface {
	RunningContainers(ctx context.Context) ([]policy.Request, error)
}

// ImageLister lists the node's images (with the digests bound to each config, from
// containerd's content store) for pre-verification at start-up. daemon/ctrd.Client
// implements it.
type ImageLister interface {
	List(ctx context.Context) ([]policy.Image, error)
}

// ImageWatcher calls fn for every image that containerd adds or changes (and, when it
// (re)subscribes, for every image it lists), until ctx is done. daemon/ctrd.Client
// implements it. fn is Daemon.PreverifyAsync, which never blocks.
type ImageWatcher interface {
	Watch(ctx context.Context, fn func(policy.Image)) error
}

// Bounds of the daemon's background work.
const (
	maxRecheck        = 10_000 // running containers re-checked after one reload
	maxStartupImages  = 2_000  // images pre-verified at start-up
	preverifyQueue    = 1024   // images waiting for pre-verification
	preverifyWorkers  = 2
	backgroundTimeout = 60 * time.Second
	cacheMaxDigests   = 20_000 // digests kept in the evidence disk cache
	janitorEvery      = 10 * time.Minute
	auditKeepFiles    = 5
)

// Daemon is tollgated: it owns the Gate, the policy store and its watch, the evidence
// sources, the metrics and health server and the audit log, and runs the Runtime attached
// to it. Wiring, as cmd/tollgated does it:
//
//	cfg, err := daemon.ParseArgs("tollgated", os.Args[1:])
//	log, _ := daemon.NewLogger(cfg.LogLevel)
//	reg := registry.New(registry.WithInsecure(cfg.InsecureRegistries...))
//	d, err := daemon.New(cfg, daemon.WithDaemonLogger(log), daemon.WithFetcher(reg))
//	ctr := ctrd.New(ctrd.WithAddress(cfg.ContainerdSocket), ctrd.WithNamespace(cfg.ContainerdNamespace))
//	p, err := plugin.New(d.Gate(), ctr,
//		plugin.WithName(cfg.PluginName),
//		plugin.WithIndex(fmt.Sprintf("%02d", cfg.PluginIndex)), // NRI wants two digits: "05"
//		plugin.WithSocket(cfg.NRISocket), plugin.WithDeadline(cfg.HookDeadline.D()),
//		plugin.WithLogger(log), plugin.WithSyncDecider(d.Gate().SyncDecider()),
//		plugin.WithConnectionCallbacks(func() { d.SetNRIConnected(true) },
//			func(error) { d.SetNRIConnected(false) }))
//	d.Attach(p)              // and d.SetContainerLister(ctr) if p does not list containers
//	d.SetImageWatcher(ctr)   // image events → pre-verification, outside the NRI hook
//	d.SetImageLister(ctr)    // every image on the node, pre-verified again after a reload
//	err = d.Run(ctx)         // until SIGTERM; Run closes everything it opened
type Daemon struct {
	cfg     Config
	log     *zap.Logger
	metrics *Metrics
	health  *Health
	store   *PolicyStore
	gate    *Gate
	cache   *evidence.Cache
	audit   *audit.Writer
	watch   WatchOptions

	runtime    Runtime
	containers ContainerLister
	images     ImageLister
	watcher    ImageWatcher
	queue      preverifyQueueState

	recheckCh  chan struct{}
	addr       atomic.Pointer[string]
	closeOnce  sync.Once
	auditErrAt atomic.Int64
}

type daemonOptions struct {
	log      *zap.Logger
	fetcher  evidence.Fetcher
	load     LoadFunc
	gateOpts []GateOption
	watch    WatchOptions
}

// DaemonOption configures New.
type DaemonOption func(*daemonOptions)

// WithDaemonLogger sets the logger (default: none).
func WithDaemonLogger(l *zap.Logger) DaemonOption { return func(o *daemonOptions) { o.log = l } }

// WithFetcher lets pre-verification fetch evidence from registries (daemon/registry.Client).
// Without one the node uses only its evidence directory and disk cache.
func WithFetcher(f evidence.Fetcher) DaemonOption { return func(o *daemonOptions) { o.fetcher = f } }

// WithPolicyLoader replaces policy.Load (tests).
func WithPolicyLoader(f LoadFunc) DaemonOption { return func(o *daemonOptions) { o.load = f } }

// WithGateOptions adds options to the Gate (after the ones derived from Config).
func WithGateOptions(opts ...GateOption) DaemonOption {
	return func(o *daemonOptions) { o.gateOpts = append(o.gateOpts, opts...) }
}

// WithWatchOptions tunes the policy directory watch.
func WithWatchOptions(w WatchOptions) DaemonOption { return func(o *daemonOptions) { o.watch = w } }

// New validates cfg and builds the daemon. It opens the audit log; call Run (which closes
// everything when it returns) or Close.
func New(cfg Config, opts ...DaemonOption) (*Daemon, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	o := daemonOptions{log: zap.NewNop(), load: PolicyLoad}
	for _, f := range opts {
		f(&o)
	}
	if cfg.NodeName == "" {
		cfg.NodeName, _ = os.Hostname()
	}
	d := &Daemon{cfg: cfg, log: o.log, metrics: NewMetrics(), watch: o.watch, recheckCh: make(chan struct{}, 1)}
	d.queue.init()
	d.store = NewPolicyStore(cfg.PolicyDir, WithLoadFunc(o.load), WithStoreLogger(o.log), WithStoreMetrics(d.metrics))
	d.health = &Health{nriSocket: cfg.NRISocket, metrics: d.metrics, policy: d.store}
	d.cache = evidence.NewCache(filepath.Join(cfg.CacheDir, "evidence"), evidence.DefaultLimits)
	gateOpts := []GateOption{
		WithEvidenceSources(evidence.NewDir("node evidence directory", cfg.EvidenceDir, evidence.DefaultLimits), d.cache),
		WithTTL(cfg.AllowTTL.D(), cfg.DenyTTL.D()),
		WithHookDeadline(cfg.HookDeadline.D()),
		WithMetrics(d.metrics),
		WithLogger(o.log),
		WithNodeName(cfg.NodeName),
		WithPolicyError(d.store.Err),
	}
	if o.fetcher != nil {
		gateOpts = append(gateOpts, WithRegistry(evidence.NewRegistry(o.fetcher, d.cache, d.metrics.RegistryRequest)))
	}
	if cfg.AuditLog != "" {
		w, err := audit.Open(cfg.AuditLog, audit.Options{MaxBytes: int64(cfg.AuditLogMaxBytes), Keep: auditKeepFiles}, d.auditError)
		if err != nil {
			return nil, err
		}
		d.audit = w
		gateOpts = append(gateOpts, WithAudit(w))
	} else {
		o.log.Warn("no audit log configured (--audit-log is empty): decisions are only counted and logged")
	}
	d.gate = NewGate(d.store, append(gateOpts, o.gateOpts...)...)
	d.store.OnChange(d.policyChanged)
	return d, nil
}

// Gate is the decision point; the plugin calls its Decide in the NRI hook.
func (d *Daemon) Gate() *Gate { return d.gate }

// Policies is the policy store.
func (d *Daemon) Policies() *PolicyStore { return d.store }

// Metrics is the daemon's metrics registry.
func (d *Daemon) Metrics() *Metrics { return d.metrics }

// Health is what /healthz and /readyz report.
func (d *Daemon) Health() *Health { return d.health }

// SetNRIConnected records the plugin's connection state (for /readyz and metrics).
func (d *Daemon) SetNRIConnected(connected bool) { d.health.SetNRIConnected(connected) }

// Attach sets the Runtime that Run runs. If it also lists containers, that is used for
// re-checks after policy reloads. Call before Run.
func (d *Daemon) Attach(rt Runtime) {
	d.runtime = rt
	if cl, ok := rt.(ContainerLister); ok {
		d.containers = cl
	}
}

// SetContainerLister sets what lists running containers for re-checks. Call before Run.
func (d *Daemon) SetContainerLister(l ContainerLister) { d.containers = l }

// SetImageLister sets what lists the node's images for pre-verification after every
// policy reload, and at start-up when no ImageWatcher (whose first listing does the same)
// is set. Call before Run.
func (d *Daemon) SetImageLister(l ImageLister) { d.images = l }

// SetImageWatcher sets the source of image events for pre-verification. If it also lists
// images (daemon/ctrd.Client does), and no ImageLister is set, that is used after policy
// reloads. Call before Run.
func (d *Daemon) SetImageWatcher(w ImageWatcher) {
	d.watcher = w
	if l, ok := w.(ImageLister); ok && d.images == nil {
		d.images = l
	}
}

// Run loads the policy directory, serves /metrics, /healthz and /readyz, watches the
// policies, runs the attached Runtime, and returns when ctx is done (nil) or a part fails
// (its error). Everything is shut down and closed before Run returns.
func (d *Daemon) Run(ctx context.Context) error {
	defer d.Close()
	if err := os.MkdirAll(d.cache.Root(), 0o700); err != nil {
		return fmt.Errorf("cache directory: %w", err)
	}
	// A bad or missing policy directory does not stop the daemon: it denies everything
	// (enforce), reports not ready, and picks up a good directory when one appears.
	d.store.Reload()
	ln, err := net.Listen("tcp", d.cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen %s: %w", d.cfg.Listen, err)
	}
	addr := ln.Addr().String()
	d.addr.Store(&addr)
	srv := NewHealthServer(d.health.Handler(), nil)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 1)
	fail := func(err error) { // the first failure stops the daemon; later ones are moot
		select {
		case errc <- err:
		default:
		}
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			fail(fmt.Errorf("http server: %w", err))
		}
	})
	d.startBackground(ctx, &wg, fail)
	d.log.Info("tollgated running", zap.String("version", Version), zap.String("node", d.cfg.NodeName),
		zap.String("listen", ln.Addr().String()), zap.String("policy_dir", d.cfg.PolicyDir))
	select {
	case <-ctx.Done():
	case err = <-errc:
		d.log.Error("stopping", zap.Error(err))
	}
	cancel()
	shutCtx, shutCancel := context.WithTimeout(context.Background(), 5*time.Second)
	srv.Shutdown(shutCtx)
	shutCancel()
	wg.Wait()
	return err
}

// Addr is the address the HTTP server listens on, once Run has started it ("" before).
func (d *Daemon) Addr() string {
	if p := d.addr.Load(); p != nil {
		return *p
	}
	return ""
}

// startBackground starts everything Run runs besides the HTTP server.
func (d *Daemon) startBackground(ctx context.Context, wg *sync.WaitGroup, fail func(error)) {
	wg.Go(func() { d.store.Watch(ctx, d.watch) })
	wg.Go(func() { d.rechecker(ctx) })
	wg.Go(func() { d.janitor(ctx) })
	if d.runtime != nil {
		wg.Go(func() {
			if err := d.runtime.Run(ctx); err != nil && ctx.Err() == nil {
				fail(fmt.Errorf("nri plugin: %w", err))
			}
		})
	}
	for range preverifyWorkers {
		wg.Go(func() { d.preverifyWorker(ctx) })
	}
	switch {
	case d.watcher != nil:
		wg.Go(func() {
			if err := d.watcher.Watch(ctx, d.PreverifyAsync); err != nil && ctx.Err() == nil {
				fail(fmt.Errorf("containerd image events: %w", err))
			}
		})
	case d.images != nil:
		wg.Go(func() { d.preverifyImages(ctx, "start-up") })
	}
}

// Close flushes and closes the audit log. Run calls it; call it only if Run is never called.
func (d *Daemon) Close() error {
	d.closeOnce.Do(func() {
		if d.audit != nil {
			d.audit.Close()
		}
	})
	return nil
}

// policyChanged runs after each new policy generation: old decisions are already
// unreachable (their key holds the generation); free them. After a reload (not at
// start-up), the rechecker pre-verifies every image on the node again under the new
// policies, then re-checks what runs.
func (d *Daemon) policyChanged(s *Snapshot) {
	go d.gate.cache.purge(s.Generation)
	if s.Generation > 1 { // generation 1 is start-up: the plugin audits existing containers itself
		select {
		case d.recheckCh <- struct{}{}:
		default: // a re-check is pending already and will see this generation
		}
	}
}

// auditError logs audit log write failures, at most once a minute.
func (d *Daemon) auditError(err error) {
	now := time.Now().UnixNano()
	last := d.auditErrAt.Load()
	if now-last < int64(time.Minute) || !d.auditErrAt.CompareAndSwap(last, now) {
		return
	}
	d.log.Error("audit log write failed", zap.Error(err))
}

func (d *Daemon) janitor(ctx context.Context) {
	t := time.NewTicker(janitorEvery)
	defer t.Stop()
	for {
		if n, err := d.cache.Prune(cacheMaxDigests); err != nil {
			d.log.Warn("evidence cache prune failed", zap.Error(err))
		} else if n > 0 {
			d.log.Info("evidence cache pruned", zap.Int("removed", n))
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

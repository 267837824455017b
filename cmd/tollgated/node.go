package main

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

	"tollgate.dev/tollgate/daemon"
	"tollgate.dev/tollgate/daemon/audit"
	"tollgate.dev/tollgate/daemon/evidence"
	"tollgate.dev/tollgate/daemon/gate"
	"tollgate.dev/tollgate/daemon/metrics"
	"tollgate.dev/tollgate/daemon/policystore"
)

// Bounds of the node's housekeeping.
const (
	cacheMaxDigests = 20_000 // digests kept in the evidence disk cache
	janitorEvery    = 10 * time.Minute
	auditKeepFiles  = 5
)

// node is tollgated's parts, built from the configuration and wired side by side: the
// policy store (watched), the gate deciding with it, the pre-verifier working for the gate
// outside the hook, the metrics and health server, and the audit log. The runtime side
// (the NRI plugin calling gate.Decide, containerd's image events feeding
// pre.PreverifyAsync) runs next to them as tasks (see run).
type node struct {
	cfg     daemon.Config
	log     *zap.Logger
	metrics *metrics.Metrics
	health  *metrics.Health
	store   *policystore.Store
	gate    *gate.Gate
	pre     *gate.Preverifier
	cache   *evidence.Cache
	audit   *audit.Writer
	storage *storage
	watch   policystore.WatchOptions

	auditErrAt atomic.Int64
}

// nodeParts are what the node takes from outside: the registry and containerd's listings.
// Any may be nil (then the node uses only local evidence, or does not re-check).
type nodeParts struct {
	fetcher    evidence.Fetcher
	images     gate.ImageLister
	containers gate.ContainerLister
	load       policystore.LoadFunc     // nil: policy.Load
	watch      policystore.WatchOptions // zero: the defaults
}

// task is something that runs beside the node until ctx is done; an error before then
// stops tollgated.
type task struct {
	name string
	run  func(ctx context.Context) error
}

// newNode validates cfg and builds the node. It opens the audit log; call serve (which
// closes everything when it returns) or close.
func newNode(cfg daemon.Config, log *zap.Logger, parts nodeParts) (*node, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.NodeName == "" {
		cfg.NodeName, _ = os.Hostname()
	}
	n := &node{cfg: cfg, log: log, metrics: metrics.New(daemon.Version), watch: parts.watch}
	storeOpts := []policystore.Option{policystore.WithLogger(log), policystore.WithMetrics(n.metrics)}
	if parts.load != nil {
		storeOpts = append(storeOpts, policystore.WithLoadFunc(parts.load))
	}
	n.store = policystore.New(cfg.PolicyDir, storeOpts...)
	n.health = metrics.NewHealth(cfg.NRISocket, n.metrics, n.store)
	n.cache = evidence.NewCache(filepath.Join(cfg.CacheDir, "evidence"), evidence.DefaultLimits)
	n.metrics.RegisterCacheQuarantined(func() float64 { return float64(n.cache.Quarantined()) })
	reportCrashed(log, n.cache)
	evidenceDir := evidence.NewDir("node evidence directory", cfg.EvidenceDir, evidence.DefaultLimits)
	// The evidence directory may be absent (nodes that fetch everything); the disk cache,
	// made at start, may not vanish unnoticed.
	n.storage = newStorage(log, n.metrics,
		store{label: "evidence_dir", src: evidenceDir},
		store{label: "disk_cache", src: n.cache, required: true})
	n.health.AddCheck(n.storage)
	gateOpts := []gate.Option{
		gate.WithEvidenceSources(evidenceDir, n.cache),
		gate.WithTTL(cfg.AllowTTL.D(), cfg.DenyTTL.D()),
		gate.WithMetrics(n.metrics),
		gate.WithLogger(log),
		gate.WithNodeName(cfg.NodeName),
		gate.WithPolicyError(n.store.Err),
	}
	if parts.fetcher != nil {
		gateOpts = append(gateOpts, gate.WithRegistry(evidence.NewRegistry(parts.fetcher, n.cache, n.metrics.RegistryRequest)))
	}
	if cfg.AuditLog != "" {
		w, err := audit.Open(cfg.AuditLog, audit.Options{MaxBytes: int64(cfg.AuditLogMaxBytes), Keep: auditKeepFiles}, n.auditError)
		if err != nil {
			return nil, err
		}
		n.audit = w
		gateOpts = append(gateOpts, gate.WithAudit(w))
	} else {
		log.Warn("no audit log configured (--audit-log is empty): decisions are only counted and logged")
	}
	n.gate = gate.New(n.store, gateOpts...)
	n.pre = gate.NewPreverifier(n.gate, parts.images, parts.containers)
	n.store.OnChange(n.pre.PolicyChanged)
	return n, nil
}

// serve loads the policy directory, serves /metrics, /healthz and /readyz, and runs the
// policy watch, the pre-verifier, the evidence cache janitor and the tasks side by side.
// It returns when ctx is done (nil) or a part fails (its error). Everything is shut down
// and closed before serve returns.
func (n *node) serve(ctx context.Context, tasks ...task) error {
	defer n.close()
	if err := os.MkdirAll(n.cache.Root(), 0o700); err != nil {
		return fmt.Errorf("cache directory: %w", err)
	}
	// A bad or missing policy directory does not stop the daemon: it denies everything
	// (enforce), reports not ready, and picks up a good directory when one appears.
	n.store.Reload()
	ln, err := net.Listen("tcp", n.cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen %s: %w", n.cfg.Listen, err)
	}
	srv := metrics.NewServer(n.health.Handler(), nil)
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
	wg.Go(func() { n.store.Watch(ctx, n.watch) })
	wg.Go(func() { n.pre.Run(ctx) })
	wg.Go(func() { n.janitor(ctx) })
	wg.Go(func() { n.storage.run(ctx) })
	for _, t := range tasks {
		wg.Go(func() {
			if err := t.run(ctx); err != nil && ctx.Err() == nil {
				fail(fmt.Errorf("%s: %w", t.name, err))
			}
		})
	}
	n.log.Info("tollgated running", zap.String("version", daemon.Version), zap.String("node", n.cfg.NodeName),
		zap.String("listen", ln.Addr().String()), zap.String("policy_dir", n.cfg.PolicyDir))
	select {
	case <-ctx.Done():
	case err = <-errc:
		n.log.Error("stopping", zap.Error(err))
	}
	cancel()
	shutCtx, shutCancel := context.WithTimeout(context.Background(), 5*time.Second)
	srv.Shutdown(shutCtx)
	shutCancel()
	wg.Wait()
	return err
}

// close flushes and closes the audit log. serve calls it; call it only if serve is never called.
func (n *node) close() {
	if n.audit != nil {
		n.audit.Close()
		n.audit = nil
	}
}

// auditError logs audit log write failures, at most once a minute.
func (n *node) auditError(err error) {
	now := time.Now().UnixNano()
	last := n.auditErrAt.Load()
	if now-last < int64(time.Minute) || !n.auditErrAt.CompareAndSwap(last, now) {
		return
	}
	n.log.Error("audit log write failed", zap.Error(err))
}

// janitor keeps the evidence disk cache bounded.
func (n *node) janitor(ctx context.Context) {
	t := time.NewTicker(janitorEvery)
	defer t.Stop()
	for {
		if removed, err := n.cache.Prune(cacheMaxDigests); err != nil {
			n.log.Warn("evidence cache prune failed", zap.Error(err))
		} else if removed > 0 {
			n.log.Info("evidence cache pruned", zap.Int("removed", removed))
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// reportCrashed quarantines the evidence a previous run died evaluating (see
// evidence.Cache.RecoverCrashed) and says so once per evidence set: the images are refused
// until an operator removes the quarantined directory.
func reportCrashed(log *zap.Logger, cache *evidence.Cache) {
	crashes, err := cache.RecoverCrashed()
	if err != nil {
		log.Error("evidence that crashed an earlier run could not be looked for", zap.Error(err))
	}
	for _, c := range crashes {
		log.Error("evidence quarantined: the previous run of tollgated died evaluating it; the image is refused until the directory is removed",
			zap.String("repository", c.Repository), zap.Strings("digests", c.Digests), zap.String("quarantined", c.Where))
	}
}

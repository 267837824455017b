package admission

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"go.uber.org/zap"

	"tollgate.dev/tollgate/daemon/evidence"
	"tollgate.dev/tollgate/daemon/gate"
	daemonmetrics "tollgate.dev/tollgate/daemon/metrics"
	"tollgate.dev/tollgate/daemon/policystore"
	"tollgate.dev/tollgate/daemon/registry"
)

// Registry is what the webhook asks registries: what a reference names (Resolve), and the
// evidence attached to a digest (Fetch). *registry.Client implements it.
type Registry interface {
	Resolver
	evidence.Fetcher
}

// Bounds of the webhook's own work.
const (
	// backgroundTimeout bounds registry work (a resolution, an evidence fetch and its
	// verification) that goes on after the review that started it gave up: it fills the
	// caches for the API server's retry.
	backgroundTimeout = 30 * time.Second
	cacheMaxDigests   = 20_000
	janitorEvery      = 10 * time.Minute
	shutdownGrace     = 5 * time.Second
)

// Server is the validating admission webhook: `tollgated webhook`. It decides with the
// node's policy directory, the node's Gate and verifier, and evidence from registries.
type Server struct {
	cfg     Config
	log     *zap.Logger
	reg     Registry
	regOpts []registry.Option
	now     func() time.Time

	store   *policystore.Store
	gate    *gate.Gate
	cache   *evidence.Cache
	checker *checker
	load    *loadGate // bounds the reviews in flight, by count and memory
	metrics *metrics
	certs   *certReloader
	watch   policystore.WatchOptions

	mu    sync.Mutex
	addrs map[string]string // "webhook", "metrics" → bound address, once serving
}

// Option configures a Server.
type Option func(*Server)

// WithLogger sets the logger (default: none).
func WithLogger(l *zap.Logger) Option { return func(s *Server) { s.log = l } }

// New validates cfg and builds the webhook: it loads the serving certificate (an error if
// it does not load) and the policy directory (an error there only makes /readyz fail, as
// on the node: a directory fixed later is picked up by the watch).
func New(cfg Config, opts ...Option) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("webhook configuration: %w", err)
	}
	s := &Server{cfg: cfg, log: zap.NewNop(), now: time.Now, addrs: map[string]string{}}
	for _, o := range opts {
		o(s)
	}
	if s.reg == nil {
		ro := append([]registry.Option{registry.WithInsecure(cfg.InsecureRegistries...)}, s.regOpts...)
		s.reg = registry.New(ro...)
	}
	certs, err := newCertReloader(cfg.TLSCertFile, cfg.TLSKeyFile, s.log)
	if err != nil {
		return nil, err
	}
	s.certs = certs
	root := filepath.Join(cfg.CacheDir, "evidence")
	if err := os.MkdirAll(root, 0o700); err != nil {
		return nil, fmt.Errorf("cache-dir: %w", err)
	}
	s.cache = evidence.NewCache(root, evidence.DefaultLimits)
	s.store = policystore.New(cfg.PolicyDir, policystore.WithLogger(s.log))
	if _, err := s.store.Reload(); err != nil {
		s.log.Error("policy directory did not load; the webhook is not ready until it does", zap.Error(err))
	}
	s.gate = gate.New(s.store,
		gate.WithEvidenceSources(s.cache),
		gate.WithRegistry(evidence.NewRegistry(s.reg, s.cache, nil)),
		gate.WithTTL(cfg.AllowTTL.D(), cfg.DenyTTL.D()),
		gate.WithVerifyTimeout(backgroundTimeout),
		gate.WithFetchConcurrency(8),
		gate.WithPolicyError(s.store.Err),
		gate.WithLogger(s.log.Named("gate")),
		gate.WithClock(s.now),
	)
	plat, _ := parsePlatform(cfg.Platform) // validated
	s.checker = &checker{
		policies: s.store,
		gate:     s.gate,
		resolver: newResolver(s.reg, cfg.ResolveTTL.D(), cfg.AllowTTL.D(), s.now),
		platform: plat,
		failOpen: cfg.FailOpen,
		bgTime:   backgroundTimeout,
		now:      s.now,
	}
	s.load = newLoadGate(maxConcurrentReviews, reviewBudget(cfg.MaxRequestBytes), maxWaitingReviews)
	s.metrics = newMetrics(func() float64 {
		if snap := s.store.Current(); snap != nil {
			return float64(snap.Generation)
		}
		return 0
	})
	return s, nil
}

// TLSConfig is the webhook's server TLS configuration: TLS 1.2 or later, and the
// certificate of the mounted files as last (successfully) read.
func (s *Server) TLSConfig() *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: s.certs.GetCertificate}
}

// Ready reports whether the webhook can decide: a policy set loaded with no reload error
// pending, and a valid serving certificate.
func (s *Server) Ready() (bool, string) {
	pok, pmsg := s.store.Status()
	tok, tmsg := s.certs.status(s.now())
	return pok && tok, pmsg + "\n" + tmsg
}

// HealthHandler serves /metrics, /healthz (alive) and /readyz (see Ready), on the plain
// HTTP port.
func (s *Server) HealthHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", s.metrics.handler())
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		ok, body := s.Ready()
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if !ok {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		fmt.Fprintln(w, body)
	})
	return mux
}

// Run listens on --listen (HTTPS) and --metrics-listen (HTTP) and serves until ctx is done.
func (s *Server) Run(ctx context.Context) error {
	wl, err := net.Listen("tcp", s.cfg.Listen)
	if err != nil {
		return fmt.Errorf("webhook listen %s: %w", s.cfg.Listen, err)
	}
	var ml net.Listener
	if s.cfg.MetricsListen != "" {
		if ml, err = net.Listen("tcp", s.cfg.MetricsListen); err != nil {
			wl.Close()
			return fmt.Errorf("metrics listen %s: %w", s.cfg.MetricsListen, err)
		}
	}
	return s.Serve(ctx, wl, ml)
}

// Serve serves the webhook on wl (TLS is added here) and the health endpoints on ml (nil:
// none), watches the policy directory and the certificate files, and prunes the evidence
// cache, until ctx is done; then it shuts down gracefully.
func (s *Server) Serve(ctx context.Context, wl, ml net.Listener) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	bg := func(f func()) { wg.Add(1); go func() { defer wg.Done(); f() }() }
	bg(func() { s.store.Watch(ctx, s.watch) })
	bg(func() { s.certs.watch(ctx, s.cfg.TLSReload.D()) })
	bg(func() { s.janitor(ctx) })

	errLog, _ := zap.NewStdLogAt(s.log.Named("http"), zap.WarnLevel)
	hooks := &http.Server{
		Handler:           s.Handler(),
		TLSConfig:         s.TLSConfig(),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second,
		WriteTimeout:      s.cfg.Timeout.D() + 5*time.Second,
		IdleTimeout:       90 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          errLog,
	}
	servers := []*http.Server{hooks}
	errs := make(chan error, 2)
	s.setAddr("webhook", wl.Addr().String())
	go func() { errs <- serveErr("webhook", hooks.ServeTLS(wl, "", "")) }()
	if ml != nil {
		health := daemonmetrics.NewServer(s.HealthHandler(), errLog)
		servers = append(servers, health)
		s.setAddr("metrics", ml.Addr().String())
		go func() { errs <- serveErr("metrics", health.Serve(ml)) }()
	}
	s.log.Info("admission webhook serving", zap.String("listen", wl.Addr().String()),
		zap.Bool("fail_open", s.cfg.FailOpen), zap.Duration("timeout", s.cfg.Timeout.D()))
	var err error
	select {
	case <-ctx.Done():
	case err = <-errs:
	}
	sctx, scancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer scancel()
	for _, srv := range servers {
		srv.Shutdown(sctx)
	}
	cancel()
	wg.Wait()
	return err
}

func serveErr(name string, err error) error {
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return fmt.Errorf("%s server: %w", name, err)
}

func (s *Server) setAddr(which, addr string) {
	s.mu.Lock()
	s.addrs[which] = addr
	s.mu.Unlock()
}

// janitor bounds the evidence disk cache.
func (s *Server) janitor(ctx context.Context) {
	t := time.NewTicker(janitorEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if n, err := s.cache.Prune(cacheMaxDigests); err != nil {
				s.log.Warn("evidence cache prune failed", zap.Error(err))
			} else if n > 0 {
				s.log.Debug("evidence cache pruned", zap.Int("digests", n))
			}
		}
	}
}

// Run builds a Server from cfg and serves until ctx is done. This is `tollgated webhook`:
//
//	cfg, err := admission.ParseArgs("tollgated webhook", args)
//	log, _ := daemon.NewLogger(cfg.LogLevel)
//	err = admission.Run(ctx, cfg, admission.WithLogger(log))
func Run(ctx context.Context, cfg Config, opts ...Option) error {
	s, err := New(cfg, opts...)
	if err != nil {
		return err
	}
	return s.Run(ctx)
}

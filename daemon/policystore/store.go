// Package policystore holds the node's policy set in force: it loads the policy directory
// (read by daemon/policydir), publishes each good load as a new immutable Snapshot with a
// higher generation, keeps the last good set when a load fails, and watches the directory
// for changes. The gate (daemon/gate) decides with the Snapshot it hands out.
package policystore

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"tollgate.dev/tollgate/daemon/evidence"
	"tollgate.dev/tollgate/daemon/metrics"
	"tollgate.dev/tollgate/daemon/policydir"
	"tollgate.dev/tollgate/policy"
	"tollgate.dev/tollgate/policy/sigstore"
)

// Evaluator decides a request against evidence. *policy.Set implements it; tests wrap it
// (or fake it) to count evaluations.
type Evaluator interface {
	Evaluate(req policy.Request, ev policy.Evidence, now time.Time) policy.Decision
}

// Snapshot is one loaded policy set, its generation and its digest. It never changes once
// published.
type Snapshot struct {
	Generation uint64
	// Digest is policy.Digest of the files loaded: what `tollgate policy digest` prints for
	// the same directory, and what verification summaries name as their policy.
	Digest   string
	Policies Evaluator
}

// LoadFunc builds an Evaluator from every file of the policy directory. PolicyLoad (the
// default) is policy.Load; tests substitute their own.
type LoadFunc func(files map[string][]byte, generation uint64) (Evaluator, error)

// PolicyLoad is policy.Load as a LoadFunc.
func PolicyLoad(files map[string][]byte, generation uint64) (Evaluator, error) {
	s, err := policy.Load(files, generation)
	if err != nil {
		return nil, err // not a typed nil inside a non-nil interface
	}
	return s, nil
}

// DirLimits bound what one read of the policy directory takes in.
type DirLimits = policydir.Limits

// DefaultDirLimits are generous for policies, layouts and keys, and bounded.
var DefaultDirLimits = policydir.DefaultLimits

// Store loads the policy directory and publishes each good load as a new Snapshot
// (generation+1) with an atomic swap. A load that fails keeps the last good snapshot in
// force, is logged and counted, and is reported by Err (and so by /readyz) until a good
// load replaces it. It is the gate's PolicySource.
type Store struct {
	dir     string
	load    LoadFunc
	limits  DirLimits
	log     *zap.Logger
	metrics *metrics.Metrics

	cur atomic.Pointer[Snapshot]

	mu          sync.Mutex // serializes Reload; guards the fields below
	gen         uint64
	curHash     string // evidence.Version of the files in force
	attemptHash string // and of the files last tried
	attempted   bool
	lastErr     error
	loadedAt    time.Time
	listeners   []func(*Snapshot)

	errPtr atomic.Pointer[error] // lastErr, for lock-free readers (readiness, denials)
}

// Option configures a Store.
type Option func(*Store)

// WithLoadFunc replaces policy.Load (tests).
func WithLoadFunc(f LoadFunc) Option { return func(s *Store) { s.load = f } }

// WithLogger sets the logger.
func WithLogger(l *zap.Logger) Option { return func(s *Store) { s.log = l } }

// WithMetrics sets the metrics updated on reloads.
func WithMetrics(m *metrics.Metrics) Option { return func(s *Store) { s.metrics = m } }

// New returns a store for dir. Nothing is loaded until Reload or Watch.
func New(dir string, opts ...Option) *Store {
	s := &Store{dir: dir, load: PolicyLoad, limits: DefaultDirLimits, log: zap.NewNop()}
	for _, o := range opts {
		o(s)
	}
	return s
}

// Current is the snapshot in force, or nil while none has loaded. It is an atomic load.
func (s *Store) Current() *Snapshot { return s.cur.Load() }

// Err is why the last reload failed, or nil if it succeeded (or none has been tried).
func (s *Store) Err() error {
	if p := s.errPtr.Load(); p != nil {
		return *p
	}
	return nil
}

// OnChange registers fn to run (synchronously, in Reload's goroutine) after each new
// snapshot is published. fn must not call Reload.
func (s *Store) OnChange(fn func(*Snapshot)) {
	s.mu.Lock()
	s.listeners = append(s.listeners, fn)
	s.mu.Unlock()
}

// Reload reads the directory and, if its content changed since the last attempt, loads it.
// It reports whether a new snapshot was published, and the load error if the content is
// bad (the previous snapshot stays in force).
func (s *Store) Reload() (bool, error) {
	s.mu.Lock()
	files, err := policydir.Read(s.dir, s.limits)
	if err != nil {
		defer s.mu.Unlock()
		return false, s.failLocked(fmt.Errorf("read policy directory %s: %w", s.dir, err), "", false)
	}
	h := evidence.Version(files)
	switch {
	case s.cur.Load() != nil && h == s.curHash:
		// Back to (or still at) the content in force: nothing to load, and any error is over.
		s.attemptHash, s.attempted = h, true
		s.setErrLocked(nil)
		s.mu.Unlock()
		return false, nil
	case s.attempted && h == s.attemptHash:
		err := s.lastErr // the same bad content again: already reported
		s.mu.Unlock()
		return false, err
	}
	ev, err := s.safeLoad(files, s.gen+1)
	if err != nil {
		defer s.mu.Unlock()
		return false, s.failLocked(err, h, true)
	}
	s.gen++
	snap := &Snapshot{Generation: s.gen, Digest: policy.Digest(files), Policies: ev}
	s.curHash, s.attemptHash, s.attempted = h, h, true
	s.loadedAt = time.Now()
	s.setErrLocked(nil)
	s.cur.Store(snap)
	listeners := slicesClone(s.listeners)
	s.mu.Unlock()

	s.log.Info("policy set loaded", zap.Uint64("generation", snap.Generation), zap.String("digest", snap.Digest), zap.Int("files", len(files)))
	if s.metrics != nil {
		var expiries map[string]time.Time
		if le, ok := ev.(interface{ LayoutExpiries() map[string]time.Time }); ok {
			expiries = le.LayoutExpiries()
		}
		s.metrics.PolicyLoaded(snap.Generation, snap.Digest, expiries)
		var roots metrics.TrustedRootExpiries
		if tr, ok := ev.(interface {
			TrustedRootExpiries(time.Time) []sigstore.Expiry
		}); ok {
			roots = tr.TrustedRootExpiries
		}
		s.metrics.SetTrustedRoots(roots)
	}
	for _, fn := range listeners {
		fn(snap)
	}
	return true, nil
}

// safeLoad turns a panic in the loader into a load error: a bad file must never take
// the daemon (and so every pod start on the node) down.
func (s *Store) safeLoad(files map[string][]byte, gen uint64) (ev Evaluator, err error) {
	defer func() {
		if r := recover(); r != nil {
			ev, err = nil, fmt.Errorf("internal error while loading policies: %v", r)
		}
	}()
	return s.load(files, gen)
}

func (s *Store) failLocked(err error, h string, hashed bool) error {
	if !hashed && s.lastErr != nil && s.lastErr.Error() == err.Error() {
		return s.lastErr // the same unreadable directory, polled again: reported already
	}
	s.attemptHash, s.attempted = h, hashed
	s.setErrLocked(err)
	if s.metrics != nil {
		s.metrics.ReloadFailed()
	}
	keep := "no policy set is in force: every container is denied"
	if cur := s.cur.Load(); cur != nil {
		keep = fmt.Sprintf("generation %d stays in force", cur.Generation)
	}
	s.log.Error("policy reload failed; "+keep, zap.String("dir", s.dir), zap.Error(err))
	return err
}

func (s *Store) setErrLocked(err error) {
	s.lastErr = err
	if err == nil {
		s.errPtr.Store(nil)
	} else {
		s.errPtr.Store(&err)
	}
}

// Status describes the store for /readyz: ok, and a sentence either way.
func (s *Store) Status() (bool, string) {
	cur, err := s.Current(), s.Err()
	switch {
	case cur == nil && err != nil:
		return false, fmt.Sprintf("policy: no policy set loaded from %s: %v", s.dir, err)
	case cur == nil:
		return false, fmt.Sprintf("policy: no policy set loaded from %s yet", s.dir)
	case err != nil:
		return false, fmt.Sprintf("policy: reload from %s failed, generation %d stays in force (policy digest %s): %v", s.dir, cur.Generation, cur.Digest, err)
	}
	return true, fmt.Sprintf("policy: generation %d loaded from %s (policy digest %s)", cur.Generation, s.dir, cur.Digest)
}

func slicesClone[T any](s []T) []T { return append([]T(nil), s...) }

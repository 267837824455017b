package gate

import (
	"context"
	"slices"
	"time"

	"go.uber.org/zap"

	"tollgate.dev/tollgate/daemon/audit"
	"tollgate.dev/tollgate/daemon/evidence"
	"tollgate.dev/tollgate/daemon/metrics"
	"tollgate.dev/tollgate/daemon/policystore"
	"tollgate.dev/tollgate/policy"
)

// PolicySource hands out the policy set in force. Current must be cheap (an atomic load):
// the hook calls it on every decision. It returns nil while no set has ever loaded.
// daemon/policystore.Store implements it.
type PolicySource interface {
	Current() *policystore.Snapshot
}

// Refresher fills local evidence from a registry; *evidence.Registry implements it.
type Refresher interface {
	Refresh(ctx context.Context, repo string, digests []string) (int, error)
}

// AuditSink receives every decision; *audit.Writer implements it. Log must not block.
type AuditSink interface {
	Log(audit.Entry) bool
}

// Gate decides whether containers may start. Decide is the NRI hook's hot path: a cache hit
// costs a few map reads; a miss verifies against local evidence under a hard deadline, and
// when the node has no evidence that verifies it waits, within the same deadline, for the
// image's pre-verification (which fetches from the registry) rather than answer "pending"
// while the answer is a few milliseconds away. Preverify runs outside the hook (image
// events, start-up) and may fetch evidence from the registry into the disk cache; it runs
// once per image content and policy generation, whatever names the content was pulled
// under. Identical in-flight checks are coalesced, so N callers for one image cause one
// verification.
//
// Infrastructure failures (a disk error, a registry outage, a deadline) deny or are
// reported, but are never cached: only verdicts computed from evidence are.
type Gate struct {
	policies   PolicySource
	local      []evidence.Source
	registry   Refresher
	metrics    *metrics.Metrics
	audit      AuditSink
	log        *zap.Logger
	clock      func() time.Time
	node       string
	policyErr  func() error
	allowTTL   time.Duration
	denyTTL    time.Duration
	verifyTime time.Duration

	cache *decisionCache

	// The evidence index and the fetch records are per repository and digest set, as the
	// disk cache is: a fetch through one repository says nothing about another's evidence.
	index    *evidenceIndex // local evidence version last read
	fetched  *evidenceIndex // when a registry fetch last succeeded
	failures *evidenceIndex // why and when a registry fetch last failed (messages only)

	verifies    flights[imageKey, verifyResult] // against local evidence
	preverifies flights[imageKey, checkResult]  // local, then the registry; one audit record
	fetches     flights[fetchKey, error]

	fetchSlots    chan struct{}
	verifySlots   chan struct{} // policy evaluations running at once (memory: see docs/performance.md)
	maxBackground int           // pre-verifications the hook may start
}

// Option configures a Gate.
type Option func(*Gate)

// WithEvidenceSources sets the local evidence sources, searched in order (the node
// evidence directory, then the disk cache). Sources must not touch the network: the hook
// reads them.
func WithEvidenceSources(s ...evidence.Source) Option {
	return func(g *Gate) { g.local = s }
}

// WithRegistry sets where Preverify fetches evidence the node lacks. The Refresher must
// store what it finds where a local source reads it (the disk cache).
func WithRegistry(r Refresher) Option { return func(g *Gate) { g.registry = r } }

// WithTTL sets how long allow and deny verdicts are reused (0 disables caching of that kind).
func WithTTL(allow, deny time.Duration) Option {
	return func(g *Gate) { g.allowTTL, g.denyTTL = allow, deny }
}

// WithVerifyTimeout bounds one background verification or fetch (default 60s).
func WithVerifyTimeout(d time.Duration) Option { return func(g *Gate) { g.verifyTime = d } }

// WithCacheSize bounds the decision cache (default 50,000 decisions).
func WithCacheSize(n int) Option {
	return func(g *Gate) { g.cache = newDecisionCache(n); g.index = newEvidenceIndex(n) }
}

// WithMetrics sets the metrics to update (default: a private set).
func WithMetrics(m *metrics.Metrics) Option { return func(g *Gate) { g.metrics = m } }

// WithAudit sets where every decision is recorded.
func WithAudit(a AuditSink) Option { return func(g *Gate) { g.audit = a } }

// WithLogger sets the logger.
func WithLogger(l *zap.Logger) Option { return func(g *Gate) { g.log = l } }

// WithClock sets the time source for TTLs and policy evaluation (tests).
func WithClock(now func() time.Time) Option { return func(g *Gate) { g.clock = now } }

// WithNodeName names the node in audit records.
func WithNodeName(n string) Option { return func(g *Gate) { g.node = n } }

// WithPolicyError reports why no policy set is loaded, for the denial message.
func WithPolicyError(f func() error) Option { return func(g *Gate) { g.policyErr = f } }

// WithFetchConcurrency bounds concurrent registry fetches (default 4).
func WithFetchConcurrency(n int) Option {
	return func(g *Gate) { g.fetchSlots = make(chan struct{}, max(n, 1)) }
}

// WithVerifyConcurrency bounds the policy evaluations running at once (default 2). Each
// may hold an image's evidence several times over while it parses it, so the bound, not
// the number of images on the node, sets the daemon's peak memory.
func WithVerifyConcurrency(n int) Option {
	return func(g *Gate) { g.verifySlots = make(chan struct{}, max(n, 1)) }
}

// New returns a Gate deciding with the policies p hands out.
func New(p PolicySource, opts ...Option) *Gate {
	g := &Gate{
		policies:      p,
		clock:         time.Now,
		allowTTL:      10 * time.Minute,
		denyTTL:       30 * time.Second,
		verifyTime:    60 * time.Second,
		maxBackground: 1024,
		log:           zap.NewNop(),
		policyErr:     func() error { return nil },
	}
	WithCacheSize(50_000)(g)
	WithFetchConcurrency(4)(g)
	WithVerifyConcurrency(2)(g)
	g.fetched = newEvidenceIndex(4096)
	g.failures = newEvidenceIndex(4096)
	for _, o := range opts {
		o(g)
	}
	if g.metrics == nil {
		g.metrics = metrics.New("")
	}
	g.metrics.RegisterCacheEntries(func() float64 { return float64(g.cache.len()) })
	return g
}

// CacheLen is the number of cached decisions.
func (g *Gate) CacheLen() int { return g.cache.len() }

// Decide decides req inside the NRI hook. The hook's deadline is ctx's, set once by the
// caller (package plugin: --hook-deadline, cut short before containerd's own request
// timeout): Decide returns by then, and never allows because something went wrong: the
// deadline, a disk error or a missing policy set deny (with a message that says which).
// The returned Decision shares slices with the cache: callers must not modify it.
func (g *Gate) Decide(ctx context.Context, req policy.Request) policy.Decision {
	start := g.clock()
	snap := g.policies.Current()
	if snap == nil || snap.Policies == nil {
		d := noPolicyDecision(&req.Image, g.policyErr())
		g.record(ctx, PathHook, &req, &d, reasonNoPolicySet, start, false, 0)
		return d
	}
	ik := makeImageKey(&req.Image, snap.Generation)
	if d, ok := g.cached(&req.Image, ik, start); ok {
		g.metrics.CacheHit()
		g.record(ctx, PathHook, &req, &d, "", start, true, snap.Generation)
		return d
	}
	g.metrics.CacheMiss()
	d, why := g.decideMiss(ctx, &req, snap, ik)
	g.record(ctx, PathHook, &req, &d, why, start, false, snap.Generation)
	return d
}

// cached returns the live verdict on img's content, if the cache holds one for the local
// evidence last read.
func (g *Gate) cached(img *policy.Image, ik imageKey, now time.Time) (policy.Decision, bool) {
	ie, ok := g.index.get(ik.evidenceHash(), img.Repository, img.Digests)
	if !ok {
		return policy.Decision{}, false
	}
	k := cacheKey{imageKey: ik, evidence: ie.version}
	return g.cache.get(&k, img.Digests, now.UnixNano())
}

// decideMiss verifies against local evidence, waiting at most until ctx is done. The
// verification itself runs on (coalesced, detached), and caches its verdict for the next
// caller when it ends. When no local evidence verifies and the registry may hold some, it
// waits, within the same deadline, for the image's pre-verification: the one the pull
// started, or one it starts. Only one that cannot finish in time is answered "pending".
func (g *Gate) decideMiss(ctx context.Context, req *policy.Request, snap *policystore.Snapshot, ik imageKey) (policy.Decision, string) {
	begin := time.Now()
	imageReq := policy.Request{Image: req.Image}
	imageReq.Image.Digests = slices.Clone(req.Image.Digests) // the flight may outlive this call
	f := g.verifies.do(ik, 0, func() verifyResult { return g.verifyLocal(imageReq, snap, ik) }, verifyPanic)
	if !waitDone(ctx, f.done) {
		return deadlineDecision(ctx, &req.Image, time.Since(begin)), reasonDeadline
	}
	r := f.val
	if r.needFetch {
		if pf := g.hookPreverify(req.Image, snap, ik); pf != nil {
			switch {
			case !waitDone(ctx, pf.done):
				if r.err == nil && r.local == 0 {
					return pendingDecision(&req.Image, r.decision, nil, time.Since(pf.started)), reasonPending
				}
			case pf.val.err == nil:
				return pf.val.decision, "" // the verdict on what the registry held
			case g.lastFetchFailure(&req.Image) == nil:
				// It failed, and not at the registry: its answer says why.
				return pf.val.decision, reasonInfrastructure
			}
			// The fetch failed (its cause explains the pending answer below), or the node's
			// own evidence answers while the fetch goes on.
		}
	}
	switch {
	case r.err != nil:
		return g.infraDecision(req, snap, r.err), reasonInfrastructure
	case r.needFetch && r.local == 0:
		// Nothing on the node: enforce denies saying so, audit allows and reports.
		return pendingDecision(&req.Image, r.decision, g.lastFetchFailure(&req.Image), 0), reasonPending
	}
	return r.decision, ""
}

// waitDone waits for done until ctx ends (the hook's deadline), and reports whether done
// came.
func waitDone(ctx context.Context, done <-chan struct{}) bool {
	select {
	case <-done:
		return true
	default:
	}
	select {
	case <-done:
		return true
	case <-ctx.Done():
		return false
	}
}

// record accounts for one decision: latency, counters, logs and the audit log. When the
// caller answers the runtime itself (ctx carries an audit.Call: the NRI plugin), the audit
// record goes to the call, and the caller writes it with what the runtime was told
// (Answered); a record the caller no longer waits for is dropped, as the caller's says so.
func (g *Gate) record(ctx context.Context, path string, req *policy.Request, d *policy.Decision, why string, start time.Time, cached bool, gen uint64) {
	lat := g.clock().Sub(start)
	g.metrics.DecisionDuration(path == PathHook, lat)
	if path == PathHook {
		g.metrics.Decision(d, why)
	}
	g.logDecision(path, req, d, cached || summarised(ctx))
	e := audit.Entry{
		Time: start, Node: g.node, Path: path, Request: *req, Decision: *d,
		Latency: lat, Cached: cached, Generation: gen,
	}
	if call := audit.CallFrom(ctx); call != nil && path == PathHook {
		call.Fill(e)
		return
	}
	g.writeAudit(e)
}

// Answered writes the audit record of one hook call, as the NRI plugin completed it with
// what containerd was told: exactly one per call, including calls the gate never decided
// (the image identity unknown) and answers that came too late for containerd.
func (g *Gate) Answered(e audit.Entry) {
	if e.Node == "" {
		e.Node = g.node
	}
	if e.Unanswered != "" {
		g.metrics.HookUnanswered()
		g.log.Warn("hook answer did not reach containerd in time",
			zap.String("image", e.Request.Image.Ref), zap.String("namespace", e.Request.Namespace),
			zap.String("pod", e.Request.Pod), zap.String("container", e.Request.Container),
			zap.String("decided", string(e.Decision.Outcome)), zap.String("why", e.Unanswered))
	}
	g.writeAudit(e)
}

func (g *Gate) writeAudit(e audit.Entry) {
	if g.audit != nil && !g.audit.Log(e) {
		g.metrics.AuditDropped()
	}
}

// summaryKey marks a context whose decisions a pass summarises in one log line (the re-check
// after a policy reload): they are logged at debug level, like cached repeats.
type summaryKey struct{}

func withSummary(ctx context.Context) context.Context {
	return context.WithValue(ctx, summaryKey{}, true)
}

func summarised(ctx context.Context) bool {
	b, _ := ctx.Value(summaryKey{}).(bool)
	return b
}

// logDecision logs what an operator wants to see: denials, audit failures, exemptions and
// every break-glass allowance. Repeats of routine outcomes (cached, or summarised by a
// re-check) stay at debug level.
func (g *Gate) logDecision(path string, req *policy.Request, d *policy.Decision, cached bool) {
	lvl := zap.DebugLevel
	switch d.Outcome {
	case policy.BreakGlass:
		lvl = zap.WarnLevel // explicit and logged every time, by design
	case policy.Denied, policy.AuditFail, policy.Exempt:
		if !cached {
			lvl = zap.InfoLevel
		}
	case policy.Unmatched:
		if !d.Allowed && !cached {
			lvl = zap.InfoLevel
		}
	}
	ce := g.log.Check(lvl, "decision")
	if ce == nil {
		return
	}
	ce.Write(
		zap.String("path", path),
		zap.String("outcome", string(d.Outcome)),
		zap.Bool("allowed", d.Allowed),
		zap.String("mode", string(d.Mode)),
		zap.String("policy", d.Policy),
		zap.String("image", req.Image.Name()),
		zap.String("config_digest", req.Image.ConfigDigest),
		zap.String("namespace", req.Namespace),
		zap.String("pod", req.Pod),
		zap.String("container", req.Container),
		zap.Bool("cached", cached),
		zap.String("message", d.Message),
	)
}

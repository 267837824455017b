package gate

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"tollgate.dev/tollgate/daemon/evidence"
	"tollgate.dev/tollgate/daemon/policystore"
	"tollgate.dev/tollgate/policy"
	"tollgate.dev/tollgate/policy/policydiff"
)

// verifyResult is what one (coalesced) verification against local evidence found.
type verifyResult struct {
	decision policy.Decision
	local    int   // local evidence files found
	cached   bool  // decision is the cache's verdict on this very evidence
	err      error // infrastructure: never a verdict, never cached
	// needFetch says the registry may hold evidence that changes the verdict, or the disk
	// cache could not be read (err is set) and a fetch would replace what it holds; and no
	// fetch succeeded recently: the decision is provisional, and one is due.
	needFetch bool
}

func verifyPanic(r any) verifyResult { return verifyResult{err: panicError(r)} }

// fetchKey coalesces registry fetches: one per repository and digest set.
type fetchKey struct {
	repo    string
	digests string
}

var errNoPolicy = errors.New("no policy set is loaded")

// stopGrace is how long a pre-verification waits past the verify timeout for its
// verification to report that it stopped there.
const stopGrace = 100 * time.Millisecond

// verifyLocal checks req against each local source in order and stops at the first that
// verifies (DESIGN §4); failing that, the first failure is the verdict. It runs detached
// from any caller, bounded by the verify timeout.
func (g *Gate) verifyLocal(req policy.Request, snap *policystore.Snapshot, ik imageKey) verifyResult {
	ctx, cancel := context.WithTimeout(context.Background(), g.verifyTime)
	defer cancel()
	release, err := g.verifySlot(ctx)
	if err != nil {
		return verifyResult{err: err}
	}
	defer release()
	digests := req.Image.Digests
	if where := g.crashQuarantined(&req.Image); where != "" {
		return verifyResult{err: fmt.Errorf("its evidence was quarantined because evaluating it crashed tollgated: inspect %s, then remove it to fetch and evaluate the evidence again (or exempt or revoke the image)", where)}
	}
	evs, files, src, err := g.loadLocal(ctx, &req.Image)
	if err != nil {
		// Unreadable fetched evidence (over a limit, damaged) would deny the image until
		// pruning: a fetch replaces it. At most one per deny TTL after a success; but an
		// entry found damaged (moved aside by the cache) is fetched again at once, or its
		// absence would pass for the registry's answer.
		if errors.Is(err, evidence.ErrDamaged) {
			g.fetched.del(evidenceHash(req.Image.Repository, digestSetHash(digests)))
		}
		refetch := registryFilled(src) && ctx.Err() == nil && g.canFetch(&req.Image, g.clock())
		return verifyResult{err: err, needFetch: refetch}
	}
	version := combineVersions(evs)
	now := g.clock()
	g.index.set(ik.evidenceHash(), req.Image.Repository, digests, version, now.UnixNano())
	k := cacheKey{imageKey: ik, evidence: version}
	if d, ok := g.cache.get(&k, digests, now.UnixNano()); ok {
		return verifyResult{decision: d, local: files, cached: true}
	}
	if files > 0 {
		done, err := g.markEvaluating(&req.Image)
		if err != nil {
			return verifyResult{err: err}
		}
		defer done()
	}
	// The first source whose evidence verifies decides (DESIGN §4); with no evidence on the
	// node, the policy still decides: exemptions, unmatched images and break-glass need none.
	ge := &gateEvaluator{g: g, snap: snap, ctx: ctx}
	d := policydiff.Decide(ge, req, evs, now)
	if ge.err != nil {
		return verifyResult{err: ge.err}
	}
	needFetch := failedVerification(&d) && g.canFetch(&req.Image, now)
	if files > 0 || !needFetch {
		// A verdict from the node's evidence, or one a fetch cannot change: reusable. A
		// verdict on no evidence while a fetch is due is provisional and not cached.
		g.store(k, digests, &d, now)
	}
	return verifyResult{decision: d, local: files, needFetch: needFetch}
}

// verifySlot takes one of the slots that bound the evaluations running at once, before
// any evidence is read: what bounds memory is how many evidence sets are loaded and parsed
// at once. release gives it back.
func (g *Gate) verifySlot(ctx context.Context) (release func(), err error) {
	select {
	case g.verifySlots <- struct{}{}:
		return func() { <-g.verifySlots }, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("no verification slot within %v: %d verifications already run (%w)",
			g.verifyTime, cap(g.verifySlots), ctx.Err())
	}
}

// loadLocal reads img's evidence from each local source, in order. On error it returns the
// source that failed.
func (g *Gate) loadLocal(ctx context.Context, img *policy.Image) (evs []policy.Evidence, files int, failed evidence.Source, err error) {
	evs = make([]policy.Evidence, len(g.local))
	for i, src := range g.local {
		ev, err := src.Load(ctx, img.Repository, img.Digests)
		if err != nil {
			return nil, 0, src, fmt.Errorf("cannot read evidence from the %s: %w", src.Name(), err)
		}
		evs[i] = ev
		files += len(ev.Files)
	}
	return evs, files, nil, nil
}

// decideLocal decides img under snap from the node's own evidence only: no cache, no
// registry fetch, no record. The re-check after a reload asks it what the policies the
// reload replaced decided, on the same evidence as the new ones.
func (g *Gate) decideLocal(ctx context.Context, img policy.Image, snap *policystore.Snapshot) (policy.Decision, error) {
	release, err := g.verifySlot(ctx)
	if err != nil {
		return policy.Decision{}, err
	}
	defer release()
	evs, _, _, err := g.loadLocal(ctx, &img)
	if err != nil {
		return policy.Decision{}, err
	}
	return policydiff.Decide(snap.Policies, policy.Request{Image: img}, evs, g.clock()), nil
}

// gateEvaluator runs snap's policies for policydiff.Decide, bounded by ctx (the verify
// timeout), counting each verification's failures. The first evaluation stopped at the
// deadline is kept in err, and the evaluations after it are not run.
type gateEvaluator struct {
	g    *Gate
	snap *policystore.Snapshot
	ctx  context.Context
	err  error
}

func (e *gateEvaluator) Evaluate(req policy.Request, ev policy.Evidence, now time.Time) policy.Decision {
	if e.err != nil {
		return policy.Decision{}
	}
	d, err := e.g.evaluate(e.ctx, e.snap, req, ev, now)
	e.err = err
	return d
}

// crashRecorder is a source that records which evidence is under evaluation, so that
// evidence the daemon died evaluating is quarantined at the next start (the disk cache).
type crashRecorder interface {
	Evaluating(repo string, digests []string) (done func(), err error)
	CrashQuarantined(repo string, digests []string) string
}

func (g *Gate) crashRecorder() crashRecorder {
	for _, src := range g.local {
		if r, ok := src.(crashRecorder); ok {
			return r
		}
	}
	return nil
}

// crashQuarantined says where img's evidence was moved when evaluating it crashed the
// daemon, or "".
func (g *Gate) crashQuarantined(img *policy.Image) string {
	if r := g.crashRecorder(); r != nil && img.Repository != "" {
		return r.CrashQuarantined(img.Repository, img.Digests)
	}
	return ""
}

// markEvaluating records that img's evidence is being evaluated, until done.
func (g *Gate) markEvaluating(img *policy.Image) (done func(), err error) {
	r := g.crashRecorder()
	if r == nil || img.Repository == "" {
		return func() {}, nil
	}
	return r.Evaluating(img.Repository, img.Digests)
}

// contextEvaluator is an Evaluator that stops at a context's deadline (*policy.Set).
type contextEvaluator interface {
	EvaluateContext(ctx context.Context, req policy.Request, ev policy.Evidence, now time.Time) policy.Decision
}

// evaluate runs the policy, bounded by ctx (the verify timeout), and counts the
// verification's failures. An evaluation stopped at the deadline is an infrastructure
// error: hostile evidence that takes longer than the timeout must not become a cached
// denial, nor an allowance.
func (g *Gate) evaluate(ctx context.Context, snap *policystore.Snapshot, req policy.Request, ev policy.Evidence, now time.Time) (policy.Decision, error) {
	var d policy.Decision
	if ce, ok := snap.Policies.(contextEvaluator); ok {
		d = ce.EvaluateContext(ctx, req, ev, now)
	} else {
		d = snap.Policies.Evaluate(req, ev, now)
	}
	if d.Stopped() || ctx.Err() != nil {
		return policy.Decision{}, fmt.Errorf("the evaluation of %s's evidence was stopped at its deadline (%v, the verify timeout): %w",
			req.Image.Name(), g.verifyTime, context.Cause(ctx))
	}
	g.metrics.Verification(&d)
	return d, nil
}

// store caches a verdict for as long as its kind, the policy and its ValidUntil allow.
func (g *Gate) store(k cacheKey, digests []string, d *policy.Decision, now time.Time) {
	if !d.Cacheable {
		return
	}
	ttl := g.denyTTL
	if verdictAllows(d) {
		ttl = g.allowTTL
	}
	if ttl <= 0 {
		return
	}
	exp := now.Add(ttl)
	if !d.ValidUntil.IsZero() {
		if !d.ValidUntil.After(now) {
			return
		}
		if d.ValidUntil.Before(exp) {
			exp = d.ValidUntil
		}
	}
	g.cache.put(k, digests, *d, exp.UnixNano(), now.UnixNano())
}

// registryFilled reports whether src holds only what registry fetches stored (the disk
// cache), so that fetching again replaces what it holds.
func registryFilled(src evidence.Source) bool {
	f, ok := src.(interface{ RegistryFilled() bool })
	return ok && f.RegistryFilled()
}

// canFetch reports whether a registry fetch may help: there is a registry, something to
// ask it for, and no fetch for these digests through this repository succeeded within the
// deny TTL (a failed fetch does not hold back the next one: its mark in g.failures only
// explains pending denials).
func (g *Gate) canFetch(img *policy.Image, now time.Time) bool {
	if g.registry == nil || len(img.Digests) == 0 || img.Repository == "" {
		return false
	}
	e, ok := g.fetched.get(evidenceHash(img.Repository, digestSetHash(img.Digests)), img.Repository, img.Digests)
	return !ok || now.UnixNano()-e.at >= max(g.denyTTL, time.Second).Nanoseconds()
}

// Bounds of what the Gate remembers about failed registry fetches.
const (
	// fetchFailureTTL is how long a failed fetch explains a pending denial. It outlasts the
	// kubelet's longest back-off between retries (5 minutes), so that every retry of a pod
	// on an air-gapped node says why; a successful fetch clears it at once.
	fetchFailureTTL = 10 * time.Minute
	maxCauseBytes   = 512 // of an error message kept for a denial
)

// fetchFailure is the last failed registry fetch for a digest set. It only explains a
// pending denial: it never decides anything, and is never cached as a verdict.
type fetchFailure struct {
	cause string
	age   time.Duration
}

// lastFetchFailure returns the last registry fetch failure for the image's digest set
// through its repository, if it is recent and no fetch has succeeded since.
func (g *Gate) lastFetchFailure(img *policy.Image) *fetchFailure {
	e, ok := g.failures.get(evidenceHash(img.Repository, digestSetHash(img.Digests)), img.Repository, img.Digests)
	if !ok {
		return nil
	}
	age := time.Duration(g.clock().UnixNano() - e.at)
	if age >= fetchFailureTTL {
		return nil
	}
	return &fetchFailure{cause: e.version, age: max(age, 0)}
}

// boundCause is err's message on one line and at most maxCauseBytes long: it goes into
// denial messages that reach the kubelet, and into memory kept per digest set.
func boundCause(err error) string {
	s := strings.Join(strings.Fields(err.Error()), " ")
	if len(s) <= maxCauseBytes {
		return s
	}
	s = s[:maxCauseBytes]
	for len(s) > 0 && !utf8.ValidString(s) { // do not cut a character in two
		s = s[:len(s)-1]
	}
	return s + "…"
}

// Preverify checks an image outside the hook, fetching evidence from the registry into the
// disk cache when the node's own does not verify. It caches the verdict for the hook and
// returns it; the error is an infrastructure failure (then nothing was cached).
//
// An image's content is pre-verified once per policy generation, whatever names it was
// pulled under (containerd records three for one pull, and announces each): a call joins
// the pre-verification in flight, or re-reads the local evidence and finds the verdict
// already made on it in the cache; only a pre-verification that made a verdict writes an
// audit record.
func (g *Gate) Preverify(ctx context.Context, img policy.Image) (policy.Decision, error) {
	req := policy.Request{Image: img}
	d, snap, err := g.decideContent(ctx, &req)
	if snap == nil {
		g.record(ctx, PathPreverify, &req, &d, reasonNoPolicySet, g.clock(), false, 0)
	}
	return d, err
}

// Check is Preverify for a container: the request's pod is recorded in the audit log. The
// plugin's audit of existing containers and the re-check after a policy reload use it.
func (g *Gate) Check(ctx context.Context, req policy.Request) (policy.Decision, error) {
	start := g.clock()
	d, snap, err := g.decideContent(ctx, &req)
	if snap == nil {
		g.record(ctx, PathRecheck, &req, &d, reasonNoPolicySet, start, false, 0)
	} else {
		g.record(ctx, PathRecheck, &req, &d, "", start, false, snap.Generation)
	}
	return d, err
}

// SyncDecider returns a Decider-shaped view of Check, for callers outside the hook that
// want a Decision only (the plugin's start-up audit): an infrastructure error becomes the
// decision it would be in the hook (deny in enforce, allow and report in audit).
func (g *Gate) SyncDecider() interface {
	Decide(ctx context.Context, req policy.Request) policy.Decision
} {
	return syncDecider{g}
}

type syncDecider struct{ g *Gate }

func (s syncDecider) Decide(ctx context.Context, req policy.Request) policy.Decision {
	d, _ := s.g.Check(ctx, req)
	return d
}

// checkResult is what one pre-verification decided; err is an infrastructure failure, and
// then decision is what the hook answers for it.
type checkResult struct {
	decision policy.Decision
	err      error
}

func checkPanic(r any) checkResult { return checkResult{err: panicError(r)} }

// decideContent returns the verdict on req's image content under the policies in force,
// from the content's pre-verification, joined if it is in flight. It returns a nil
// snapshot (and the no-policy denial) when no policy set is loaded.
func (g *Gate) decideContent(ctx context.Context, req *policy.Request) (policy.Decision, *policystore.Snapshot, error) {
	snap := g.policies.Current()
	if snap == nil || snap.Policies == nil {
		return noPolicyDecision(&req.Image, g.policyErr()), nil, errNoPolicy
	}
	ik := makeImageKey(&req.Image, snap.Generation)
	f := g.preverifyFlight(req.Image, snap, ik, summarised(ctx))
	select {
	case <-f.done:
		if f.val.err != nil && f.val.decision.Outcome == "" { // it panicked
			return g.infraDecision(req, snap, f.val.err), snap, f.val.err
		}
		return f.val.decision, snap, f.val.err
	case <-ctx.Done():
		err := fmt.Errorf("verification of %s did not finish: %w", req.Image.Name(), ctx.Err())
		return g.infraDecision(req, snap, err), snap, err
	}
}

// hookPreverify returns the pre-verification of ik's content for the hook to wait for: the
// one in flight, or a new one. The hook starts at most maxBackground at a time (past that,
// nil: the next create tries again).
func (g *Gate) hookPreverify(img policy.Image, snap *policystore.Snapshot, ik imageKey) *flight[checkResult] {
	if f := g.preverifies.join(ik); f != nil {
		return f
	}
	if g.preverifies.running() >= g.maxBackground {
		return nil
	}
	return g.preverifyFlight(img, snap, ik, false)
}

// preverifyFlight joins the pre-verification of ik's content, or starts it. It runs
// detached from every caller, bounded by the verify timeout, so that a hook that stops
// waiting at its deadline leaves it to finish, cache its verdict and write its audit
// record. It re-reads the local evidence (an image event may follow new evidence), but
// records only a verdict it made: one per content, evidence and policy generation.
//
// A flight started by a summarised caller (a policy reload's pass) logs its decision at
// debug level: the pass logs one summary line.
func (g *Gate) preverifyFlight(img policy.Image, snap *policystore.Snapshot, ik imageKey, quiet bool) *flight[checkResult] {
	img.Digests = slices.Clone(img.Digests) // the flight may outlive the caller
	return g.preverifies.do(ik, 0, func() checkResult {
		start := g.clock()
		// A little past the verifications' own timeout, so that one stopped there says so
		// (the evaluation stopped at its deadline) rather than that it did not finish.
		ctx, cancel := context.WithTimeout(context.Background(), g.verifyTime+stopGrace)
		defer cancel()
		if quiet {
			ctx = withSummary(ctx)
		}
		req := policy.Request{Image: img}
		d, cached, err := g.verifyFetching(ctx, &req, snap, ik)
		if !cached {
			// A verdict served from the cache for the same evidence was recorded when it
			// was made: another name of the same pull, or the same image pulled again.
			g.record(ctx, PathPreverify, &req, &d, "", start, false, snap.Generation)
		}
		return checkResult{decision: d, err: err}
	}, checkPanic)
}

// verifyFetching verifies req against local evidence and, when none verifies and the
// registry may hold some, fetches it and verifies again. cached says the verdict is the
// cache's, on evidence already decided.
func (g *Gate) verifyFetching(ctx context.Context, req *policy.Request, snap *policystore.Snapshot, ik imageKey) (d policy.Decision, cached bool, err error) {
	r, err := g.waitVerify(ctx, ik, 0, *req, snap)
	if r.needFetch {
		// No evidence on the node verifies, or the disk cache could not be read. After a
		// successful fetch canFetch is false for the deny TTL, so the second verification
		// never asks for another: one fetch per check at most.
		switch ferr := g.refresh(ctx, req.Image); {
		case ferr == nil:
			// Only a verification started after the fetch sees what it stored.
			r, err = g.waitVerify(ctx, ik, g.verifies.mark(), *req, snap)
		case err != nil:
			err = fmt.Errorf("%w; fetching it again failed: %w", err, ferr)
		default:
			err = ferr
		}
	}
	if err != nil {
		return g.infraDecision(req, snap, err), false, err
	}
	return r.decision, r.cached, nil
}

func (g *Gate) waitVerify(ctx context.Context, ik imageKey, minSeq uint64, req policy.Request, snap *policystore.Snapshot) (verifyResult, error) {
	f := g.verifies.do(ik, minSeq, func() verifyResult { return g.verifyLocal(req, snap, ik) }, verifyPanic)
	select {
	case <-f.done:
		return f.val, f.val.err
	case <-ctx.Done():
		return verifyResult{}, fmt.Errorf("verification of %s did not finish: %w", req.Image.Name(), ctx.Err())
	}
}

// refresh fetches the image's evidence from the registry into the disk cache, coalesced
// per repository and digest set and bounded in concurrency.
func (g *Gate) refresh(ctx context.Context, img policy.Image) error {
	ds := slices.Clone(img.Digests)
	slices.Sort(ds)
	h := evidenceHash(img.Repository, digestSetHash(img.Digests))
	fk := fetchKey{repo: img.Repository, digests: strings.Join(ds, ",")}
	f := g.fetches.do(fk, 0, func() error {
		fctx, cancel := context.WithTimeout(context.Background(), g.verifyTime)
		defer cancel()
		select {
		case g.fetchSlots <- struct{}{}:
			defer func() { <-g.fetchSlots }()
		case <-fctx.Done():
			return errors.New("registry fetch queue is full")
		}
		if _, err := g.registry.Refresh(fctx, img.Repository, img.Digests); err != nil {
			g.failures.set(h, img.Repository, img.Digests, boundCause(err), g.clock().UnixNano())
			return err
		}
		g.failures.del(h)
		g.fetched.set(h, img.Repository, img.Digests, "", g.clock().UnixNano())
		g.index.del(h) // the disk cache changed: the hook must re-read before trusting a key
		return nil
	}, panicError)
	select {
	case <-f.done:
		return f.val
	case <-ctx.Done():
		return ctx.Err()
	}
}

// combineVersions identifies the evidence of every local source at once.
func combineVersions(evs []policy.Evidence) string {
	empty := true
	for _, ev := range evs {
		empty = empty && ev.Version == ""
	}
	if empty {
		return ""
	}
	h := sha256.New()
	for _, ev := range evs {
		h.Write([]byte(ev.Version))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))
}

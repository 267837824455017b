package gate

import (
	"context"
	"fmt"
	"strings"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"tollgate.dev/tollgate/daemon/policystore"
	"tollgate.dev/tollgate/policy"
	"tollgate.dev/tollgate/policy/policydiff"
)

// rechecker runs after each policy reload, one pass at a time: it queues every image on
// the node for pre-verification under the new policies (fetching evidence a newly matching
// policy needs, before the next container of that image starts), then re-checks the
// running containers.
func (p *Preverifier) rechecker(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-p.recheckCh:
			var pre *reloadPass
			if p.images != nil {
				pre = p.preverifyImages(ctx, "policy reload")
			}
			p.recheck(ctx, pre)
		}
	}
}

// recheckPass is what one re-check found: the change each running image's decision went
// through (policydiff, the same comparison as `tollgate preview`), and the containers that
// do not pass.
type recheckPass struct {
	from, to   uint64 // policy generations compared
	containers int
	failing    int // containers that do not pass under the new policies
	summary    policydiff.Summary
	firstErr   error
}

// recheck decides every running container again under the policies in force, compares
// each image's decision with the one under the policies of the previous pass (start-up's
// before the first reload), and reports the pass in one log line: counts of images newly
// denied, newly allowed, changed, unchanged and not decided, with a few examples of each.
// Each container still gets its audit record, and each one that does not pass is counted
// in tollgate_recheck_failures_total. It never stops a container: a policy change must not
// take down running workloads. It returns the number of containers that do not pass.
// pre, when not nil, is the reload's pre-verification of the node's images: the line also
// counts the images it queued and those whose pre-verification failed, once they ended.
func (p *Preverifier) recheck(ctx context.Context, pre *reloadPass) int {
	var reqs []policy.Request
	if p.containers != nil {
		lctx, cancel := context.WithTimeout(ctx, backgroundTimeout)
		var err error
		reqs, err = p.containers.RunningContainers(lctx)
		cancel()
		if err != nil {
			p.log.Warn("re-check after policy reload: cannot list running containers", zap.Error(err))
		}
	}
	if len(reqs) > maxRecheck {
		p.log.Warn("re-check after policy reload: too many containers, checking the first ones",
			zap.Int("containers", len(reqs)), zap.Int("checked", maxRecheck))
		reqs = reqs[:maxRecheck]
	}
	base, cur := p.base.Load(), p.gate.policies.Current()
	pass := &recheckPass{to: generation(cur), from: generation(base)}
	seen := make(map[string]bool, len(reqs))
	for i := range reqs {
		if ctx.Err() != nil {
			break
		}
		p.recheckOne(ctx, &reqs[i], base, seen, pass)
	}
	if cur != nil {
		p.base.Store(cur)
	}
	pre.wait(ctx, backgroundTimeout)
	p.logPass(pass, pre)
	return pass.failing
}

func generation(s *policystore.Snapshot) uint64 {
	if s == nil {
		return 0
	}
	return s.Generation
}

// recheckOne decides one running container under the policies in force (recording it) and,
// the first time its image is seen in the pass, compares that decision with the one under
// base, from the node's own evidence.
func (p *Preverifier) recheckOne(ctx context.Context, req *policy.Request, base *policystore.Snapshot, seen map[string]bool, pass *recheckPass) {
	g := p.gate
	pass.containers++
	cctx, cancel := context.WithTimeout(ctx, backgroundTimeout)
	defer cancel()
	dec, err := g.Check(withSummary(cctx), *req)
	if err == nil && (!dec.Allowed || failedVerification(&dec)) {
		pass.failing++
		mode := string(dec.Mode)
		if mode == "" {
			mode = string(policy.Enforce)
		}
		g.metrics.RecheckFailed(mode)
	}
	k := queueKey(&req.Image)
	if seen[k] {
		return
	}
	seen[k] = true
	change := policydiff.Error
	if err == nil {
		var old *policy.Decision
		if base != nil {
			var d policy.Decision
			if d, err = g.decideLocal(cctx, req.Image, base); err == nil {
				old = &d
			}
		}
		if err == nil {
			change = policydiff.Compare(old, &dec)
		}
	}
	if err != nil && pass.firstErr == nil {
		pass.firstErr = fmt.Errorf("%s: %w", req.Image.Name(), err)
	}
	pass.summary.Add(fmt.Sprintf("%s (%s/%s %s)", req.Image.Name(), req.Namespace, req.Pod, req.Container), change)
	if change != policydiff.Unchanged {
		g.metrics.RecheckChanged(label(change))
	}
}

// logPass writes the pass's one log line: a warning when a running workload is newly
// denied, does not pass, or could not be decided.
func (p *Preverifier) logPass(pass *recheckPass, pre *reloadPass) {
	s := &pass.summary
	queued, preErrs := 0, int64(0)
	if pre != nil {
		queued, preErrs = pre.queued, pre.errs.Load()
	}
	lvl := zapcore.InfoLevel
	if s.NewlyDenied > 0 || s.Errors > 0 || pass.failing > 0 || preErrs > 0 {
		lvl = zapcore.WarnLevel
	}
	ce := p.log.Check(lvl, "re-check after policy reload: running workloads decided again (reported, never stopped)")
	if ce == nil {
		return
	}
	fields := []zap.Field{
		zap.Uint64("from_generation", pass.from), zap.Uint64("generation", pass.to),
		zap.Int("images_queued", queued), zap.Int64("preverify_errors", preErrs),
		zap.Int("containers", pass.containers), zap.Int("failing_containers", pass.failing),
		zap.Int("images", s.Images), zap.Int("newly_denied", s.NewlyDenied),
		zap.Int("newly_allowed", s.NewlyAllowed), zap.Int("changed", s.Changed),
		zap.Int("unchanged", s.Unchanged), zap.Int("errors", s.Errors),
	}
	for _, c := range []policydiff.Change{policydiff.NewlyDenied, policydiff.NewlyAllowed, policydiff.Changed, policydiff.Error} {
		if ex := s.Examples(c); len(ex) > 0 {
			fields = append(fields, zap.Strings(label(c)+"_examples", ex))
		}
	}
	if pass.firstErr != nil {
		fields = append(fields, zap.NamedError("first_error", pass.firstErr))
	}
	if err := pre.firstErr(); err != nil {
		fields = append(fields, zap.NamedError("first_preverify_error", err))
	}
	ce.Write(fields...)
}

// label spells a change as metric labels and log fields do: newly_denied.
func label(c policydiff.Change) string { return strings.ReplaceAll(string(c), "-", "_") }

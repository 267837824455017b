package gate

import (
	"context"

	"go.uber.org/zap"

	"tollgate.dev/tollgate/policy"
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
			if p.images != nil {
				p.preverifyImages(ctx, "policy reload")
			}
			if p.containers != nil {
				p.recheck(ctx)
			}
		}
	}
}

// recheck decides every running container again under the policies in force and reports
// (log, audit log, tollgate_recheck_failures_total) the ones that no longer pass. It
// never stops a container: a policy change must not take down running workloads. It
// returns the number that failed.
func (p *Preverifier) recheck(ctx context.Context) int {
	g, log := p.gate, p.log
	lctx, cancel := context.WithTimeout(ctx, backgroundTimeout)
	reqs, err := p.containers.RunningContainers(lctx)
	cancel()
	if err != nil {
		log.Warn("re-check after policy reload: cannot list running containers", zap.Error(err))
		return 0
	}
	if len(reqs) > maxRecheck {
		log.Warn("re-check after policy reload: too many containers, checking the first ones",
			zap.Int("containers", len(reqs)), zap.Int("checked", maxRecheck))
		reqs = reqs[:maxRecheck]
	}
	failed := 0
	for _, req := range reqs {
		if ctx.Err() != nil {
			break
		}
		cctx, cancel := context.WithTimeout(ctx, backgroundTimeout)
		dec, err := g.Check(cctx, req)
		cancel()
		if err != nil {
			log.Warn("re-check: cannot decide a running container", zap.String("namespace", req.Namespace),
				zap.String("pod", req.Pod), zap.String("container", req.Container), zap.Error(err))
			continue
		}
		if dec.Allowed && !failedVerification(&dec) {
			continue
		}
		failed++
		mode := string(dec.Mode)
		if mode == "" {
			mode = string(policy.Enforce)
		}
		g.metrics.RecheckFailed(mode)
		log.Warn("running container no longer passes the policy (reported, not stopped)",
			zap.String("namespace", req.Namespace), zap.String("pod", req.Pod),
			zap.String("container", req.Container), zap.String("image", req.Image.Name()),
			zap.String("outcome", string(dec.Outcome)), zap.String("policy", dec.Policy),
			zap.String("message", dec.Message))
	}
	return failed
}

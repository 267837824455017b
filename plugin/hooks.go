package plugin

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/containerd/nri/pkg/api"
	"github.com/containerd/nri/pkg/stub"
	"go.uber.org/zap"

	"tollgate.dev/tollgate/daemon/audit"
	"tollgate.dev/tollgate/policy"
)

// imageNameAnnotation holds the image reference the user asked for (set by containerd's
// CRI plugin); it names the container in messages when nothing better is known.
const imageNameAnnotation = "io.kubernetes.cri.image-name"

// session holds the NRI handlers of one connection. A fresh stub and session are made for
// every connection, so no state leaks from a connection containerd has dropped.
type session struct {
	p *Plugin

	syncOnce sync.Once
	synced   chan struct{} // closed once Synchronize has been answered

	auditMu     sync.Mutex
	auditCancel context.CancelFunc
}

// Configure subscribes to the hooks Tollgate needs. CreateContainer only on request: NRI
// counts a registered plugin as present for required_plugins whatever it subscribes to.
func (s *session) Configure(_ context.Context, _, runtime, version string) (api.EventMask, error) {
	s.p.log.Info("configured by runtime", zap.String("runtime", runtime), zap.String("version", version))
	events := api.EventMask(0)
	events.Set(api.Event_VALIDATE_CONTAINER_ADJUSTMENT)
	if s.p.createHook {
		events.Set(api.Event_CREATE_CONTAINER)
	}
	return events, nil
}

// Synchronize starts an audit of the containers that already run and answers at once:
// the audit may need the registry, and a slow or failed answer would get the plugin
// dropped (and, through required_plugins, every create on the node rejected).
func (s *session) Synchronize(_ context.Context, pods []*api.PodSandbox, ctrs []*api.Container) ([]*api.ContainerUpdate, error) {
	byID := make(map[string]*api.PodSandbox, len(pods))
	for _, pod := range pods {
		byID[pod.GetId()] = pod
	}
	if len(ctrs) > s.p.maxSyncContainers {
		s.p.log.Warn("too many containers to audit at start-up; auditing the first ones only",
			zap.Int("containers", len(ctrs)), zap.Int("limit", s.p.maxSyncContainers))
		ctrs = ctrs[:s.p.maxSyncContainers]
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.auditMu.Lock()
	s.auditCancel = cancel
	s.auditMu.Unlock()
	s.p.auditWG.Add(1)
	go func() {
		defer s.p.auditWG.Done()
		defer cancel()
		s.p.audit(ctx, byID, ctrs)
	}()
	s.syncOnce.Do(func() { close(s.synced) })
	return nil, nil
}

func (s *session) wasSynced() bool {
	select {
	case <-s.synced:
		return true
	default:
		return false
	}
}

// cancelAudit stops the start-up audit of a connection that has ended; the next
// connection audits afresh.
func (s *session) cancelAudit() {
	s.auditMu.Lock()
	defer s.auditMu.Unlock()
	if s.auditCancel != nil {
		s.auditCancel()
	}
}

// CreateContainer asks for no adjustment; the decision is taken in the validator hook.
// It is subscribed only with WithCreateContainerHook.
func (s *session) CreateContainer(context.Context, *api.PodSandbox, *api.Container) (*api.ContainerAdjustment, []*api.ContainerUpdate, error) {
	return nil, nil, nil
}

// ValidateContainerAdjustment is the gate: an error rejects the create, and its text
// reaches the kubelet and crictl inside NRI's "validator ... rejected" wrapper.
func (s *session) ValidateContainerAdjustment(ctx context.Context, req *api.ValidateContainerAdjustmentRequest) error {
	return s.p.check(ctx, req.GetPod(), req.GetContainer(), req.GetAdjust().GetMounts())
}

// check resolves and decides one container within the hook deadline and turns the
// verdict into nil (allowed) or an error carrying the decision's message.
//
// The deadline is set here, once, on ctx: every step under it (the Resolver's reads from
// containerd, the Decider's wait for a verification) returns when ctx is done, and the
// Decider answers a deadline with its own denial. There is no second timer racing it.
// Every call ends in exactly one record (see WithAnswerFunc) of what containerd was told.
// A container whose own image is allowed is then checked for the images it mounts as
// volumes (checkVolumes), among its mounts and those added by plugins before Tollgate.
func (p *Plugin) check(ctx context.Context, pod *api.PodSandbox, ctr *api.Container, added []*api.Mount) (err error) {
	start := time.Now()
	rt := ctx // the runtime's request: its deadline and cancellation are containerd's
	if budget := p.budget(ctx); budget > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, budget)
		defer cancel()
	}
	ctx, call := audit.WithCall(ctx)
	var (
		req     policy.Request
		d       policy.Decision
		decided bool
		vol     *audit.Entry // the record of an image volume, when one decides the call
	)
	defer func() {
		if r := recover(); r != nil { // nothing panics on any input; if it does, deny
			p.log.Error("denied: internal error", containerFields(pod, ctr, zap.Any("panic", r))...)
			err = fmt.Errorf("tollgate: denied %s: internal error: %v", displayName(ctr), r)
			decided = false
		}
		e, ok := call.Close()
		switch {
		case vol != nil:
			e = *vol
		case ok && decided:
		case decided: // a Decider that does not fill the call
			e = audit.Entry{Time: start, Path: "hook", Request: req, Decision: d, Latency: time.Since(start)}
		default:
			e = p.ownEntry(start, pod, ctr, err)
		}
		if why := p.unanswered(rt, start); why != "" {
			e.Unanswered = why
			if err == nil { // never let a late allowance through, should containerd still listen
				err = fmt.Errorf("tollgate: denied %s: %s", displayName(ctr), why)
			}
		}
		if p.onAnswer != nil {
			p.onAnswer(e)
		}
	}()
	req, err = p.request(ctx, p.resolver, pod, ctr)
	if err != nil {
		p.log.Warn("denied: image identity unknown", containerFields(pod, ctr, zap.Error(err))...)
		return fmt.Errorf("tollgate: denied %s: %w", displayName(ctr), err)
	}
	d, decided = p.decider.Decide(ctx, req), true
	if !d.Allowed {
		return errors.New(denyMessage(req, d))
	}
	vol, err = p.checkVolumes(ctx, p.decider, start, pod, ctr, added, d.Outcome)
	return err
}

// ownEntry is the record of a denial the plugin gave itself, without a decision from the
// Decider: the image identity unknown, or no decision within the deadline.
func (p *Plugin) ownEntry(start time.Time, pod *api.PodSandbox, ctr *api.Container, told error) audit.Entry {
	return audit.Entry{
		Time: start, Path: "hook",
		Request: policy.Request{
			Image: policy.Image{
				Ref:          displayName(ctr),
				ConfigDigest: ctr.GetImage().GetConfigDigest(),
				Digests:      nonEmpty(ctr.GetImage().GetDigest()),
			},
			Namespace: pod.GetNamespace(), Pod: pod.GetName(), Container: ctr.GetName(),
		},
		Decision: policy.Decision{Outcome: policy.Denied, Mode: policy.Enforce, Message: told.Error()},
		Latency:  time.Since(start),
	}
}

func nonEmpty(s string) []string {
	if s == "" {
		return nil
	}
	return []string{s}
}

// unanswered says why an answer ready now cannot reach containerd in time, or "". The
// request's context carries containerd's time budget from the moment the request was read;
// a request that waited unread while tollgated was stopped or starved (SIGSTOP, CPU
// throttling) has used part of that budget before it was read, which the stall clock
// measures.
func (p *Plugin) unanswered(rt context.Context, start time.Time) string {
	now := time.Now()
	dl, hasDeadline := rt.Deadline()
	switch {
	case hasDeadline && !now.Before(dl):
		return fmt.Sprintf("no answer reached containerd in time: its request deadline passed %v before the answer was ready (the create failed)",
			now.Sub(dl).Round(time.Millisecond))
	case errors.Is(rt.Err(), context.Canceled):
		return "no answer reached containerd: it closed the connection before the answer was ready (it gives up on a plugin after its plugin_request_timeout; the create failed)"
	case !hasDeadline:
		return ""
	}
	stalled := p.stalled(start)
	if stalled <= 0 {
		return ""
	}
	if left := dl.Sub(now) - stalled; left <= 0 {
		return fmt.Sprintf("no answer reached containerd in time: tollgated was stopped or starved for %v just before it read the request, "+
			"longer than what was left of containerd's %v request budget (the create failed or is refused)",
			stalled.Round(time.Millisecond), dl.Sub(start).Round(time.Millisecond))
	}
	return ""
}

// budget is the time the hook may take: the plugin's deadline, cut short so that the
// answer reaches containerd before its own request timeout (which ttrpc carries over as
// ctx's deadline). A plugin that times out is dropped and its message lost; a plugin
// that denies in time stays connected and says why.
func (p *Plugin) budget(ctx context.Context) time.Duration {
	budget := p.deadline
	if dl, ok := ctx.Deadline(); ok {
		remaining := time.Until(dl)
		guard := remaining - min(remaining/4, 250*time.Millisecond) // transit and scheduling
		if budget <= 0 || guard < budget {
			budget = max(guard, time.Millisecond)
		}
	}
	return budget
}

// request builds the policy.Request for a container.
func (p *Plugin) request(ctx context.Context, r Resolver, pod *api.PodSandbox, ctr *api.Container) (policy.Request, error) {
	if ctr == nil {
		return policy.Request{}, errors.New("the runtime sent no container")
	}
	img, err := r.Resolve(ctx, ctr)
	if err != nil {
		return policy.Request{}, fmt.Errorf("cannot establish the image identity from containerd: %w", err)
	}
	if img.ConfigDigest == "" {
		return policy.Request{}, errors.New("cannot establish the image identity from containerd: no image config digest")
	}
	return policy.Request{
		Image:     img,
		Namespace: pod.GetNamespace(),
		Pod:       pod.GetName(),
		Container: ctr.GetName(),
	}, nil
}

// denyMessage is the decision's own message, which the Gate writes for operators.
func denyMessage(req policy.Request, d policy.Decision) string {
	if d.Message != "" {
		return d.Message
	}
	return fmt.Sprintf("tollgate: denied %s: policy %q denied the image", req.Image.Name(), d.Policy)
}

// displayName names a container's image for a message before its identity is resolved:
// the reference containerd's CRI plugin recorded (or NRI's image name) and the config
// digest NRI reports, spelled as policy.Image.Name spells every image.
func displayName(ctr *api.Container) string {
	ref := ctr.GetAnnotations()[imageNameAnnotation]
	if ref == "" {
		ref = ctr.GetImage().GetName()
	}
	img := policy.Image{Ref: ref, ConfigDigest: ctr.GetImage().GetConfigDigest()}
	if img.Ref == "" && img.ConfigDigest == "" {
		return "container " + fmt.Sprintf("%q", ctr.GetName())
	}
	return img.Name()
}

func containerFields(pod *api.PodSandbox, ctr *api.Container, extra ...zap.Field) []zap.Field {
	return append([]zap.Field{
		zap.String("namespace", pod.GetNamespace()),
		zap.String("pod", pod.GetName()),
		zap.String("container", ctr.GetName()),
		zap.String("image", displayName(ctr)),
	}, extra...)
}

// audit resolves and decides every container that already ran when the plugin connected,
// and the images it mounts as volumes.
// It only reports: NRI gives no way to stop a running container from here, and the point
// is to surface what started while Tollgate was away.
func (p *Plugin) audit(ctx context.Context, pods map[string]*api.PodSandbox, ctrs []*api.Container) {
	var denied, failed int
	for _, ctr := range ctrs {
		if ctx.Err() != nil {
			return
		}
		pod := pods[ctr.GetPodSandboxId()]
		cctx, cancel := context.WithTimeout(ctx, p.syncTimeout)
		req, err := p.request(cctx, p.resolver, pod, ctr)
		var d policy.Decision
		if err == nil {
			d = p.syncDecider.Decide(cctx, req)
		}
		if err == nil && d.Allowed { // then its image volumes, reported as the hook would
			if e, verr := p.checkVolumes(cctx, p.syncDecider, time.Now(), pod, ctr, nil, d.Outcome); verr != nil {
				req, d = e.Request, e.Decision
			}
		}
		cancel()
		switch {
		case err != nil:
			failed++
			p.log.Warn("audit of running container: image identity unknown", containerFields(pod, ctr, zap.Error(err))...)
		case !d.Allowed:
			denied++
			p.log.Warn("audit of running container: it would be denied now",
				containerFields(pod, ctr, zap.String("message", denyMessage(req, d)))...)
		}
		if p.onAudit != nil {
			p.onAudit(req, d, err)
		}
	}
	p.log.Info("audit of running containers done", zap.Int("containers", len(ctrs)),
		zap.Int("would_deny", denied), zap.Int("unresolved", failed))
}

// nriLogger sends the NRI stub's log lines to zap.
type nriLogger struct{ l *zap.Logger }

func (n nriLogger) Debugf(_ context.Context, f string, a ...any) { n.l.Sugar().Debugf(f, a...) }
func (n nriLogger) Infof(_ context.Context, f string, a ...any)  { n.l.Sugar().Infof(f, a...) }
func (n nriLogger) Warnf(_ context.Context, f string, a ...any)  { n.l.Sugar().Warnf(f, a...) }
func (n nriLogger) Errorf(_ context.Context, f string, a ...any) { n.l.Sugar().Errorf(f, a...) }

// handler is what the stub serves: the session, or without CreateContainer unless
// WithCreateContainerHook asked for it. The stub logs the hooks its handler implements at
// start-up ("handles ..."), and that line must name only what Tollgate subscribes to.
func (p *Plugin) handler(s *session) any {
	if p.createHook {
		return s
	}
	return validatorOnly{s}
}

// validatorOnly is the session without CreateContainer.
type validatorOnly struct{ s *session }

func (v validatorOnly) Configure(ctx context.Context, cfg, runtime, version string) (api.EventMask, error) {
	return v.s.Configure(ctx, cfg, runtime, version)
}

func (v validatorOnly) Synchronize(ctx context.Context, pods []*api.PodSandbox, ctrs []*api.Container) ([]*api.ContainerUpdate, error) {
	return v.s.Synchronize(ctx, pods, ctrs)
}

func (v validatorOnly) ValidateContainerAdjustment(ctx context.Context, req *api.ValidateContainerAdjustmentRequest) error {
	return v.s.ValidateContainerAdjustment(ctx, req)
}

// The session implements exactly the stub interfaces below; the stub derives its
// subscriptions from them and Configure narrows them.
var (
	_ stub.ConfigureInterface                   = (*session)(nil)
	_ stub.SynchronizeInterface                 = (*session)(nil)
	_ stub.CreateContainerInterface             = (*session)(nil)
	_ stub.ValidateContainerAdjustmentInterface = (*session)(nil)
)

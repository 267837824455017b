// Package plugin connects Tollgate to containerd through NRI. It turns NRI requests into
// policy.Requests for a Decider and decisions into NRI answers, resolves the image
// identity through a Resolver, and keeps the connection up across containerd restarts.
//
// The decision is taken in ValidateContainerAdjustment. With containerd's
// default_validator and required_plugins = ["tollgate"], that hook fails closed in every
// case: the plugin absent, the plugin timing out, and every create after a timeout.
package plugin

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/containerd/nri/pkg/api"
	"github.com/containerd/nri/pkg/stub"
	"go.uber.org/zap"

	"tollgate.dev/tollgate/daemon/audit"
	"tollgate.dev/tollgate/policy"
)

// Fixed names (docs/dev/BRIEF.md): deploy and the containerd snippet depend on them.
const (
	DefaultName   = "tollgate"
	DefaultIndex  = "10"
	DefaultSocket = api.DefaultSocketPath // /var/run/nri/nri.sock
)

// Decider decides whether a container may be created. daemon/gate.Gate implements it.
// Decide must return by ctx's deadline (the hook's, which the plugin sets), denying with
// its own message when the deadline cuts a decision short: that message is what
// containerd is told.
type Decider interface {
	Decide(ctx context.Context, req policy.Request) policy.Decision
}

// Resolver determines the identity of the image a container is created from, and of each
// image it mounts as a volume, from containerd's own stores (never a registry).
// daemon/ctrd.Client implements it. Both must return by ctx's deadline.
type Resolver interface {
	Resolve(ctx context.Context, c *api.Container) (policy.Image, error)
	// ResolveVolume resolves an image volume from the digest ("sha256:<hex>") of the
	// image record target that containerd's CRI plugin names its mount after.
	ResolveVolume(ctx context.Context, target string) (policy.Image, error)
}

// AuditFunc receives the outcome of the start-up audit of one existing container: the
// decision, or the error that kept the container's image from being resolved.
type AuditFunc func(req policy.Request, d policy.Decision, err error)

// AnswerFunc receives the audit record of one hook call, once per call, saying what
// containerd was told: the Decider's record (when it filled the call's audit.Call), or the
// plugin's own (identity unknown, no decision within the deadline), with Unanswered set
// when the answer could not reach containerd in time. It must not block.
type AnswerFunc func(audit.Entry)

// Plugin is Tollgate's NRI plugin. Create it with New and call Run.
type Plugin struct {
	name, index, socket string
	decider             Decider
	syncDecider         Decider
	resolver            Resolver
	log                 *zap.Logger
	deadline            time.Duration
	syncTimeout         time.Duration
	maxSyncContainers   int
	keepConnected       bool
	createHook          bool
	minBackoff          time.Duration
	maxBackoff          time.Duration
	stableAfter         time.Duration
	watchdog            time.Duration
	onConnect           func()
	onDisconnect        func(error)
	onAudit             AuditFunc
	onAnswer            AnswerFunc
	stalled             func(at time.Time) time.Duration
	stall               *stallClock

	connected atomic.Bool
	auditWG   sync.WaitGroup
}

// Option configures a Plugin.
type Option func(*Plugin)

// WithName sets the NRI plugin name (default "tollgate"); required_plugins must name it.
func WithName(name string) Option { return func(p *Plugin) { p.name = name } }

// WithIndex sets the NRI plugin index (default "10").
func WithIndex(idx string) Option { return func(p *Plugin) { p.index = idx } }

// WithSocket sets the NRI socket path (default /var/run/nri/nri.sock).
func WithSocket(path string) Option { return func(p *Plugin) { p.socket = path } }

// WithLogger sets the logger; the NRI stub's own messages go to it too.
func WithLogger(l *zap.Logger) Option { return func(p *Plugin) { p.log = l } }

// WithDeadline bounds each hook decision (resolve + decide): it is the one deadline of
// the hook, carried by the ctx the Resolver and the Decider get. When it passes, the
// Decider denies with a message that says so. It must stay well under containerd's
// plugin_request_timeout (2s by default) so that the operator sees Tollgate's message
// rather than NRI's. Whatever it is set to, the plugin also answers just before the
// request timeout that containerd's request carries. Zero leaves only that bound.
// Default 1s; tollgated passes its --hook-deadline.
func WithDeadline(d time.Duration) Option { return func(p *Plugin) { p.deadline = d } }

// WithSyncDecider sets the Decider used for the start-up audit of running containers
// (default: the hook Decider), so the daemon can account for it apart from the hook path.
func WithSyncDecider(d Decider) Option { return func(p *Plugin) { p.syncDecider = d } }

// WithAnswerFunc receives the audit record of every hook call (the daemon wires the gate's
// Answered). A Decider that finds an audit.Call in its context fills it instead of writing
// its own record, so each call is recorded exactly once, after the plugin knows its answer.
func WithAnswerFunc(fn AnswerFunc) Option { return func(p *Plugin) { p.onAnswer = fn } }

// WithConnectionCallbacks sets functions called when the plugin has registered and
// synchronized with containerd, and when that connection is lost (metrics, /readyz).
// They must not block.
func WithConnectionCallbacks(connected func(), disconnected func(error)) Option {
	return func(p *Plugin) { p.onConnect, p.onDisconnect = connected, disconnected }
}

// New returns a Plugin that asks d about every container creation and resolves image
// identity through r.
func New(d Decider, r Resolver, opts ...Option) (*Plugin, error) {
	p := &Plugin{
		name:              DefaultName,
		index:             DefaultIndex,
		socket:            DefaultSocket,
		decider:           d,
		resolver:          r,
		log:               zap.NewNop(),
		deadline:          time.Second,
		syncTimeout:       30 * time.Second,
		maxSyncContainers: 100000,
		minBackoff:        100 * time.Millisecond,
		maxBackoff:        10 * time.Second,
		stableAfter:       10 * time.Second,
		watchdog:          stub.DefaultRegistrationTimeout + 2*stub.DefaultRequestTimeout,
		stall:             newStallClock(50 * time.Millisecond),
	}
	p.stalled = p.stall.stalled
	for _, o := range opts {
		o(p)
	}
	switch {
	case d == nil || r == nil:
		return nil, errors.New("plugin: a Decider and a Resolver are required")
	case p.name == "" || p.index == "":
		return nil, errors.New("plugin: the NRI plugin name and index must not be empty")
	case p.minBackoff <= 0 || p.maxBackoff < p.minBackoff:
		return nil, fmt.Errorf("plugin: invalid backoff %v..%v", p.minBackoff, p.maxBackoff)
	}
	if err := api.CheckPluginName(p.name); err != nil {
		return nil, fmt.Errorf("plugin: %w", err)
	}
	if err := api.CheckPluginIndex(p.index); err != nil {
		return nil, fmt.Errorf("plugin: %w", err)
	}
	if p.syncDecider == nil {
		p.syncDecider = d
	}
	return p, nil
}

// Connected reports whether the plugin is registered with containerd right now.
func (p *Plugin) Connected() bool { return p.connected.Load() }

// Run connects to containerd and serves NRI requests until ctx is cancelled. When the
// connection fails or closes (containerd restarting, or dropping the plugin after a
// timeout), Run reconnects with a bounded, jittered backoff. It returns ctx.Err() after
// the start-up audits it began have finished.
func (p *Plugin) Run(ctx context.Context) error {
	defer p.auditWG.Wait()
	stallCtx, stopStall := context.WithCancel(ctx)
	defer stopStall()
	go p.stall.run(stallCtx)
	delay := p.minBackoff
	for {
		start := time.Now()
		wasConnected, err := p.session(ctx)
		if wasConnected {
			p.setDisconnected(err)
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if wasConnected && time.Since(start) >= p.stableAfter {
			delay = p.minBackoff // a long-lived connection was lost: retry quickly
		}
		wait := jitter(delay)
		p.log.Info("NRI connection attempt ended, retrying",
			zap.String("socket", p.socket), zap.Bool("was_connected", wasConnected),
			zap.Duration("retry_in", wait), zap.Error(err))
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
		delay = min(2*delay, p.maxBackoff)
	}
}

// jitter spreads retries of many nodes over [d/2, d).
func jitter(d time.Duration) time.Duration {
	half := d / 2
	if half <= 0 {
		return d
	}
	return half + rand.N(half)
}

// session runs one NRI connection to its end. It reports whether the plugin got as far
// as being synchronized (that is, containerd counted it as present).
func (p *Plugin) session(ctx context.Context) (connected bool, err error) {
	var (
		connMu sync.Mutex
		conn   net.Conn
	)
	s := &session{p: p, synced: make(chan struct{})}
	st, err := stub.New(p.handler(s),
		stub.WithPluginName(p.name),
		stub.WithPluginIdx(p.index),
		stub.WithSocketPath(p.socket),
		stub.WithLogger(nriLogger{p.log.Named("nri")}),
		stub.WithFailurePolicy(&api.FailurePolicy{FailRequest: true, KeepConnected: p.keepConnected}),
		stub.WithDialer(func(path string) (net.Conn, error) {
			c, err := net.DialTimeout("unix", path, 5*time.Second)
			connMu.Lock()
			conn = c
			connMu.Unlock()
			return c, err
		}),
	)
	if err != nil {
		return false, fmt.Errorf("creating NRI stub: %w", err)
	}

	done := make(chan error, 1)
	go func() { done <- st.Run(ctx) }()

	// The stub waits for containerd's Configure without a timeout while holding its own
	// lock; a runtime that accepts the connection and never configures would wedge it.
	// Give up on such a stub (closing its socket) and start a fresh one.
	watchdog := time.NewTimer(p.watchdog)
	defer watchdog.Stop()
	select {
	case err = <-done:
		return s.wasSynced(), err
	case <-s.synced:
		p.setConnected()
	case <-watchdog.C:
		connMu.Lock()
		if conn != nil {
			conn.Close()
		}
		connMu.Unlock()
		return false, fmt.Errorf("not registered and synchronized with NRI within %v", p.watchdog)
	}
	err = <-done
	s.cancelAudit()
	return true, err
}

func (p *Plugin) setConnected() {
	p.connected.Store(true)
	p.log.Info("connected to containerd NRI", zap.String("socket", p.socket),
		zap.String("plugin", p.index+"-"+p.name))
	if p.onConnect != nil {
		p.onConnect()
	}
}

func (p *Plugin) setDisconnected(err error) {
	p.connected.Store(false)
	if err == nil {
		err = errors.New("connection closed")
	}
	p.log.Warn("disconnected from containerd NRI", zap.String("socket", p.socket), zap.Error(err))
	if p.onDisconnect != nil {
		p.onDisconnect(err)
	}
}

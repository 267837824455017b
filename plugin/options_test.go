package plugin

import "time"

// Options only tests use: seams for fakes and short bounds. Production code configures
// through the options in the package itself.

// WithSyncTimeout bounds the audit of each existing container (default 30s). The audit
// runs outside NRI's lock, so it may fetch evidence.
func WithSyncTimeout(d time.Duration) Option { return func(p *Plugin) { p.syncTimeout = d } }

// WithAuditFunc receives the outcome of the audit of each existing container.
func WithAuditFunc(fn AuditFunc) Option { return func(p *Plugin) { p.onAudit = fn } }

// WithBackoff sets the bounds of the jittered exponential backoff between reconnection
// attempts (default 100ms to 10s).
func WithBackoff(min, max time.Duration) Option {
	return func(p *Plugin) { p.minBackoff, p.maxBackoff = min, max }
}

// WithKeepConnected asks the runtime to keep the plugin registered after it exceeds the
// request timeout (FailurePolicy.keep_connected). Off by default: a plugin that timed out
// is dropped, every create is rejected by required_plugins, and the plugin reconnects.
func WithKeepConnected(keep bool) Option { return func(p *Plugin) { p.keepConnected = keep } }

// WithCreateContainerHook also subscribes to CreateContainer (answered with no
// adjustment). Off by default, and not needed for required_plugins: NRI counts every
// registered plugin as present whatever it subscribes to. On a runtime that does not
// honour FailurePolicy (containerd ≤ 2.4, NRI 0.12.3) a CreateContainer timeout drops the
// plugin and lets that create through, so subscribing only adds a fail-open path.
func WithCreateContainerHook(on bool) Option { return func(p *Plugin) { p.createHook = on } }

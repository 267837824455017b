package admission

import (
	"time"

	"tollgate.dev/tollgate/daemon/policystore"
	"tollgate.dev/tollgate/daemon/registry"
)

// Options only tests use: seams for fakes and short bounds. Production code configures
// through the options in the package itself.

// WithRegistry replaces the registry client built from the configuration.
func WithRegistry(r Registry) Option { return func(s *Server) { s.reg = r } }

// WithRegistryOptions adds options to the registry client built from the configuration
// (after --insecure-registry): a keychain, a transport, timeouts.
func WithRegistryOptions(opts ...registry.Option) Option {
	return func(s *Server) { s.regOpts = append(s.regOpts, opts...) }
}

// WithClock sets the time source of policy evaluation and the caches (tests).
func WithClock(now func() time.Time) Option { return func(s *Server) { s.now = now } }

// WithWatchOptions tunes the policy directory watch.
func WithWatchOptions(w policystore.WatchOptions) Option { return func(s *Server) { s.watch = w } }

// ReloadCertificate re-reads the certificate files now (the watch does it every
// --tls-reload-interval). It reports whether a new certificate is served.
func (s *Server) ReloadCertificate() (bool, error) { return s.certs.reload() }

// ReloadPolicy re-reads the policy directory now (the watch does it on every change).
func (s *Server) ReloadPolicy() (bool, error) { return s.store.Reload() }

// Addr returns the address a listener is bound to once Serve runs ("webhook" or
// "metrics"), or "".
func (s *Server) Addr(which string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addrs[which]
}

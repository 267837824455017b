package policystore

// Options only tests use: seams for fakes and short bounds. Production code configures
// through the options in the package itself.

// WithDirLimits replaces DefaultDirLimits.
func WithDirLimits(l DirLimits) Option { return func(s *Store) { s.limits = l } }

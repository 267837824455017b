package ctrd

import "time"

// Options only tests use: seams for fakes and short bounds. Production code configures
// through the options in the package itself.

// WithTimeout bounds each containerd call ctrd makes when the caller's context has no
// earlier deadline (default 5s).
func WithTimeout(d time.Duration) Option { return func(c *Client) { c.timeout = d } }

// WithLimits overrides DefaultLimits; zero fields keep their default.
func WithLimits(l Limits) Option {
	return func(c *Client) {
		if l.MaxBlobBytes > 0 {
			c.limits.MaxBlobBytes = l.MaxBlobBytes
		}
		if l.MaxChildren > 0 {
			c.limits.MaxChildren = l.MaxChildren
		}
		if l.MaxDepth > 0 {
			c.limits.MaxDepth = l.MaxDepth
		}
		if l.MaxNodes > 0 {
			c.limits.MaxNodes = l.MaxNodes
		}
	}
}

// newWithBackend is New over given stores (tests).
func newWithBackend(be *backend, opts ...Option) *Client {
	c := New(opts...)
	c.dial = func() (*backend, error) { return be, nil }
	return c
}

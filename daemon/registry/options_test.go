package registry

import (
	"net/http"
	"time"
)

// Options only tests use: seams for fakes and short bounds. Production code configures
// through the options in the package itself.

// WithTimeout bounds each HTTP request, body included (default DefaultTimeout). The caller's
// context bounds the whole operation.
func WithTimeout(d time.Duration) Option {
	return func(c *Client) {
		if d > 0 {
			c.timeout = d
		}
	}
}

// WithBackoff sets the first wait between retries (default DefaultBackoff); each next wait
// is three times longer.
func WithBackoff(d time.Duration) Option {
	return func(c *Client) {
		if d > 0 {
			c.backoff = d
		}
	}
}

// WithMaxArtifactBytes bounds one evidence blob (default DefaultMaxArtifactBytes).
func WithMaxArtifactBytes(n int64) Option {
	return func(c *Client) {
		if n > 0 {
			c.maxArtifactBytes = n
		}
	}
}

// WithMaxImageEvidenceBytes bounds the evidence one Fetch returns, all digests together
// (default DefaultMaxImageEvidenceBytes). The daemon fetches one digest per call and holds
// an image's digests together to the disk cache's own limits (evidence.Registry.Refresh).
func WithMaxImageEvidenceBytes(n int64) Option {
	return func(c *Client) {
		if n > 0 {
			c.maxImageEvidenceBytes = n
		}
	}
}

// WithMaxArtifacts bounds the number of evidence files one Fetch returns, and the number of
// evidence referrers it is willing to open (default DefaultMaxArtifacts).
func WithMaxArtifacts(n int) Option {
	return func(c *Client) {
		if n > 0 {
			c.maxArtifacts = n
		}
	}
}

// WithTransport replaces the base HTTP transport (default remote.DefaultTransport). The
// timeout, the insecure-list guard, retries and authentication still wrap it. Tests use it
// to inject failures; the daemon can use it to count requests.
func WithTransport(rt http.RoundTripper) Option {
	return func(c *Client) {
		if rt != nil {
			c.base = rt
		}
	}
}

// WithCircuitBreaker sets after how many failed requests in a row (timeouts, refused or
// reset connections) a registry host is no longer asked, and for how long (defaults
// DefaultCircuitFailures and DefaultCircuitCooldown). While the circuit is open, requests
// to the host fail at once with an error wrapping ErrCircuitOpen, waiting ones included;
// after the cool-down one request probes the host, and an answer closes the circuit.
func WithCircuitBreaker(failures int, cooldown time.Duration) Option {
	return func(c *Client) {
		if failures > 0 {
			c.circuitFailures = failures
		}
		if cooldown > 0 {
			c.circuitCooldown = cooldown
		}
	}
}

// WithMaxInFlight bounds the requests in flight to one registry host (default
// DefaultMaxInFlight); further requests wait for a slot, or for their context to end. A
// registry that hangs then holds at most n connections and their goroutines.
func WithMaxInFlight(n int) Option {
	return func(c *Client) {
		if n > 0 {
			c.maxInFlight = n
		}
	}
}

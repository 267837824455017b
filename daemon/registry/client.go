package registry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"tollgate.dev/tollgate/policy/refname"
)

// Defaults of the options. Evidence files are small JSON documents; the limits leave room
// for large links (many artifacts) while bounding what a hostile registry can make us hold.
// They agree with the node's memory limit: an image's evidence (its digests together, at
// most evidence.DefaultLimits.MaxTotalBytes, 16 MiB = two fetches at the per-fetch limit)
// is what one verification holds and parses; docs/operations.md ("Sizing") has the
// arithmetic.
const (
	DefaultTimeout               = 30 * time.Second
	DefaultRetries               = 3
	DefaultBackoff               = 250 * time.Millisecond
	DefaultMaxArtifactBytes      = 4 << 20
	DefaultMaxImageEvidenceBytes = 8 << 20
	DefaultMaxArtifacts          = 128
	DefaultUserAgent             = "tollgate"

	// maxBackoff caps one wait between retries, so retries stay bounded in time too.
	maxBackoff = 10 * time.Second
	// maxRetries caps WithRetries.
	maxRetries = 10
	// maxManifestBytes bounds every manifest and index this package parses itself.
	maxManifestBytes = 4 << 20
	// maxPlatforms bounds the platform manifests Resolve looks at in an index.
	maxPlatforms = 128
	// maxAttLayers is cosign's own bound on the layers of a signature or attestation image.
	maxAttLayers = 1000
)

// ErrLimitExceeded is wrapped by every error caused by a size or count limit, so callers can
// tell hostile or oversized evidence from an unreachable registry.
var ErrLimitExceeded = errors.New("evidence limit exceeded")

// ErrPlainHTTP is wrapped by the error of an operation on a registry that answers only
// plain HTTP and is not in the insecure list (WithInsecure): a refusal by configuration.
var ErrPlainHTTP = errors.New("plain HTTP refused: registry not in the insecure list")

// errPlainAttempt marks one plain-HTTP request the guard refused. go-containerregistry
// tries HTTP next to HTTPS for loopback and private hosts, so a refused HTTP attempt is
// not by itself the cause of a failure: the HTTPS attempt's error says what it was.
var errPlainAttempt = errors.New("plain HTTP not allowed for this registry")

// Client reads and writes evidence in OCI registries. It is safe for concurrent use; the
// zero value is not usable, call New.
type Client struct {
	keychain              authn.Keychain
	insecure              map[string]bool
	timeout               time.Duration
	retries               int
	backoff               time.Duration
	maxArtifactBytes      int64
	maxImageEvidenceBytes int64
	maxArtifacts          int
	maxInFlight           int
	circuitFailures       int
	circuitCooldown       time.Duration
	base                  http.RoundTripper
	userAgent             string

	gate      *hostGate         // per-host bound and circuit breaker
	transport http.RoundTripper // base wrapped by the layers of transport.go
}

// Option configures a Client.
type Option func(*Client)

// WithInsecure allows plain HTTP for exactly these registries ("host" or "host:port", as
// written in image references, e.g. "127.0.0.1:5000"). Every other registry is spoken to
// over HTTPS only, loopback and private addresses included. TLS verification is never
// turned off.
func WithInsecure(hosts ...string) Option {
	return func(c *Client) {
		for _, h := range hosts {
			if h = strings.TrimSpace(h); h == "" {
				continue
			}
			if canon, err := refname.Host(h); err == nil {
				h = canon // "localhost:05000" is listed as the host it reaches
			}
			c.insecure[strings.ToLower(h)] = true
		}
	}
}

// WithUserAgent sets the User-Agent product (default "tollgate"); go-containerregistry
// appends its own.
func WithUserAgent(ua string) Option {
	return func(c *Client) {
		if ua != "" {
			c.userAgent = ua
		}
	}
}

// WithKeychain sets where credentials come from. The default is authn.DefaultKeychain: the
// Docker config ($DOCKER_CONFIG/config.json or ~/.docker/config.json) with its credential
// helpers, then Podman's auth file.
func WithKeychain(kc authn.Keychain) Option {
	return func(c *Client) {
		if kc != nil {
			c.keychain = kc
		}
	}
}

// WithRetries sets how many times a request answered with 408, 429 or a 5xx status, or
// failed by a temporary network error, is retried (default DefaultRetries, at most 10; 0
// disables retries). Waits grow exponentially from the WithBackoff base, capped at 10s
// each; a 429 or 503 with Retry-After waits that long too (also capped at 10s).
func WithRetries(n int) Option {
	return func(c *Client) {
		c.retries = min(max(n, 0), maxRetries)
	}
}

// New returns a Client with the given options applied over the defaults.
func New(opts ...Option) *Client {
	c := &Client{
		keychain:              authn.DefaultKeychain,
		insecure:              map[string]bool{},
		timeout:               DefaultTimeout,
		retries:               DefaultRetries,
		backoff:               DefaultBackoff,
		maxArtifactBytes:      DefaultMaxArtifactBytes,
		maxImageEvidenceBytes: DefaultMaxImageEvidenceBytes,
		maxArtifacts:          DefaultMaxArtifacts,
		maxInFlight:           DefaultMaxInFlight,
		circuitFailures:       DefaultCircuitFailures,
		circuitCooldown:       DefaultCircuitCooldown,
		base:                  remote.DefaultTransport,
		userAgent:             DefaultUserAgent,
	}
	for _, o := range opts {
		o(c)
	}
	// Every answer is bounded before it is read: by the manifest bound, or the blob bound
	// where that is larger (evidence blobs come through the same transport).
	var rt http.RoundTripper = &bodyLimit{max: max(maxManifestBytes, c.maxArtifactBytes), inner: c.base}
	rt = &timeoutTransport{d: c.timeout, inner: rt}
	c.gate = newHostGate(c.maxInFlight, c.circuitFailures, c.circuitCooldown, rt)
	c.transport = &httpGuard{insecure: c.insecure, inner: c.gate}
	if c.retries > 0 {
		c.transport = newRetryAfter(c.transport)
	}
	return c
}

// remoteOptions are the go-containerregistry options of one operation.
func (c *Client) remoteOptions(ctx context.Context) []remote.Option {
	return []remote.Option{
		remote.WithContext(ctx),
		remote.WithAuthFromKeychain(c.keychain),
		remote.WithTransport(c.transport),
		remote.WithUserAgent(c.userAgent),
		remote.WithRetryBackoff(remote.Backoff{
			Duration: c.backoff, Factor: 3, Jitter: 0.1, Steps: c.retries + 1, Cap: maxBackoff,
		}),
		remote.WithRetryStatusCodes(http.StatusRequestTimeout, http.StatusTooManyRequests,
			http.StatusInternalServerError, http.StatusBadGateway,
			http.StatusServiceUnavailable, http.StatusGatewayTimeout),
		// The fallback is go-containerregistry's default; say so, since Attach relies on it.
		remote.WithReferrersTagFallback(true),
	}
}

func (c *Client) puller(ctx context.Context) (*remote.Puller, error) {
	return remote.NewPuller(c.remoteOptions(ctx)...)
}

func (c *Client) pusher(ctx context.Context) (*remote.Pusher, error) {
	return remote.NewPusher(c.remoteOptions(ctx)...)
}

// nameOptions marks registries of the insecure list so go-containerregistry tries HTTP.
// s is canonical (refname).
func (c *Client) nameOptions(s string) []name.Option {
	host, _, _ := strings.Cut(s, "/")
	if c.insecure[host] {
		return []name.Option{name.Insecure}
	}
	return nil
}

// parseReference reads an image reference in the one spelling of its registry that
// policies and caches use ("ghcr.io:0443/acme/api" asks "ghcr.io").
func (c *Client) parseReference(s string) (name.Reference, error) {
	canon, err := refname.Reference(s)
	if err != nil {
		return nil, fmt.Errorf("image reference %q: %w", s, err)
	}
	ref, err := name.ParseReference(canon, c.nameOptions(canon)...)
	if err != nil {
		return nil, fmt.Errorf("image reference %q: %w", s, err)
	}
	return ref, nil
}

func (c *Client) parseRepository(s string) (name.Repository, error) {
	canon, err := refname.Repository(s)
	if err != nil {
		return name.Repository{}, fmt.Errorf("repository %q: %w", s, err)
	}
	repo, err := name.NewRepository(canon, c.nameOptions(canon)...)
	if err != nil {
		return name.Repository{}, fmt.Errorf("repository %q: %w", s, err)
	}
	return repo, nil
}

// httpGuard refuses plain-HTTP requests to registries outside the insecure list.
// go-containerregistry falls back to HTTP on its own for loopback and private addresses;
// the guard makes the insecure list the only way to get plain HTTP.
type httpGuard struct {
	insecure map[string]bool
	inner    http.RoundTripper
}

func (g *httpGuard) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Scheme != "https" && !g.insecure[strings.ToLower(req.URL.Host)] {
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, fmt.Errorf("%s %s: %w", req.Method, req.URL.Redacted(), errPlainAttempt)
	}
	return g.inner.RoundTrip(req)
}

// timeoutTransport bounds one request, reading its body included.
type timeoutTransport struct {
	d     time.Duration
	inner http.RoundTripper
}

func (t *timeoutTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx, cancel := context.WithTimeout(req.Context(), t.d)
	resp, err := t.inner.RoundTrip(req.WithContext(ctx))
	if err != nil {
		cancel()
		return nil, err
	}
	resp.Body = &cancelOnClose{ReadCloser: resp.Body, cancel: cancel}
	return resp, nil
}

type cancelOnClose struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (c *cancelOnClose) Close() error {
	err := c.ReadCloser.Close()
	c.cancel()
	return err
}

// statusCode is the HTTP status of a registry error, or 0.
func statusCode(err error) int {
	var terr *transport.Error
	if errors.As(err, &terr) {
		return terr.StatusCode
	}
	return 0
}

// isNotFound reports a registry's "no such manifest/tag/repository" answer.
func isNotFound(err error) bool {
	return statusCode(err) == http.StatusNotFound
}

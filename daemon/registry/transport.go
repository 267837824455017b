package registry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"
)

// The transport layers every request goes through, outermost first:
//
//	retryAfter ─▶ httpGuard ─▶ hostGate ─▶ timeoutTransport ─▶ bodyLimit ─▶ base
//
// go-containerregistry reads a manifest, an index or a referrers answer whole (up to its
// own 100 MiB) before this package sees it, so the size bound is applied to the body as
// it arrives (bodyLimit), and the work a slow registry can hold is bounded per host
// (hostGate).

// Defaults of the per-registry bounds.
const (
	// DefaultMaxInFlight bounds the requests one registry host has in flight at once.
	DefaultMaxInFlight = 8
	// DefaultCircuitFailures is how many requests in a row to one host must fail (time
	// out, or find no server) before the circuit opens.
	DefaultCircuitFailures = 3
	// DefaultCircuitCooldown is how long an open circuit refuses requests before one probe
	// is let through.
	DefaultCircuitCooldown = 30 * time.Second

	// maxHosts bounds the per-host states kept; idle closed ones are dropped past it.
	maxHosts = 1024
)

// ErrCircuitOpen is wrapped by the error of a request not sent because the registry host
// failed the requests before it (see WithCircuitBreaker).
var ErrCircuitOpen = errors.New("circuit open")

// bodyLimit bounds the body of every answer to max bytes.
type bodyLimit struct {
	max   int64
	inner http.RoundTripper
}

func (t *bodyLimit) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.inner.RoundTrip(req)
	if err != nil || req.Method == http.MethodHead {
		return resp, err // a HEAD answer's Content-Length describes a body it does not send
	}
	if resp.ContentLength > t.max {
		resp.Body.Close()
		return nil, fmt.Errorf("%s %s: %w: the registry announces a %d-byte answer, over the %d-byte limit",
			req.Method, req.URL.Redacted(), ErrLimitExceeded, resp.ContentLength, t.max)
	}
	resp.Body = &limitedBody{ReadCloser: resp.Body, left: t.max, max: t.max, what: req.Method + " " + req.URL.Redacted()}
	return resp, nil
}

// limitedBody fails a read past max bytes, whatever Content-Length said.
type limitedBody struct {
	io.ReadCloser
	left, max int64
	what      string
}

func (b *limitedBody) Read(p []byte) (int, error) {
	if b.left <= 0 {
		// One byte more tells a body of exactly max bytes from a longer one.
		var one [1]byte
		if n, _ := b.ReadCloser.Read(one[:]); n == 0 {
			return 0, io.EOF
		}
		return 0, fmt.Errorf("%s: %w: the registry's answer is longer than the %d-byte limit", b.what, ErrLimitExceeded, b.max)
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.ReadCloser.Read(p)
	b.left -= int64(n)
	return n, err
}

// hostGate bounds the requests in flight per registry host and breaks the circuit to a
// host that keeps failing, so that a hung registry costs a fixed number of connections and
// goroutines instead of one per image and retry.
type hostGate struct {
	slots    int
	failures int
	cooldown time.Duration
	now      func() time.Time
	inner    http.RoundTripper

	mu    sync.Mutex
	hosts map[string]*hostState
}

type hostState struct {
	slots     chan struct{}
	failed    int           // requests failed in a row
	openUntil time.Time     // the circuit is open until then
	opened    chan struct{} // closed when the circuit opens, waking the waiters
	probing   bool          // a probe is out after the cool-down
	cause     string        // the last failure, for the refusal
}

func newHostGate(slots, failures int, cooldown time.Duration, inner http.RoundTripper) *hostGate {
	return &hostGate{slots: slots, failures: failures, cooldown: cooldown, now: time.Now, inner: inner, hosts: map[string]*hostState{}}
}

func (g *hostGate) RoundTrip(req *http.Request) (*http.Response, error) {
	host := strings.ToLower(req.URL.Host)
	h, opened, err := g.admit(host)
	if err != nil {
		closeBody(req)
		return nil, fmt.Errorf("%s %s: %w", req.Method, req.URL.Redacted(), err)
	}
	select {
	case h.slots <- struct{}{}:
	case <-opened:
		closeBody(req)
		return nil, fmt.Errorf("%s %s: %w", req.Method, req.URL.Redacted(), g.refusal(host, h))
	case <-req.Context().Done():
		closeBody(req)
		return nil, req.Context().Err()
	}
	release := sync.OnceFunc(func() { <-h.slots })
	if err := g.stillClosed(host, h, opened); err != nil { // it may have opened while we waited
		release()
		closeBody(req)
		return nil, fmt.Errorf("%s %s: %w", req.Method, req.URL.Redacted(), err)
	}
	resp, err := g.inner.RoundTrip(req)
	if err != nil {
		g.done(h, req.Context(), err) // before the slot is free, so no waiter slips past an opening circuit
		release()
		return nil, err
	}
	g.done(h, req.Context(), nil)
	resp.Body = &gatedBody{ReadCloser: resp.Body, release: release, fail: func(err error) { g.done(h, req.Context(), err) }}
	return resp, nil
}

// stillClosed returns the refusal when the circuit opened since admit.
func (g *hostGate) stillClosed(host string, h *hostState, opened chan struct{}) error {
	select {
	case <-opened:
		return g.refusal(host, h)
	default:
		return nil
	}
}

// admit returns the host's state and the channel closed when its circuit opens, or the
// refusal when it is open now.
func (g *hostGate) admit(host string) (*hostState, chan struct{}, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	h := g.hosts[host]
	if h == nil {
		if len(g.hosts) >= maxHosts {
			g.dropIdle()
		}
		h = &hostState{slots: make(chan struct{}, g.slots), opened: make(chan struct{})}
		g.hosts[host] = h
	}
	if !h.openUntil.IsZero() {
		if g.now().Before(h.openUntil) || h.probing {
			return nil, nil, g.refusalLocked(host, h)
		}
		h.probing = true // the cool-down is over: this request is the probe
	}
	return h, h.opened, nil
}

// done records how a request ended. Only a registry that does not answer counts as
// failing (a timeout, a refused or reset connection): the caller's own context ending (a
// hook deadline, a shutdown) says nothing about the registry, and a registry that answers
// wrongly (plain HTTP to an HTTPS request, an oversized body) answers fast.
func (g *hostGate) done(h *hostState, ctx context.Context, err error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	h.probing = false // an abandoned probe leaves the next request to probe
	if err != nil && ctx.Err() != nil {
		return
	}
	if err == nil || !unresponsive(err) {
		h.failed, h.openUntil = 0, time.Time{}
		return
	}
	h.failed++
	h.cause = oneLine(err)
	if h.failed >= g.failures {
		if h.openUntil.IsZero() {
			close(h.opened) // wake the requests waiting for a slot: they fail now
			h.opened = make(chan struct{})
		}
		h.openUntil = g.now().Add(g.cooldown)
	}
}

func (g *hostGate) refusal(host string, h *hostState) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.refusalLocked(host, h)
}

func (g *hostGate) refusalLocked(host string, h *hostState) error {
	return fmt.Errorf("%w: registry %s failed %d requests in a row (last: %s); not asked again before %s",
		ErrCircuitOpen, host, h.failed, h.cause, h.openUntil.UTC().Format(time.RFC3339))
}

// OpenCircuits returns the registry hosts whose circuit is open now.
func (c *Client) OpenCircuits() []string {
	g := c.gate
	g.mu.Lock()
	defer g.mu.Unlock()
	var out []string
	now := g.now()
	for host, h := range g.hosts {
		if !h.openUntil.IsZero() && now.Before(h.openUntil) {
			out = append(out, host)
		}
	}
	return out
}

// dropIdle forgets hosts with nothing in flight and a closed circuit.
func (g *hostGate) dropIdle() {
	for host, h := range g.hosts {
		if len(h.slots) == 0 && h.openUntil.IsZero() {
			delete(g.hosts, host)
		}
	}
}

// gatedBody gives the host's slot back when the body is closed or fully read, and counts
// a body that stops arriving as the registry's failure.
type gatedBody struct {
	io.ReadCloser
	release func()
	fail    func(error)
}

func (b *gatedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	switch {
	case err == io.EOF:
		b.release()
	case err != nil:
		b.release()
		b.fail(err)
	}
	return n, err
}

func (b *gatedBody) Close() error {
	err := b.ReadCloser.Close()
	b.release()
	return err
}

// unresponsive reports an error that says the registry did not answer.
func unresponsive(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, io.ErrUnexpectedEOF) {
		return true
	}
	var nerr net.Error
	return errors.As(err, &nerr) && nerr.Timeout()
}

func closeBody(req *http.Request) {
	if req.Body != nil {
		req.Body.Close()
	}
}

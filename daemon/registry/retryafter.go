package registry

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// retryAfter makes go-containerregistry's retries honour a registry's Retry-After. Its
// retry transport waits only its own exponential backoff, so a rate-limited registry
// (429, or 503 while overloaded) that asks for more time would be asked again too soon
// and keep answering 429. retryAfter holds such a response back for the time asked, at
// most maxBackoff and never past the request's context, before go-containerregistry sees
// it and applies its own backoff on top.
type retryAfter struct {
	inner http.RoundTripper
	now   func() time.Time
	sleep func(ctx context.Context, d time.Duration) error
}

func newRetryAfter(inner http.RoundTripper) *retryAfter {
	return &retryAfter{inner: inner, now: time.Now, sleep: sleepCtx}
}

func (t *retryAfter) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.inner.RoundTrip(req)
	if err != nil || (resp.StatusCode != http.StatusTooManyRequests && resp.StatusCode != http.StatusServiceUnavailable) {
		return resp, err
	}
	if d, ok := parseRetryAfter(resp.Header.Get("Retry-After"), t.now()); ok && d > 0 {
		// An ended context ends the wait; go-containerregistry then reports the context's
		// error rather than retrying.
		_ = t.sleep(req.Context(), min(d, maxBackoff))
	}
	return resp, nil
}

// parseRetryAfter reads a Retry-After value: delay-seconds or an HTTP-date (RFC 9110
// §10.2.3). A date in the past is no wait.
func parseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if secs, err := strconv.ParseUint(v, 10, 32); err == nil {
		return time.Duration(secs) * time.Second, true
	}
	if at, err := http.ParseTime(v); err == nil {
		return max(at.Sub(now), 0), true
	}
	return 0, false
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

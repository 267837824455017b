//go:build e2e

package e2e

import (
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"time"
)

// DelayProxy is a reverse proxy on a loopback port that holds every request for a fixed
// time before passing it to a registry: a registry that is slow to answer (far away,
// loaded) without changing what it serves. containerd reaches it through
// Env.AddRegistryHost, tollgated through --insecure-registry; an image pushed to the
// registry as HOST/repo:tag is pulled through the proxy as Ref(repo:tag).
type DelayProxy struct {
	Host     string // "127.0.0.1:PORT"
	srv      *httptest.Server
	delay    atomic.Int64 // nanoseconds
	requests atomic.Int64
}

// StartDelayProxy proxies to the plain-HTTP registry at target ("127.0.0.1:PORT"),
// delaying each request by delay.
func StartDelayProxy(target string, delay time.Duration) (*DelayProxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &DelayProxy{Host: ln.Addr().String()}
	p.delay.Store(int64(delay))
	rp := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: "http", Host: target})
	rp.ErrorLog = log.New(io.Discard, "", 0)
	// The registry names itself in Location headers (blob uploads, redirects); rewrite them
	// so a client that follows one stays behind the proxy.
	rp.ModifyResponse = func(resp *http.Response) error {
		if loc := resp.Header.Get("Location"); loc != "" {
			resp.Header.Set("Location", strings.Replace(loc, target, p.Host, 1))
		}
		return nil
	}
	p.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		p.requests.Add(1)
		if d := time.Duration(p.delay.Load()); d > 0 {
			t := time.NewTimer(d)
			select {
			case <-t.C:
			case <-req.Context().Done():
				t.Stop()
				return
			}
		}
		rp.ServeHTTP(w, req)
	}))
	p.srv.Listener = ln
	p.srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	p.srv.Start()
	return p, nil
}

// Ref returns Host/repoTag.
func (p *DelayProxy) Ref(repoTag string) string { return p.Host + "/" + repoTag }

// SetDelay changes the delay of the requests that arrive from now on.
func (p *DelayProxy) SetDelay(d time.Duration) { p.delay.Store(int64(d)) }

// Requests is the number of requests the proxy has received.
func (p *DelayProxy) Requests() int64 { return p.requests.Load() }

// Close stops the proxy. Idempotent.
func (p *DelayProxy) Close() {
	if p != nil && p.srv != nil {
		p.srv.CloseClientConnections()
		p.srv.Close()
		p.srv = nil
	}
}

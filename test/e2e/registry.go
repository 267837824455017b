//go:build e2e

package e2e

import (
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"

	"github.com/google/go-containerregistry/pkg/registry"
)

// Registry is an in-memory OCI registry (go-containerregistry, with the OCI 1.1 referrers
// API) serving plain HTTP on a loopback port. containerd reaches it through a hosts.toml
// (see hostsTemplate); go-containerregistry clients use plain HTTP for 127.0.0.1 by itself.
type Registry struct {
	Host    string // "127.0.0.1:PORT" (or the address given to StartRegistryAt)
	srv     *httptest.Server
	offline atomic.Bool
}

// StartRegistry starts a registry on 127.0.0.1 with a free port.
func StartRegistry() (*Registry, error) { return StartRegistryAt("127.0.0.1:0") }

// StartRegistryAt starts a registry listening on addr (HOST:PORT, port 0 for a free one),
// for clients that cannot reach loopback, such as pods on a CNI bridge.
func StartRegistryAt(addr string) (*Registry, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	r := &Registry{Host: ln.Addr().String()}
	inner := registry.New(registry.WithReferrersSupport(true), registry.Logger(log.New(io.Discard, "", 0)))
	r.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if r.offline.Load() {
			// Drop the connection without an answer, as an unreachable network would.
			if hj, ok := w.(http.Hijacker); ok {
				if conn, _, err := hj.Hijack(); err == nil {
					conn.Close()
					return
				}
			}
			http.Error(w, "offline", http.StatusServiceUnavailable)
			return
		}
		inner.ServeHTTP(w, req)
	}))
	r.srv.Listener = ln
	r.srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	r.srv.Start()
	return r, nil
}

// Ref returns Host/repoTag, e.g. Ref("e2e/app:v1") = "127.0.0.1:41234/e2e/app:v1".
func (r *Registry) Ref(repoTag string) string { return r.Host + "/" + repoTag }

// URL is "http://" + Host.
func (r *Registry) URL() string { return r.srv.URL }

// SetOffline makes every request fail by closing its connection (true) or serves again
// (false); content is kept. Use it for air-gapped and registry-outage scenarios.
func (r *Registry) SetOffline(off bool) {
	r.offline.Store(off)
	if off {
		r.srv.CloseClientConnections()
	}
}

// Close stops the registry for good. Idempotent; the environment's cleanup calls it.
func (r *Registry) Close() {
	if r != nil && r.srv != nil {
		r.srv.CloseClientConnections()
		r.srv.Close()
		r.srv = nil
	}
}

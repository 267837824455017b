package metrics

import (
	"fmt"
	"log"
	"net/http"
	"strings"
	"sync/atomic"
	"time"
)

// Health tracks what /readyz reports: the NRI connection (set by the plugin through
// SetNRIConnected) and the policy store's state.
type Health struct {
	nri       atomic.Bool
	nriSocket string
	metrics   *Metrics
	policy    StatusReporter
	checks    []StatusReporter
}

// StatusReporter says whether a part is ready, in one line either way. The policy store
// (daemon/policystore.Store) implements it.
type StatusReporter interface {
	Status() (bool, string)
}

// NewHealth reports on the NRI connection to nriSocket and on policy, and sets the
// connection gauges of m. Any of m and policy may be nil.
func NewHealth(nriSocket string, m *Metrics, policy StatusReporter) *Health {
	return &Health{nriSocket: nriSocket, metrics: m, policy: policy}
}

// AddCheck adds a part /readyz reports on (call before serving).
func (h *Health) AddCheck(r StatusReporter) { h.checks = append(h.checks, r) }

// SetNRIConnected records whether the plugin is registered with containerd. A change from
// connected to not connected counts as a disconnect.
func (h *Health) SetNRIConnected(connected bool) {
	was := h.nri.Swap(connected)
	if h.metrics != nil {
		if connected {
			h.metrics.nriConnected.Set(1)
		} else {
			h.metrics.nriConnected.Set(0)
			if was {
				h.metrics.nriDisconnects.Inc()
			}
		}
	}
}

// Ready reports whether the node gate is working (NRI connected, a policy set loaded and
// no reload error pending) and explains each part in one line.
func (h *Health) Ready() (bool, string) {
	var lines []string
	ok := true
	if h.nri.Load() {
		lines = append(lines, "nri: connected")
	} else {
		ok = false
		lines = append(lines, fmt.Sprintf("nri: not connected to containerd (%s)", h.nriSocket))
	}
	if h.policy != nil {
		pok, msg := h.policy.Status()
		ok = ok && pok
		lines = append(lines, msg)
	}
	for _, c := range h.checks {
		cok, msg := c.Status()
		ok = ok && cok
		lines = append(lines, msg)
	}
	return ok, strings.Join(lines, "\n")
}

// Handler serves /metrics, /healthz (the process is alive) and /readyz (see Ready).
func (h *Health) Handler() http.Handler {
	mux := http.NewServeMux()
	if h.metrics != nil {
		mux.Handle("GET /metrics", h.metrics.Handler())
	}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		ok, body := h.Ready()
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if !ok {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		fmt.Fprintln(w, body)
	})
	return mux
}

// NewServer returns the HTTP server for /metrics, /healthz and /readyz. The port is
// on the node's host network: every read, write and idle period is bounded, so that no
// client can hold a connection (and its file descriptor) open indefinitely. A scrape of
// /metrics is small and fast; 30s leaves ample room. errLog may be nil.
func NewServer(h http.Handler, errLog *log.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       90 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          errLog,
	}
}

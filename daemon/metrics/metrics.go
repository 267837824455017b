// Package metrics is the node gate's Prometheus metrics, and its health endpoints
// (/metrics, /healthz, /readyz). It is a leaf: the gate, the policy store and the plugin
// wiring report to it; it imports none of them.
package metrics

import (
	"net/http"
	"runtime"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"tollgate.dev/tollgate/policy"
	"tollgate.dev/tollgate/policy/reason"
)

// reasonNone is tollgate_decisions_total{reason} of a decision without a reason.
const reasonNone = "none"

// Values of tollgate_decision_duration_seconds{path}: in the NRI hook, or outside it
// (pre-verification, and the re-checks, which share its histogram).
const (
	pathHook      = "hook"
	pathPreverify = "preverify"
)

// durationBuckets run from 50µs (a cache hit) to 2s (NRI's request timeout).
var durationBuckets = []float64{
	50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3, 50e-3, 100e-3, 250e-3, 500e-3, 1, 2,
}

// Metrics holds the daemon's Prometheus collectors, in a registry of its own. Every label
// is bounded: outcomes, reason kinds, modes, paths and policy names, never image names.
type Metrics struct {
	reg *prometheus.Registry

	verificationFailures *prometheus.CounterVec
	missingAttestations  prometheus.Counter
	decisions            *prometheus.CounterVec
	duration             *prometheus.HistogramVec
	hookDuration         prometheus.Observer
	preverifyDuration    prometheus.Observer
	cacheHits            prometheus.Counter
	cacheMisses          prometheus.Counter
	registryRequests     *prometheus.CounterVec
	policyGeneration     prometheus.Gauge
	policyInfo           *prometheus.GaugeVec
	reloadErrors         prometheus.Counter
	nriConnected         prometheus.Gauge
	nriDisconnects       prometheus.Counter
	layoutExpiry         *prometheus.GaugeVec
	auditDropped         prometheus.Counter
	hookUnanswered       prometheus.Counter
	storageFaults        *prometheus.GaugeVec
	recheckFailures      *prometheus.CounterVec
	recheckChanges       *prometheus.CounterVec
	trustedRoots         *trustedRoots

	// decisionCounters caches resolved tollgate_decisions_total children, so the hot path
	// does one map read instead of hashing label values.
	mu               sync.RWMutex
	decisionCounters map[[3]string]prometheus.Counter
}

// New creates the collectors in a fresh registry (plus the Go and process collectors, for
// RSS and goroutines); version is tollgate_build_info's.
func New(version string) *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		verificationFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "intoto_verification_failures_total",
			Help: "in-toto verifications that failed, by reason kind.",
		}, []string{"reason"}),
		missingAttestations: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "intoto_missing_attestations_total",
			Help: "Verifications that found no evidence (or not the evidence a policy requires) for an image.",
		}),
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tollgate_decisions_total",
			Help: "Container admission decisions, by result (outcome), first reason and mode.",
		}, []string{"result", "reason", "mode"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "tollgate_decision_duration_seconds",
			Help:    "Time to decide, in the NRI hook and in pre-verification.",
			Buckets: durationBuckets,
		}, []string{"path"}),
		cacheHits:   prometheus.NewCounter(prometheus.CounterOpts{Name: "tollgate_cache_hits_total", Help: "Hook decisions served from the decision cache."}),
		cacheMisses: prometheus.NewCounter(prometheus.CounterOpts{Name: "tollgate_cache_misses_total", Help: "Hook decisions not in the decision cache."}),
		registryRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tollgate_registry_requests_total",
			Help: "Evidence fetches from registries, by outcome (found, not_found, error, circuit_open).",
		}, []string{"outcome"}),
		policyGeneration: prometheus.NewGauge(prometheus.GaugeOpts{Name: "tollgate_policy_generation", Help: "Generation of the policy set in force (0: none loaded)."}),
		policyInfo: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "tollgate_policy_info",
			Help: "The policy set in force, by its digest (as `tollgate policy digest` prints it); the value is its generation.",
		}, []string{"digest"}),
		reloadErrors:   prometheus.NewCounter(prometheus.CounterOpts{Name: "tollgate_policy_reload_errors_total", Help: "Policy directory loads that failed; the last good set stayed in force."}),
		nriConnected:   prometheus.NewGauge(prometheus.GaugeOpts{Name: "tollgate_nri_connected", Help: "1 while the plugin is registered with containerd's NRI."}),
		nriDisconnects: prometheus.NewCounter(prometheus.CounterOpts{Name: "tollgate_nri_disconnects_total", Help: "Times the NRI connection was lost."}),
		layoutExpiry: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "tollgate_layout_expiry_timestamp_seconds",
			Help: "Expiry of the earliest-expiring layout of each policy, as a Unix timestamp.",
		}, []string{"policy"}),
		auditDropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tollgate_audit_log_dropped_total",
			Help: "Audit log entries dropped because the writer fell behind (the hook never waits for it).",
		}),
		hookUnanswered: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tollgate_hook_unanswered_total",
			Help: "NRI hook calls whose answer never reached containerd (ready after its request deadline, or the connection gone): containerd failed the create.",
		}),
		storageFaults: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "tollgate_evidence_storage_fault",
			Help: "1 while an evidence store's directory is unusable (the disk cache deleted, an evidence directory that is not a directory), by store.",
		}, []string{"store"}),
		recheckFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tollgate_recheck_failures_total",
			Help: "Running containers whose image no longer passes after a policy reload, by mode (reported, never stopped).",
		}, []string{"mode"}),
		recheckChanges: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tollgate_recheck_changes_total",
			Help: "Running images whose decision a policy reload changed, by change (newly_denied, newly_allowed, changed, error: not decided).",
		}, []string{"change"}),
		decisionCounters: map[[3]string]prometheus.Counter{},
		trustedRoots:     &trustedRoots{now: time.Now},
	}
	m.hookDuration = m.duration.WithLabelValues(pathHook)
	// Re-checks run outside the hook like pre-verification, and share its histogram.
	m.preverifyDuration = m.duration.WithLabelValues(pathPreverify)
	build := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "tollgate_build_info",
		Help: "Build of the running daemon (always 1).",
	}, []string{"version", "goversion"})
	build.WithLabelValues(version, runtime.Version()).Set(1)
	m.reg.MustRegister(
		m.verificationFailures, m.missingAttestations, m.decisions, m.duration,
		m.cacheHits, m.cacheMisses, m.registryRequests, m.policyGeneration, m.policyInfo, m.reloadErrors,
		m.nriConnected, m.nriDisconnects, m.layoutExpiry, m.auditDropped, m.hookUnanswered, m.storageFaults, m.recheckFailures, m.recheckChanges, m.trustedRoots, build,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	// Pre-create the series an alert may look for before anything happens: increase()
	// does not see the first sample of a new series, and the first attempt to run a
	// revoked image is the one to see.
	m.verificationFailures.WithLabelValues(string(reason.MissingEvidence))
	m.verificationFailures.WithLabelValues(string(reason.Revoked))
	for _, o := range []string{"found", "not_found", "error"} {
		m.registryRequests.WithLabelValues(o)
	}
	return m
}

// Registry is the daemon's Prometheus registry, for callers that add collectors.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the registry in the Prometheus exposition format, uncompressed: a gzip
// writer holds about 1 MiB of compressor state, kept in a pool between scrapes (measured:
// 2.3 MiB of tollgated's 13 MiB live heap with 1,000 images, TestBenchMemory), to spare a
// scrape of a few kilobytes on the node's own network.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg, DisableCompression: true})
}

// RegistryRequest counts one registry request by outcome (evidence.Outcome*).
func (m *Metrics) RegistryRequest(outcome string) { m.registryRequests.WithLabelValues(outcome).Inc() }

// RegisterCacheEntries exports the size of a gate's cache. Only the first gate sharing a
// Metrics is exported (a daemon has one).
func (m *Metrics) RegisterCacheEntries(f func() float64) {
	_ = m.reg.Register(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "tollgate_cache_entries",
		Help: "Decisions held in the decision cache.",
	}, f))
}

// RegisterCacheQuarantined exports the number of evidence disk cache entries moved aside:
// damaged ones (fetched again), and those a previous run died evaluating.
func (m *Metrics) RegisterCacheQuarantined(f func() float64) {
	_ = m.reg.Register(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "tollgate_evidence_cache_quarantined_total",
		Help: "Evidence disk cache entries moved aside: found damaged (not what was fetched; fetched again), or left by an evaluation tollgated died in (the image refused until an operator removes them).",
	}, f))
}

// Decision counts one admission decision in the hook, under the reason label why (the
// gate's own reasons), or when why is empty the kind of the decision's first reason.
func (m *Metrics) Decision(d *policy.Decision, why string) {
	if why == "" {
		why = reasonLabel(d)
	}
	mode := string(d.Mode)
	if mode == "" {
		mode = "none"
	}
	k := [3]string{string(d.Outcome), why, mode}
	m.mu.RLock()
	c := m.decisionCounters[k]
	m.mu.RUnlock()
	if c == nil {
		c = m.decisions.WithLabelValues(k[0], k[1], k[2])
		m.mu.Lock()
		if len(m.decisionCounters) < 1024 { // bounded anyway; the guard is belt and braces
			m.decisionCounters[k] = c
		}
		m.mu.Unlock()
	}
	c.Inc()
}

// Verification counts the result of one policy evaluation against evidence.
func (m *Metrics) Verification(d *policy.Decision) {
	var seen [16]reason.Kind
	n, missing := 0, false
	for _, r := range d.Reasons {
		if r == nil {
			continue
		}
		dup := false
		for _, k := range seen[:n] {
			dup = dup || k == r.Kind
		}
		if dup {
			continue
		}
		if n < len(seen) {
			seen[n] = r.Kind
			n++
		}
		m.verificationFailures.WithLabelValues(string(r.Kind)).Inc()
		missing = missing || r.Kind == reason.MissingEvidence
	}
	if missing {
		m.missingAttestations.Inc()
	}
}

// PolicyLoaded records a new policy generation, its digest, and its layouts' expiries
// (nil: unknown). Only the set in force has a tollgate_policy_info series.
func (m *Metrics) PolicyLoaded(gen uint64, digest string, layoutExpiries map[string]time.Time) {
	m.policyGeneration.Set(float64(gen))
	m.policyInfo.Reset()
	m.policyInfo.WithLabelValues(digest).Set(float64(gen))
	if layoutExpiries != nil {
		m.setLayoutExpiries(layoutExpiries)
	}
}

// ReloadFailed counts a policy directory load that failed.
func (m *Metrics) ReloadFailed() { m.reloadErrors.Inc() }

// DecisionDuration observes how long one decision took, in the hook or outside it.
func (m *Metrics) DecisionDuration(hook bool, d time.Duration) {
	if hook {
		m.hookDuration.Observe(d.Seconds())
	} else {
		m.preverifyDuration.Observe(d.Seconds())
	}
}

// CacheHit counts a hook decision served from the decision cache; CacheMiss one that was not.
func (m *Metrics) CacheHit()  { m.cacheHits.Inc() }
func (m *Metrics) CacheMiss() { m.cacheMisses.Inc() }

// AuditDropped counts an audit record the writer had no room for.
func (m *Metrics) AuditDropped() { m.auditDropped.Inc() }

// StorageFault sets whether the evidence store named store ("evidence_dir", "disk_cache")
// is unusable.
func (m *Metrics) StorageFault(store string, bad bool) {
	v := 0.0
	if bad {
		v = 1
	}
	m.storageFaults.WithLabelValues(store).Set(v)
}

// HookUnanswered counts a hook call whose answer never reached containerd.
func (m *Metrics) HookUnanswered() { m.hookUnanswered.Inc() }

// RecheckFailed counts a running container that no longer passes, by mode.
func (m *Metrics) RecheckFailed(mode string) { m.recheckFailures.WithLabelValues(mode).Inc() }

// RecheckChanged counts a running image whose decision a policy reload changed.
func (m *Metrics) RecheckChanged(change string) { m.recheckChanges.WithLabelValues(change).Inc() }

func (m *Metrics) setLayoutExpiries(exp map[string]time.Time) {
	m.layoutExpiry.Reset()
	for name, t := range exp {
		m.layoutExpiry.WithLabelValues(name).Set(float64(t.Unix()))
	}
}

// reasonLabel is the tollgate_decisions_total{reason} of a decision the policy made: the
// kind of its first reason, or "none".
func reasonLabel(d *policy.Decision) string {
	for _, r := range d.Reasons {
		if r != nil && r.Kind != "" {
			return string(r.Kind)
		}
	}
	return reasonNone
}

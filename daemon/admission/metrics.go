package admission

import (
	"net/http"
	"runtime"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"tollgate.dev/tollgate/daemon"
)

// Results of a review, the values of tollgate_admission_decisions_total{result}.
const (
	ResultAllowed   = "allowed"   // every image passed (verified, exempt, or unmatched and allowed)
	ResultDenied    = "denied"    // an image failed an enforce policy
	ResultAudit     = "audit"     // allowed, with warnings from audit-mode policies or break-glass
	ResultFailOpen  = "fail_open" // allowed because an image could not be verified in time (--fail-open)
	ResultFailClose = "fail_closed"
	ResultSkipped   = "skipped"   // nothing to check: another kind, operation or subresource, or an UPDATE with no new image
	ResultMalformed = "malformed" // HTTP 400
	// ResultOverloaded: refused unread with HTTP 503, no room within the bounds on reviews
	// in flight; the webhook registration's failurePolicy decides.
	ResultOverloaded = "overloaded"
)

var allResults = []string{ResultAllowed, ResultDenied, ResultAudit, ResultFailOpen, ResultFailClose, ResultSkipped, ResultMalformed, ResultOverloaded}

// durationBuckets run from a cache hit (1ms) to past the webhook timeout (10s).
var durationBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 8, 10}

// metrics are the webhook's collectors, in a registry of its own: the node daemon's
// series (tollgate_nri_connected among them) would only mislead alerts here.
type metrics struct {
	reg       *prometheus.Registry
	decisions *prometheus.CounterVec
	duration  prometheus.Histogram
}

func newMetrics(generation func() float64) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tollgate_admission_decisions_total",
			Help: "AdmissionReviews answered by the validating webhook, by result.",
		}, []string{"result"}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "tollgate_admission_duration_seconds",
			Help:    "Time to answer one AdmissionReview, from request to response.",
			Buckets: durationBuckets,
		}),
	}
	build := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "tollgate_build_info",
		Help: "Build of the running binary (always 1).",
	}, []string{"version", "goversion"})
	build.WithLabelValues(daemon.Version, runtime.Version()).Set(1)
	m.reg.MustRegister(m.decisions, m.duration, build,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "tollgate_admission_policy_generation",
			Help: "Generation of the policy set the webhook decides with (0: none loaded).",
		}, generation),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	for _, r := range allResults {
		m.decisions.WithLabelValues(r)
	}
	return m
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

package metrics

import (
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"tollgate.dev/tollgate/policy/sigstore"
)

// trustedRootDesc is tollgate_trusted_root_remaining_seconds. It is computed at each scrape
// from the policy set in force (seconds until an instant only stay true if read now).
var trustedRootDesc = prometheus.NewDesc("tollgate_trusted_root_remaining_seconds",
	"Seconds until the newest CA or TSA of each Sigstore instance of the TrustedRoot documents stops being usable (negative once past).",
	[]string{"trusted_root", "authority"}, nil)

// TrustedRootExpiries is the source of the trusted-root metric: the policy set's
// (*policy.Set).TrustedRootExpiries.
type TrustedRootExpiries func(now time.Time) []sigstore.Expiry

// trustedRoots collects tollgate_trusted_root_remaining_seconds from the current source.
type trustedRoots struct {
	src atomic.Pointer[TrustedRootExpiries]
	now func() time.Time
}

func (c *trustedRoots) Describe(ch chan<- *prometheus.Desc) { ch <- trustedRootDesc }

func (c *trustedRoots) Collect(ch chan<- prometheus.Metric) {
	src := c.src.Load()
	if src == nil {
		return
	}
	for _, e := range (*src)(c.now()) {
		ch <- prometheus.MustNewConstMetric(trustedRootDesc, prometheus.GaugeValue, e.Seconds, e.Instance, e.Authority)
	}
}

// SetTrustedRoots makes f the source of the trusted-root metric (nil: no series), as a
// new policy set comes into force.
func (m *Metrics) SetTrustedRoots(f TrustedRootExpiries) {
	if f == nil {
		m.trustedRoots.src.Store(nil)
		return
	}
	m.trustedRoots.src.Store(&f)
}

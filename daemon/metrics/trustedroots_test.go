package metrics

import (
	"testing"
	"time"

	"tollgate.dev/tollgate/policy/sigstore"
)

// The trusted-root metric is computed at scrape time from the source the policy store set,
// and has no series without one.
func TestTrustedRootMetric(t *testing.T) {
	m := New("test")
	now := time.Unix(1_800_000_000, 0)
	m.trustedRoots.now = func() time.Time { return now }
	series := func() map[string]float64 {
		mfs, err := m.Registry().Gather()
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]float64{}
		for _, mf := range mfs {
			if mf.GetName() != "tollgate_trusted_root_remaining_seconds" {
				continue
			}
			for _, s := range mf.GetMetric() {
				labels := ""
				for _, l := range s.GetLabel() {
					labels += l.GetName() + "=" + l.GetValue() + ","
				}
				out[labels] = s.GetGauge().GetValue()
			}
		}
		return out
	}
	if got := series(); len(got) != 0 {
		t.Fatalf("series before a policy: %v", got)
	}
	end := now.Add(10 * 24 * time.Hour)
	m.SetTrustedRoots(func(at time.Time) []sigstore.Expiry {
		return []sigstore.Expiry{
			{Instance: "github", Authority: sigstore.AuthorityCA, Seconds: end.Sub(at).Seconds()},
			{Instance: "github", Authority: sigstore.AuthorityTSA, Seconds: -5},
		}
	})
	got := series()
	if got["authority=ca,trusted_root=github,"] != 864000 || got["authority=tsa,trusted_root=github,"] != -5 || len(got) != 2 {
		t.Fatalf("series = %v", got)
	}
	m.SetTrustedRoots(nil)
	if got := series(); len(got) != 0 {
		t.Fatalf("series after a policy without roots: %v", got)
	}
}

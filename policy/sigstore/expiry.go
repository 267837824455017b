package sigstore

import (
	"crypto/x509"
	"math"
	"time"

	"github.com/sigstore/sigstore-go/pkg/root"
)

// Authority kinds an Expiry reports on.
const (
	AuthorityCA  = "ca"
	AuthorityTSA = "tsa"
)

// Expiry is how long an instance's newest certificate authority (or timestamp authority)
// stays usable: the earlier of its validity end in the trusted root and the expiry of the
// certificates of its chain. New certificates can be verified only until then; GitHub's
// instance rotates both every 6 to 8 months, so a roots file not refreshed in time starts
// refusing new attestations.
type Expiry struct {
	Instance  string
	Authority string // AuthorityCA or AuthorityTSA
	// Seconds until the end; negative once past. An instance without that kind of
	// authority has no entry.
	Seconds float64
}

// Expiries returns, for each instance, the expiry of its newest CA and of its newest TSA
// ("newest": the latest validity start), as of now.
func Expiries(t *TrustedRoots, now time.Time) []Expiry {
	var out []Expiry
	for _, in := range t.Instances() {
		if end, ok := newestCA(in.root); ok {
			out = append(out, Expiry{Instance: in.Name, Authority: AuthorityCA, Seconds: until(end, now)})
		}
		if end, ok := newestTSA(in.root); ok {
			out = append(out, Expiry{Instance: in.Name, Authority: AuthorityTSA, Seconds: until(end, now)})
		}
	}
	return out
}

func until(end, now time.Time) float64 {
	if end.IsZero() {
		return math.Inf(1)
	}
	return end.Sub(now).Seconds()
}

func newestCA(tr root.TrustedMaterial) (time.Time, bool) {
	var best *root.FulcioCertificateAuthority
	for _, ca := range tr.FulcioCertificateAuthorities() {
		f, ok := ca.(*root.FulcioCertificateAuthority)
		if ok && (best == nil || f.ValidityPeriodStart.After(best.ValidityPeriodStart)) {
			best = f
		}
	}
	if best == nil {
		return time.Time{}, false
	}
	return endOf(best.ValidityPeriodEnd, append([]*x509.Certificate{best.Root}, best.Intermediates...)), true
}

func newestTSA(tr root.TrustedMaterial) (time.Time, bool) {
	var best *root.SigstoreTimestampingAuthority
	for _, ta := range tr.TimestampingAuthorities() {
		s, ok := ta.(*root.SigstoreTimestampingAuthority)
		if ok && (best == nil || s.ValidityPeriodStart.After(best.ValidityPeriodStart)) {
			best = s
		}
	}
	if best == nil {
		return time.Time{}, false
	}
	return endOf(best.ValidityPeriodEnd, append([]*x509.Certificate{best.Root, best.Leaf}, best.Intermediates...)), true
}

// endOf is the earliest of a validity end (zero: open) and the certificates' NotAfter.
func endOf(validityEnd time.Time, certs []*x509.Certificate) time.Time {
	end := validityEnd
	for _, c := range certs {
		if c != nil && (end.IsZero() || c.NotAfter.Before(end)) {
			end = c.NotAfter
		}
	}
	return end
}

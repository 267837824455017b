package admission

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
)

// maxPEMBytes bounds a certificate or key file.
const maxPEMBytes = 1 << 20

// certReloader serves the key pair read from two files and re-reads them when their
// content changes. Kubernetes updates a mounted Secret by swapping a symbolic link, and
// cert-manager renews well before expiry, so polling the content (two small reads every
// few seconds) catches every kind of update without relying on file notifications. A pair
// that does not load (the key written before the certificate, say) keeps the previous one
// in force until the next poll finds a good one.
type certReloader struct {
	certFile, keyFile string
	log               *zap.Logger

	cert    atomic.Pointer[tls.Certificate]
	mu      sync.Mutex // serializes reload
	certPEM []byte
	keyPEM  []byte
	lastErr atomic.Pointer[error]
	reloads atomic.Int64
}

func newCertReloader(certFile, keyFile string, log *zap.Logger) (*certReloader, error) {
	r := &certReloader{certFile: certFile, keyFile: keyFile, log: log}
	if _, err := r.reload(); err != nil {
		return nil, err
	}
	return r, nil
}

// GetCertificate implements tls.Config.GetCertificate.
func (r *certReloader) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	if c := r.cert.Load(); c != nil {
		return c, nil
	}
	return nil, errors.New("no serving certificate loaded")
}

// reload reads both files and, if either changed and the pair is good, swaps it in. It
// reports whether a new pair is now served.
func (r *certReloader) reload() (bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	certPEM, err := readSmall(r.certFile)
	if err == nil {
		var keyPEM []byte
		if keyPEM, err = readSmall(r.keyFile); err == nil {
			if bytes.Equal(certPEM, r.certPEM) && bytes.Equal(keyPEM, r.keyPEM) {
				r.lastErr.Store(nil)
				return false, nil
			}
			var pair tls.Certificate
			if pair, err = tls.X509KeyPair(certPEM, keyPEM); err == nil {
				pair.Leaf, err = x509.ParseCertificate(pair.Certificate[0])
			}
			if err == nil {
				r.cert.Store(&pair)
				r.certPEM, r.keyPEM = certPEM, keyPEM
				r.lastErr.Store(nil)
				r.reloads.Add(1)
				r.log.Info("serving certificate loaded", zap.String("cert", r.certFile),
					zap.Strings("dns_names", pair.Leaf.DNSNames), zap.Time("not_after", pair.Leaf.NotAfter))
				return true, nil
			}
		}
	}
	err = fmt.Errorf("serving certificate %s / key %s: %w", r.certFile, r.keyFile, err)
	r.lastErr.Store(&err)
	return false, err
}

// watch polls the files every interval until ctx is done.
func (r *certReloader) watch(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if _, err := r.reload(); err != nil {
				keep := "no certificate"
				if c := r.cert.Load(); c != nil && c.Leaf != nil {
					keep = "the previous certificate (valid until " + c.Leaf.NotAfter.UTC().Format(time.RFC3339) + ")"
				}
				r.log.Warn("serving certificate reload failed; "+keep+" stays in use", zap.Error(err))
			}
		}
	}
}

// status reports, for /readyz, whether a certificate is served and whether it is valid now.
func (r *certReloader) status(now time.Time) (bool, string) {
	c := r.cert.Load()
	if c == nil || c.Leaf == nil {
		return false, "tls: no serving certificate loaded"
	}
	msg := fmt.Sprintf("tls: serving certificate valid until %s", c.Leaf.NotAfter.UTC().Format(time.RFC3339))
	if now.After(c.Leaf.NotAfter) {
		return false, fmt.Sprintf("tls: serving certificate expired at %s", c.Leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	if p := r.lastErr.Load(); p != nil {
		msg += fmt.Sprintf(" (the last reload failed: %v)", *p)
	}
	return true, msg
}

func readSmall(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(io.LimitReader(f, maxPEMBytes+1)); err != nil {
		return nil, err
	}
	if buf.Len() > maxPEMBytes {
		return nil, fmt.Errorf("%s: over %d bytes", path, maxPEMBytes)
	}
	return buf.Bytes(), nil
}

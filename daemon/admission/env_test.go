package admission

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"tollgate.dev/tollgate/daemon"
	"tollgate.dev/tollgate/daemon/registry"
	"tollgate.dev/tollgate/policy/attest"
	"tollgate.dev/tollgate/policy/envelope"
	"tollgate.dev/tollgate/policy/keys"
)

// The test world: a real registry on loopback holding real images with real signed
// evidence, a real policy directory, and the real webhook served over real HTTPS.
//
// Repositories under <host>/ and what the registry does with them:
//
//	acme/good      SLSA v1 provenance signed by the CI key             → verified
//	acme/multi     an index (linux/amd64 + linux/arm64/v8); provenance on the amd64 manifest
//	acme/multiarm  the same shape; provenance on the arm64 manifest only
//	acme/multiboth the same shape; provenance on both manifests
//	acme/rogue     provenance signed by a key the policy does not trust → denied
//	acme/none      no evidence                                        → denied
//	acme/nofetch   image resolves, evidence requests fail with 503    → cannot verify
//	acme/down      every request fails with 503                       → cannot verify
//	acme/slow      every request hangs until the test ends            → deadline
//	acme/exempt    exempted by NodeDefaults (never asked for)
//	audit/none     audit-mode policy, no evidence                     → allowed, warned
//	anything else  no policy matches; NodeDefaults allows it

const buildType = "https://tollgate.dev/build/v1"

type world struct {
	host    string
	release chan struct{} // closing it frees the hanging requests of acme/slow
	ci      *keys.Signer
	rogue   *keys.Signer
	images  map[string]pushed // by repository path ("acme/good")

	armed    atomic.Bool // the misbehaviour starts once the content is pushed
	mu       sync.Mutex
	requests map[string]int // registry requests by repository path
}

type pushed struct {
	ref      string // host/repo:v1
	digest   string // of the manifest or index
	config   string // of the (amd64) image
	platform string // the amd64 manifest of an index
	arm      string // the arm64 manifest of an index
}

var (
	worldOnce sync.Once
	theWorld  *world
	worldErr  error
)

// sharedWorld builds the registry and its content once for the package's tests: pushing
// and signing is the slow part, and no test changes it.
func sharedWorld(t testing.TB) *world {
	t.Helper()
	worldOnce.Do(func() { theWorld, worldErr = buildWorld() })
	if worldErr != nil {
		t.Fatalf("test registry: %v", worldErr)
	}
	return theWorld
}

func buildWorld() (*world, error) {
	w := &world{release: make(chan struct{}), images: map[string]pushed{}, requests: map[string]int{}}
	var err error
	if w.ci, err = keys.Generate("ed25519", 0); err != nil {
		return nil, err
	}
	if w.rogue, err = keys.Generate("ed25519", 0); err != nil {
		return nil, err
	}
	reg := ggcrregistry.New(ggcrregistry.WithReferrersSupport(true), ggcrregistry.Logger(log.New(io.Discard, "", 0)))
	srv := httptest.NewServer(w.wrap(reg))
	// Never closed: the server lives as long as the test binary, like theWorld.
	w.host = strings.TrimPrefix(srv.URL, "http://")
	client := registry.New(registry.WithInsecure(w.host), registry.WithRetries(0))
	ctx := context.Background()
	for _, repo := range []string{"acme/good", "acme/rogue", "acme/none", "acme/nofetch", "acme/exempt", "audit/none", "acme/slow", "acme/down"} {
		p, err := w.pushImage(repo)
		if err != nil {
			return nil, err
		}
		w.images[repo] = p
	}
	for _, repo := range []string{"acme/multi", "acme/multiarm", "acme/multiboth"} {
		p, err := w.pushIndex(repo)
		if err != nil {
			return nil, err
		}
		w.images[repo] = p
	}
	attach := func(repo, subject string, s *keys.Signer) error {
		env, err := provenance(w.host+"/"+repo, subject, buildType, s)
		if err != nil {
			return err
		}
		return client.Attach(ctx, w.host+"/"+repo+"@"+subject,
			[]registry.Artifact{{Name: "provenance.dsse.json", MediaType: registry.MediaTypeDSSE, Data: env}})
	}
	if err := attach("acme/good", w.images["acme/good"].digest, w.ci); err != nil {
		return nil, err
	}
	for _, a := range []struct{ repo, subject string }{
		{"acme/multi", w.images["acme/multi"].platform},
		{"acme/multiarm", w.images["acme/multiarm"].arm},
		{"acme/multiboth", w.images["acme/multiboth"].platform},
		{"acme/multiboth", w.images["acme/multiboth"].arm},
	} {
		if err := attach(a.repo, a.subject, w.ci); err != nil {
			return nil, err
		}
	}
	if err := attach("acme/rogue", w.images["acme/rogue"].digest, w.rogue); err != nil {
		return nil, err
	}
	w.armed.Store(true)
	return w, nil
}

// wrap makes the registry misbehave for some repositories, and counts requests.
func (w *world) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		repo := repoOfPath(r.URL.Path)
		if w.armed.Load() {
			w.mu.Lock()
			w.requests[repo]++
			w.mu.Unlock()
		}
		switch {
		case !w.armed.Load():
		case repo == "acme/down":
			http.Error(rw, "registry down for maintenance", http.StatusServiceUnavailable)
			return
		case repo == "acme/nofetch" && (strings.Contains(r.URL.Path, "/referrers/") || strings.Contains(r.URL.Path, "/manifests/sha256-")):
			http.Error(rw, "referrers unavailable", http.StatusServiceUnavailable)
			return
		case repo == "acme/slow":
			select {
			case <-w.release:
			case <-r.Context().Done():
			}
			http.Error(rw, "too slow", http.StatusServiceUnavailable)
			return
		}
		h.ServeHTTP(rw, r)
	})
}

func (w *world) count(repo string) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.requests[repo]
}

// repoOfPath returns "acme/good" for /v2/acme/good/manifests/v1.
func repoOfPath(p string) string {
	p = strings.TrimPrefix(p, "/v2/")
	for _, sep := range []string{"/manifests/", "/blobs/", "/referrers/", "/tags/"} {
		if i := strings.Index(p, sep); i >= 0 {
			return p[:i]
		}
	}
	return p
}

func (w *world) pushImage(repo string) (pushed, error) {
	img, err := random.Image(512, 1)
	if err != nil {
		return pushed{}, err
	}
	ref := w.host + "/" + repo + ":v1"
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		return pushed{}, err
	}
	if err := remote.Write(r, img); err != nil {
		return pushed{}, fmt.Errorf("push %s: %w", ref, err)
	}
	d, _ := img.Digest()
	c, _ := img.ConfigName()
	return pushed{ref: ref, digest: d.String(), config: c.String()}, nil
}

func (w *world) pushIndex(repo string) (pushed, error) {
	amd, err := random.Image(512, 1)
	if err != nil {
		return pushed{}, err
	}
	arm, err := random.Image(512, 1)
	if err != nil {
		return pushed{}, err
	}
	idx := mutate.AppendManifests(empty.Index,
		mutate.IndexAddendum{Add: arm, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}}},
		mutate.IndexAddendum{Add: amd, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "amd64"}}},
	)
	ref := w.host + "/" + repo + ":v1"
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		return pushed{}, err
	}
	if err := remote.WriteIndex(r, idx); err != nil {
		return pushed{}, fmt.Errorf("push %s: %w", ref, err)
	}
	d, _ := idx.Digest()
	md, _ := amd.Digest()
	ad, _ := arm.Digest()
	c, _ := amd.ConfigName()
	return pushed{ref: ref, digest: d.String(), config: c.String(), platform: md.String(), arm: ad.String()}, nil
}

// provenance is a SLSA v1 Statement about subject, in a DSSE envelope signed by s.
func provenance(repo, subject, bt string, s *keys.Signer) ([]byte, error) {
	alg, hx, _ := strings.Cut(subject, ":")
	payload, err := json.Marshal(map[string]any{
		"_type":         attest.StatementV1,
		"subject":       []any{map[string]any{"name": repo, "digest": map[string]string{alg: hx}}},
		"predicateType": attest.PredicateSLSAProvenanceV1,
		"predicate": map[string]any{
			"buildDefinition": map[string]any{
				"buildType":          bt,
				"externalParameters": map[string]any{"repository": "https://github.com/acme/api", "ref": "refs/heads/main"},
			},
			"runDetails": map[string]any{"builder": map[string]any{"id": "https://github.com/acme/ci"}},
		},
	})
	if err != nil {
		return nil, err
	}
	env := envelope.NewDSSE(envelope.PayloadTypeInToto, payload)
	if err := env.Sign(s); err != nil {
		return nil, err
	}
	return env.Marshal()
}

// policyFiles is the policy directory the tests decide with (docs/policy.md's format).
func (w *world) policyFiles(t testing.TB) map[string][]byte {
	t.Helper()
	pub, err := w.ci.MarshalPublic()
	if err != nil {
		t.Fatal(err)
	}
	att := `  attestations:
    - name: provenance
      predicateType: slsa-v1
      keys: [keys/ci.pub]
      conditions:
        - predicate.buildDefinition.buildType == "` + buildType + `"
`
	return map[string][]byte{
		"keys/ci.pub": pub,
		"acme.yaml": []byte(`apiVersion: tollgate.dev/v1alpha1
kind: ImagePolicy
metadata:
  name: acme
spec:
  images: ["` + w.host + `/acme/*"]
  mode: enforce
` + att),
		"audited.yaml": []byte(`apiVersion: tollgate.dev/v1alpha1
kind: ImagePolicy
metadata:
  name: audited
spec:
  images: ["` + w.host + `/audit/*"]
  mode: audit
` + att),
		"node-defaults.yaml": []byte(`apiVersion: tollgate.dev/v1alpha1
kind: NodeDefaults
metadata:
  name: node
spec:
  unmatched: allow
  exemptions:
    repositories: ["` + w.host + `/acme/exempt"]
`),
	}
}

func writeFiles(t testing.TB, dir string, files map[string][]byte) {
	t.Helper()
	for n, b := range files {
		p := filepath.Join(dir, filepath.FromSlash(n))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// pki is a test CA that issues serving certificates for 127.0.0.1.
type pki struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

func newPKI(t testing.TB, cn string) *pki {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &pki{cert: cert, key: key, pool: pool}
}

// issue returns a PEM certificate and key for 127.0.0.1 with the given serial.
func (p *pki) issue(t testing.TB, serial int64) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "tollgate-webhook.tollgate-system.svc"},
		DNSNames:    []string{"tollgate-webhook.tollgate-system.svc"},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore:   time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.cert, &key.PublicKey, p.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})
}

// webhook is one running Server with its files and an HTTPS client that trusts its CA.
type webhook struct {
	w         *world
	srv       *Server
	url       string // https://127.0.0.1:port
	health    string // http://127.0.0.1:port
	client    *http.Client
	pki       *pki
	certFile  string
	keyFile   string
	policyDir string
}

// startWebhook serves a webhook on loopback until the test ends; edit adjusts the config.
func startWebhook(t testing.TB, edit func(*Config)) *webhook {
	t.Helper()
	w := sharedWorld(t)
	dir := t.TempDir()
	wh := &webhook{w: w, pki: newPKI(t, "test CA"), policyDir: filepath.Join(dir, "policy"),
		certFile: filepath.Join(dir, "tls", "tls.crt"), keyFile: filepath.Join(dir, "tls", "tls.key")}
	writeFiles(t, wh.policyDir, w.policyFiles(t))
	c, k := wh.pki.issue(t, 2)
	writeFiles(t, filepath.Dir(wh.certFile), map[string][]byte{"tls.crt": c, "tls.key": k})

	cfg := DefaultConfig()
	cfg.Listen, cfg.MetricsListen = "127.0.0.1:0", "127.0.0.1:0"
	cfg.TLSCertFile, cfg.TLSKeyFile = wh.certFile, wh.keyFile
	cfg.PolicyDir, cfg.CacheDir = wh.policyDir, filepath.Join(dir, "cache")
	cfg.InsecureRegistries = []string{w.host}
	cfg.Timeout = daemon.Duration(3 * time.Second)
	if edit != nil {
		edit(&cfg)
	}
	log := zap.NewNop() // benchmarks measure the webhook, not the test log
	if _, ok := t.(*testing.T); ok {
		log = zaptest.NewLogger(t)
	}
	srv, err := New(cfg, WithLogger(log), WithRegistryOptions(registry.WithRetries(0)))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	wl, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		t.Fatal(err)
	}
	ml, err := net.Listen("tcp", cfg.MetricsListen)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, wl, ml) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	wh.srv = srv
	wh.url = "https://" + wl.Addr().String()
	wh.health = "http://" + ml.Addr().String()
	wh.client = &http.Client{
		Timeout:   15 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: wh.pki.pool, MinVersion: tls.VersionTLS12}},
	}
	t.Cleanup(wh.client.CloseIdleConnections)
	return wh
}

// post sends body to /validate as the API server does.
func (wh *webhook) post(t testing.TB, body []byte, contentType string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, wh.url+"/validate?timeout=10s", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("Accept", "application/json, */*")
	resp, err := wh.client.Do(req)
	if err != nil {
		t.Fatalf("POST /validate: %v", err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, out
}

// fixture reads testdata/reviews/<name> with its {{PLACEHOLDERS}} replaced.
func fixture(t testing.TB, name string, vars map[string]string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "reviews", name))
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	for k, v := range vars {
		s = strings.ReplaceAll(s, "{{"+k+"}}", v)
	}
	if i := strings.Index(s, "{{"); i >= 0 {
		t.Fatalf("%s: placeholder left at %q", name, s[i:min(len(s), i+20)])
	}
	return []byte(s)
}

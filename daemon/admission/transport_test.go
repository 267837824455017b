package admission

import (
	"crypto/tls"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"tollgate.dev/tollgate/daemon"
)

func ioCopy(dst io.Writer, resp *http.Response) (int64, error) {
	defer resp.Body.Close()
	return io.Copy(dst, resp.Body)
}

func get(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	ioCopy(&b, resp)
	return b.String()
}

// TestMalformed: whatever is not an admission.k8s.io/v1 AdmissionReview gets a clear HTTP
// error, never a crash and never a review.
func TestMalformed(t *testing.T) {
	wh := startWebhook(t, func(c *Config) { c.MaxRequestBytes = 64 << 10 })
	good := string(fixture(t, "configmap-create.json", map[string]string{"IMAGE": "x"}))
	cases := []struct {
		name        string
		method      string
		contentType string
		body        string
		status      int
		want        string
	}{
		{"not JSON", "POST", "application/json", "<xml/>", 400, "malformed AdmissionReview"},
		{"empty body", "POST", "application/json", "", 400, "malformed AdmissionReview"},
		{"JSON array", "POST", "application/json", "[]", 400, "malformed AdmissionReview"},
		{"v1beta1 review", "POST", "application/json", strings.Replace(good, `"admission.k8s.io/v1"`, `"admission.k8s.io/v1beta1"`, 1), 400, `apiVersion "admission.k8s.io/v1beta1"`},
		{"another kind", "POST", "application/json", strings.Replace(good, `"kind": "AdmissionReview"`, `"kind": "Status"`, 1), 400, `kind "Status"`},
		{"no request", "POST", "application/json", `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}`, 400, "no request"},
		{"no uid", "POST", "application/json", strings.Replace(good, `"uid": "9f8e7d6c-5b4a-4392-8170-6f5e4d3c2b1a"`, `"uid": ""`, 1), 400, "no uid"},
		{"response included", "POST", "application/json", strings.Replace(good, `"request": {`, `"response": {"uid": "x", "allowed": true}, "request": {`, 1), 400, "carries no response"},
		{"wrong field type", "POST", "application/json", strings.Replace(good, `"operation": "CREATE"`, `"operation": 7`, 1), 400, "malformed AdmissionReview"},
		{"trailing data", "POST", "application/json", good + "{}", 400, "data after the JSON object"},
		{"too large", "POST", "application/json", `{"x":"` + strings.Repeat("a", 70<<10) + `"}`, 413, "over 65536 bytes"},
		{"wrong content type", "POST", "text/plain", good, 415, "want application/json"},
		{"GET", "GET", "application/json", "", 405, "POST an admission.k8s.io/v1 AdmissionReview"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req, _ := http.NewRequest(c.method, wh.url+"/validate", strings.NewReader(c.body))
			req.Header.Set("Content-Type", c.contentType)
			resp, err := wh.client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			var b strings.Builder
			ioCopy(&b, resp)
			if resp.StatusCode != c.status || !strings.Contains(b.String(), c.want) {
				t.Errorf("%d %q, want %d with %q", resp.StatusCode, b.String(), c.status, c.want)
			}
		})
	}
	if r := wh.send(t, []byte(good)); !r.review.Response.Allowed {
		t.Errorf("the webhook does not serve after malformed requests: %s", r.raw)
	}
}

// TestObjectUnreadable: a review whose object our types cannot read is answered (not a
// 400: the review itself is fine) and the flag decides.
func TestObjectUnreadable(t *testing.T) {
	wh := startWebhook(t, nil)
	body := strings.Replace(string(fixture(t, "pod-create.json", map[string]string{"IMAGE": "a", "IMAGE2": "b", "IMAGE3": "c"})),
		`"containers": [`, `"containers": 5, "x": [`, 1)
	r := wh.send(t, []byte(body))
	if !r.review.Response.Allowed || len(r.review.Response.Warnings) != 1 || !strings.Contains(r.review.Response.Warnings[0], "cannot read the Pod") {
		t.Errorf("%s", r.raw)
	}
}

func servedSerial(t *testing.T, wh *webhook, pool *tls.Config) int64 {
	t.Helper()
	conn, err := tls.Dial("tcp", strings.TrimPrefix(wh.url, "https://"), pool)
	if err != nil {
		t.Fatalf("handshake: %v", err)
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].SerialNumber.Int64()
}

// TestCertificateReload: replacing the mounted files changes the certificate new
// handshakes see, without a restart; a half-written pair keeps the old one in force.
func TestCertificateReload(t *testing.T) {
	wh := startWebhook(t, func(c *Config) { c.TLSReload = daemon.Duration(20 * time.Millisecond) })
	next := newPKI(t, "rotated CA") // cert-manager may rotate the CA too
	pool := wh.pki.pool.Clone()
	pool.AddCert(next.cert)
	cfg := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	if s := servedSerial(t, wh, cfg); s != 2 {
		t.Fatalf("serving serial %d, want 2", s)
	}
	c, k := next.issue(t, 3)
	writeFiles(t, dirOf(wh.certFile), map[string][]byte{"tls.key": k, "tls.crt": c})
	waitFor(t, "the new certificate", func() bool { return servedSerial(t, wh, cfg) == 3 })

	// The certificate is replaced but its key is not (yet): the good pair stays in use.
	c4, _ := next.issue(t, 4)
	if err := os.WriteFile(wh.certFile, c4, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := wh.srv.ReloadCertificate(); err == nil {
		t.Fatal("a mismatched pair loaded")
	}
	if s := servedSerial(t, wh, cfg); s != 3 {
		t.Errorf("serving serial %d after a bad pair, want 3", s)
	}
	if ok, msg := wh.srv.Ready(); !ok || !strings.Contains(msg, "the last reload failed") {
		t.Errorf("Ready() = %v, %q", ok, msg)
	}
	// An API server that trusts only the old CA no longer connects: the CA bundle of the
	// webhook configuration must follow (cert-manager's CA injector does that).
	if _, err := tls.Dial("tcp", strings.TrimPrefix(wh.url, "https://"), &tls.Config{RootCAs: wh.pki.pool}); err == nil {
		t.Error("a client trusting only the old CA accepted the rotated certificate")
	}
}

func dirOf(p string) string { return p[:strings.LastIndexByte(p, '/')] }

// waitFor polls cond (a handshake, a read) until it holds, for at most 10s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestConfig(t *testing.T) {
	cases := []struct {
		args []string
		want string // "" for valid
	}{
		{[]string{"--tls-cert-file=/c", "--tls-key-file=/k"}, ""},
		{[]string{"--timeout=10s"}, "below the webhook's timeoutSeconds"},
		{[]string{"--timeout=0s"}, "must be above 0"},
		{[]string{"--platform=amd64"}, "want os/arch"},
		{[]string{"--tls-cert-file="}, "tls-cert-file and tls-key-file are required"},
		{[]string{"--deny-ttl=48h"}, "deny-ttl"},
		{[]string{"--log-level=loud"}, "log-level"},
		{[]string{"stray"}, "unexpected arguments"},
	}
	for _, c := range cases {
		_, err := ParseArgs("tollgated webhook", c.args)
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%v: %v", c.args, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%v: error %v, want %q", c.args, err, c.want)
		}
	}
	d := DefaultConfig()
	if d.Listen != ":8443" || d.MetricsListen != ":9091" || d.Timeout.D() != 8*time.Second || !d.FailOpen || d.Platform != "linux/amd64" {
		t.Errorf("defaults %+v", d)
	}
	file := t.TempDir() + "/webhook.yaml"
	os.WriteFile(file, []byte("fail-open: false\ntimeout: 5s\ninsecure-registry: [reg.local:5000]\n"), 0o644)
	cfg, err := ParseArgs("tollgated webhook", []string{"--config=" + file, "--timeout=6s"})
	if err != nil || cfg.FailOpen || cfg.Timeout.D() != 6*time.Second || len(cfg.InsecureRegistries) != 1 {
		t.Errorf("config file + flags: %+v, %v", cfg, err)
	}
	os.WriteFile(file, []byte("fail-opn: false\n"), 0o644)
	if _, err := ParseArgs("x", []string{"--config=" + file}); err == nil || !strings.Contains(err.Error(), "fail-opn") {
		t.Errorf("unknown key accepted: %v", err)
	}
}

func TestMissingCertificate(t *testing.T) {
	cfg := DefaultConfig()
	cfg.TLSCertFile, cfg.TLSKeyFile = "/nonexistent/tls.crt", "/nonexistent/tls.key"
	cfg.CacheDir, cfg.PolicyDir = t.TempDir(), t.TempDir()
	_, err := New(cfg)
	if err == nil || !strings.Contains(err.Error(), "/nonexistent/tls.crt") {
		t.Errorf("New without a certificate: %v", err)
	}
}

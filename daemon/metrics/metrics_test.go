package metrics

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// /metrics answers uncompressed even to a scraper that accepts gzip (as Prometheus does):
// a pooled gzip writer would hold about 1 MiB of the daemon's heap for a few kilobytes.
func TestMetricsUncompressed(t *testing.T) {
	m := New("test")
	req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
	req.Header.Set("Accept-Encoding", "gzip")
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		t.Fatalf("status %d", rec.Code)
	}
	if enc := rec.Header().Get("Content-Encoding"); enc != "" {
		t.Errorf("Content-Encoding %q, want none", enc)
	}
	if !strings.Contains(rec.Body.String(), "tollgate_build_info{") {
		t.Errorf("body is not the exposition text:\n%.200s", rec.Body.String())
	}
}

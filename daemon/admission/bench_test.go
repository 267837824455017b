package admission

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"testing"
)

// BenchmarkReviewCached: a Deployment review whose images are all in the caches, through
// the real handler (in process, no TLS): the cost the API server adds per admission once
// an image has been seen.
func BenchmarkReviewCached(b *testing.B) {
	wh := startWebhook(b, nil)
	w := wh.w
	body := fixture(b, "deployment-create.json", map[string]string{"IMAGE": w.ref("acme/good"), "IMAGE2": w.ref("acme/multi"), "IMAGE3": unmatched})
	h := wh.srv.Handler()
	serve := func() *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodPost, "/validate", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec
	}
	if rec := serve(); rec.Code != http.StatusOK || !bytes.Contains(rec.Body.Bytes(), []byte(`"allowed":true`)) {
		b.Fatalf("%d %s", rec.Code, rec.Body)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		serve()
	}
}

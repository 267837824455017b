package admission

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"time"

	"go.uber.org/zap"
	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Handler serves POST /validate: one admission.k8s.io/v1 AdmissionReview in, one out.
// A request that is not a well-formed review (wrong method, content type, size, JSON,
// apiVersion, missing request or uid) gets an HTTP error with a plain-text sentence, never
// a review: the API server reports it as a webhook failure, and failurePolicy decides.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/validate", s.serveValidate)
	return mux
}

func (s *Server) serveValidate(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		s.fail(w, start, http.StatusMethodNotAllowed, "POST an admission.k8s.io/v1 AdmissionReview")
		return
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		s.fail(w, start, http.StatusUnsupportedMediaType, fmt.Sprintf("Content-Type %q: want application/json", r.Header.Get("Content-Type")))
		return
	}
	// Room for the review before its body is read: the body's announced size, or the
	// largest accepted when it announces none.
	size := s.cfg.MaxRequestBytes
	if r.ContentLength >= 0 && r.ContentLength < size {
		size = r.ContentLength
	}
	// --timeout covers the wait for room too: the API server's clock runs from the request.
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.Timeout.D())
	defer cancel()
	done, err := s.load.admit(ctx, size)
	if err != nil {
		s.overloaded(w, start, err)
		return
	}
	defer done()
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, size))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			s.fail(w, start, http.StatusRequestEntityTooLarge, fmt.Sprintf("AdmissionReview over %d bytes", tooBig.Limit))
			return
		}
		s.fail(w, start, http.StatusBadRequest, "cannot read the request body: "+err.Error())
		return
	}
	review, err := decodeReview(data)
	if err != nil {
		s.fail(w, start, http.StatusBadRequest, err.Error())
		return
	}
	req := review.Request
	resp, result := s.checker.review(ctx, req)
	resp.UID = req.UID
	out, err := json.Marshal(admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: reviewAPIVersion, Kind: reviewKind},
		Response: resp,
	})
	if err != nil { // cannot happen with these types; never answer half a review
		s.fail(w, start, http.StatusInternalServerError, "cannot encode the response: "+err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(out)
	s.observe(result, start)
	s.logReview(req, resp, result, time.Since(start))
}

func (s *Server) fail(w http.ResponseWriter, start time.Time, code int, msg string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	fmt.Fprintln(w, "tollgate webhook: "+msg)
	s.observe(ResultMalformed, start)
	s.log.Warn("refused a request that is not an AdmissionReview", zap.Int("status", code), zap.String("error", msg))
}

// overloaded answers a review there was no room for with 503: the API server then applies
// the failurePolicy of the webhook's registration (Ignore as shipped: admitted, and the
// node gate decides at container creation).
func (s *Server) overloaded(w http.ResponseWriter, start time.Time, err error) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Retry-After", "1")
	w.WriteHeader(http.StatusServiceUnavailable)
	fmt.Fprintln(w, "tollgate webhook: "+err.Error())
	s.observe(ResultOverloaded, start)
	s.log.Warn("refused a review: overloaded", zap.Error(err))
}

func (s *Server) observe(result string, start time.Time) {
	s.metrics.decisions.WithLabelValues(result).Inc()
	s.metrics.duration.Observe(time.Since(start).Seconds())
}

func (s *Server) logReview(req *admissionv1.AdmissionRequest, resp *admissionv1.AdmissionResponse, result string, took time.Duration) {
	lvl := zap.DebugLevel
	switch result {
	case ResultDenied, ResultFailClose, ResultFailOpen, ResultAudit:
		lvl = zap.InfoLevel
	}
	ce := s.log.Check(lvl, "admission review")
	if ce == nil {
		return
	}
	msg := ""
	if resp.Result != nil {
		msg = resp.Result.Message
	}
	ce.Write(
		zap.String("uid", string(req.UID)),
		zap.String("operation", string(req.Operation)),
		zap.String("kind", req.Kind.Kind),
		zap.String("namespace", req.Namespace),
		zap.String("name", req.Name),
		zap.String("user", req.UserInfo.Username),
		zap.String("result", result),
		zap.Bool("allowed", resp.Allowed),
		zap.Strings("warnings", resp.Warnings),
		zap.String("message", msg),
		zap.Duration("took", took),
	)
}

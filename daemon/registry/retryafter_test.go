package registry

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"
)

type fixedResponse struct {
	status int
	header http.Header
	err    error
}

func (f fixedResponse) RoundTrip(*http.Request) (*http.Response, error) {
	if f.err != nil {
		return nil, f.err
	}
	return &http.Response{StatusCode: f.status, Header: f.header, Body: http.NoBody}, nil
}

func TestRetryAfterWaitsAsAsked(t *testing.T) {
	now := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	cases := []struct {
		name   string
		status int
		value  string
		err    error
		want   time.Duration // 0: no wait
	}{
		{"seconds on 429", 429, "3", nil, 3 * time.Second},
		{"seconds on 503", 503, "2", nil, 2 * time.Second},
		{"capped", 429, "3600", nil, maxBackoff},
		{"http date", 429, now.Add(5 * time.Second).Format(http.TimeFormat), nil, 5 * time.Second},
		{"date in the past", 429, now.Add(-time.Hour).Format(http.TimeFormat), nil, 0},
		{"zero", 429, "0", nil, 0},
		{"garbage", 429, "soon", nil, 0},
		{"negative", 429, "-5", nil, 0},
		{"absent", 429, "", nil, 0},
		{"other status", 500, "3", nil, 0},
		{"success", 200, "3", nil, 0},
		{"transport error", 0, "", errors.New("connection refused"), 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var waited time.Duration
			rt := &retryAfter{
				inner: fixedResponse{status: tc.status, header: http.Header{"Retry-After": {tc.value}}, err: tc.err},
				now:   func() time.Time { return now },
				sleep: func(_ context.Context, d time.Duration) error { waited = d; return nil },
			}
			req, _ := http.NewRequest(http.MethodGet, "https://registry.example/v2/", nil)
			resp, err := rt.RoundTrip(req)
			if (err != nil) != (tc.err != nil) || (err == nil && resp.StatusCode != tc.status) {
				t.Fatalf("RoundTrip = %v, %v; the response must pass through unchanged", resp, err)
			}
			if waited != tc.want {
				t.Errorf("waited %v, want %v", waited, tc.want)
			}
		})
	}
}

func TestSleepEndsWithTheContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := sleepCtx(ctx, time.Hour); !errors.Is(err, context.Canceled) {
		t.Fatalf("sleepCtx on an ended context = %v", err)
	}
}

package admission

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
)

// TestOverloadRefused: past the bound on reviews in flight and waiting, a review is refused
// unread with 503 (the registration's failurePolicy decides), counted as overloaded; the
// reviews admitted are answered as usual.
func TestOverloadRefused(t *testing.T) {
	wh := startWebhook(t, nil)
	wh.srv.load = newLoadGate(1, reviewBudget(wh.srv.cfg.MaxRequestBytes), 1)
	w := wh.w
	good := fixture(t, "pod-create.json", map[string]string{"IMAGE": w.ref("acme/good"), "IMAGE2": unmatched, "IMAGE3": unmatched})
	type answer struct {
		code int
		body []byte
	}
	waitFor := func(what string, cond func() bool) {
		for i := 0; !cond(); i++ {
			if i > 5000 {
				t.Fatalf("never reached: %s", what)
			}
			time.Sleep(time.Millisecond)
		}
	}
	held, err := wh.srv.load.admit(context.Background(), 1) // a review in flight: the one slot
	if err != nil {
		t.Fatal(err)
	}
	waiting := make(chan answer, 1)
	go func() {
		code, body := wh.post(t, good, "application/json")
		waiting <- answer{code, body}
	}()
	waitFor("one review waiting", func() bool { return wh.srv.load.waiting.Load() == 1 })
	code, body := wh.post(t, good, "application/json") // no room to wait: refused at once
	if code != http.StatusServiceUnavailable || !strings.Contains(string(body), "overloaded: 1 reviews in flight and 1 waiting") {
		t.Fatalf("third review: %d %s; want 503 overloaded", code, body)
	}
	var m dto.Metric
	if err := wh.srv.metrics.decisions.WithLabelValues(ResultOverloaded).Write(&m); err != nil || m.GetCounter().GetValue() != 1 {
		got := m.GetCounter().GetValue()
		t.Errorf("tollgate_admission_decisions_total{result=overloaded} = %v; want 1", got)
	}
	held()
	if r := <-waiting; r.code != http.StatusOK || !strings.Contains(string(r.body), `"allowed":true`) {
		t.Errorf("the waiting review: %d %s; want it answered once room was made", r.code, r.body)
	}
}

// TestLoadGateMemory: reviews are admitted within the memory budget (a review larger than
// the whole budget alone), and the room comes back when a review ends.
func TestLoadGateMemory(t *testing.T) {
	const mib = 1 << 20
	g := newLoadGate(8, 10*mib, 8)
	short := func() context.Context {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
		t.Cleanup(cancel)
		return ctx
	}
	done1, err := g.admit(context.Background(), 2*mib) // costs 8 MiB
	if err != nil {
		t.Fatal(err)
	}
	if _, err := g.admit(short(), 1*mib); !errors.As(err, new(errOverloaded)) {
		t.Fatalf("a review past the memory budget: %v; want overloaded", err)
	}
	done2, err := g.admit(short(), 256<<10) // 1 MiB fits beside
	if err != nil {
		t.Fatalf("a small review within the budget: %v", err)
	}
	done1()
	done2()
	done3, err := g.admit(short(), 100*mib) // alone, a review over the budget still gets in
	if err != nil {
		t.Fatalf("a lone large review: %v", err)
	}
	done3()
	if g.inFlight.Load() != 0 {
		t.Errorf("inFlight = %d after every review ended", g.inFlight.Load())
	}
}

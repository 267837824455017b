package registry

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"runtime"
	"runtime/metrics"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

const mib = 1 << 20

// hostileRegistry answers /v2/ and every manifest request with a body of size bytes of
// JSON white space: with the Content-Length announced, or sent chunked without one.
func hostileRegistry(t *testing.T, size int64, announce bool) (host string, sent *atomic.Int64) {
	t.Helper()
	sent = new(atomic.Int64)
	chunk := []byte(strings.Repeat(" ", 64<<10))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v2/" {
			return
		}
		w.Header().Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
		if announce {
			w.Header().Set("Content-Length", fmt.Sprint(size))
		} else {
			w.(http.Flusher).Flush() // headers out now: chunked, no length
		}
		for left := size; left > 0; left -= int64(len(chunk)) {
			n, err := w.Write(chunk[:min(int64(len(chunk)), left)])
			sent.Add(int64(n))
			if err != nil {
				return
			}
		}
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://"), sent
}

// TestBodyLimit: a manifest answer over the bound fails with ErrLimitExceeded, whether
// its Content-Length says so (refused unread) or not (cut as it arrives), for Resolve and
// for Fetch (the referrers list and the cosign tag).
func TestBodyLimit(t *testing.T) {
	for _, announce := range []bool{true, false} {
		t.Run(fmt.Sprintf("content-length=%v", announce), func(t *testing.T) {
			host, sent := hostileRegistry(t, 100*mib, announce)
			c := testClient(host, WithRetries(0))
			_, err := c.Resolve(ctxT(t), host+"/app:v1")
			want := "longer than the 4194304-byte limit"
			if announce {
				want = "announces a 104857600-byte answer, over the 4194304-byte limit"
			}
			if !errors.Is(err, ErrLimitExceeded) || !strings.Contains(err.Error(), want) {
				t.Fatalf("Resolve = %v; want ErrLimitExceeded saying %q", err, want)
			}
			if _, err := c.Fetch(ctxT(t), host+"/app", "sha256:"+zeros); !errors.Is(err, ErrLimitExceeded) {
				t.Fatalf("Fetch = %v; want ErrLimitExceeded", err)
			}
			if s := sent.Load(); s >= 100*mib {
				t.Errorf("the server sent its whole %d-byte answer; the client should have stopped reading", s)
			}
		})
	}
}

// TestBodyLimitLyingLength: a registry that announces a small answer and sends 100 MiB
// gets no further than what it announced, and no answer is accepted.
func TestBodyLimitLyingLength(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				br := bufio.NewReader(conn)
				for {
					req, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					if req.URL.Path == "/v2/" {
						fmt.Fprint(conn, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
						continue
					}
					fmt.Fprint(conn, "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Type: application/vnd.oci.image.manifest.v1+json\r\nContent-Length: 1024\r\n\r\n")
					chunk := []byte(strings.Repeat("{", 64<<10))
					for i := 0; i < 100*mib/len(chunk); i++ {
						if _, err := conn.Write(chunk); err != nil {
							return
						}
					}
					return
				}
			}()
		}
	}()
	host := ln.Addr().String()
	before := heapAllocs()
	_, err = testClient(host, WithRetries(0)).Resolve(ctxT(t), host+"/app:v1")
	if err == nil {
		t.Fatal("Resolve accepted an answer whose length lied")
	}
	if grew := heapAllocs() - before; grew > 16*mib {
		t.Errorf("a lying answer cost %d MiB of heap allocations", grew/mib)
	}
}

// TestHostileAnswerHeap measures (runtime/metrics, not time) what one hostile 100 MiB
// answer costs the client: without the transport's bound go-containerregistry reads it
// whole before any check; with it, allocation stays near the 4 MiB bound.
func TestHostileAnswerHeap(t *testing.T) {
	host, _ := hostileRegistry(t, 100*mib, false)
	c := testClient(host, WithRetries(0))
	ctx := ctxT(t)
	runtime.GC()
	before := heapAllocs()
	if _, err := c.Resolve(ctx, host+"/app:v1"); !errors.Is(err, ErrLimitExceeded) {
		t.Fatalf("Resolve = %v; want ErrLimitExceeded", err)
	}
	grew := heapAllocs() - before
	t.Logf("heap allocated for one hostile 100 MiB answer: %.1f MiB", float64(grew)/mib)
	if grew > 24*mib {
		t.Errorf("one hostile answer allocated %.1f MiB; want at most 24 MiB", float64(grew)/mib)
	}
}

// heapAllocs is the cumulative bytes allocated on the heap.
func heapAllocs() int64 {
	s := []metrics.Sample{{Name: "/gc/heap/allocs:bytes"}}
	metrics.Read(s)
	return int64(s[0].Value.Uint64())
}

// hungRegistry accepts connections and never answers; it counts them.
func hungRegistry(t *testing.T) (host string, accepted *atomic.Int64) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	accepted = new(atomic.Int64)
	var mu sync.Mutex
	var conns []net.Conn
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	})
	go func() { // one goroutine for all: the server side costs no goroutine per connection
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	return ln.Addr().String(), accepted
}

// TestHungRegistryBounded: a registry that hangs holds at most the per-host bound of
// connections, however many fetches ask it at once; once the circuit opens, the waiting
// fetches and every later one fail at once naming the circuit, and open nothing.
func TestHungRegistryBounded(t *testing.T) {
	host, accepted := hungRegistry(t)
	const callers, slots = 64, 2
	c := testClient(host, WithRetries(0), WithTimeout(500*time.Millisecond),
		WithMaxInFlight(slots), WithCircuitBreaker(2, time.Hour))
	ctx := ctxT(t)
	base := runtime.NumGoroutine()
	wave := func() (errs []error, peak int) {
		var wg sync.WaitGroup
		errs = make([]error, callers)
		for i := range callers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, errs[i] = c.Fetch(ctx, host+"/app", "sha256:"+zeros)
			}()
		}
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()
		for {
			peak = max(peak, runtime.NumGoroutine()-base)
			select {
			case <-done:
				return errs, peak
			case <-time.After(time.Millisecond):
			}
		}
	}

	errs, peak := wave()
	t.Logf("first wave: %d connections opened, peak %d goroutines over %d callers", accepted.Load(), peak, callers)
	// Both failures that open the circuit may end while one more request takes a slot.
	if n := accepted.Load(); n > slots+1 {
		t.Errorf("%d concurrent fetches opened %d connections to a hung registry; want at most %d", callers, n, slots+1)
	}
	refused := 0
	for _, err := range errs {
		if err == nil {
			t.Fatal("a fetch from a hung registry succeeded")
		}
		if errors.Is(err, ErrCircuitOpen) {
			refused++
		}
	}
	if refused < callers-slots-1 {
		t.Errorf("%d of %d fetches failed on the open circuit; want all but the first ones", refused, callers)
	}
	if got := c.OpenCircuits(); len(got) != 1 || got[0] != host {
		t.Errorf("OpenCircuits = %v; want [%s]", got, host)
	}

	before := accepted.Load()
	errs, _ = wave()
	if n := accepted.Load() - before; n != 0 {
		t.Errorf("with the circuit open, %d new connections were made", n)
	}
	for _, err := range errs {
		if !errors.Is(err, ErrCircuitOpen) || !regexp.MustCompile(`registry `+regexp.QuoteMeta(host)+` failed \d+ requests in a row \(last: .*deadline exceeded\)`).MatchString(err.Error()) {
			t.Fatalf("Fetch with the circuit open = %v; want a refusal naming the registry and its failures", err)
		}
	}
}

// TestCircuitCloses: after the cool-down one probe is let through, and an answer closes
// the circuit; the caller's own deadline never counts against the registry.
func TestCircuitCloses(t *testing.T) {
	var hang atomic.Bool
	hang.Store(true)
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if hang.Load() {
			select {
			case <-r.Context().Done():
			case <-release:
			}
			return
		}
		if r.URL.Path != "/v2/" {
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	host := strings.TrimPrefix(srv.URL, "http://")
	c := testClient(host, WithRetries(0), WithTimeout(200*time.Millisecond), WithCircuitBreaker(1, time.Hour))
	now := time.Now()
	c.gate.now = func() time.Time { return now }

	// The caller gives up first: not the registry's failure.
	short, cancel := context.WithTimeout(ctxT(t), 50*time.Millisecond)
	defer cancel()
	if _, err := c.Fetch(short, host+"/app", "sha256:"+zeros); errors.Is(err, ErrCircuitOpen) || len(c.OpenCircuits()) != 0 {
		t.Fatalf("the caller's deadline opened the circuit: %v", err)
	}
	if _, err := c.Fetch(ctxT(t), host+"/app", "sha256:"+zeros); err == nil || len(c.OpenCircuits()) != 1 {
		t.Fatalf("a registry timeout did not open the circuit: %v, %v", err, c.OpenCircuits())
	}
	hang.Store(false)
	if _, err := c.Fetch(ctxT(t), host+"/app", "sha256:"+zeros); !errors.Is(err, ErrCircuitOpen) {
		t.Fatalf("Fetch during the cool-down = %v; want ErrCircuitOpen", err)
	}
	now = now.Add(2 * time.Hour)
	if got, err := c.Fetch(ctxT(t), host+"/app", "sha256:"+zeros); err != nil || len(got) != 0 {
		t.Fatalf("Fetch after the cool-down = %v, %v; want no evidence", got, err)
	}
	if len(c.OpenCircuits()) != 0 {
		t.Errorf("an answer did not close the circuit")
	}
}

// TestErrorOneLine: however many attempts were made (HTTPS and HTTP, retries), the error
// is one line naming the cause; a plain-HTTP registry outside the insecure list is named
// as a refusal by configuration.
func TestErrorOneLine(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	t.Cleanup(srv.Close)
	plain := strings.TrimPrefix(srv.URL, "http://")
	down := "127.0.0.1:1"
	tests := []struct {
		name, host string
		opts       []Option
		want       string
		plainHTTP  bool
	}{
		{"plain HTTP not listed", plain, nil, "the registry answers plain HTTP only, and is not in the insecure list (--insecure-registry " + plain + "): refused by configuration", true},
		{"down", down, nil, "Get https://127.0.0.1:1/v2/: dial tcp 127.0.0.1:1: connect: connection refused", false},
		{"down, listed", down, []Option{WithInsecure(down)}, "connect: connection refused", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := append([]Option{WithKeychain(anonymous{}), WithBackoff(time.Millisecond)}, tt.opts...)
			_, err := New(opts...).Fetch(ctxT(t), tt.host+"/x", "sha256:"+zeros)
			if err == nil {
				t.Fatal("Fetch succeeded")
			}
			msg := err.Error()
			if !strings.Contains(msg, tt.want) || strings.Count(msg, "Get ") > 1 || strings.Contains(msg, "\n") || len(msg) > 300 {
				t.Errorf("error = %q (%d bytes); want one line with %q", msg, len(msg), tt.want)
			}
			if errors.Is(err, ErrPlainHTTP) != tt.plainHTTP {
				t.Errorf("errors.Is(ErrPlainHTTP) = %v; want %v", !tt.plainHTTP, tt.plainHTTP)
			}
		})
	}
}

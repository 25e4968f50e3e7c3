package httpx

import (
	"context"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/faultline-dev/faultline/clock"
	"github.com/faultline-dev/faultline/resilience"
)

// checkNoLeak fails the test when goroutines started during it still run at its end. Register it
// before anything that starts goroutines (servers, transports), so it runs after their cleanups.
func checkNoLeak(t *testing.T) {
	t.Helper()
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(2 * time.Second)
		for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
			runtime.Gosched()
		}
		if n := runtime.NumGoroutine(); n > before {
			buf := make([]byte, 1<<16)
			t.Errorf("goroutine leak: %d before, %d after\n%s", before, n, buf[:runtime.Stack(buf, true)])
		}
	})
}

// waitTimers waits until m has n pending timers (the code under test waits on the clock).
func waitTimers(t *testing.T, m *clock.Manual, n int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := m.WaitForTimers(ctx, n); err != nil {
		t.Fatalf("waiting for %d timers (have %d): %v", n, m.Timers(), err)
	}
}

// server is an httptest server on 127.0.0.1 whose handler answers from a script, counting hits
// and new connections, and recording request bodies.
type server struct {
	*httptest.Server
	hits   atomic.Int64
	conns  atomic.Int64
	mu     sync.Mutex
	bodies []string
}

// newServer starts a server whose n-th request (0-based) is answered by handle(n, w, r). Its
// client transport is a fresh http.Transport whose idle connections are closed at cleanup.
func newServer(t *testing.T, handle func(n int, w http.ResponseWriter, r *http.Request)) *server {
	t.Helper()
	s := &server{}
	s.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := int(s.hits.Add(1)) - 1
		b, _ := io.ReadAll(r.Body)
		s.mu.Lock()
		s.bodies = append(s.bodies, string(b))
		s.mu.Unlock()
		handle(n, w, r)
	}))
	s.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			s.conns.Add(1)
		}
	}
	s.Start()
	t.Cleanup(s.Close)
	return s
}

// newTLSServer starts a TLS server with a certificate no client trusts.
func newTLSServer(t *testing.T) *server {
	t.Helper()
	s := &server{}
	s.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { s.hits.Add(1) }))
	s.Config.ErrorLog = log.New(io.Discard, "", 0) // the failed handshakes
	s.StartTLS()
	t.Cleanup(s.Close)
	return s
}

// base returns a fresh http.Transport for requests to s (so connection counts are the test's
// own), closing its idle connections at cleanup.
func (s *server) base(t *testing.T) *http.Transport {
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	return tr
}

func (s *server) Bodies() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.bodies...)
}

// statuses answers the n-th request with codes[n] (the last code repeats) and a body naming it.
func statuses(codes ...int) func(int, http.ResponseWriter, *http.Request) {
	return func(n int, w http.ResponseWriter, _ *http.Request) {
		c := codes[min(n, len(codes)-1)]
		w.WriteHeader(c)
		io.WriteString(w, "answer "+itoa(n)+" status "+itoa(c))
	}
}

func itoa(n int) string {
	var b [20]byte
	i := len(b)
	if n == 0 {
		return "0"
	}
	for n > 0 {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
	}
	return string(b[i:])
}

// fastRetry retries up to attempts times with a 1 µs backoff on the real clock (tests that do not
// look at the timing).
func fastRetry(t *testing.T, attempts int, onRetry func(int, error, time.Duration)) *resilience.Retry {
	t.Helper()
	r, err := resilience.NewRetry(resilience.RetryConfig{MaxAttempts: attempts,
		Backoff: resilience.Backoff{Base: time.Microsecond, Max: time.Microsecond}, OnRetry: onRetry})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func newTransport(t *testing.T, cfg TransportConfig) *Transport {
	t.Helper()
	tr, err := NewTransport(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

// do sends a request through rt and returns the response with its body read.
func do(t *testing.T, rt http.RoundTripper, req *http.Request) (*http.Response, string, error) {
	t.Helper()
	resp, err := rt.RoundTrip(req)
	if err != nil {
		return nil, "", err
	}
	b, rerr := io.ReadAll(resp.Body)
	resp.Body.Close()
	if rerr != nil {
		t.Fatalf("reading the body: %v", rerr)
	}
	return resp, string(b), nil
}

func get(t *testing.T, url string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

// noGetBody hides a reader's type so that http.NewRequest sets no GetBody, and records Close.
type noGetBody struct {
	io.Reader
	closed atomic.Bool
}

func (b *noGetBody) Close() error { b.closed.Store(true); return nil }

func newNoGetBody(s string) *noGetBody { return &noGetBody{Reader: strings.NewReader(s)} }

// stubRT is a RoundTripper answering from a function.
type stubRT func(*http.Request) (*http.Response, error)

func (f stubRT) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// trackedBody is a response body that records Close.
type trackedBody struct {
	io.Reader
	closed atomic.Bool
}

func (b *trackedBody) Close() error { b.closed.Store(true); return nil }

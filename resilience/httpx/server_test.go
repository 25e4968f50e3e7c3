package httpx

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/faultline-dev/faultline/clock"
	"github.com/faultline-dev/faultline/resilience"
)

func mustMiddleware(t testing.TB, cfg ServerConfig, h http.Handler) http.Handler {
	t.Helper()
	mw, err := Middleware(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return mw(h)
}

var ok = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") })

// serve calls h directly with a recorder.
func serve(h http.Handler, r *http.Request) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	return rec
}

func newReq() *http.Request { return httptest.NewRequest(http.MethodGet, "/", nil) }

// checkProblem checks an RFC 9457 rejection: status, Retry-After, content type and body.
func checkProblem(t *testing.T, rec *httptest.ResponseRecorder, status int, retryAfter string) {
	t.Helper()
	if rec.Code != status {
		t.Fatalf("status %d, want %d (body %q)", rec.Code, status, rec.Body.String())
	}
	if got := rec.Header().Get("Retry-After"); got != retryAfter {
		t.Errorf("Retry-After %q, want %q", got, retryAfter)
	}
	if ct := rec.Header().Get("Content-Type"); ct != "application/problem+json" {
		t.Errorf("Content-Type %q", ct)
	}
	var p Problem
	if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil {
		t.Fatalf("body %q: %v", rec.Body.String(), err)
	}
	if p.Type != "about:blank" || p.Title != http.StatusText(status) || p.Status != status || p.Detail == "" {
		t.Errorf("problem %+v", p)
	}
}

func TestMiddlewareConfig(t *testing.T) {
	if _, err := Middleware(ServerConfig{RetryAfter: -time.Second}); err == nil || !strings.Contains(err.Error(), "RetryAfter") {
		t.Errorf("err = %v, want one naming RetryAfter", err)
	}
	// No policy: a pass-through.
	if rec := serve(mustMiddleware(t, ServerConfig{}, ok), newReq()); rec.Code != 200 || rec.Body.String() != "ok" {
		t.Errorf("got %d %q", rec.Code, rec.Body.String())
	}
}

// TestRateLimiterAnswers429: the Retry-After is the limiter's wait rounded up to whole seconds,
// at least 1.
func TestRateLimiterAnswers429(t *testing.T) {
	for _, tc := range []struct {
		rate float64
		want string
	}{{0.4, "3"}, {0.5, "2"}, {10, "1"}} {
		m := clock.NewManual(time.Time{})
		rl, _ := resilience.NewRateLimiter(resilience.RateLimitConfig{Rate: tc.rate, Clock: m})
		var rejected []error
		h := mustMiddleware(t, ServerConfig{RateLimiter: rl, OnReject: func(_ *http.Request, err error) { rejected = append(rejected, err) }}, ok)
		if rec := serve(h, newReq()); rec.Code != 200 {
			t.Fatalf("first request: %d", rec.Code)
		}
		checkProblem(t, serve(h, newReq()), http.StatusTooManyRequests, tc.want)
		if len(rejected) != 1 || !errors.Is(rejected[0], resilience.ErrRateLimited) {
			t.Errorf("OnReject saw %v", rejected)
		}
	}
}

// hold starts a request through h in the background that stays in the handler until the returned
// release is called; entered is closed once the handler runs.
func hold(t *testing.T, h http.Handler, entered <-chan struct{}) (wait func() *httptest.ResponseRecorder) {
	t.Helper()
	done := make(chan *httptest.ResponseRecorder, 1)
	go func() { done <- serve(h, newReq()) }()
	<-entered
	return func() *httptest.ResponseRecorder { return <-done }
}

// blocking returns a handler that signals entered and waits for release.
func blocking() (h http.Handler, entered chan struct{}, release func()) {
	entered = make(chan struct{}, 16)
	rel := make(chan struct{})
	var once sync.Once
	h = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		entered <- struct{}{}
		<-rel
		io.WriteString(w, "done")
	})
	return h, entered, func() { once.Do(func() { close(rel) }) }
}

func TestLimiterShedsWith503(t *testing.T) {
	lim, err := resilience.NewLimiter(resilience.LimiterConfig{InitialLimit: 1, MinLimit: 1, MaxLimit: 1})
	if err != nil {
		t.Fatal(err)
	}
	inner, entered, release := blocking()
	var rejected []error
	h := mustMiddleware(t, ServerConfig{Limiter: lim, RetryAfter: 2500 * time.Millisecond,
		OnReject: func(_ *http.Request, err error) { rejected = append(rejected, err) }}, inner)
	wait := hold(t, h, entered)
	checkProblem(t, serve(h, newReq()), http.StatusServiceUnavailable, "3")
	if len(rejected) != 1 || !errors.Is(rejected[0], resilience.ErrLimitExceeded) {
		t.Errorf("OnReject saw %v", rejected)
	}
	release()
	if rec := wait(); rec.Code != 200 || rec.Body.String() != "done" {
		t.Errorf("held request: %d %q", rec.Code, rec.Body.String())
	}
	if lim.InFlight() != 0 {
		t.Errorf("%d in flight", lim.InFlight())
	}
}

func TestBulkheadFullAnswers503(t *testing.T) {
	bh, _ := resilience.NewBulkhead(resilience.BulkheadConfig{MaxConcurrent: 1})
	inner, entered, release := blocking()
	h := mustMiddleware(t, ServerConfig{Bulkhead: bh}, inner)
	wait := hold(t, h, entered)
	checkProblem(t, serve(h, newReq()), http.StatusServiceUnavailable, "1")
	release()
	if rec := wait(); rec.Code != 200 {
		t.Errorf("held request: %d", rec.Code)
	}
	if rec := serve(h, newReq()); rec.Code != 200 {
		t.Errorf("after release: %d", rec.Code)
	}
}

// TestOrderOfPolicies: the rate limiter answers before the limiter or the bulkhead is asked, and
// the limiter sheds before the bulkhead queues.
func TestOrderOfPolicies(t *testing.T) {
	m := clock.NewManual(time.Time{})
	rl, _ := resilience.NewRateLimiter(resilience.RateLimitConfig{Rate: 1, Burst: 2, Clock: m})
	lim, _ := resilience.NewLimiter(resilience.LimiterConfig{InitialLimit: 1, MinLimit: 1, MaxLimit: 1})
	bh, _ := resilience.NewBulkhead(resilience.BulkheadConfig{MaxConcurrent: 1, MaxQueue: 10})
	inner, entered, release := blocking()
	h := mustMiddleware(t, ServerConfig{RateLimiter: rl, Limiter: lim, Bulkhead: bh}, inner)
	wait := hold(t, h, entered) // token 1, limiter slot, bulkhead slot
	// Token 2: the limiter sheds it, so it never queues in the bulkhead.
	checkProblem(t, serve(h, newReq()), http.StatusServiceUnavailable, "1")
	if bh.Queued() != 0 {
		t.Errorf("%d queued in the bulkhead", bh.Queued())
	}
	// No token left: 429, whatever the others would say.
	checkProblem(t, serve(h, newReq()), http.StatusTooManyRequests, "1")
	release()
	wait()
}

// TestHandler503CountsAsDrop: a handler answering 503 or 504 shrinks the limiter; 200 and 500 do
// not.
func TestHandler503CountsAsDrop(t *testing.T) {
	for _, tc := range []struct {
		status int
		drop   bool
	}{{200, false}, {500, false}, {503, true}, {504, true}} {
		lim, _ := resilience.NewLimiter(resilience.LimiterConfig{InitialLimit: 10, MaxLimit: 10})
		h := mustMiddleware(t, ServerConfig{Limiter: lim}, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.WriteHeader(tc.status)
		}))
		if rec := serve(h, newReq()); rec.Code != tc.status {
			t.Fatalf("status %d passed on as %d", tc.status, rec.Code)
		}
		if got := lim.Limit() < 10; got != tc.drop {
			t.Errorf("status %d: limit %d, drop %v, want %v", tc.status, lim.Limit(), got, tc.drop)
		}
	}
}

// TestPanicReleasesSlots: a panicking handler frees its limiter and bulkhead slots, and the panic
// reaches the server with its own value.
func TestPanicReleasesSlots(t *testing.T) {
	bh, _ := resilience.NewBulkhead(resilience.BulkheadConfig{MaxConcurrent: 1})
	lim, _ := resilience.NewLimiter(resilience.LimiterConfig{InitialLimit: 1, MinLimit: 1, MaxLimit: 1})
	boom := errors.New("boom")
	h := mustMiddleware(t, ServerConfig{Bulkhead: bh, Limiter: lim}, http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
		panic(boom)
	}))
	for i := 0; i < 3; i++ {
		func() {
			defer func() {
				if v := recover(); v != boom {
					t.Fatalf("recovered %v, want the handler's panic", v)
				}
			}()
			serve(h, newReq())
			t.Fatal("no panic")
		}()
		if bh.InFlight() != 0 || lim.InFlight() != 0 {
			t.Fatalf("after panic %d: bulkhead %d, limiter %d in flight", i, bh.InFlight(), lim.InFlight())
		}
	}
}

// TestClientDisconnectLeavesTheQueue: over a real connection, a client that goes away while its
// request waits in the bulkhead's queue frees its place at once.
func TestClientDisconnectLeavesTheQueue(t *testing.T) {
	checkNoLeak(t)
	bh, _ := resilience.NewBulkhead(resilience.BulkheadConfig{MaxConcurrent: 1, MaxQueue: 1})
	inner, entered, release := blocking()
	var mu sync.Mutex
	var rejected []error
	srv := httptest.NewServer(mustMiddleware(t, ServerConfig{Bulkhead: bh, OnReject: func(_ *http.Request, err error) {
		mu.Lock()
		rejected = append(rejected, err)
		mu.Unlock()
	}}, inner))
	defer srv.Close()
	defer release()
	client := &http.Transport{}
	defer client.CloseIdleConnections()

	first := make(chan error, 1)
	go func() {
		resp, err := client.RoundTrip(get(t, srv.URL))
		if err == nil {
			resp.Body.Close()
		}
		first <- err
	}()
	<-entered

	ctx, cancel := context.WithCancel(context.Background())
	second := make(chan error, 1)
	go func() {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL, nil)
		_, err := client.RoundTrip(req)
		second <- err
	}()
	waitFor(t, "the second request to queue", func() bool { return bh.Queued() == 1 })
	// The queue is full now: a third request is turned away.
	if resp, err := client.RoundTrip(get(t, srv.URL)); err != nil || resp.StatusCode != 503 {
		t.Fatalf("third request: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	cancel()
	if err := <-second; !errors.Is(err, context.Canceled) {
		t.Errorf("second request: %v", err)
	}
	waitFor(t, "the queue to empty", func() bool { return bh.Queued() == 0 })
	mu.Lock()
	if len(rejected) != 2 || !errors.Is(rejected[0], resilience.ErrBulkheadFull) || !errors.Is(rejected[1], context.Canceled) {
		t.Errorf("OnReject saw %v", rejected)
	}
	mu.Unlock()
	release()
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the slot to be free", func() bool { return bh.InFlight() == 0 })
}

// waitFor polls cond (a state change on another goroutine, never a timeout) for up to 5 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestStatusWriterPassesFlushOn: with the Limiter (which wraps the writer), a handler can still
// flush, through the interface and through http.ResponseController.
func TestStatusWriterPassesFlushOn(t *testing.T) {
	lim, _ := resilience.NewLimiter(resilience.LimiterConfig{})
	h := mustMiddleware(t, ServerConfig{Limiter: lim}, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, "a")
		w.(http.Flusher).Flush()
		if err := http.NewResponseController(w).Flush(); err != nil {
			t.Errorf("ResponseController.Flush: %v", err)
		}
		if _, _, err := http.NewResponseController(w).Hijack(); !errors.Is(err, http.ErrNotSupported) {
			t.Errorf("Hijack on a recorder: %v", err)
		}
	}))
	if rec := serve(h, newReq()); !rec.Flushed || rec.Body.String() != "a" {
		t.Errorf("flushed %v, body %q", rec.Flushed, rec.Body.String())
	}
}

// discardWriter is a minimal ResponseWriter for the benchmark.
type discardWriter struct{ h http.Header }

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *discardWriter) WriteHeader(int)             {}

func BenchmarkMiddleware(b *testing.B) {
	rl, _ := resilience.NewRateLimiter(resilience.RateLimitConfig{Rate: 1e9, Burst: 1 << 30})
	lim, _ := resilience.NewLimiter(resilience.LimiterConfig{InitialLimit: 1000, MaxLimit: 1000})
	bh, _ := resilience.NewBulkhead(resilience.BulkheadConfig{MaxConcurrent: 1 << 20})
	handler := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(200) })
	for _, bc := range []struct {
		name string
		cfg  ServerConfig
	}{
		{"none", ServerConfig{}},
		{"all", ServerConfig{RateLimiter: rl, Limiter: lim, Bulkhead: bh}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			h := mustMiddleware(b, bc.cfg, handler)
			w := &discardWriter{h: http.Header{}}
			r := newReq()
			b.ReportAllocs()
			for b.Loop() {
				h.ServeHTTP(w, r)
			}
		})
	}
	b.Run("reject", func(b *testing.B) {
		shedLim, _ := resilience.NewLimiter(resilience.LimiterConfig{InitialLimit: 1, MinLimit: 1, MaxLimit: 1})
		inner, entered, release := blocking()
		h := mustMiddleware(b, ServerConfig{Limiter: shedLim}, inner)
		go serve(h, newReq())
		<-entered
		defer release()
		w := &discardWriter{h: http.Header{}}
		r := newReq()
		b.ReportAllocs()
		for b.Loop() {
			h.ServeHTTP(w, r)
		}
	})
}

package httpx_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"time"

	"github.com/faultline-dev/faultline/clock"
	"github.com/faultline-dev/faultline/resilience"
	"github.com/faultline-dev/faultline/resilience/httpx"
)

// A client that retries idempotent requests on 503 (waiting as long as Retry-After asks),
// breaks the circuit per host, and gives each attempt 2 s to get its response headers.
func ExampleNewTransport() {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if hits.Add(1) == 1 {
			w.Header().Set("Retry-After", "0") // "retry now"; the backoff applies
			http.Error(w, "warming up", http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "hello")
	}))
	defer srv.Close()

	retry, err := resilience.NewRetry(resilience.RetryConfig{
		MaxAttempts: 3,
		Backoff:     resilience.Backoff{Base: 10 * time.Millisecond, Max: 10 * time.Second, Jitter: resilience.JitterFull},
	})
	if err != nil {
		panic(err)
	}
	tr, err := httpx.NewTransport(httpx.TransportConfig{
		Retry:   retry,
		Timeout: 2 * time.Second,
		Breaker: func(host string) (*resilience.Breaker, error) {
			return resilience.NewBreaker(resilience.BreakerConfig{Name: host, ConsecutiveFailures: 5, OpenDuration: 30 * time.Second})
		},
	})
	if err != nil {
		panic(err)
	}
	client := &http.Client{Transport: tr}

	resp, err := client.Get(srv.URL)
	if err != nil {
		panic(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body) // readable after RoundTrip: the timeout covered the headers only
	fmt.Println(resp.StatusCode, string(body), "after", hits.Load(), "attempts")
	// Output: 200 hello after 2 attempts
}

// A POST is retried only with an idempotency key; every attempt sends the same body.
func ExampleTransport_idempotencyKey() {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		fmt.Printf("attempt %d: %s\n", hits.Add(1), b)
		if hits.Load() < 3 {
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		w.WriteHeader(http.StatusCreated)
	}))
	defer srv.Close()

	retry, _ := resilience.NewRetry(resilience.RetryConfig{Backoff: resilience.Backoff{Base: time.Millisecond}})
	tr, _ := httpx.NewTransport(httpx.TransportConfig{Retry: retry})
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/orders", strings.NewReader(`{"sku":"A-1"}`))
	req.Header.Set("Idempotency-Key", "order-7f3a")
	resp, err := tr.RoundTrip(req)
	if err != nil {
		panic(err)
	}
	resp.Body.Close()
	fmt.Println(resp.Status)
	// Output:
	// attempt 1: {"sku":"A-1"}
	// attempt 2: {"sku":"A-1"}
	// attempt 3: {"sku":"A-1"}
	// 201 Created
}

// A server that admits 1 request per second and answers the rest 429 with Retry-After and an
// RFC 9457 problem.
func ExampleMiddleware() {
	clk := clock.NewManual(time.Time{}) // a real server leaves Clock nil
	rl, _ := resilience.NewRateLimiter(resilience.RateLimitConfig{Rate: 1, Clock: clk})
	bh, _ := resilience.NewBulkhead(resilience.BulkheadConfig{MaxConcurrent: 64, MaxQueue: 64})
	mw, err := httpx.Middleware(httpx.ServerConfig{RateLimiter: rl, Bulkhead: bh})
	if err != nil {
		panic(err)
	}
	h := mw(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") }))

	for i := 0; i < 2; i++ {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
		fmt.Println(rec.Code, rec.Header().Get("Retry-After"), rec.Header().Get("Content-Type"))
		fmt.Print(rec.Body.String())
	}
	// Output:
	// 200  text/plain; charset=utf-8
	// ok
	// 429 1 application/problem+json
	// {"type":"about:blank","title":"Too Many Requests","status":429,"detail":"The request rate limit is exceeded; retry after the number of seconds in the Retry-After header."}
}

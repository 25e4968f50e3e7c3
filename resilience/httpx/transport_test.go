package httpx

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/faultline-dev/faultline/clock"
	"github.com/faultline-dev/faultline/resilience"
)

func TestNewTransportRejectsNegativeTimeout(t *testing.T) {
	if _, err := NewTransport(TransportConfig{Timeout: -time.Second}); err == nil || !strings.Contains(err.Error(), "Timeout") {
		t.Fatalf("err = %v, want one naming Timeout", err)
	}
}

func TestRetriesGETOn503ThenSucceeds(t *testing.T) {
	s := newServer(t, statuses(503, 503, 200))
	var retried []int
	tr := newTransport(t, TransportConfig{Base: s.base(t), Retry: fastRetry(t, 3, func(n int, err error, _ time.Duration) {
		var se *StatusError
		if !errors.As(err, &se) || se.StatusCode != 503 {
			t.Errorf("attempt %d error %v, want a *StatusError 503", n, err)
		}
		retried = append(retried, n)
	})})
	resp, body, err := do(t, tr, get(t, s.URL))
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || body != "answer 2 status 200" {
		t.Errorf("got %d %q", resp.StatusCode, body)
	}
	if s.hits.Load() != 3 || len(retried) != 2 {
		t.Errorf("%d hits, retries after attempts %v; want 3 and [1 2]", s.hits.Load(), retried)
	}
}

// TestRetryAfterHonoured: the wait before the retry is the server's Retry-After (seconds or an
// HTTP-date, read on the Transport's clock), not the backoff, as the manual clock's pending timer
// and OnRetry show.
func TestRetryAfterHonoured(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name, header string
		want         time.Duration
	}{
		{"seconds", "2", 2 * time.Second},
		{"date", start.Add(3 * time.Second).Format(http.TimeFormat), 3 * time.Second},
		{"malformed uses the backoff", "soon", 100 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := clock.NewManual(start)
			s := newServer(t, func(n int, w http.ResponseWriter, _ *http.Request) {
				if n == 0 {
					w.Header().Set("Retry-After", tc.header)
					w.WriteHeader(http.StatusServiceUnavailable)
					return
				}
				io.WriteString(w, "ok")
			})
			delays := make(chan time.Duration, 1)
			r, err := resilience.NewRetry(resilience.RetryConfig{Clock: m,
				OnRetry: func(_ int, _ error, d time.Duration) { delays <- d }})
			if err != nil {
				t.Fatal(err)
			}
			tr := newTransport(t, TransportConfig{Base: s.base(t), Retry: r, Clock: m})
			type result struct {
				body string
				err  error
			}
			done := make(chan result, 1)
			go func() {
				_, body, err := do(t, tr, get(t, s.URL))
				done <- result{body, err}
			}()
			waitTimers(t, m, 1)
			if d := <-delays; d != tc.want {
				t.Errorf("OnRetry delay %v, want %v", d, tc.want)
			}
			if at, _ := m.NextDeadline(); at.Sub(m.Now()) != tc.want {
				t.Errorf("waiting %v, want %v", at.Sub(m.Now()), tc.want)
			}
			m.Advance(tc.want - time.Nanosecond)
			if s.hits.Load() != 1 {
				t.Fatalf("retried before the wait was over")
			}
			m.Advance(time.Nanosecond)
			res := <-done
			if res.err != nil || res.body != "ok" {
				t.Fatalf("got %q, %v", res.body, res.err)
			}
		})
	}
}

// TestRetryAfterLongerThanMaxReturnsResponse: a server asking for a longer wait than
// MaxRetryAfter gets no early retry; the caller sees its response and header.
func TestRetryAfterLongerThanMaxReturnsResponse(t *testing.T) {
	s := newServer(t, func(_ int, w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Retry-After", "120")
		w.WriteHeader(http.StatusTooManyRequests)
		io.WriteString(w, "slow down")
	})
	tr := newTransport(t, TransportConfig{Base: s.base(t), Retry: fastRetry(t, 3, nil), MaxRetryAfter: time.Minute})
	resp, body, err := do(t, tr, get(t, s.URL))
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") != "120" || body != "slow down" || s.hits.Load() != 1 {
		t.Errorf("got %d %q %q after %d hits", resp.StatusCode, resp.Header.Get("Retry-After"), body, s.hits.Load())
	}
}

func TestPOSTWithoutIdempotencyKeyIsNotRetried(t *testing.T) {
	s := newServer(t, statuses(503, 200))
	retries := 0
	tr := newTransport(t, TransportConfig{Base: s.base(t), Retry: fastRetry(t, 3, func(int, error, time.Duration) { retries++ })})
	req, _ := http.NewRequest(http.MethodPost, s.URL, strings.NewReader("payload"))
	resp, body, err := do(t, tr, req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 503 || body != "answer 0 status 503" || s.hits.Load() != 1 || retries != 0 {
		t.Errorf("got %d %q after %d hits and %d retries; want the first 503 and no retry", resp.StatusCode, body, s.hits.Load(), retries)
	}

	// Transport errors are not retried either.
	calls := 0
	tr = newTransport(t, TransportConfig{Retry: fastRetry(t, 3, nil), Base: stubRT(func(*http.Request) (*http.Response, error) {
		calls++
		return nil, errors.New("connection reset")
	})})
	req, _ = http.NewRequest(http.MethodPatch, "http://example.test/", nil)
	if _, err := tr.RoundTrip(req); err == nil || calls != 1 {
		t.Errorf("PATCH: %d calls, err %v; want 1 call and the error", calls, err)
	}
	// Unless the Transport is told to retry every method.
	calls = 0
	tr = newTransport(t, TransportConfig{Retry: fastRetry(t, 3, nil), RetryNonIdempotent: true,
		Base: stubRT(func(*http.Request) (*http.Response, error) { calls++; return nil, errors.New("connection reset") })})
	if _, err := tr.RoundTrip(req); err == nil || calls != 3 {
		t.Errorf("PATCH with RetryNonIdempotent: %d calls, err %v; want 3 calls", calls, err)
	}
}

// TestPOSTWithIdempotencyKeyIsRetriedWithTheSameBody, for bodies with GetBody and for bodies the
// Transport buffers; the caller's request is left as it was and its body closed.
func TestPOSTWithIdempotencyKeyIsRetriedWithTheSameBody(t *testing.T) {
	const payload = `{"order":42,"items":["a","b"]}`
	for _, tc := range []struct {
		name, header string
		body         func() io.Reader
	}{
		{"GetBody", "Idempotency-Key", func() io.Reader { return strings.NewReader(payload) }},
		{"buffered", "Idempotency-Key", func() io.Reader { return newNoGetBody(payload) }},
		{"buffered chunked", "X-Idempotency-Key", func() io.Reader { return newNoGetBody(payload) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newServer(t, statuses(503, 502, 201))
			tr := newTransport(t, TransportConfig{Base: s.base(t), Retry: fastRetry(t, 3, nil)})
			body := tc.body()
			req, _ := http.NewRequest(http.MethodPost, s.URL, body)
			if tc.name == "buffered chunked" {
				req.ContentLength = -1
			}
			req.Header.Set(tc.header, "k-1")
			before, reqBody, ctx := req.Header.Clone(), req.Body, req.Context()
			resp, _, err := do(t, tr, req)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != 201 {
				t.Fatalf("status %d", resp.StatusCode)
			}
			got := s.Bodies()
			if len(got) != 3 {
				t.Fatalf("%d requests, want 3", len(got))
			}
			for i, b := range got {
				if b != payload {
					t.Errorf("attempt %d sent %q, want %q", i+1, b, payload)
				}
			}
			if req.Body != reqBody || req.Context() != ctx || fmt.Sprint(req.Header) != fmt.Sprint(before) {
				t.Error("the caller's request was modified")
			}
			if nb, ok := body.(*noGetBody); ok && !nb.closed.Load() {
				t.Error("the caller's body was not closed")
			}
		})
	}
}

// TestLargeBodyIsSentOnceNotRetried: a body without GetBody longer than MaxReplayBody (known
// from ContentLength or found out by reading) is sent once, intact, and not retried.
func TestLargeBodyIsSentOnceNotRetried(t *testing.T) {
	payload := strings.Repeat("x", 100)
	for _, length := range []int64{-1, 100} {
		t.Run(fmt.Sprint("ContentLength ", length), func(t *testing.T) {
			s := newServer(t, statuses(503, 200))
			tr := newTransport(t, TransportConfig{Base: s.base(t), Retry: fastRetry(t, 3, nil), MaxReplayBody: 16})
			body := newNoGetBody(payload)
			req, _ := http.NewRequest(http.MethodPut, s.URL, body)
			req.ContentLength = length
			resp, _, err := do(t, tr, req)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != 503 || s.hits.Load() != 1 {
				t.Errorf("status %d after %d hits, want the 503 and 1 hit", resp.StatusCode, s.hits.Load())
			}
			if got := s.Bodies(); len(got) != 1 || got[0] != payload {
				t.Errorf("server saw %q", got)
			}
			if !body.closed.Load() {
				t.Error("body not closed")
			}
		})
	}
	// Within the limit, the same body is buffered and retried.
	s := newServer(t, statuses(503, 200))
	tr := newTransport(t, TransportConfig{Base: s.base(t), Retry: fastRetry(t, 3, nil), MaxReplayBody: 100})
	req, _ := http.NewRequest(http.MethodPut, s.URL, newNoGetBody(payload))
	if resp, _, err := do(t, tr, req); err != nil || resp.StatusCode != 200 || s.hits.Load() != 2 {
		t.Errorf("within the limit: %v, %d hits", err, s.hits.Load())
	}
}

// TestFinalRetryableResponseIsReturned: when the retries end on a retryable status, the caller
// gets that last response with its whole body, short (drained and replayed) or longer than
// MaxDrain (partly read, then streamed).
func TestFinalRetryableResponseIsReturned(t *testing.T) {
	for _, size := range []int{10, MaxDrain, MaxDrain + 1, 3 * MaxDrain} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			s := newServer(t, func(n int, w http.ResponseWriter, _ *http.Request) {
				w.WriteHeader(http.StatusBadGateway)
				io.WriteString(w, fmt.Sprintf("%d:", n)+strings.Repeat("b", size))
			})
			tr := newTransport(t, TransportConfig{Base: s.base(t), Retry: fastRetry(t, 3, nil)})
			resp, body, err := do(t, tr, get(t, s.URL))
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != 502 || body != "2:"+strings.Repeat("b", size) || s.hits.Load() != 3 {
				t.Errorf("status %d, body %d bytes starting %.5q, %d hits", resp.StatusCode, len(body), body, s.hits.Load())
			}
		})
	}
}

// TestDrainedBodiesReuseTheConnection: discarded responses are drained, so three attempts use one
// connection.
func TestDrainedBodiesReuseTheConnection(t *testing.T) {
	for _, timeout := range []time.Duration{0, time.Minute} {
		t.Run(fmt.Sprint("Timeout ", timeout), func(t *testing.T) {
			s := newServer(t, statuses(503, 500, 200))
			tr := newTransport(t, TransportConfig{Base: s.base(t), Retry: fastRetry(t, 3, nil), Timeout: timeout})
			for i := 0; i < 3; i++ {
				if resp, _, err := do(t, tr, get(t, s.URL)); err != nil || resp.StatusCode != 200 {
					t.Fatalf("request %d: %v", i, err)
				}
				s.hits.Store(0)
			}
			if n := s.conns.Load(); n != 1 {
				t.Errorf("%d connections for 9 attempts, want 1", n)
			}
		})
	}
}

// TestAttemptContextEndsWithTheBody: with Timeout, the attempt's context ends once the body is
// read to its end or closed, not before.
func TestAttemptContextEndsWithTheBody(t *testing.T) {
	for _, closeIt := range []bool{false, true} {
		var ctx context.Context
		tr := newTransport(t, TransportConfig{Timeout: time.Minute, Base: stubRT(func(r *http.Request) (*http.Response, error) {
			ctx = r.Context()
			return &http.Response{StatusCode: 200, Header: http.Header{}, Body: io.NopCloser(strings.NewReader("body"))}, nil
		})})
		resp, err := tr.RoundTrip(get(t, "http://example.test/"))
		if err != nil {
			t.Fatal(err)
		}
		if ctx.Err() != nil {
			t.Fatal("attempt context ended when RoundTrip returned")
		}
		if closeIt {
			resp.Body.Close()
		} else if b, _ := io.ReadAll(resp.Body); string(b) != "body" {
			t.Fatalf("body %q", b)
		}
		if ctx.Err() == nil {
			t.Errorf("close %v: attempt context still live", closeIt)
		}
	}
}

func TestPerHostBreakersAreIndependent(t *testing.T) {
	a := newServer(t, statuses(500))
	b := newServer(t, statuses(200))
	made := map[string]int{}
	var mu sync.Mutex
	tr := newTransport(t, TransportConfig{Base: a.base(t), Breaker: func(host string) (*resilience.Breaker, error) {
		mu.Lock()
		made[host]++
		mu.Unlock()
		return resilience.NewBreaker(resilience.BreakerConfig{ConsecutiveFailures: 2})
	}})
	hostA, hostB := a.Listener.Addr().String(), b.Listener.Addr().String()
	for i := 0; i < 2; i++ {
		if resp, _, err := do(t, tr, get(t, a.URL)); err != nil || resp.StatusCode != 500 {
			t.Fatalf("A %d: %v", i, err)
		}
	}
	if _, _, err := do(t, tr, get(t, a.URL)); !errors.Is(err, resilience.ErrOpen) || !strings.Contains(err.Error(), hostA) {
		t.Errorf("A after 2 failures: %v, want ErrOpen naming %s", err, hostA)
	}
	if a.hits.Load() != 2 {
		t.Errorf("A hit %d times, want 2 (the open breaker stops the third)", a.hits.Load())
	}
	for i := 0; i < 3; i++ {
		if resp, _, err := do(t, tr, get(t, b.URL)); err != nil || resp.StatusCode != 200 {
			t.Errorf("B %d: %v", i, err)
		}
	}
	now := time.Now()
	if st := tr.Breaker(hostA).State(now); st != resilience.BreakerOpen {
		t.Errorf("A's breaker %v", st)
	}
	if st := tr.Breaker(hostB).State(now); st != resilience.BreakerClosed {
		t.Errorf("B's breaker %v", st)
	}
	if made[hostA] != 1 || made[hostB] != 1 || len(made) != 2 {
		t.Errorf("breakers made: %v, want one per host", made)
	}
	if tr.Breaker("unknown:1") != nil {
		t.Error("a breaker for a host never asked")
	}
}

// TestBreakerCountsStatusesAsClassified: 429 and 501 do not open the breaker by default.
func TestBreakerCountsStatusesAsClassified(t *testing.T) {
	s := newServer(t, statuses(429, 501, 404, 429, 501))
	tr := newTransport(t, TransportConfig{Base: s.base(t), Breaker: func(string) (*resilience.Breaker, error) {
		return resilience.NewBreaker(resilience.BreakerConfig{ConsecutiveFailures: 1})
	}})
	for i := 0; i < 5; i++ {
		if _, _, err := do(t, tr, get(t, s.URL)); err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
	}
	if c := tr.Breaker(s.Listener.Addr().String()).Counts(time.Now()); c.ConsecutiveFailures != 0 {
		t.Errorf("counts %+v, want no failure", c)
	}
}

func TestOpenBreakerFailsWithoutReachingTheServer(t *testing.T) {
	s := newServer(t, statuses(200))
	br, _ := resilience.NewBreaker(resilience.BreakerConfig{})
	br.ForceOpen()
	retries := 0
	tr := newTransport(t, TransportConfig{Base: s.base(t), Retry: fastRetry(t, 5, func(int, error, time.Duration) { retries++ }),
		Breaker: func(string) (*resilience.Breaker, error) { return br, nil }})
	body := newNoGetBody("x")
	req, _ := http.NewRequest(http.MethodPut, s.URL, body)
	_, err := tr.RoundTrip(req)
	if !errors.Is(err, resilience.ErrOpen) {
		t.Fatalf("err = %v, want ErrOpen", err)
	}
	if s.hits.Load() != 0 || retries != 0 || !body.closed.Load() {
		t.Errorf("%d hits, %d retries, body closed %v; want none, none, true", s.hits.Load(), retries, body.closed.Load())
	}
	// A failing factory fails the request, and is asked again next time.
	calls := 0
	tr = newTransport(t, TransportConfig{Base: s.base(t), Breaker: func(string) (*resilience.Breaker, error) {
		calls++
		return nil, errors.New("no config")
	}})
	for i := 0; i < 2; i++ {
		if _, err := tr.RoundTrip(get(t, s.URL)); err == nil || !strings.Contains(err.Error(), "no config") {
			t.Errorf("err = %v", err)
		}
	}
	if calls != 2 || s.hits.Load() != 0 {
		t.Errorf("factory called %d times, %d hits", calls, s.hits.Load())
	}
}

// TestCallerCancelDuringBackoff: cancelling while the retry waits returns at once with
// context.Canceled, closes the discarded response, and leaves no goroutine.
func TestCallerCancelDuringBackoff(t *testing.T) {
	checkNoLeak(t)
	m := clock.NewManual(time.Time{})
	var bodies []*trackedBody
	var mu sync.Mutex
	base := stubRT(func(*http.Request) (*http.Response, error) {
		b := &trackedBody{Reader: strings.NewReader("busy")}
		mu.Lock()
		bodies = append(bodies, b)
		mu.Unlock()
		return &http.Response{StatusCode: 503, Header: http.Header{}, Body: b}, nil
	})
	r, _ := resilience.NewRetry(resilience.RetryConfig{MaxAttempts: 5, Clock: m, Backoff: resilience.Backoff{Base: time.Hour, Max: time.Hour}})
	tr := newTransport(t, TransportConfig{Base: base, Retry: r, Clock: m, Timeout: time.Minute})
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://example.test/", nil)
	errc := make(chan error, 1)
	go func() {
		_, err := tr.RoundTrip(req)
		errc <- err
	}()
	waitTimers(t, m, 1) // the backoff wait
	cancel()
	select {
	case err := <-errc:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("err = %v, want context.Canceled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("RoundTrip did not return after the caller cancelled")
	}
	mu.Lock()
	defer mu.Unlock()
	if len(bodies) != 1 || !bodies[0].closed.Load() {
		t.Errorf("%d responses, first closed: %v", len(bodies), len(bodies) > 0 && bodies[0].closed.Load())
	}
	if m.Timers() != 0 {
		t.Errorf("%d timers left", m.Timers())
	}
}

// TestCallerCancelDuringAttempt: the caller's cancellation ends an attempt waiting for headers.
func TestCallerCancelDuringAttempt(t *testing.T) {
	checkNoLeak(t)
	release := make(chan struct{})
	s := newServer(t, func(_ int, w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	})
	defer close(release)
	tr := newTransport(t, TransportConfig{Base: s.base(t), Retry: fastRetry(t, 3, nil), Timeout: time.Hour})
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.URL, nil)
	errc := make(chan error, 1)
	go func() {
		_, err := tr.RoundTrip(req)
		errc <- err
	}()
	for s.hits.Load() == 0 {
		time.Sleep(time.Millisecond) // wait for the request to arrive (not for a timeout)
	}
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) || s.hits.Load() != 1 {
		t.Errorf("err = %v after %d hits, want context.Canceled and no retry", err, s.hits.Load())
	}
}

// slowBody starts a server that sends its headers and a first chunk, then the rest only when
// the test closes the returned channel.
func slowBody(t *testing.T) (*server, chan struct{}) {
	more := make(chan struct{})
	s := newServer(t, func(_ int, w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "first,")
		w.(http.Flusher).Flush()
		select {
		case <-more:
		case <-r.Context().Done():
			return
		}
		io.WriteString(w, "second")
	})
	return s, more
}

// TestBodyReadableAfterRoundTripWithTimeouts is the failsafe-go #123 case: a body streamed slowly
// is read after RoundTrip returned, with Timeout (on a manual clock moved far past it) and with a
// Retry whose PerAttemptTimeout cancels its attempt context as soon as the attempt returns.
func TestBodyReadableAfterRoundTripWithTimeouts(t *testing.T) {
	m := clock.NewManual(time.Time{})
	perAttempt, _ := resilience.NewRetry(resilience.RetryConfig{PerAttemptTimeout: time.Second, Clock: m})
	plain, _ := resilience.NewRetry(resilience.RetryConfig{Clock: m})
	for _, tc := range []struct {
		name string
		cfg  TransportConfig
	}{
		{"Timeout", TransportConfig{Timeout: time.Second, Clock: m}},
		{"Timeout and Retry", TransportConfig{Timeout: time.Second, Retry: plain, Clock: m}},
		{"Retry.PerAttemptTimeout", TransportConfig{Retry: perAttempt, Clock: m}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, more := slowBody(t)
			tc.cfg.Base = s.base(t)
			tr := newTransport(t, tc.cfg)
			resp, err := tr.RoundTrip(get(t, s.URL))
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if m.Timers() != 0 {
				t.Errorf("%d timers still pending after the headers arrived", m.Timers())
			}
			m.Advance(time.Hour) // far past every timeout
			first := make([]byte, len("first,"))
			if _, err := io.ReadFull(resp.Body, first); err != nil {
				t.Fatalf("reading the first chunk: %v", err)
			}
			close(more)
			rest, err := io.ReadAll(resp.Body)
			if err != nil || string(first)+string(rest) != "first,second" {
				t.Fatalf("body %q, err %v", string(first)+string(rest), err)
			}
		})
	}
}

// TestTimeoutEndsAttemptWaitingForHeaders: Timeout fails an attempt whose headers do not come,
// with ErrTimeout and an EventTimeout; the retry then tries again.
func TestTimeoutEndsAttemptWaitingForHeaders(t *testing.T) {
	checkNoLeak(t)
	m := clock.NewManual(time.Time{})
	arrived := make(chan struct{}, 2)
	s := newServer(t, func(n int, w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		if n == 0 {
			<-r.Context().Done() // never answers the first attempt
			return
		}
		io.WriteString(w, "second attempt")
	})
	events := make(chan resilience.Event, 4)
	retry, _ := resilience.NewRetry(resilience.RetryConfig{Clock: m, Backoff: resilience.Backoff{Base: time.Second}})
	tr := newTransport(t, TransportConfig{Base: s.base(t), Retry: retry, Timeout: 5 * time.Second, Clock: m, Name: "api",
		Observer: resilience.ObserverFunc(func(_ context.Context, e resilience.Event) { events <- e })})
	type result struct {
		body string
		err  error
	}
	done := make(chan result, 1)
	go func() {
		_, body, err := do(t, tr, get(t, s.URL))
		done <- result{body, err}
	}()
	waitTimers(t, m, 1) // the attempt's timeout
	<-arrived           // the server holds the first request
	m.Advance(5 * time.Second)
	e := <-events
	if e.Type != resilience.EventTimeout || e.Kind != resilience.KindTimeout || e.Name != "api" || !errors.Is(e.Err, resilience.ErrTimeout) {
		t.Errorf("event %v", e)
	}
	waitTimers(t, m, 1) // the backoff
	m.Advance(time.Second)
	if res := <-done; res.err != nil || res.body != "second attempt" {
		t.Fatalf("got %q, %v", res.body, res.err)
	}

	// Without a retry the caller gets the timeout.
	tr = newTransport(t, TransportConfig{Base: s.base(t), Timeout: time.Second, Clock: m})
	s.hits.Store(0)
	errc := make(chan error, 1)
	go func() { _, err := tr.RoundTrip(get(t, s.URL)); errc <- err }()
	waitTimers(t, m, 1)
	<-arrived
	m.Advance(time.Second)
	if err := <-errc; !errors.Is(err, resilience.ErrTimeout) {
		t.Errorf("err = %v, want ErrTimeout", err)
	}
}

func TestRateLimiterRejectsWithRetryAfter(t *testing.T) {
	m := clock.NewManual(time.Time{})
	s := newServer(t, statuses(200))
	rl, _ := resilience.NewRateLimiter(resilience.RateLimitConfig{Rate: 0.5, Clock: m})
	tr := newTransport(t, TransportConfig{Base: s.base(t), RateLimiter: rl, Retry: fastRetry(t, 3, nil)})
	if _, _, err := do(t, tr, get(t, s.URL)); err != nil {
		t.Fatal(err)
	}
	body := newNoGetBody("x")
	req, _ := http.NewRequest(http.MethodPut, s.URL, body)
	_, err := tr.RoundTrip(req)
	var ra resilience.RetryAfterError
	if !errors.Is(err, resilience.ErrRateLimited) || !errors.As(err, &ra) || ra.RetryAfter() != 2*time.Second {
		t.Errorf("err = %v, want ErrRateLimited with RetryAfter 2s", err)
	}
	if s.hits.Load() != 1 || !body.closed.Load() {
		t.Errorf("%d hits (want 1), body closed %v", s.hits.Load(), body.closed.Load())
	}
}

// TestBulkheadRejectionIsNotCountedByTheBreaker: an attempt the bulkhead turns away never reached
// the host, so the breaker counts it neither way.
func TestBulkheadRejectionIsNotCountedByTheBreaker(t *testing.T) {
	release := make(chan struct{})
	s := newServer(t, func(n int, w http.ResponseWriter, _ *http.Request) {
		if n == 0 {
			<-release
		}
		w.WriteHeader(http.StatusInternalServerError)
	})
	bh, _ := resilience.NewBulkhead(resilience.BulkheadConfig{MaxConcurrent: 1})
	tr := newTransport(t, TransportConfig{Base: s.base(t), Bulkhead: bh, Breaker: func(string) (*resilience.Breaker, error) {
		return resilience.NewBreaker(resilience.BreakerConfig{ConsecutiveFailures: 1})
	}})
	done := make(chan error, 1)
	go func() { _, _, err := do(t, tr, get(t, s.URL)); done <- err }()
	for bh.InFlight() == 0 || s.hits.Load() == 0 {
		time.Sleep(time.Millisecond) // wait for the first request to hold the slot
	}
	if _, err := tr.RoundTrip(get(t, s.URL)); !errors.Is(err, resilience.ErrBulkheadFull) {
		t.Fatalf("err = %v, want ErrBulkheadFull", err)
	}
	br := tr.Breaker(s.Listener.Addr().String())
	if st := br.State(time.Now()); st != resilience.BreakerClosed {
		t.Fatalf("breaker %v after a bulkhead rejection", st)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if st := br.State(time.Now()); st != resilience.BreakerOpen {
		t.Errorf("breaker %v after the real 500, want open", st)
	}
	if bh.InFlight() != 0 {
		t.Errorf("%d slots held", bh.InFlight())
	}
}

// TestBulkheadRejectionDoesNotCloseAHalfOpenBreaker: a probe turned away by the bulkhead is no
// success; the breaker stays half-open until a real probe answers.
func TestBulkheadRejectionDoesNotCloseAHalfOpenBreaker(t *testing.T) {
	m := clock.NewManual(time.Time{})
	status := 500
	base := stubRT(func(*http.Request) (*http.Response, error) {
		return &http.Response{StatusCode: status, Header: http.Header{}, Body: http.NoBody}, nil
	})
	bh, _ := resilience.NewBulkhead(resilience.BulkheadConfig{MaxConcurrent: 1})
	br, _ := resilience.NewBreaker(resilience.BreakerConfig{ConsecutiveFailures: 1, OpenDuration: time.Second, Clock: m})
	tr := newTransport(t, TransportConfig{Base: base, Bulkhead: bh, Breaker: func(string) (*resilience.Breaker, error) { return br, nil }})
	if resp, err := tr.RoundTrip(get(t, "http://example.test/")); err != nil || resp.StatusCode != 500 {
		t.Fatalf("%v %v", resp, err)
	}
	m.Advance(time.Second)
	if st := br.State(m.Now()); st != resilience.BreakerHalfOpen {
		t.Fatalf("breaker %v, want half-open", st)
	}
	held, release := make(chan struct{}), make(chan struct{})
	go bh.Execute(context.Background(), func(context.Context) error { close(held); <-release; return nil })
	<-held
	if _, err := tr.RoundTrip(get(t, "http://example.test/")); !errors.Is(err, resilience.ErrBulkheadFull) {
		t.Fatalf("err = %v, want ErrBulkheadFull", err)
	}
	if st := br.State(m.Now()); st != resilience.BreakerHalfOpen {
		t.Fatalf("breaker %v after a probe the bulkhead turned away, want half-open", st)
	}
	close(release)
	waitFor(t, "the slot", func() bool { return bh.InFlight() == 0 })
	status = 200
	if _, err := tr.RoundTrip(get(t, "http://example.test/")); err != nil {
		t.Fatal(err)
	}
	if st := br.State(m.Now()); st != resilience.BreakerClosed {
		t.Errorf("breaker %v after a successful probe, want closed", st)
	}
}

// TestCertificateErrorsAreNotRetried: a TLS verification failure is permanent.
func TestCertificateErrorsAreNotRetried(t *testing.T) {
	tls := newTLSServer(t)
	base := &http.Transport{}
	t.Cleanup(base.CloseIdleConnections)
	tr := newTransport(t, TransportConfig{Base: base, Retry: fastRetry(t, 3, nil)})
	_, err := tr.RoundTrip(get(t, tls.URL))
	if err == nil || !resilience.IsPermanent(err) || tls.hits.Load() != 0 {
		t.Errorf("err = %v (permanent %v), %d hits", err, resilience.IsPermanent(err), tls.hits.Load())
	}
}

func TestStatusErrorMessage(t *testing.T) {
	for _, tc := range []struct {
		e    *StatusError
		want string
	}{
		{&StatusError{StatusCode: 503}, "httpx: response status 503 Service Unavailable"},
		{&StatusError{StatusCode: 429, Wait: 2 * time.Second}, "httpx: response status 429 Too Many Requests (Retry-After 2s)"},
	} {
		if got := tc.e.Error(); got != tc.want {
			t.Errorf("%q, want %q", got, tc.want)
		}
	}
}

func TestIsIdempotent(t *testing.T) {
	for _, tc := range []struct {
		method, header string
		want           bool
	}{
		{"", "", true}, {"GET", "", true}, {"HEAD", "", true}, {"OPTIONS", "", true}, {"TRACE", "", true},
		{"PUT", "", true}, {"DELETE", "", true}, {"POST", "", false}, {"PATCH", "", false}, {"CONNECT", "", false},
		{"POST", "Idempotency-Key", true}, {"PATCH", "X-Idempotency-Key", true}, {"POST", "X-Request-Id", false},
	} {
		req := &http.Request{Method: tc.method, Header: http.Header{}}
		if tc.header != "" {
			req.Header.Set(tc.header, "v")
		}
		if got := IsIdempotent(req); got != tc.want {
			t.Errorf("%q with %q: %v", tc.method, tc.header, got)
		}
	}
}

// TestConcurrentRequests runs many requests at once under the race detector: per-host breaker
// creation, shared bulkhead and retry.
func TestConcurrentRequests(t *testing.T) {
	s := newServer(t, func(n int, w http.ResponseWriter, _ *http.Request) {
		if n%3 == 0 {
			w.WriteHeader(503)
		}
		io.WriteString(w, "ok")
	})
	var made sync.Map
	bh, _ := resilience.NewBulkhead(resilience.BulkheadConfig{MaxConcurrent: 4, MaxQueue: 100})
	tr := newTransport(t, TransportConfig{Base: s.base(t), Retry: fastRetry(t, 5, nil), Bulkhead: bh,
		Breaker: func(host string) (*resilience.Breaker, error) {
			if _, dup := made.LoadOrStore(host, true); dup {
				t.Errorf("second breaker for %s", host)
			}
			return resilience.NewBreaker(resilience.BreakerConfig{WindowSize: 1000, MinCalls: 1000})
		}})
	var wg sync.WaitGroup
	for i := 0; i < 32; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequest(http.MethodPut, s.URL, bytes.NewReader([]byte("body")))
			resp, err := tr.RoundTrip(req)
			if err != nil {
				t.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}()
	}
	wg.Wait()
	for _, b := range s.Bodies() {
		if b != "body" {
			t.Fatalf("server saw %q", b)
		}
	}
}

func BenchmarkTransport(b *testing.B) {
	resp := func(*http.Request) (*http.Response, error) {
		return &http.Response{StatusCode: 200, Header: http.Header{}, Body: http.NoBody}, nil
	}
	retry, _ := resilience.NewRetry(resilience.RetryConfig{})
	bh, _ := resilience.NewBulkhead(resilience.BulkheadConfig{MaxConcurrent: 1 << 20})
	rl, _ := resilience.NewRateLimiter(resilience.RateLimitConfig{Rate: 1e9, Burst: 1 << 30})
	br, _ := resilience.NewBreaker(resilience.BreakerConfig{})
	for _, bc := range []struct {
		name string
		cfg  TransportConfig
	}{
		{"bare", TransportConfig{}},
		{"retry", TransportConfig{Retry: retry}},
		{"retry+timeout", TransportConfig{Retry: retry, Timeout: time.Minute}},
		{"all", TransportConfig{Retry: retry, Timeout: time.Minute, Bulkhead: bh, RateLimiter: rl,
			Breaker: func(string) (*resilience.Breaker, error) { return br, nil }}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			bc.cfg.Base = stubRT(resp)
			tr, err := NewTransport(bc.cfg)
			if err != nil {
				b.Fatal(err)
			}
			req, _ := http.NewRequest(http.MethodGet, "http://example.test/", nil)
			b.ReportAllocs()
			for b.Loop() {
				r, err := tr.RoundTrip(req)
				if err != nil {
					b.Fatal(err)
				}
				r.Body.Close()
			}
		})
	}
}

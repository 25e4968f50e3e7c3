package httpx

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/faultline-dev/faultline/resilience"
)

// DefaultRetryAfter is ServerConfig.RetryAfter's default.
const DefaultRetryAfter = time.Second

// ServerConfig configures Middleware. Every policy is optional; each may be shared by several
// handlers (one bulkhead for a group of routes).
type ServerConfig struct {
	// RateLimiter admits requests at a steady rate. A request it has no token for (within its
	// MaxWait) is answered 429 Too Many Requests, with a Retry-After of the limiter's own wait
	// rounded up to whole seconds, at least 1.
	RateLimiter *resilience.RateLimiter
	// Limiter is an adaptive concurrency limiter: a request beyond its limit is shed at once with
	// 503 Service Unavailable. A request the handler answers 503 or 504 counts as a drop (it
	// reaches the Limiter as an error matching resilience.ErrTimeout, which its default IsDrop
	// accepts) and shrinks the limit; every other status is a success; a request whose client went
	// away before the handler returned is not counted.
	Limiter *resilience.Limiter
	// Bulkhead bounds the requests the handler serves at once, queueing the overflow as it is
	// configured. A request it turns away is answered 503 Service Unavailable. A queued request
	// leaves the queue as soon as its context ends (the client went away).
	Bulkhead *resilience.Bulkhead
	// RetryAfter is the Retry-After sent with 503 rejections, rounded up to whole seconds. Zero
	// means DefaultRetryAfter (1 s).
	RetryAfter time.Duration
	// OnReject, when set, is called (on the request's goroutine, before the answer is written)
	// for each request not handed to the handler, with the reason: an error matching
	// resilience.ErrRateLimited, ErrLimitExceeded or ErrBulkheadFull, or the request context's
	// error when it ended while the request waited for a token or a slot.
	OnReject func(r *http.Request, err error)
}

// Problem is an RFC 9457 problem details object, the body of every rejection Middleware writes
// (Content-Type application/problem+json).
type Problem struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail"`
}

// Middleware returns a middleware guarding a handler with the policies of cfg, in this order:
// rate limiter (429) → adaptive limiter (503) → bulkhead (503) → handler. Each request's own
// context is used throughout, so a wait for a token or a slot ends when the client goes away, and
// the handler sees the request unchanged. A panicking handler frees its limiter and bulkhead
// slots; the panic goes on to the server. The error names a bad field of cfg.
func Middleware(cfg ServerConfig) (func(http.Handler) http.Handler, error) {
	if cfg.RetryAfter < 0 {
		return nil, fmt.Errorf("httpx: ServerConfig.RetryAfter %v: want ≥ 0 (0 means %v)", cfg.RetryAfter, DefaultRetryAfter)
	}
	if cfg.RetryAfter == 0 {
		cfg.RetryAfter = DefaultRetryAfter
	}
	m := &middleware{cfg: cfg, retryAfter: strconv.FormatInt(wholeSeconds(cfg.RetryAfter), 10)}
	m.rateLimited = problem(http.StatusTooManyRequests,
		"The request rate limit is exceeded; retry after the number of seconds in the Retry-After header.")
	m.shed = problem(http.StatusServiceUnavailable,
		"The server is at its concurrency limit and sheds load; retry after the number of seconds in the Retry-After header.")
	m.full = problem(http.StatusServiceUnavailable,
		"Every request slot is busy and the wait queue is full; retry after the number of seconds in the Retry-After header.")
	m.gone = problem(http.StatusServiceUnavailable,
		"The request ended while it waited for a request slot.")
	return func(next http.Handler) http.Handler { return &guard{m: m, next: next} }, nil
}

// wholeSeconds rounds d up to whole seconds, at least 1.
func wholeSeconds(d time.Duration) int64 {
	s := int64(d / time.Second)
	if d%time.Second != 0 {
		s++
	}
	return max(s, 1)
}

func problem(status int, detail string) []byte {
	b, err := json.Marshal(Problem{Type: "about:blank", Title: http.StatusText(status), Status: status, Detail: detail})
	if err != nil {
		panic(err) // a fixed struct of strings always marshals
	}
	return b
}

type middleware struct {
	cfg                           ServerConfig
	retryAfter                    string // whole seconds of cfg.RetryAfter
	rateLimited, shed, full, gone []byte
}

type guard struct {
	m    *middleware
	next http.Handler
}

// serving is one request on its way through the policies.
type serving struct {
	m    *middleware
	next http.Handler
	w    http.ResponseWriter
	r    *http.Request
	sw   statusWriter
	ran  bool // the handler was called
}

func (g *guard) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s := &serving{m: g.m, next: g.next, w: w, r: r}
	var err error
	if rl := g.m.cfg.RateLimiter; rl != nil {
		err = rl.Execute(r.Context(), s.limited)
	} else {
		err = s.limited(r.Context())
	}
	if !s.ran {
		g.m.reject(w, r, err)
	}
}

func (s *serving) limited(ctx context.Context) error {
	if l := s.m.cfg.Limiter; l != nil {
		return l.Execute(ctx, s.isolated)
	}
	return s.isolated(ctx)
}

func (s *serving) isolated(ctx context.Context) error {
	if b := s.m.cfg.Bulkhead; b != nil {
		return b.Execute(ctx, s.handle)
	}
	return s.handle(ctx)
}

// handle runs the handler; for the Limiter, its outcome is the status it wrote.
func (s *serving) handle(context.Context) error {
	s.ran = true
	if s.m.cfg.Limiter == nil {
		s.next.ServeHTTP(s.w, s.r)
		return nil
	}
	s.sw.ResponseWriter = s.w
	s.next.ServeHTTP(&s.sw, s.r)
	if err := s.r.Context().Err(); err != nil {
		return err // the client went away: not a sample of the server's capacity
	}
	if s.sw.status == http.StatusServiceUnavailable || s.sw.status == http.StatusGatewayTimeout {
		return &overloadStatusError{status: s.sw.status}
	}
	return nil
}

// overloadStatusError tells the Limiter that the handler answered 503 or 504: a drop.
type overloadStatusError struct{ status int }

func (e *overloadStatusError) Error() string {
	return fmt.Sprintf("httpx: handler answered %d %s", e.status, http.StatusText(e.status))
}
func (e *overloadStatusError) Is(target error) bool { return target == resilience.ErrTimeout }

// reject answers a request that was not handed to the handler.
func (m *middleware) reject(w http.ResponseWriter, r *http.Request, err error) {
	if m.cfg.OnReject != nil {
		m.cfg.OnReject(r, err)
	}
	h := w.Header()
	h.Set("Content-Type", "application/problem+json")
	var body []byte
	status := http.StatusServiceUnavailable
	var ra resilience.RetryAfterError
	switch {
	case errors.Is(err, resilience.ErrRateLimited):
		status, body = http.StatusTooManyRequests, m.rateLimited
		secs := int64(1)
		if errors.As(err, &ra) {
			secs = wholeSeconds(ra.RetryAfter())
		}
		h.Set("Retry-After", strconv.FormatInt(secs, 10))
	case errors.Is(err, resilience.ErrLimitExceeded):
		body = m.shed
		h.Set("Retry-After", m.retryAfter)
	case errors.Is(err, resilience.ErrBulkheadFull):
		body = m.full
		h.Set("Retry-After", m.retryAfter)
	default: // the request's context ended while it waited; the client has most likely gone
		body = m.gone
	}
	w.WriteHeader(status)
	w.Write(body)
}

// statusWriter records the status a handler writes. It passes Flush and Hijack on, and
// http.ResponseController finds the underlying writer through Unwrap.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 && code >= 200 { // 1xx informational headers are not the status
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(p)
}

// Flush flushes the underlying writer, if it can.
func (w *statusWriter) Flush() {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	_ = http.NewResponseController(w.ResponseWriter).Flush()
}

// Hijack hijacks the underlying connection, if the writer allows it.
func (w *statusWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	return http.NewResponseController(w.ResponseWriter).Hijack()
}

// Unwrap returns the underlying writer, for http.ResponseController.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

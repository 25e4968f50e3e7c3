package httpx

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/faultline-dev/faultline/clock"
	"github.com/faultline-dev/faultline/resilience"
)

const (
	// DefaultMaxReplayBody is TransportConfig.MaxReplayBody's default: request bodies without
	// GetBody are buffered up to 1 MiB so that they can be sent again.
	DefaultMaxReplayBody = 1 << 20
	// DefaultMaxRetryAfter is TransportConfig.MaxRetryAfter's default, equal to the default
	// Backoff.Max of a Retry (resilience.DefaultBackoffMax, 10 s).
	DefaultMaxRetryAfter = resilience.DefaultBackoffMax
	// MaxDrain bounds how much of a discarded response's body the Transport reads so that its
	// connection can be reused; a longer body is closed unread (its connection is dropped).
	MaxDrain = 64 << 10
)

// TransportConfig configures a Transport. Every field is optional; the zero value is a plain
// pass-through to http.DefaultTransport.
type TransportConfig struct {
	// Base makes the actual requests. Nil means http.DefaultTransport.
	Base http.RoundTripper
	// Retry re-sends requests that failed with a transport error, a per-attempt timeout or a
	// retryable status (resilience.HTTPRetryable: 408, 425, 429, 500, 502, 503, 504), if the
	// request is safe to repeat (see RetryNonIdempotent) and its body can be replayed (see
	// MaxReplayBody). Nil means no retries.
	//
	// Its Retryable classifier sees the attempt errors: transport errors, errors matching
	// resilience.ErrTimeout, resilience.ErrBulkheadFull, and *StatusError for retryable statuses
	// (filter on StatusError.StatusCode to retry fewer statuses). Rejections by an open breaker and
	// TLS certificate errors are marked resilience.Permanent and end the retries. Its
	// PerAttemptTimeout, if set, bounds each attempt's wait for response headers only, as Timeout
	// does; prefer Timeout.
	Retry *resilience.Retry
	// Timeout bounds each attempt's wait for the response headers (and, for a response with a
	// retryable status that may be retried, the reading of at most MaxDrain bytes of its body).
	// It never applies to the body of a response RoundTrip returns: the caller reads that under
	// its own context only. An attempt that runs out fails with an error matching
	// resilience.ErrTimeout. Zero means none.
	Timeout time.Duration
	// Breaker returns the circuit breaker for a host (req.URL.Host, with the port when the URL
	// has one). It is called once per host, lazily, on the first request to it; a nil breaker
	// (with a nil error) means no breaker for that host, an error fails the request (and is
	// asked again on the next one). Each attempt passes the host's breaker; an open breaker fails
	// the attempt with an error wrapping resilience.ErrOpen, without reaching the server, and ends
	// the retries. The breaker counts outcomes as IsFailure classifies them; leave its
	// BreakerConfig.IsFailure nil. Nil means no breakers. Breakers are never forgotten: do not
	// use per-host breakers with an unbounded set of hosts.
	Breaker func(host string) (*resilience.Breaker, error)
	// Bulkhead, when set, bounds the attempts in flight (shared by every host). An attempt holds
	// its slot until its response headers arrive, not while the caller reads the body.
	Bulkhead *resilience.Bulkhead
	// RateLimiter, when set, admits each request (once, not each attempt) and rejects the
	// requests it has no token for with an error matching resilience.ErrRateLimited whose
	// RetryAfter says when a token frees up.
	RateLimiter *resilience.RateLimiter
	// RetryNonIdempotent retries every method. By default only the idempotent methods GET, HEAD,
	// OPTIONS, TRACE, PUT and DELETE are retried, and other methods only when the request carries
	// an Idempotency-Key or X-Idempotency-Key header.
	RetryNonIdempotent bool
	// MaxReplayBody is how many bytes of a request body without GetBody are buffered in memory so
	// that it can be sent again; a longer body (or one whose ContentLength says it is longer) is
	// sent once and never retried. Bodies with GetBody (as http.NewRequest sets for
	// bytes.Buffer, bytes.Reader and strings.Reader) are never buffered. Only requests that may be
	// retried are buffered, before the first attempt. Zero means DefaultMaxReplayBody (1 MiB);
	// negative means never buffer.
	MaxReplayBody int64
	// MaxRetryAfter is the longest Retry-After the Transport waits for: a retryable response
	// asking for a longer wait ends the retries and is returned to the caller, who sees the header.
	// Retry caps every wait at its Backoff.Max, so keep MaxRetryAfter ≤ Backoff.Max or a
	// retry would come before the server asked. Zero means DefaultMaxRetryAfter (10 s, the
	// default Backoff.Max); negative means no bound (Retry then caps the wait at Backoff.Max).
	MaxRetryAfter time.Duration
	// IsFailure decides which attempts the breaker counts as failures. Nil means
	// DefaultIsFailure: transport errors and timeouts (not local bulkhead rejections) and the
	// statuses 500, 502, 503 and 504.
	IsFailure func(*http.Response, error) bool
	// Clock times Timeout and turns Retry-After dates into waits. Nil means clock.Real().
	Clock clock.Clock
	// Name names the Transport's own events; Observer, when set, receives an EventTimeout (Kind
	// resilience.KindTimeout) each time Timeout ends an attempt. The policies passed in report
	// their own events to their own observers.
	Name     string
	Observer resilience.Observer
}

// Transport is an http.RoundTripper that guards each request with resilience policies, in this
// order: rate limiter (once per request) → retry → per attempt: the host's breaker → bulkhead →
// timeout → Base. It is safe for concurrent use.
//
// What RoundTrip returns:
//   - a response, whatever its status, when an attempt got one and no retry followed; when the
//     retries end on a retryable status, that last response, with its body intact;
//   - the caller's context error (errors.Is finds context.Canceled or DeadlineExceeded) as soon
//     as the request's context ends, with no goroutine left behind;
//   - otherwise the last attempt's error: a transport error, an error matching
//     resilience.ErrTimeout, ErrOpen, ErrBulkheadFull or ErrRateLimited.
//
// It never modifies the caller's request, and always closes its body.
type Transport struct {
	base          http.RoundTripper
	retry         *resilience.Retry
	timeout       time.Duration
	timeoutErr    *attemptTimeoutError
	newBreaker    func(string) (*resilience.Breaker, error)
	breakers      sync.Map // host → *resilience.Breaker (nil: none for that host)
	breakerMu     sync.Mutex
	bulkhead      *resilience.Bulkhead
	rateLimiter   *resilience.RateLimiter
	retryAll      bool
	maxReplay     int64
	maxRetryAfter time.Duration
	isFailure     func(*http.Response, error) bool
	clk           clock.Clock
	name          string
	obs           resilience.Observer
}

// NewTransport validates cfg and returns a Transport; the error names the bad field.
func NewTransport(cfg TransportConfig) (*Transport, error) {
	if cfg.Timeout < 0 {
		return nil, fmt.Errorf("httpx: TransportConfig.Timeout %v: want ≥ 0 (0 means none)", cfg.Timeout)
	}
	t := &Transport{
		base:          cfg.Base,
		retry:         cfg.Retry,
		timeout:       cfg.Timeout,
		timeoutErr:    &attemptTimeoutError{d: cfg.Timeout},
		newBreaker:    cfg.Breaker,
		bulkhead:      cfg.Bulkhead,
		rateLimiter:   cfg.RateLimiter,
		retryAll:      cfg.RetryNonIdempotent,
		maxReplay:     cfg.MaxReplayBody,
		maxRetryAfter: cfg.MaxRetryAfter,
		isFailure:     cfg.IsFailure,
		clk:           cfg.Clock,
		name:          cfg.Name,
		obs:           cfg.Observer,
	}
	if t.base == nil {
		t.base = http.DefaultTransport
	}
	if t.maxReplay == 0 {
		t.maxReplay = DefaultMaxReplayBody
	}
	if t.maxRetryAfter == 0 {
		t.maxRetryAfter = DefaultMaxRetryAfter
	}
	if t.isFailure == nil {
		t.isFailure = DefaultIsFailure
	}
	if t.clk == nil {
		t.clk = clock.Real()
	}
	return t, nil
}

// DefaultIsFailure is the breaker's default classifier: a transport error or an attempt timeout
// is a failure (ErrBulkheadFull is not: it says nothing about the host; the Transport does not
// even show the breaker the attempts its bulkhead turned away), and so are the responses 500 Internal Server Error, 502 Bad Gateway, 503 Service
// Unavailable and 504 Gateway Timeout. Every other response is a success: 4xx answers are the
// client's problem, 429 is the server's back-pressure (the retry honours it) and 501 Not
// Implemented is a definite answer, not a sign of ill health. The caller's own cancellation is
// never counted (the breaker ignores it).
func DefaultIsFailure(resp *http.Response, err error) bool {
	if err != nil {
		return !errors.Is(err, resilience.ErrBulkheadFull)
	}
	switch resp.StatusCode {
	case http.StatusInternalServerError, http.StatusBadGateway, http.StatusServiceUnavailable,
		http.StatusGatewayTimeout:
		return true
	}
	return false
}

// Breaker returns the breaker of host (as in req.URL.Host), or nil when no request to it has
// made one yet (or Breaker returned nil for it).
func (t *Transport) Breaker(host string) *resilience.Breaker {
	if v, ok := t.breakers.Load(host); ok {
		return v.(*resilience.Breaker)
	}
	return nil
}

// breakerFor returns host's breaker, making it on first use (once per host).
func (t *Transport) breakerFor(host string) (*resilience.Breaker, error) {
	if v, ok := t.breakers.Load(host); ok {
		return v.(*resilience.Breaker), nil
	}
	t.breakerMu.Lock()
	defer t.breakerMu.Unlock()
	if v, ok := t.breakers.Load(host); ok {
		return v.(*resilience.Breaker), nil
	}
	b, err := t.newBreaker(host)
	if err != nil {
		return nil, err
	}
	t.breakers.Store(host, b)
	return b, nil
}

// StatusError is the error of an attempt whose response had a retryable status
// (resilience.HTTPRetryable), as Retry's classifier and OnRetry see it. It implements
// resilience.RetryAfterError, so Retry waits as long as the response's Retry-After header asks.
// When the retries end on it, RoundTrip returns the response itself, not this error.
type StatusError struct {
	// StatusCode is the response's status.
	StatusCode int
	// Wait is the response's Retry-After (delta-seconds or HTTP-date), zero when absent or
	// malformed.
	Wait time.Duration
}

func (e *StatusError) Error() string {
	if e.Wait > 0 {
		return fmt.Sprintf("httpx: response status %d %s (Retry-After %v)", e.StatusCode, http.StatusText(e.StatusCode), e.Wait)
	}
	return fmt.Sprintf("httpx: response status %d %s", e.StatusCode, http.StatusText(e.StatusCode))
}

// RetryAfter returns Wait.
func (e *StatusError) RetryAfter() time.Duration { return e.Wait }

// attemptTimeoutError ends an attempt whose headers did not arrive within Timeout.
type attemptTimeoutError struct{ d time.Duration }

func (e *attemptTimeoutError) Error() string {
	return fmt.Sprintf("httpx: no response headers within %v: %v", e.d, resilience.ErrTimeout)
}
func (e *attemptTimeoutError) Is(target error) bool { return target == resilience.ErrTimeout }

// IsIdempotent reports whether req may be sent twice with the effect of once: its method is GET,
// HEAD, OPTIONS, TRACE, PUT or DELETE (RFC 9110 §9.2.2; "" means GET), or it carries an
// Idempotency-Key or X-Idempotency-Key header.
func IsIdempotent(req *http.Request) bool {
	switch req.Method {
	case "", http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace, http.MethodPut,
		http.MethodDelete:
		return true
	}
	return len(req.Header["Idempotency-Key"]) > 0 || len(req.Header["X-Idempotency-Key"]) > 0
}

// bodyKind says where each attempt's request body comes from.
type bodyKind uint8

const (
	bodyNone     bodyKind = iota // nil or http.NoBody
	bodyOriginal                 // req.Body for the first attempt, GetBody for the next ones
	bodyBuffered                 // buffered by the Transport: a fresh reader over buf each time
	bodyOnce                     // not replayable: sent once
)

// call is one RoundTrip.
type call struct {
	t   *Transport
	req *http.Request
	ctx context.Context // the caller's: req.Context()

	retry    bool // the request may be retried
	kind     bodyKind
	buf      []byte
	once     io.ReadCloser // the body of a bodyOnce request
	length   int64         // ContentLength to send
	getBody  func() (io.ReadCloser, error)
	consumed bool // req.Body was handed to Base or closed: RoundTrip must not close it

	body     io.ReadCloser // this attempt's body
	original bool          // body is (or wraps) req.Body
	sent     bool          // this attempt reached Base

	pending *http.Response // the latest attempt's response with a retryable status
	final   *http.Response // the response of a successful attempt
}

// RoundTrip sends req through the policies; see Transport for what it returns.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	c := &call{t: t, req: req, ctx: req.Context(), length: req.ContentLength}
	defer c.closeBody()
	if req.URL == nil {
		return nil, errors.New("httpx: nil Request.URL")
	}
	if err := c.ctx.Err(); err != nil {
		return nil, err
	}
	if t.rateLimiter == nil {
		return c.run()
	}
	var resp *http.Response
	var err error
	ran := false
	lerr := t.rateLimiter.Execute(c.ctx, func(context.Context) error {
		ran = true
		resp, err = c.run()
		return err
	})
	if !ran {
		return nil, lerr
	}
	return resp, err
}

// closeBody closes the caller's body unless Base got it (Base closes it) or it was closed already.
func (c *call) closeBody() {
	if b := c.req.Body; b != nil && b != http.NoBody && !c.consumed {
		b.Close()
	}
}

// run does the retried part: retry → attempts.
func (c *call) run() (*http.Response, error) {
	t := c.t
	c.retry = t.retry != nil && (t.retryAll || IsIdempotent(c.req))
	if err := c.prepareBody(); err != nil {
		return nil, err
	}
	if !c.retry {
		return c.attempt(c.ctx)
	}
	err := t.retry.Execute(c.ctx, c.retried)
	if err == nil {
		return c.final, nil
	}
	if c.pending != nil && c.ctx.Err() == nil { // the retries ended on a retryable status
		resp := c.pending
		c.pending = nil
		return resp, nil
	}
	c.discardPending()
	return nil, err
}

// retried is one attempt under Retry: a retryable status becomes a *StatusError and its response
// is kept aside, to be returned if no retry follows.
func (c *call) retried(ctx context.Context) error {
	c.discardPending()
	resp, err := c.attempt(ctx)
	if err != nil {
		return err
	}
	if !resilience.HTTPRetryable(resp.StatusCode) {
		c.final = resp
		return nil
	}
	c.pending = resp
	se := &StatusError{StatusCode: resp.StatusCode}
	if d, ok := resilience.ParseRetryAfter(resp.Header.Get("Retry-After"), c.t.clk.Now()); ok {
		se.Wait = d
	}
	if c.t.maxRetryAfter > 0 && se.Wait > c.t.maxRetryAfter {
		return resilience.Permanent(se) // the server asks for a longer wait than we make
	}
	return se
}

// discardPending closes the response of an attempt that is being retried (its body was already
// drained, within MaxDrain, when it arrived).
func (c *call) discardPending() {
	if c.pending != nil {
		c.pending.Body.Close()
		c.pending = nil
	}
}

// prepareBody decides where the attempts' bodies come from, buffering a body without GetBody
// when the request may be retried.
func (c *call) prepareBody() error {
	r := c.req
	switch {
	case r.Body == nil || r.Body == http.NoBody:
		c.kind = bodyNone
		return nil
	case r.GetBody != nil:
		c.kind = bodyOriginal
		return nil
	case !c.retry:
		c.kind, c.once = bodyOnce, r.Body
		return nil
	}
	limit := c.t.maxReplay
	if limit < 0 || r.ContentLength > limit {
		c.kind, c.once, c.retry = bodyOnce, r.Body, false
		return nil
	}
	var b bytes.Buffer
	if r.ContentLength > 0 {
		b.Grow(int(r.ContentLength) + 1)
	}
	_, err := b.ReadFrom(io.LimitReader(r.Body, limit+1))
	if err != nil {
		return resilience.Permanent(fmt.Errorf("httpx: reading the request body: %w", err))
	}
	if int64(b.Len()) > limit { // too long to replay: send what was read, then the rest, once
		c.kind, c.retry = bodyOnce, false
		c.once = &prefixedBody{Reader: io.MultiReader(bytes.NewReader(b.Bytes()), r.Body), c: r.Body}
		return nil
	}
	r.Body.Close()
	c.consumed = true
	c.kind, c.buf = bodyBuffered, b.Bytes()
	if r.ContentLength <= 0 { // unknown before; now known
		c.length = int64(len(c.buf))
	}
	c.getBody = func() (io.ReadCloser, error) {
		if len(c.buf) == 0 {
			return http.NoBody, nil
		}
		return io.NopCloser(bytes.NewReader(c.buf)), nil
	}
	return nil
}

// nextBody returns the next attempt's body.
func (c *call) nextBody() (body io.ReadCloser, original bool, err error) {
	switch c.kind {
	case bodyOriginal:
		if !c.consumed {
			return c.req.Body, true, nil
		}
		body, err = c.req.GetBody()
		if err != nil {
			return nil, false, resilience.Permanent(fmt.Errorf("httpx: GetBody: %w", err))
		}
		return body, false, nil
	case bodyBuffered:
		body, _ = c.getBody()
		return body, false, nil
	case bodyOnce:
		if c.consumed {
			return nil, false, resilience.Permanent(errors.New("httpx: request body cannot be sent twice"))
		}
		return c.once, true, nil
	}
	return c.req.Body, false, nil
}

// attempt is one attempt: breaker → bulkhead → timeout → Base.
func (c *call) attempt(ctx context.Context) (*http.Response, error) {
	body, original, err := c.nextBody()
	if err != nil {
		return nil, err
	}
	c.body, c.original, c.sent = body, original, false
	resp, err := c.guarded(ctx)
	if !c.sent && !original && body != nil && body != http.NoBody {
		body.Close()
	}
	c.body = nil
	return resp, err
}

// guarded passes the attempt through the host's breaker.
func (c *call) guarded(ctx context.Context) (*http.Response, error) {
	if c.t.newBreaker == nil {
		return c.isolated(ctx)
	}
	host := c.req.URL.Host
	b, err := c.t.breakerFor(host)
	if err != nil {
		return nil, resilience.Permanent(fmt.Errorf("httpx: breaker for %s: %w", host, err))
	}
	if b == nil {
		return c.isolated(ctx)
	}
	// An attempt the bulkhead turned away never reached the host: the breaker must count it
	// neither way (a success would close a half-open breaker without a real probe). The breaker
	// ignores only calls whose context ended, so it gets a context of its own, ended on rejection.
	bctx := ctx
	var bcancel context.CancelFunc
	if c.t.bulkhead != nil {
		bctx, bcancel = context.WithCancel(ctx)
		defer bcancel()
	}
	var resp *http.Response
	var rerr error
	ran := false
	berr := b.Execute(bctx, func(context.Context) error {
		ran = true
		resp, rerr = c.isolated(ctx)
		if !c.sent && bcancel != nil { // rejected by the bulkhead
			bcancel()
			return bctx.Err()
		}
		if !c.t.isFailure(resp, rerr) {
			return nil
		}
		if rerr != nil {
			return rerr
		}
		return &StatusError{StatusCode: resp.StatusCode}
	})
	if !ran {
		if errors.Is(berr, resilience.ErrOpen) {
			return nil, resilience.Permanent(fmt.Errorf("httpx: %s: %w", host, berr))
		}
		return nil, berr
	}
	return resp, rerr
}

// isolated passes the attempt through the bulkhead.
func (c *call) isolated(ctx context.Context) (*http.Response, error) {
	if c.t.bulkhead == nil {
		return c.send(ctx)
	}
	var resp *http.Response
	var err error
	ran := false
	berr := c.t.bulkhead.Execute(ctx, func(ctx context.Context) error {
		ran = true
		resp, err = c.send(ctx)
		return err
	})
	if !ran {
		return nil, berr
	}
	return resp, err
}

// request returns the request to hand to Base for this attempt: the caller's own when nothing
// differs, else a shallow copy (the caller's request is never modified).
func (c *call) request(ctx context.Context) *http.Request {
	r := c.req
	if ctx == c.ctx && c.body == r.Body && c.length == r.ContentLength {
		return r
	}
	r = r.WithContext(ctx)
	r.Body, r.ContentLength = c.body, c.length
	if c.kind == bodyBuffered {
		r.GetBody = c.getBody
	}
	return r
}

// send is the attempt's timeout and the call to Base. The attempt's context is derived from the
// caller's, never from ctx: a policy context (Retry's PerAttemptTimeout) and Timeout can end the
// attempt only until its headers have arrived; after that, only the caller's context and closing
// the body end it.
func (c *call) send(ctx context.Context) (*http.Response, error) {
	t := c.t
	c.sent = true
	if c.original {
		c.consumed = true
	}
	readAhead := c.retry // a retryable status will be discarded if retried: drain it now
	linked := ctx != c.ctx
	if t.timeout <= 0 && !linked {
		resp, err := t.base.RoundTrip(c.request(c.ctx))
		if err != nil {
			if c.ctx.Err() != nil {
				return nil, c.ctx.Err()
			}
			return nil, permanentIfCertificate(err)
		}
		if resp == nil {
			return nil, errors.New("httpx: Base returned neither a response nor an error")
		}
		if readAhead && resilience.HTTPRetryable(resp.StatusCode) {
			drain(resp)
		}
		return resp, nil
	}

	actx, cancel := context.WithCancelCause(c.ctx)
	var timer clock.Timer
	if t.timeout > 0 {
		timer = t.clk.AfterFunc(t.timeout, func() { cancel(t.timeoutErr) })
	}
	var unlink func() bool
	if linked {
		unlink = context.AfterFunc(ctx, func() { cancel(context.Cause(ctx)) })
	}
	resp, err := t.base.RoundTrip(c.request(actx))
	if err == nil && resp == nil {
		err = errors.New("httpx: Base returned neither a response nor an error")
	}
	if err == nil && readAhead && resilience.HTTPRetryable(resp.StatusCode) {
		drain(resp) // still under the timer
	}
	timedOut := timer != nil && !timer.Stop()
	policyEnded := unlink != nil && !unlink()
	if err == nil && !timedOut && !policyEnded {
		resp.Body = withCancel(resp.Body, cancel)
		return resp, nil
	}
	if err == nil {
		resp.Body.Close()
	}
	cancel(context.Canceled)
	switch {
	case c.ctx.Err() != nil:
		return nil, c.ctx.Err()
	case timedOut:
		if t.obs != nil {
			t.obs.Observe(c.ctx, resilience.Event{Kind: resilience.KindTimeout, Name: t.name,
				Type: resilience.EventTimeout, Duration: t.timeout, Err: t.timeoutErr})
		}
		return nil, t.timeoutErr
	case policyEnded:
		return nil, context.Cause(ctx)
	}
	return nil, permanentIfCertificate(err)
}

// permanentIfCertificate marks TLS certificate errors, which no retry fixes, as permanent.
func permanentIfCertificate(err error) error {
	var (
		verify   *tls.CertificateVerificationError
		unknown  x509.UnknownAuthorityError
		hostname x509.HostnameError
		invalid  x509.CertificateInvalidError
	)
	if errors.As(err, &verify) || errors.As(err, &unknown) || errors.As(err, &hostname) || errors.As(err, &invalid) {
		return resilience.Permanent(err)
	}
	return err
}

// drain reads up to MaxDrain bytes of a response that may be discarded, so that its connection
// goes back to the pool at once (reaching EOF releases it) rather than after the backoff wait.
// The body stays readable: what was read is replayed first.
func drain(resp *http.Response) {
	body := resp.Body
	var b bytes.Buffer
	_, err := b.ReadFrom(io.LimitReader(body, MaxDrain+1))
	if err == nil && b.Len() <= MaxDrain { // read to EOF: nothing left on the connection
		body.Close()
		resp.Body = io.NopCloser(bytes.NewReader(b.Bytes()))
		return
	}
	resp.Body = &prefixedBody{Reader: io.MultiReader(bytes.NewReader(b.Bytes()), body), c: body}
}

// prefixedBody reads a prefix already read from c, then the rest of c.
type prefixedBody struct {
	io.Reader
	c io.Closer
}

func (b *prefixedBody) Close() error { return b.c.Close() }

// withCancel makes a response body end the attempt's context when it is closed or read to its
// end, and not before.
func withCancel(body io.ReadCloser, cancel context.CancelCauseFunc) io.ReadCloser {
	if rw, ok := body.(io.ReadWriteCloser); ok { // 101 Switching Protocols: keep it writable
		return &cancelRWBody{cancelBody{rc: body, cancel: cancel}, rw}
	}
	return &cancelBody{rc: body, cancel: cancel}
}

type cancelBody struct {
	rc     io.ReadCloser
	cancel context.CancelCauseFunc
}

func (b *cancelBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	if err != nil { // EOF: the transport has already released the connection
		b.cancel(context.Canceled)
	}
	return n, err
}

func (b *cancelBody) Close() error {
	err := b.rc.Close() // first, so that a fully read connection is reused
	b.cancel(context.Canceled)
	return err
}

type cancelRWBody struct {
	cancelBody
	w io.Writer
}

func (b *cancelRWBody) Write(p []byte) (int, error) { return b.w.Write(p) }

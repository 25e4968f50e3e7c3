package resilience

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/faultline-dev/faultline/clock"
)

// DefaultMaxAttempts is the total number of attempts (the first call plus retries) when
// RetryConfig.MaxAttempts is zero.
const DefaultMaxAttempts = 3

// RetryConfig configures a Retry. The zero value is usable: 3 attempts, exponential backoff from
// 100 ms doubling up to 10 s without jitter, every error but permanent ones retried.
type RetryConfig struct {
	// MaxAttempts is the total number of attempts, the first one included; 1 disables retries.
	// Zero means DefaultMaxAttempts (3).
	MaxAttempts int
	// MaxElapsed bounds the time from the first attempt's start: a retry whose wait would end
	// after it is not made, and the last error is returned. Zero means no bound.
	MaxElapsed time.Duration
	// Backoff computes the wait between attempts (see Backoff for its defaults).
	Backoff Backoff
	// PerAttemptTimeout, when positive, bounds each attempt like a Timeout: an attempt that runs
	// out fails with ErrTimeout, which is retryable by default. Zero means none.
	PerAttemptTimeout time.Duration
	// Retryable classifies a failed attempt's error. Nil means every error except those marked
	// with Permanent and ErrOpen (an open breaker stays open far longer than a backoff). Whatever
	// it says, an attempt that ended because the caller's context ended is never retried.
	Retryable func(error) bool
	// Budget, when set, must grant every retry (Acquire); each Execute records one request. When it
	// refuses, the retry stops with the last error wrapped so that both errors.Is(err,
	// ErrBudgetExhausted) and errors.Is(err, last) hold.
	Budget *RetryBudget
	// Clock supplies time and timers. Nil means clock.Real().
	Clock clock.Clock
	// Seed seeds the jitter source, so a run with the same seed and the same outcomes waits the
	// same delays. Zero means seed 1.
	Seed int64
	// OnRetry, when set, is called before each wait with the number of the attempt that failed
	// (1-based), its error and the delay about to be waited.
	OnRetry func(attempt int, err error, delay time.Duration)
	// Name names the policy in events; Observer, when set, receives EventRetry before each wait,
	// EventRetriesExhausted when it gives up on a retryable error (attempts, elapsed time or
	// budget used up), and EventTimeout when the per-attempt
	// timeout fires.
	Name     string
	Observer Observer
}

func (c RetryConfig) validate() error {
	switch {
	case c.MaxAttempts < 0:
		return fmt.Errorf("resilience: RetryConfig.MaxAttempts %d is negative", c.MaxAttempts)
	case c.MaxElapsed < 0:
		return fmt.Errorf("resilience: RetryConfig.MaxElapsed %v is negative", c.MaxElapsed)
	case c.PerAttemptTimeout < 0:
		return fmt.Errorf("resilience: RetryConfig.PerAttemptTimeout %v is negative", c.PerAttemptTimeout)
	}
	if err := c.Backoff.Validate(); err != nil {
		return fmt.Errorf("resilience: RetryConfig.%s", strings.TrimPrefix(err.Error(), "resilience: "))
	}
	return nil
}

// PermanentError marks an error that must not be retried. Its message is the wrapped error's, and
// errors.Is/As see through it. It stays on the error a Retry returns, so an outer Retry does not
// retry it either.
type PermanentError struct{ Err error }

func (e *PermanentError) Error() string { return e.Err.Error() }
func (e *PermanentError) Unwrap() error { return e.Err }

// Permanent marks err as not retryable by the default classifier. Permanent(nil) is nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &PermanentError{Err: err}
}

// IsPermanent reports whether err (or an error it wraps) was marked with Permanent.
func IsPermanent(err error) bool {
	var p *PermanentError
	return errors.As(err, &p)
}

// RetryAfterError is implemented by errors that carry a server's instruction of when to retry
// (HTTP Retry-After, gRPC pushback). A positive RetryAfter replaces the computed backoff delay.
type RetryAfterError interface {
	error
	RetryAfter() time.Duration
}

// retryState is the deterministic core of one retried call: it is told each failed attempt's error
// with the time, and decides whether to retry and after which delay.
type retryState struct {
	maxAttempts int
	maxElapsed  time.Duration
	backoff     Backoff // with defaults applied
	retryable   func(error) bool
	budget      *RetryBudget
	rnd         func() float64

	start    time.Time
	attempts int           // attempts finished so far
	prev     time.Duration // the previous delay, for decorrelated jitter
}

// Next records that an attempt finished at now with err and decides what follows. When retry is
// true the caller waits delay and makes another attempt; otherwise it returns why (nil when err
// was nil, else the error to report: the last error, wrapped with ErrBudgetExhausted when the
// budget refused).
func (s *retryState) Next(now time.Time, err error) (delay time.Duration, retry bool, why error) {
	s.attempts++
	if err == nil {
		return 0, false, nil
	}
	if !s.retryable(err) || s.attempts >= s.maxAttempts {
		return 0, false, err
	}
	delay = s.backoff.Delay(s.attempts-1, s.prev, s.rnd())
	var ra RetryAfterError
	if errors.As(err, &ra) && ra.RetryAfter() > 0 {
		delay = min(ra.RetryAfter(), s.backoff.Max)
	}
	if s.maxElapsed > 0 && now.Sub(s.start)+delay > s.maxElapsed {
		return 0, false, err
	}
	if s.budget != nil && !s.budget.Acquire(now) {
		return 0, false, fmt.Errorf("%w: %w", ErrBudgetExhausted, err)
	}
	s.prev = delay
	return delay, true, nil
}

// retryDefaultRetryable retries every error except permanent ones and ErrOpen: an open breaker
// stays open for its open duration, far longer than a backoff, so retrying it only burns the
// attempts (and the budget) without reaching the dependency.
func retryDefaultRetryable(err error) bool { return !IsPermanent(err) && !errors.Is(err, ErrOpen) }

// Retry re-runs a failed operation with backoff. It is safe for concurrent use; each Execute has
// its own schedule, and all share the jitter source (behind a mutex) and the budget.
type Retry struct {
	cfg RetryConfig
	clk clock.Clock
	mu  sync.Mutex
	rng *rand.Rand
	em  emitter
	// attemptCause is the error a fired PerAttemptTimeout returns.
	attemptCause *timeoutError
}

// NewRetry validates cfg and returns a Retry; the error names the bad field.
func NewRetry(cfg RetryConfig) (*Retry, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if cfg.MaxAttempts == 0 {
		cfg.MaxAttempts = DefaultMaxAttempts
	}
	if cfg.Retryable == nil {
		cfg.Retryable = retryDefaultRetryable
	}
	cfg.Backoff = cfg.Backoff.withDefaults()
	if cfg.Seed == 0 {
		cfg.Seed = 1
	}
	clk := cfg.Clock
	if clk == nil {
		clk = clock.Real()
	}
	return &Retry{cfg: cfg, clk: clk, rng: rand.New(rand.NewSource(cfg.Seed)), em: newEmitter(KindRetry, cfg.Name, cfg.Observer),
		attemptCause: &timeoutError{d: cfg.PerAttemptTimeout}}, nil
}

func (r *Retry) retryFloat() float64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.rng.Float64()
}

func (r *Retry) retryNewState(now time.Time) *retryState {
	return &retryState{
		maxAttempts: r.cfg.MaxAttempts,
		maxElapsed:  r.cfg.MaxElapsed,
		backoff:     r.cfg.Backoff,
		retryable:   r.cfg.Retryable,
		budget:      r.cfg.Budget,
		rnd:         r.retryFloat,
		start:       now,
	}
}

// Execute runs fn, retrying failures as configured, and returns nil on the first success or the
// error that ended the retries. When ctx ends (before the first attempt, during one, or during a
// backoff wait) it returns at once with ctx's error: errors.Is finds context.Canceled or
// context.DeadlineExceeded (joined with the last attempt's error, when there was one).
func (r *Retry) Execute(ctx context.Context, fn func(context.Context) error) error {
	_, err := retryDo(r, ctx, func(ctx context.Context) (struct{}, error) { return struct{}{}, fn(ctx) })
	return err
}

// WithRetry returns r as a Policy for composition: Compose(WithRetry[R](r), breaker, timeout)
// retries calls that each pass the breaker and have their own timeout.
func WithRetry[R any](r *Retry) Policy[R] { return retryPolicy[R]{r} }

// retryPolicy is WithRetry's policy; see chain for why it is a type of its own.
type retryPolicy[R any] struct{ r *Retry }

// Apply implements Policy.
func (pol retryPolicy[R]) Apply(next Func[R]) Func[R] {
	return func(ctx context.Context) (R, error) { return pol.run(ctx, next) }
}

func (pol retryPolicy[R]) run(ctx context.Context, next Func[R]) (R, error) {
	r := pol.r
	return retryDo(r, ctx, next)
}

// retryCallerErr reports the end of the caller's ctx, keeping the last attempt's error visible.
func retryCallerErr(ctx context.Context, last error) error {
	cerr := ctx.Err()
	if last == nil || errors.Is(last, cerr) {
		return cerr
	}
	return fmt.Errorf("%w (last attempt: %w)", cerr, last)
}

func retryDo[R any](r *Retry, ctx context.Context, next Func[R]) (R, error) {
	var zero R
	if err := ctx.Err(); err != nil {
		return zero, err
	}
	// The clock is read before the first attempt only when its start matters (the budget records
	// it, MaxElapsed counts from it), and the schedule is made on the first failure: a call that
	// succeeds at once reads no clock and allocates nothing.
	var start time.Time
	if r.cfg.Budget != nil || r.cfg.MaxElapsed > 0 {
		start = r.clk.Now()
	}
	if r.cfg.Budget != nil {
		r.cfg.Budget.RecordRequest(start)
	}
	var st *retryState
	for {
		var res R
		var err error
		if r.cfg.PerAttemptTimeout > 0 {
			res, err = timeoutDo(ctx, r.clk, r.cfg.PerAttemptTimeout, r.attemptCause, &r.em, next)
		} else {
			res, err = next(ctx)
		}
		if err == nil {
			return res, nil
		}
		if ctx.Err() != nil {
			return zero, retryCallerErr(ctx, err)
		}
		if st == nil {
			st = r.retryNewState(start)
		}
		delay, again, why := st.Next(r.clk.Now(), err)
		if !again {
			if r.em.on() && st.retryable(err) { // gave up on an error it would have retried
				r.em.emit(ctx, Event{Type: EventRetriesExhausted, Attempt: st.attempts, Err: why})
			}
			return res, why
		}
		if r.cfg.OnRetry != nil {
			r.cfg.OnRetry(st.attempts, err, delay)
		}
		r.em.emit(ctx, Event{Type: EventRetry, Attempt: st.attempts, Duration: delay, Err: err})
		if delay > 0 {
			if serr := r.clk.Sleep(ctx, delay); serr != nil {
				return zero, retryCallerErr(ctx, err)
			}
		} else if ctx.Err() != nil {
			return zero, retryCallerErr(ctx, err)
		}
	}
}

// HTTPRetryable reports whether an HTTP status is worth retrying: 408 Request Timeout, 425 Too
// Early, 429 Too Many Requests, 500 Internal Server Error, 502 Bad Gateway, 503 Service
// Unavailable and 504 Gateway Timeout. Only retry requests that are idempotent or carry an
// idempotency key: a 500 or 502 may come after the server acted.
func HTTPRetryable(status int) bool {
	switch status {
	case http.StatusRequestTimeout, http.StatusTooEarly, http.StatusTooManyRequests,
		http.StatusInternalServerError, http.StatusBadGateway, http.StatusServiceUnavailable,
		http.StatusGatewayTimeout:
		return true
	}
	return false
}

// ParseRetryAfter parses an HTTP Retry-After header value (RFC 9110 §10.2.3): either a number of
// seconds or an HTTP-date, which is turned into a wait from now (zero when it has passed). ok is
// false for an empty or malformed value.
func ParseRetryAfter(header string, now time.Time) (d time.Duration, ok bool) {
	h := strings.TrimSpace(header)
	if h == "" {
		return 0, false
	}
	if h[0] >= '0' && h[0] <= '9' {
		secs, err := strconv.ParseUint(h, 10, 64)
		if err != nil {
			if errors.Is(err, strconv.ErrRange) {
				return time.Duration(math.MaxInt64), true
			}
			return 0, false
		}
		if secs > uint64(math.MaxInt64/int64(time.Second)) {
			return time.Duration(math.MaxInt64), true
		}
		return time.Duration(secs) * time.Second, true
	}
	t, err := http.ParseTime(h)
	if err != nil {
		return 0, false
	}
	if d = t.Sub(now); d < 0 {
		d = 0
	}
	return d, true
}

// gRPC status codes (google.golang.org/grpc/codes), repeated here so the core needs no gRPC import.
const (
	grpcDeadlineExceeded = 4
	grpcUnavailable      = 14
)

// GRPCRetryable reports whether a gRPC status code is worth retrying:
//
//   - UNAVAILABLE (14): yes; the gRPC retry design (gRFC A6) names it the one safe default.
//   - DEADLINE_EXCEEDED (4): yes, as the server's or a per-attempt deadline. The caller's own
//     deadline also yields code 4, but a Retry never retries once the caller's context has ended,
//     so returning true here cannot retry past it.
//   - RESOURCE_EXHAUSTED (8): no. It often means a quota that retrying only hammers; retry it only
//     when the server pushes back with a delay (grpc-retry-pushback-ms): classify with
//     GRPCRetryable(code) || pushback, and return an error implementing RetryAfterError.
//
// Every other code is not retried.
func GRPCRetryable(code uint32) bool {
	switch code {
	case grpcUnavailable, grpcDeadlineExceeded:
		return true
	}
	return false
}

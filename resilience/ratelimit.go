package resilience

import (
	"context"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/faultline-dev/faultline/clock"
)

// RateLimitConfig configures a RateLimiter. Only Rate is required.
type RateLimitConfig struct {
	// Rate is how many calls per second are admitted on average. Required: > 0 and at most 1e9
	// (one per nanosecond). The spacing between calls is 1s/Rate rounded to the nanosecond.
	Rate float64
	// Burst is how many calls may pass back to back after a quiet spell (the bucket's size).
	// Zero means 1: calls are spaced evenly, 1/Rate apart (smooth). A larger value lets short
	// bursts through while keeping the long-run average at Rate (bursty).
	Burst int
	// MaxWait is how long a call may wait for its turn. Zero (the default) means no waiting: a
	// call with no token available is rejected at once with ErrRateLimited.
	MaxWait time.Duration
	// Clock times the waits and the refill. Nil means clock.Real().
	Clock clock.Clock
	// OnReject, when set, is called (outside any lock, on the caller's goroutine) with the
	// rejection error (matching ErrRateLimited) each time a call is rejected. It is not called when
	// a caller's own context ends.
	OnReject func(reason error)
	// Name names the policy in events; Observer, when set, receives EventRejected for each rejection and EventAdmitted
	// (with the time waited) for each call that waited for its token.
	Name     string
	Observer Observer
}

// TokenBucket is the rate limiter's deterministic core: a token bucket of Burst tokens refilled at
// Rate per second, computed lazily from the time passed to it (no ticker, no goroutine). It is
// implemented as the equivalent Generic Cell Rate Algorithm (ITU-T I.371; one "theoretical arrival
// time" instead of a token count) so that all arithmetic is on integer nanoseconds and the number
// admitted over any span is exact: at most Burst + Rate·span. Reservations may be made ahead of
// time (the caller waits), up to MaxWait. It is not safe for concurrent use; RateLimiter guards it
// with a mutex.
type TokenBucket struct {
	interval time.Duration // emission interval: 1s/Rate
	tau      time.Duration // burst tolerance: (Burst-1)·interval
	maxWait  time.Duration
	tat      time.Time // theoretical arrival time of the next call; zero: the bucket is full
	last     time.Time // when the latest reservation acts
}

// NewTokenBucket validates cfg (Rate, Burst, MaxWait; the Clock and OnReject are for the runtime
// layer) and returns a full bucket; the error names the bad field.
func NewTokenBucket(cfg RateLimitConfig) (*TokenBucket, error) {
	switch {
	case !(cfg.Rate > 0) || cfg.Rate > 1e9 || math.IsInf(cfg.Rate, 0):
		return nil, fmt.Errorf("resilience: RateLimitConfig.Rate = %v: want > 0 and ≤ 1e9 per second", cfg.Rate)
	case cfg.Burst < 0:
		return nil, fmt.Errorf("resilience: RateLimitConfig.Burst = %d: want ≥ 0 (0 means 1)", cfg.Burst)
	case cfg.MaxWait < 0:
		return nil, fmt.Errorf("resilience: RateLimitConfig.MaxWait = %v: want ≥ 0", cfg.MaxWait)
	}
	burst := max(cfg.Burst, 1)
	interval := time.Duration(math.Round(float64(time.Second) / cfg.Rate))
	if interval > math.MaxInt64/time.Duration(burst) {
		return nil, fmt.Errorf("resilience: RateLimitConfig.Burst = %d: too large for Rate %v", cfg.Burst, cfg.Rate)
	}
	return &TokenBucket{interval: interval, tau: time.Duration(burst-1) * interval, maxWait: cfg.MaxWait}, nil
}

// Interval returns the spacing of calls at the steady rate, 1s/Rate.
func (b *TokenBucket) Interval() time.Duration { return b.interval }

// Reserve takes a token for a call arriving at now. ok reports whether the call is admitted;
// wait is then how long it must wait before it runs (0: at once; at most MaxWait). When ok is
// false nothing is taken and wait is how long until a token would be free (for Retry-After).
func (b *TokenBucket) Reserve(now time.Time) (wait time.Duration, ok bool) {
	return b.reserve(now, b.maxWait)
}

// Allow takes a token for a call at now only if one is available at once.
func (b *TokenBucket) Allow(now time.Time) bool {
	_, ok := b.reserve(now, 0)
	return ok
}

func (b *TokenBucket) reserve(now time.Time, maxWait time.Duration) (time.Duration, bool) {
	tat := b.tat
	if tat.Before(now) {
		tat = now
	}
	at := tat.Add(-b.tau)
	wait := at.Sub(now)
	if wait <= 0 {
		wait, at = 0, now
	}
	if wait > maxWait {
		return wait, false
	}
	b.tat = tat.Add(b.interval)
	b.last = at
	return wait, true
}

// Cancel returns the token of a reservation made at some time for a call that was to act at at
// (now + the wait Reserve returned) and gave up before then. The token is returned only when no
// later reservation has been made meanwhile: later callers have been promised their turns, and
// giving the token back under them would let a newcomer squeeze in and exceed the rate.
func (b *TokenBucket) Cancel(now, at time.Time) {
	if at.After(now) && at.Equal(b.last) {
		b.tat = b.tat.Add(-b.interval)
		b.last = at.Add(-b.interval)
	}
}

// RateLimiter admits calls at a steady rate with bounded bursts (a token bucket), optionally
// making callers wait up to MaxWait for their turn. Waiting callers are served in the order they
// arrived; a waiter whose context ends returns the caller's ctx.Err() at once and gives its token
// back when it can (see TokenBucket.Cancel). Rejections return an error matching ErrRateLimited
// that also carries RetryAfter, the time until a token frees up, which Retry honours. The success
// path takes one mutex once and does not allocate. It is safe for concurrent use.
type RateLimiter struct {
	mu       sync.Mutex
	core     TokenBucket
	clk      clock.Clock
	onReject func(error)
	em       emitter
}

// NewRateLimiter validates cfg and returns a RateLimiter with a full bucket; the error names the
// bad field.
func NewRateLimiter(cfg RateLimitConfig) (*RateLimiter, error) {
	core, err := NewTokenBucket(cfg)
	if err != nil {
		return nil, err
	}
	clk := cfg.Clock
	if clk == nil {
		clk = clock.Real()
	}
	return &RateLimiter{core: *core, clk: clk, onReject: cfg.OnReject,
		em: newEmitter(KindRateLimit, cfg.Name, cfg.Observer)}, nil
}

// Allow reports whether a call may run now, taking a token if so. It never waits, whatever
// MaxWait says.
func (l *RateLimiter) Allow() bool {
	now := l.clk.Now()
	l.mu.Lock()
	ok := l.core.Allow(now)
	l.mu.Unlock()
	return ok
}

// Execute runs fn when a token is available, waiting up to MaxWait for it. It returns fn's error;
// an error matching ErrRateLimited when no token is available within MaxWait; the caller's
// ctx.Err() when ctx ended first (fn is then not called).
func (l *RateLimiter) Execute(ctx context.Context, fn func(context.Context) error) error {
	if err := l.wait(ctx); err != nil {
		return err
	}
	return fn(ctx)
}

// WithRateLimit returns l as a Policy for composition.
func WithRateLimit[R any](l *RateLimiter) Policy[R] { return rateLimiterPolicy[R]{l} }

// rateLimiterPolicy is WithRateLimit's policy; see chain for why it is a type of its own.
type rateLimiterPolicy[R any] struct{ l *RateLimiter }

// Apply implements Policy.
func (pol rateLimiterPolicy[R]) Apply(next Func[R]) Func[R] {
	return func(ctx context.Context) (R, error) { return pol.run(ctx, next) }
}

func (pol rateLimiterPolicy[R]) run(ctx context.Context, next Func[R]) (R, error) {
	l := pol.l
	if err := l.wait(ctx); err != nil {
		var zero R
		return zero, err
	}
	return next(ctx)
}

// wait reserves a token and waits for its turn; nil means the call may run.
func (l *RateLimiter) wait(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	now := l.clk.Now()
	l.mu.Lock()
	wait, ok := l.core.Reserve(now)
	l.mu.Unlock()
	if !ok {
		err := &rateLimitError{retryAfter: wait}
		if l.onReject != nil {
			l.onReject(err)
		}
		l.em.emit(ctx, Event{Type: EventRejected, Err: err})
		return err
	}
	if wait == 0 {
		return nil
	}
	timer := l.clk.NewTimer(wait)
	defer timer.Stop()
	select {
	case <-timer.C():
		l.em.emit(ctx, Event{Type: EventAdmitted, Duration: wait})
		return nil
	case <-ctx.Done():
		gaveUp := l.clk.Now()
		l.mu.Lock()
		l.core.Cancel(gaveUp, now.Add(wait))
		l.mu.Unlock()
		return ctx.Err()
	}
}

// rateLimitError is a rejection that says when to come back; it matches ErrRateLimited.
type rateLimitError struct{ retryAfter time.Duration }

func (e *rateLimitError) Error() string {
	return fmt.Sprintf("%v (retry after %v)", ErrRateLimited, e.retryAfter)
}
func (e *rateLimitError) Is(target error) bool      { return target == ErrRateLimited }
func (e *rateLimitError) RetryAfter() time.Duration { return e.retryAfter }

package bench

// The settings every library gets. Where a peer cannot express one, the closest it offers is used
// and the difference is written next to it (and in docs/benchmarks.md).

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/failsafe-go/failsafe-go"
	fsbh "github.com/failsafe-go/failsafe-go/bulkhead"
	fscb "github.com/failsafe-go/failsafe-go/circuitbreaker"
	fsrl "github.com/failsafe-go/failsafe-go/ratelimiter"
	fsretry "github.com/failsafe-go/failsafe-go/retrypolicy"
	fstimeout "github.com/failsafe-go/failsafe-go/timeout"
	"github.com/sony/gobreaker/v2"

	"github.com/faultline-dev/faultline/resilience"
)

const (
	// Breaker: a count window of the last 100 calls that trips when at least half of at least 10
	// calls failed, stays open 60 s, then lets one probe through; one successful probe closes it.
	breakerWindow      = 100
	breakerMinCalls    = 10
	breakerFailureRate = 0.5
	breakerOpen        = 60 * time.Second

	// Retry: 3 attempts in all, exponential backoff from 100 ms doubling up to 10 s, no jitter
	// (never waited: fn succeeds first time).
	retryAttempts = 3
	retryBase     = 100 * time.Millisecond
	retryMax      = 10 * time.Second

	// Timeout: 1 s per attempt (never fires).
	timeoutDuration = time.Second

	// Bulkhead: 10 concurrent calls, no queue (a call finding no slot is rejected at once).
	bulkheadMax = 10

	// Rate limiter: one call per nanosecond (1e9/s) with a burst of 1, so every call (each takes
	// more than 1 ns) gets a token at once and none waits; what is measured is the bookkeeping.
	rateInterval = time.Nanosecond
)

// must panics on a setup error (a bad setting is a bug in this file).
func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// --- faultline ---

func breakerConfig() resilience.BreakerConfig {
	return resilience.BreakerConfig{
		WindowSize:     breakerWindow,
		MinCalls:       breakerMinCalls,
		FailureRate:    breakerFailureRate,
		OpenDuration:   breakerOpen,
		HalfOpenProbes: 1,
	}
}

func newFaultlineBreaker(b *testing.B) *resilience.Breaker {
	return must(resilience.NewBreaker(breakerConfig()))
}

func retryConfig() resilience.RetryConfig {
	return resilience.RetryConfig{
		MaxAttempts: retryAttempts,
		Backoff:     resilience.Backoff{Base: retryBase, Max: retryMax, Multiplier: 2},
	}
}

func timeoutConfig() resilience.TimeoutConfig {
	return resilience.TimeoutConfig{Duration: timeoutDuration}
}

func bulkheadConfig() resilience.BulkheadConfig {
	return resilience.BulkheadConfig{MaxConcurrent: bulkheadMax}
}

func rateLimitConfig() resilience.RateLimitConfig {
	return resilience.RateLimitConfig{Rate: float64(time.Second / rateInterval), Burst: 1}
}

// newFaultlinePipeline returns the policies outermost first: retry, breaker, bulkhead, timeout.
func newFaultlinePipeline(b *testing.B) []resilience.Policy[struct{}] {
	return []resilience.Policy[struct{}]{
		resilience.WithRetry[struct{}](must(resilience.NewRetry(retryConfig()))),
		resilience.WithBreaker[struct{}](newFaultlineBreaker(b)),
		resilience.WithBulkhead[struct{}](must(resilience.NewBulkhead(bulkheadConfig()))),
		resilience.WithTimeout[struct{}](must(resilience.NewTimeout(timeoutConfig()))),
	}
}

// --- sony/gobreaker/v2 ---

// newGobreaker: gobreaker has no count window. With Interval 0 its counts are cumulative since the
// last state change (never cleared while closed), and ReadyToTrip sees them on each failure; the
// trip rule is the same (≥ 10 calls, ≥ 50% failed) over that cumulative count instead of over the
// last 100 calls. MaxRequests 1 is one half-open probe, which closes the breaker when it succeeds.
func newGobreaker() *gobreaker.CircuitBreaker[struct{}] {
	return gobreaker.NewCircuitBreaker[struct{}](gobreaker.Settings{
		Name:        "bench",
		MaxRequests: 1,
		Interval:    0,
		Timeout:     breakerOpen,
		ReadyToTrip: func(c gobreaker.Counts) bool {
			return c.Requests >= breakerMinCalls &&
				float64(c.TotalFailures) >= breakerFailureRate*float64(c.Requests)
		},
	})
}

var errBulkheadFull = errors.New("bulkhead full")

// gobreakerPipeline is the pipeline composed by hand around gobreaker, which has only a breaker:
// a loop for the retries (same attempts and backoff), gobreaker, a buffered channel as the
// bulkhead semaphore (non-blocking: no queue), context.WithTimeout for the per-attempt timeout.
type gobreakerPipeline struct {
	cb  *gobreaker.CircuitBreaker[struct{}]
	sem chan struct{}
}

func newGobreakerPipeline() *gobreakerPipeline {
	return &gobreakerPipeline{cb: newGobreaker(), sem: make(chan struct{}, bulkheadMax)}
}

func (p *gobreakerPipeline) run(ctx context.Context, fn func(context.Context) error) error {
	delay := retryBase
	var err error
	for attempt := 1; ; attempt++ {
		_, err = p.cb.Execute(func() (struct{}, error) {
			select {
			case p.sem <- struct{}{}:
			default:
				return struct{}{}, errBulkheadFull
			}
			defer func() { <-p.sem }()
			tctx, cancel := context.WithTimeout(ctx, timeoutDuration)
			defer cancel()
			return struct{}{}, fn(tctx)
		})
		if err == nil || attempt == retryAttempts || ctx.Err() != nil {
			return err
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		delay = min(2*delay, retryMax)
	}
}

// --- failsafe-go ---

// newFailsafeBreaker: failsafe-go's count-based breaker is "n failures out of the last m calls"
// (WithFailureThresholdRatio(50, 100)); it cannot set a minimum number of calls on a count window
// (its minimum, failureExecutionThreshold, exists only with a time window), so it trips after 50
// failures among the last ≤ 100 calls. WithSuccessThreshold(1): one successful half-open probe
// closes it, as for the others.
func newFailsafeBreaker() fscb.CircuitBreaker[struct{}] {
	return fscb.NewBuilder[struct{}]().
		WithFailureThresholdRatio(uint(breakerFailureRate*breakerWindow), breakerWindow).
		WithDelay(breakerOpen).
		WithSuccessThreshold(1).
		Build()
}

func newFailsafeRetry() fsretry.RetryPolicy[struct{}] {
	return fsretry.NewBuilder[struct{}]().
		WithMaxAttempts(retryAttempts).
		WithBackoff(retryBase, retryMax).
		Build()
}

func newFailsafeTimeout() fstimeout.Timeout[struct{}] {
	return fstimeout.New[struct{}](timeoutDuration)
}

func newFailsafeBulkhead() fsbh.Bulkhead[struct{}] { return fsbh.New[struct{}](bulkheadMax) }

func newFailsafeRateLimiter() fsrl.RateLimiter[struct{}] {
	return fsrl.NewSmoothWithMaxRate[struct{}](rateInterval)
}

// newFailsafePipeline: With composes outermost first, like faultline's Compose. The executor is
// built once and reused with its background context (the cheapest way to call failsafe-go; a
// caller passing a per-request ctx would add WithContext, one more allocation per call).
func newFailsafePipeline() failsafe.Executor[struct{}] {
	return failsafe.With[struct{}](newFailsafeRetry(), newFailsafeBreaker(), newFailsafeBulkhead(), newFailsafeTimeout())
}

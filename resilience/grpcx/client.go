package grpcx

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/faultline-dev/faultline/clock"
	"github.com/faultline-dev/faultline/resilience"
)

// ClientConfig configures the client interceptors. Every field is optional; the zero value passes
// calls straight through.
//
// A unary call goes through, outermost first: RateLimiter (once per call) → Retry → for each
// attempt: the target's Breaker → Bulkhead → Timeout → the RPC. A stream goes through the same
// gates when it is created, and holds its breaker permit and bulkhead slot until it ends (see
// StreamClientInterceptor).
type ClientConfig struct {
	// Retry, when set, retries failed attempts that Retryable accepts, with the Retry's backoff,
	// attempts, budget and clock. Leave its RetryConfig.Retryable nil: the interceptor marks the
	// attempts it does not want retried with resilience.Permanent, which the default classifier
	// honours. Nil means no retries.
	Retry *resilience.Retry
	// Retryable classifies a failed attempt (an error status.Code reads; Pushback reads the
	// server's pushback). Nil means DefaultRetryable: UNAVAILABLE, DEADLINE_EXCEEDED (not the
	// caller's) and RESOURCE_EXHAUSTED with a pushback. Whatever it says, an attempt whose server
	// said not to retry (negative or malformed pushback) is not retried, nor is one that ended
	// because the caller's context ended.
	Retryable func(err error) bool
	// Breaker, when set, makes the circuit breaker of a target (cc.Target()): it is called once
	// per target, on the first call to it, and the breaker is kept for the interceptor's life. An
	// error it returns fails every call to that target with codes.Internal. Leave the breaker's
	// own BreakerConfig.IsFailure nil (IsFailure below classifies) and give it the same Clock.
	Breaker func(target string) (*resilience.Breaker, error)
	// Bulkhead, when set, bounds the attempts (and open streams) in flight across all targets.
	Bulkhead *resilience.Bulkhead
	// RateLimiter, when set, admits calls (and stream creations) at its rate; it is consulted once
	// per call, not per attempt.
	RateLimiter *resilience.RateLimiter
	// Timeout, when positive, bounds each unary attempt; an attempt that runs out fails with
	// codes.DeadlineExceeded (matching resilience.ErrTimeout), which is retried and counts as a
	// breaker failure by default. It does not apply to streams. Zero means none.
	Timeout time.Duration
	// IsFailure classifies a call's error for the breaker: true counts a failure of the target.
	// Nil means DefaultIsFailure (UNAVAILABLE, DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED, INTERNAL,
	// UNKNOWN, DATA_LOSS). Calls whose caller gave up, and calls a bulkhead rejected, are never
	// counted, whatever it says.
	IsFailure func(err error) bool
	// Clock times the Timeout and the calls the breakers see. Nil means clock.Real(). Give the
	// breakers the same clock.
	Clock clock.Clock
}

// client is the state shared by one interceptor's calls.
type client struct {
	retry      *resilience.Retry
	retryable  func(error) bool
	newBreaker func(string) (*resilience.Breaker, error)
	breakers   sync.Map // target → *breakerEntry
	bulkhead   *resilience.Bulkhead
	limiter    *resilience.RateLimiter
	timeout    *resilience.Timeout
	isFailure  func(error) bool
	clk        clock.Clock
}

type breakerEntry struct {
	once sync.Once
	b    *resilience.Breaker
	err  error
}

func newClient(cfg ClientConfig) (*client, error) {
	if cfg.Timeout < 0 {
		return nil, fmt.Errorf("resilience/grpcx: ClientConfig.Timeout %v: want ≥ 0 (0: none)", cfg.Timeout)
	}
	c := &client{
		retry: cfg.Retry, retryable: cfg.Retryable, newBreaker: cfg.Breaker, bulkhead: cfg.Bulkhead,
		limiter: cfg.RateLimiter, isFailure: cfg.IsFailure, clk: cfg.Clock,
	}
	if c.retryable == nil {
		c.retryable = DefaultRetryable
	}
	if c.isFailure == nil {
		c.isFailure = DefaultIsFailure
	}
	if c.clk == nil {
		c.clk = clock.Real()
	}
	if cfg.Timeout > 0 {
		t, err := resilience.NewTimeout(resilience.TimeoutConfig{Duration: cfg.Timeout, Clock: c.clk, Name: "grpc-attempt"})
		if err != nil {
			return nil, err
		}
		c.timeout = t
	}
	return c, nil
}

// UnaryClientInterceptor returns an interceptor that runs each unary call through cfg's policies:
// RateLimiter → Retry → (per attempt) Breaker of cc.Target() → Bulkhead → Timeout → the RPC.
//
// Errors are gRPC status errors: an open breaker gives codes.Unavailable, a full bulkhead or the
// rate limiter codes.ResourceExhausted, a per-attempt timeout codes.DeadlineExceeded, each also
// matching its policy error with errors.Is (resilience.ErrOpen, ErrBulkheadFull, ErrRateLimited,
// ErrTimeout); the end of the caller's context gives codes.Canceled or codes.DeadlineExceeded,
// matching context.Canceled or context.DeadlineExceeded, at once. A server's failure is returned
// as the server sent it (with Pushback readable when it sent one). It returns an error only for a
// bad cfg.
func UnaryClientInterceptor(cfg ClientConfig) (grpc.UnaryClientInterceptor, error) {
	c, err := newClient(cfg)
	if err != nil {
		return nil, err
	}
	return c.unary, nil
}

func (c *client) unary(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn,
	invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	target := targetOf(cc)
	b, err := c.breaker(target)
	if err != nil {
		return err
	}
	invoke := func(ctx context.Context) error { return c.invoke(ctx, method, req, reply, cc, invoker, opts) }
	return c.run(ctx, func(ctx context.Context) error { return c.attempt(ctx, b, target, invoke) })
}

func targetOf(cc *grpc.ClientConn) string {
	if cc == nil {
		return ""
	}
	return cc.Target()
}

// breaker returns the target's breaker, making it on first use (nil without a factory).
func (c *client) breaker(target string) (*resilience.Breaker, error) {
	if c.newBreaker == nil {
		return nil, nil
	}
	v, ok := c.breakers.Load(target)
	if !ok {
		v, _ = c.breakers.LoadOrStore(target, &breakerEntry{})
	}
	e := v.(*breakerEntry)
	e.once.Do(func() {
		e.b, e.err = c.newBreaker(target)
		if e.err == nil && e.b == nil {
			e.err = errors.New("the factory returned no breaker")
		}
	})
	if e.err != nil {
		return nil, newStatusError(codes.Internal,
			fmt.Sprintf("resilience/grpcx: circuit breaker for target %q: %v", target, e.err), e.err)
	}
	return e.b, nil
}

// run applies the per-call policies (rate limiter, retry) around attempt and turns the result
// into the caller's error.
func (c *client) run(ctx context.Context, attempt func(context.Context) error) error {
	if ctx.Err() != nil {
		return callerEndedError(ctx, nil)
	}
	call := attempt
	if c.retry != nil {
		call = func(ctx context.Context) error {
			return c.retry.Execute(ctx, func(ctx context.Context) error { return c.classify(ctx, attempt(ctx)) })
		}
	}
	var err error
	if c.limiter != nil {
		err = c.limiter.Execute(ctx, call)
	} else {
		err = call(ctx)
	}
	return c.finish(ctx, err)
}

// classify marks a failed attempt that must not be retried with resilience.Permanent, which the
// Retry's default classifier honours.
func (c *client) classify(ctx context.Context, err error) error {
	if err == nil || ctx.Err() != nil {
		return err
	}
	if d, pushed := Pushback(err); (pushed && d < 0) || !c.retryable(err) {
		return &resilience.PermanentError{Err: err}
	}
	return err
}

// finish turns what the policies returned into the caller's error: a gRPC status error that
// still matches the policy or context errors behind it.
func (c *client) finish(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return callerEndedError(ctx, err)
	}
	if p, ok := err.(*resilience.PermanentError); ok {
		err = p.Err // our mark, not the caller's business (and it would garble status messages)
	}
	if _, ok := err.(interface{ GRPCStatus() *status.Status }); ok {
		return err
	}
	if errors.Is(err, resilience.ErrRateLimited) {
		return newStatusError(codes.ResourceExhausted, err.Error(), err)
	}
	var gs interface{ GRPCStatus() *status.Status }
	if errors.As(err, &gs) { // e.g. the last attempt's error wrapped with ErrBudgetExhausted
		st := gs.GRPCStatus()
		msg := st.Message()
		if errors.Is(err, resilience.ErrBudgetExhausted) {
			msg = "resilience/grpcx: retry budget exhausted; last attempt: " + msg
		}
		return newStatusError(st.Code(), msg, err)
	}
	return policyStatus(err, "")
}

// attempt runs one attempt through the target's breaker (when there is one).
func (c *client) attempt(ctx context.Context, b *resilience.Breaker, target string, invoke func(context.Context) error) error {
	if b == nil {
		return policyStatus(c.guarded(ctx, invoke), target)
	}
	start := c.clk.Now()
	p, err := b.Allow(start)
	if err != nil {
		return policyStatus(err, target)
	}
	finished := false
	defer func() {
		if !finished { // the RPC panicked: count it and free a half-open probe slot
			b.Done(p, c.clk.Now(), resilience.Outcome{Kind: resilience.OutcomeFailure})
		}
	}()
	err = policyStatus(c.guarded(ctx, invoke), target)
	finished = true
	now := c.clk.Now()
	b.Done(p, now, resilience.Outcome{Kind: c.outcome(ctx, err), Duration: now.Sub(start)})
	return err
}

// outcome classifies a call's error for the breaker.
func (c *client) outcome(ctx context.Context, err error) resilience.OutcomeKind {
	switch {
	case err == nil:
		return resilience.OutcomeSuccess
	case ctx.Err() != nil, errors.Is(err, resilience.ErrBulkheadFull):
		return resilience.OutcomeIgnored // the caller gave up, or the call never left
	case c.isFailure(err):
		return resilience.OutcomeFailure
	}
	return resilience.OutcomeSuccess
}

// guarded runs invoke under the bulkhead and the per-attempt timeout.
func (c *client) guarded(ctx context.Context, invoke func(context.Context) error) error {
	call := invoke
	if c.timeout != nil {
		call = func(ctx context.Context) error { return c.timeout.Execute(ctx, invoke) }
	}
	if c.bulkhead != nil {
		return c.bulkhead.Execute(ctx, call)
	}
	return call(ctx)
}

// invoke makes one attempt; with retries on, it reads the trailer for the server's pushback.
func (c *client) invoke(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn,
	invoker grpc.UnaryInvoker, opts []grpc.CallOption) error {
	if c.retry == nil {
		return invoker(ctx, method, req, reply, cc, opts...)
	}
	var md metadata.MD
	err := invoker(ctx, method, req, reply, cc, append(opts[:len(opts):len(opts)], grpc.Trailer(&md))...)
	if err == nil {
		return nil
	}
	if d, ok := parsePushback(md); ok {
		return &pushbackError{err: err, st: status.Convert(err), d: d}
	}
	return err
}

// policyStatus turns a policy's refusal into a gRPC status error that wraps it; other errors
// (the server's, the caller's context) are returned unchanged.
func policyStatus(err error, target string) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, resilience.ErrOpen):
		return newStatusError(codes.Unavailable,
			fmt.Sprintf("resilience/grpcx: circuit breaker for target %q is open", target), err)
	case errors.Is(err, resilience.ErrBulkheadFull):
		return newStatusError(codes.ResourceExhausted, "resilience/grpcx: client bulkhead full", err)
	case errors.Is(err, resilience.ErrTimeout):
		return newStatusError(codes.DeadlineExceeded,
			"resilience/grpcx: attempt "+strings.TrimPrefix(err.Error(), "resilience: "), err)
	case errors.Is(err, resilience.ErrRateLimited):
		return newStatusError(codes.ResourceExhausted, err.Error(), err)
	}
	return err
}

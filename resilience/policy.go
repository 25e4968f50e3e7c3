package resilience

import (
	"context"
	"errors"
	"slices"
)

// Func is an operation guarded by policies.
type Func[R any] func(ctx context.Context) (R, error)

// Policy guards an operation. Apply returns next wrapped by the policy; it must honour ctx and
// return the caller's ctx.Err() (wrapped or not, so errors.Is finds it) when ctx ends.
type Policy[R any] interface {
	Apply(next Func[R]) Func[R]
}

// PolicyFunc adapts a function to Policy.
type PolicyFunc[R any] func(next Func[R]) Func[R]

// Apply calls f.
func (f PolicyFunc[R]) Apply(next Func[R]) Func[R] { return f(next) }

// Compose chains policies, outermost first: Compose(a, b, c).Apply(fn) runs a(b(c(fn))). Nil
// entries are skipped.
func Compose[R any](policies ...Policy[R]) Policy[R] {
	policies = slices.Clone(policies) // the caller may reuse its slice
	return PolicyFunc[R](func(next Func[R]) Func[R] {
		return chain[R]{policies: policies, fn: next}.call
	})
}

// Execute runs fn through the policies (outermost first). When ctx has already ended, fn is not
// called.
func Execute[R any](ctx context.Context, fn Func[R], policies ...Policy[R]) (R, error) {
	if err := ctx.Err(); err != nil {
		var zero R
		return zero, err
	}
	return chain[R]{policies: policies, fn: fn}.call(ctx)
}

// chain is the rest of a composed call: policies (outermost first) around fn. Execute runs it
// without building a closure per policy per call: faultline's own policies are matched by their
// concrete type (a type switch compares type words; an interface assertion would hash into the
// itab table on every call) and run the rest of the chain directly, passed by value so it stays on
// the stack. Any other Policy is applied as usual.
type chain[R any] struct {
	policies []Policy[R]
	fn       Func[R]
}

// call runs the chain.
func (c chain[R]) call(ctx context.Context) (R, error) {
	for len(c.policies) > 0 && c.policies[0] == nil {
		c.policies = c.policies[1:]
	}
	if len(c.policies) == 0 {
		return c.fn(ctx)
	}
	rest := chain[R]{policies: c.policies[1:], fn: c.fn}
	switch p := c.policies[0].(type) {
	case retryPolicy[R]:
		return p.run(ctx, rest.call)
	case breakerPolicy[R]:
		return p.run(ctx, rest.call)
	case bulkheadPolicy[R]:
		return p.run(ctx, rest.call)
	case timeoutPolicy[R]:
		return p.run(ctx, rest.call)
	case rateLimiterPolicy[R]:
		return p.run(ctx, rest.call)
	case throttlePolicy[R]:
		return p.run(ctx, rest.call)
	case limiterPolicy[R]:
		return p.run(ctx, rest.call)
	default:
		return p.Apply(rest.call)(ctx)
	}
}

// Errors the policies return when they reject or stop a call. Callers branch on them with
// errors.Is; each policy documents which it returns.
var (
	// ErrOpen: the circuit breaker is open (or half-open with no probe slot free), or adaptive
	// throttling rejected the call.
	ErrOpen = errors.New("resilience: circuit breaker is open")
	// ErrTimeout: the policy's own deadline passed (not the caller's).
	ErrTimeout = errors.New("resilience: timed out")
	// ErrBulkheadFull: no slot and no room (or time) left in the wait queue.
	ErrBulkheadFull = errors.New("resilience: bulkhead full")
	// ErrRateLimited: no token available within the allowed wait.
	ErrRateLimited = errors.New("resilience: rate limited")
	// ErrBudgetExhausted: the retry (or hedge) budget allows no more extra attempts now.
	ErrBudgetExhausted = errors.New("resilience: retry budget exhausted")
	// ErrLimitExceeded: the adaptive concurrency limiter shed the call.
	ErrLimitExceeded = errors.New("resilience: concurrency limit exceeded")
)

// CallerEnded reports whether err is the end of the caller's own context (ctx ended and err says
// so), which no policy counts as a failure of the callee.
func CallerEnded(ctx context.Context, err error) bool {
	return ctx.Err() != nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded))
}

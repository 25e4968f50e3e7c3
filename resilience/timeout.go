package resilience

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/faultline-dev/faultline/clock"
)

// Timeout bounds how long an operation may run. It runs the operation with a derived context that
// the timeout cancels (with cause ErrTimeout) after its duration, then waits for the operation to
// return: the operation must honour its context, as every well-behaved Go call does, and in
// exchange no goroutine is started per call and nothing runs on after Execute returns.
//
// When the real clock is used the derived context carries the deadline (ctx.Deadline reports it,
// so it propagates to gRPC and HTTP clients); on another clock a clock.AfterFunc cancels it.
type Timeout struct {
	d     time.Duration
	clk   clock.Clock
	em    emitter
	cause *timeoutError // the error a fired deadline returns; shared, it never changes
}

// TimeoutConfig configures a Timeout. Only Duration is required.
type TimeoutConfig struct {
	// Duration is how long a call may run. Required: > 0.
	Duration time.Duration
	// Clock supplies time and timers. Nil means clock.Real().
	Clock clock.Clock
	// Name names the policy in events; Observer, when set, receives an EventTimeout each time the
	// deadline cancels a call.
	Name     string
	Observer Observer
}

// NewTimeout validates cfg and returns a Timeout.
func NewTimeout(cfg TimeoutConfig) (*Timeout, error) {
	if cfg.Duration <= 0 {
		return nil, fmt.Errorf("resilience: TimeoutConfig.Duration %v: want > 0", cfg.Duration)
	}
	clk := cfg.Clock
	if clk == nil {
		clk = clock.Real()
	}
	return &Timeout{d: cfg.Duration, clk: clk, em: newEmitter(KindTimeout, cfg.Name, cfg.Observer),
		cause: &timeoutError{d: cfg.Duration}}, nil
}

// Duration returns the timeout's duration.
func (t *Timeout) Duration() time.Duration { return t.d }

// Execute runs fn with a context that ends after the timeout's duration. It returns fn's result
// when fn finishes first (a success is kept even if the deadline passed meanwhile); an error
// matching ErrTimeout when the timeout's deadline cancelled fn while the caller's ctx was still
// alive; the caller's ctx.Err() when the caller's ctx ended. An already-ended ctx never calls fn.
func (t *Timeout) Execute(ctx context.Context, fn func(context.Context) error) error {
	_, err := timeoutDo(ctx, t.clk, t.d, t.cause, &t.em, func(ctx context.Context) (struct{}, error) {
		return struct{}{}, fn(ctx)
	})
	return err
}

// WithTimeout returns t as a Policy for composition.
func WithTimeout[R any](t *Timeout) Policy[R] { return timeoutPolicy[R]{t} }

// timeoutPolicy is WithTimeout's policy; see chain for why it is a type of its own.
type timeoutPolicy[R any] struct{ t *Timeout }

// Apply implements Policy.
func (pol timeoutPolicy[R]) Apply(next Func[R]) Func[R] {
	return func(ctx context.Context) (R, error) { return pol.run(ctx, next) }
}

func (pol timeoutPolicy[R]) run(ctx context.Context, next Func[R]) (R, error) {
	t := pol.t
	return timeoutDo(ctx, t.clk, t.d, t.cause, &t.em, next)
}

// timeoutError is the cause the timeout cancels with; it matches ErrTimeout.
type timeoutError struct{ d time.Duration }

func (e *timeoutError) Error() string   { return fmt.Sprintf("%v after %v", ErrTimeout, e.d) }
func (e *timeoutError) Is(t error) bool { return t == ErrTimeout }

// timeoutDo runs next under a deadline of d on clk (shared by Timeout and Retry's
// PerAttemptTimeout), failing with cause when the deadline fires and reporting it to em.
func timeoutDo[R any](ctx context.Context, clk clock.Clock, d time.Duration, cause *timeoutError, em *emitter, next Func[R]) (R, error) {
	if err := ctx.Err(); err != nil {
		var zero R
		return zero, err
	}
	var cctx context.Context
	var cancel func()
	if clk == clock.Real() {
		var c context.CancelFunc
		cctx, c = context.WithTimeoutCause(ctx, d, cause)
		cancel = c
	} else {
		var c context.CancelCauseFunc
		cctx, c = context.WithCancelCause(ctx)
		timer := clk.AfterFunc(d, func() { c(cause) })
		cancel = func() { timer.Stop(); c(context.Canceled) }
	}
	res, err := next(cctx)
	fired := err != nil && errors.Is(context.Cause(cctx), ErrTimeout)
	cancel()
	switch {
	case err == nil:
		return res, nil
	case ctx.Err() != nil:
		var zero R
		return zero, ctx.Err()
	case fired:
		em.emit(ctx, Event{Type: EventTimeout, Duration: d, Err: cause})
		return res, cause
	}
	return res, err
}

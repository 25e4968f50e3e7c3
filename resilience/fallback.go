package resilience

import (
	"context"
	"errors"
)

// Fallback returns a Policy that answers a failed call with f(ctx, err): graceful degradation
// (a cached value, a default, a cheaper path). when selects the errors to fall back on; nil means
// every error except the end of the caller's own context (a caller that gave up gets its
// cancellation back, not a substitute answer). f must not be nil.
func Fallback[R any](f func(ctx context.Context, err error) (R, error), when func(error) bool) Policy[R] {
	return FallbackWith(FallbackConfig[R]{Func: f, When: when})
}

// FallbackConfig configures FallbackWith: Func and When are Fallback's arguments; Name names the
// policy in events and Observer, when set, receives an EventFallback each time Func answers.
type FallbackConfig[R any] struct {
	Func     func(ctx context.Context, err error) (R, error)
	When     func(error) bool
	Name     string
	Observer Observer
}

// FallbackWith is Fallback with a name and an observer. cfg.Func must not be nil.
func FallbackWith[R any](cfg FallbackConfig[R]) Policy[R] {
	if cfg.Func == nil {
		panic("resilience: Fallback with a nil function")
	}
	f, when, em := cfg.Func, cfg.When, newEmitter(KindFallback, cfg.Name, cfg.Observer)
	return PolicyFunc[R](func(next Func[R]) Func[R] {
		return func(ctx context.Context) (R, error) {
			if err := ctx.Err(); err != nil {
				var zero R
				return zero, err
			}
			res, err := next(ctx)
			if err == nil || CallerEnded(ctx, err) || ctx.Err() != nil {
				return res, err
			}
			if when != nil && !when(err) {
				return res, err
			}
			em.emit(ctx, Event{Type: EventFallback, Err: err})
			return f(ctx, err)
		}
	})
}

// FallbackValue returns a Policy that answers a failed call with v and no error, for the errors
// when selects (nil: every error except the caller's cancellation, as for Fallback).
func FallbackValue[R any](v R, when func(error) bool) Policy[R] {
	return Fallback(func(context.Context, error) (R, error) { return v, nil }, when)
}

// FallbackOn returns a classifier for Fallback that matches errors wrapping any of targets
// (errors.Is), e.g. FallbackOn(ErrOpen, ErrTimeout).
func FallbackOn(targets ...error) func(error) bool {
	return func(err error) bool {
		for _, t := range targets {
			if errors.Is(err, t) {
				return true
			}
		}
		return false
	}
}

package resilience

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/faultline-dev/faultline/clock"
)

func timeoutWaitCtx(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }

func TestTimeoutOutcomes(t *testing.T) {
	tests := []struct {
		name    string
		fn      func(ctx context.Context) error
		advance bool // advance the clock past the timeout
		cancel  bool // cancel the caller's ctx instead
		want    error
		notWant error
	}{
		{"fast success", func(context.Context) error { return nil }, false, false, nil, nil},
		{"fast failure", func(context.Context) error { return errRetryFlaky }, false, false, errRetryFlaky, ErrTimeout},
		{"timeout fires", timeoutWaitCtx, true, false, ErrTimeout, context.Canceled},
		{"caller cancels", timeoutWaitCtx, false, true, context.Canceled, ErrTimeout},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkNoLeak(t)
			m := clock.NewManual(time.Time{})
			to, err := NewTimeout(TimeoutConfig{Duration: time.Second, Clock: m})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			done := make(chan error, 1)
			go func() { done <- to.Execute(ctx, tt.fn) }()
			if tt.advance || tt.cancel {
				waitTimers(t, m, 1)
			}
			if tt.advance {
				m.Advance(time.Second)
			}
			if tt.cancel {
				cancel()
			}
			err = <-done
			if tt.want == nil && err != nil || tt.want != nil && !errors.Is(err, tt.want) {
				t.Errorf("err %v, want %v", err, tt.want)
			}
			if tt.notWant != nil && errors.Is(err, tt.notWant) {
				t.Errorf("err %v also matches %v", err, tt.notWant)
			}
			if m.Timers() != 0 {
				t.Errorf("%d timers left", m.Timers())
			}
		})
	}
}

func TestTimeoutEndedContextNeverCalls(t *testing.T) {
	to, _ := NewTimeout(TimeoutConfig{Duration: time.Second, Clock: clock.NewManual(time.Time{})})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	called := false
	if err := to.Execute(ctx, func(context.Context) error { called = true; return nil }); !errors.Is(err, context.Canceled) || called {
		t.Errorf("err %v, called %v", err, called)
	}
}

func TestTimeoutRealClockCarriesDeadline(t *testing.T) {
	to, err := NewTimeout(TimeoutConfig{Duration: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	var ok bool
	_, err = Execute(context.Background(), func(ctx context.Context) (int, error) {
		_, ok = ctx.Deadline()
		return 1, nil
	}, WithTimeout[int](to))
	if err != nil || !ok {
		t.Errorf("err %v, deadline visible %v", err, ok)
	}
	if _, err := NewTimeout(TimeoutConfig{Duration: 0}); err == nil {
		t.Error("zero timeout accepted")
	}
}

func TestTimeoutInsideRetryIsRetried(t *testing.T) {
	checkNoLeak(t)
	m := clock.NewManual(time.Time{})
	to, _ := NewTimeout(TimeoutConfig{Duration: time.Second, Clock: m})
	r, _ := NewRetry(RetryConfig{MaxAttempts: 2, Backoff: Backoff{Base: time.Second}, Clock: m})
	done := make(chan error, 1)
	go func() {
		_, err := Execute(context.Background(), func(ctx context.Context) (int, error) {
			return 0, timeoutWaitCtx(ctx)
		}, WithRetry[int](r), WithTimeout[int](to))
		done <- err
	}()
	for range 3 { // timeout, backoff, timeout
		waitTimers(t, m, 1)
		m.Advance(time.Second)
	}
	if err := <-done; !errors.Is(err, ErrTimeout) || errors.Is(err, context.Canceled) {
		t.Errorf("err %v, want the last attempt's ErrTimeout", err)
	}
}

func BenchmarkTimeoutSuccess(b *testing.B) {
	to, _ := NewTimeout(TimeoutConfig{Duration: time.Second})
	ctx := context.Background()
	fn := func(context.Context) error { return nil }
	for b.Loop() {
		_ = to.Execute(ctx, fn)
	}
}

package telemetry_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/faultline-dev/faultline/clock"
	"github.com/faultline-dev/faultline/resilience"
	"github.com/faultline-dev/faultline/resilience/telemetry"
)

var errBoom = errors.New("boom")

func newMetrics(t testing.TB, opts ...telemetry.MetricsOption) (*telemetry.Metrics, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	m, err := telemetry.NewMetrics(reg, opts...)
	if err != nil {
		t.Fatalf("NewMetrics: %v", err)
	}
	return m, reg
}

// drive runs fn on its own goroutine and moves clk to each pending deadline until fn returns, so
// code that sleeps on the manual clock (retry backoff, timeouts) runs to its end.
func drive(t *testing.T, clk *clock.Manual, fn func() error) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- fn() }()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case err := <-done:
			return err
		case <-deadline:
			t.Fatal("drive: fn did not return")
		case <-time.After(time.Millisecond):
			if d, ok := clk.NextDeadline(); ok {
				clk.Set(d)
			}
		}
	}
}

// failingRetry returns a Retry of three attempts on clk and the call that runs it.
func failingRetry(t *testing.T, clk *clock.Manual, obs resilience.Observer) func(ctx context.Context) error {
	t.Helper()
	r, err := resilience.NewRetry(resilience.RetryConfig{Name: "fetch", MaxAttempts: 3, Clock: clk, Observer: obs})
	if err != nil {
		t.Fatal(err)
	}
	return func(ctx context.Context) error {
		return r.Execute(ctx, func(context.Context) error { return errBoom })
	}
}

// trippedBreaker returns a consecutive-failures breaker named "payments" that two failing calls
// (each taking 10 ms on clk) have opened.
func trippedBreaker(t *testing.T, clk *clock.Manual, obs resilience.Observer) *resilience.Breaker {
	t.Helper()
	b, err := resilience.NewBreaker(resilience.BreakerConfig{
		Name: "payments", ConsecutiveFailures: 2, OpenDuration: time.Second, Clock: clk, Observer: obs,
	})
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		err := b.Execute(context.Background(), func(context.Context) error {
			clk.Advance(10 * time.Millisecond)
			return errBoom
		})
		if !errors.Is(err, errBoom) {
			t.Fatalf("failing call: %v", err)
		}
	}
	if s := b.State(clk.Now()); s != resilience.BreakerOpen {
		t.Fatalf("breaker state %v after two failures, want open", s)
	}
	return b
}

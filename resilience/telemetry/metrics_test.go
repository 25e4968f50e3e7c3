package telemetry_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"

	"github.com/faultline-dev/faultline/clock"
	"github.com/faultline-dev/faultline/resilience"
	"github.com/faultline-dev/faultline/resilience/telemetry"
)

// find returns the metric called name (without namespace) whose labels include want, or nil.
func find(t *testing.T, g prometheus.Gatherer, name string, want map[string]string) *dto.Metric {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatalf("Gather: %v", err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "faultline_resilience_"+name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, lp := range m.GetLabel() {
				labels[lp.GetName()] = lp.GetValue()
			}
			for k, v := range want {
				if labels[k] != v {
					continue next
				}
			}
			return m
		}
	}
	return nil
}

// value returns the counter or gauge called name with labels want; a missing series is 0.
func value(t *testing.T, g prometheus.Gatherer, name string, want map[string]string) float64 {
	t.Helper()
	m := find(t, g, name, want)
	switch {
	case m == nil:
		return 0
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	}
	t.Fatalf("%s%v is neither a counter nor a gauge", name, want)
	return 0
}

func histogram(t *testing.T, g prometheus.Gatherer, name string, want map[string]string) (count uint64, sum float64) {
	t.Helper()
	m := find(t, g, name, want)
	if m == nil {
		return 0, 0
	}
	return m.GetHistogram().GetSampleCount(), m.GetHistogram().GetSampleSum()
}

type L = map[string]string

func TestMetricsBreaker(t *testing.T) {
	m, reg := newMetrics(t)
	clk := clock.NewManual(time.Time{})
	b := trippedBreaker(t, clk, m)
	payments := L{"policy": "breaker", "name": "payments"}

	if got := value(t, reg, "calls_total", L{"name": "payments", "outcome": "failure"}); got != 2 {
		t.Errorf("calls_total{outcome=failure} = %v, want 2", got)
	}
	if n, sum := histogram(t, reg, "call_duration_seconds", L{"name": "payments", "outcome": "failure"}); n != 2 || sum < 0.0199 || sum > 0.0201 {
		t.Errorf("call_duration_seconds{outcome=failure}: count %d sum %v, want 2 and 0.02", n, sum)
	}
	want := `
# HELP faultline_resilience_breaker_state Circuit breaker state: 1 for the current state, 0 for the others.
# TYPE faultline_resilience_breaker_state gauge
faultline_resilience_breaker_state{name="payments",state="closed"} 0
faultline_resilience_breaker_state{name="payments",state="disabled"} 0
faultline_resilience_breaker_state{name="payments",state="forced-open"} 0
faultline_resilience_breaker_state{name="payments",state="half-open"} 0
faultline_resilience_breaker_state{name="payments",state="open"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "faultline_resilience_breaker_state"); err != nil {
		t.Error(err)
	}
	if got := value(t, reg, "rejections_total", L{"name": "payments", "reason": "open"}); got != 0 {
		t.Errorf("rejections_total{reason=open} = %v before any rejection", got)
	}

	// the next call is rejected
	if err := b.Execute(context.Background(), func(context.Context) error { return nil }); !errors.Is(err, resilience.ErrOpen) {
		t.Fatalf("call on open breaker: %v, want ErrOpen", err)
	}
	if got := value(t, reg, "rejections_total", L{"policy": "breaker", "name": "payments", "reason": "open"}); got != 1 {
		t.Errorf("rejections_total{reason=open} = %v, want 1", got)
	}
	if got := value(t, reg, "calls_total", L{"name": "payments", "outcome": "rejected"}); got != 1 {
		t.Errorf("calls_total{outcome=rejected} = %v, want 1", got)
	}

	// after the open duration a successful probe closes it again
	clk.Advance(time.Second)
	if err := b.Execute(context.Background(), func(context.Context) error { clk.Advance(5 * time.Millisecond); return nil }); err != nil {
		t.Fatal(err)
	}
	if got := value(t, reg, "breaker_state", L{"name": "payments", "state": "closed"}); got != 1 {
		t.Errorf("breaker_state{closed} = %v after the probe succeeded, want 1", got)
	}
	for _, s := range []string{"open", "half-open", "forced-open", "disabled"} {
		if got := value(t, reg, "breaker_state", L{"name": "payments", "state": s}); got != 0 {
			t.Errorf("breaker_state{%s} = %v, want 0", s, got)
		}
	}
	if got := value(t, reg, "calls_total", merge(payments, L{"outcome": "success"})); got != 1 {
		t.Errorf("calls_total{outcome=success} = %v, want 1", got)
	}
	if n, sum := histogram(t, reg, "call_duration_seconds", L{"name": "payments", "outcome": "success"}); n != 1 || sum < 0.0049 || sum > 0.0051 {
		t.Errorf("call_duration_seconds{outcome=success}: count %d sum %v, want 1 and 0.005", n, sum)
	}

	b.ForceOpen()
	if got := value(t, reg, "breaker_state", L{"name": "payments", "state": "forced-open"}); got != 1 {
		t.Errorf("breaker_state{forced-open} = %v after ForceOpen, want 1", got)
	}
	if got := value(t, reg, "breaker_state", L{"name": "payments", "state": "closed"}); got != 0 {
		t.Errorf("breaker_state{closed} = %v after ForceOpen, want 0", got)
	}
}

func merge(ms ...L) L {
	out := L{}
	for _, m := range ms {
		for k, v := range m {
			out[k] = v
		}
	}
	return out
}

func TestMetricsSetBreakerState(t *testing.T) {
	m, reg := newMetrics(t)
	if n, err := testutil.GatherAndCount(reg, "faultline_resilience_breaker_state"); err != nil || n != 0 {
		t.Fatalf("breaker_state series before anything: %d, %v", n, err)
	}
	m.SetBreakerState("payments", resilience.BreakerClosed)
	if got := value(t, reg, "breaker_state", L{"name": "payments", "state": "closed"}); got != 1 {
		t.Errorf("breaker_state{closed} = %v after seeding, want 1", got)
	}
	if n, _ := testutil.GatherAndCount(reg, "faultline_resilience_breaker_state"); n != 5 {
		t.Errorf("%d breaker_state series, want 5 (one per state)", n)
	}
}

func TestMetricsRetry(t *testing.T) {
	m, reg := newMetrics(t)
	clk := clock.NewManual(time.Time{})
	call := failingRetry(t, clk, m)
	if err := drive(t, clk, func() error { return call(context.Background()) }); !errors.Is(err, errBoom) {
		t.Fatalf("retry: %v, want boom", err)
	}
	if got := value(t, reg, "retries_total", L{"name": "fetch"}); got != 2 {
		t.Errorf("retries_total = %v, want 2", got)
	}
	if got := value(t, reg, "retries_exhausted_total", L{"name": "fetch"}); got != 1 {
		t.Errorf("retries_exhausted_total = %v, want 1", got)
	}
	// retries are not calls of a guarding policy: no calls_total series
	if n, _ := testutil.GatherAndCount(reg, "faultline_resilience_calls_total"); n != 0 {
		t.Errorf("%d calls_total series after a retry alone, want 0", n)
	}
}

func TestMetricsRetryPerAttemptTimeout(t *testing.T) {
	m, reg := newMetrics(t)
	clk := clock.NewManual(time.Time{})
	r, err := resilience.NewRetry(resilience.RetryConfig{
		Name: "fetch", MaxAttempts: 2, PerAttemptTimeout: time.Second, Clock: clk, Observer: m,
	})
	if err != nil {
		t.Fatal(err)
	}
	err = drive(t, clk, func() error {
		return r.Execute(context.Background(), func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() })
	})
	if !errors.Is(err, resilience.ErrTimeout) {
		t.Fatalf("retry: %v, want ErrTimeout", err)
	}
	if got := value(t, reg, "timeouts_total", L{"policy": "retry", "name": "fetch"}); got != 2 {
		t.Errorf("timeouts_total{policy=retry} = %v, want 2", got)
	}
	if got := value(t, reg, "retries_total", L{"name": "fetch"}); got != 1 {
		t.Errorf("retries_total = %v, want 1", got)
	}
}

func TestMetricsBulkhead(t *testing.T) {
	m, reg := newMetrics(t)
	clk := clock.NewManual(time.Time{})
	bh, err := resilience.NewBulkhead(resilience.BulkheadConfig{Name: "db", MaxConcurrent: 1, MaxQueue: 1, Clock: clk, Observer: m})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	release := make(chan struct{})
	running := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { // holds the only slot
		defer wg.Done()
		_ = bh.Execute(ctx, func(context.Context) error { close(running); <-release; return nil })
	}()
	<-running
	queued := make(chan error, 1)
	go func() { // waits in the queue
		defer wg.Done()
		queued <- bh.Execute(ctx, func(context.Context) error { return nil })
	}()
	for bh.Queued() != 1 {
		time.Sleep(time.Millisecond)
	}
	// slot and queue are full: rejected
	if err := bh.Execute(ctx, func(context.Context) error { return nil }); !errors.Is(err, resilience.ErrBulkheadFull) {
		t.Fatalf("third call: %v, want ErrBulkheadFull", err)
	}
	clk.Advance(50 * time.Millisecond)
	close(release)
	wg.Wait()
	if err := <-queued; err != nil {
		t.Fatalf("queued call: %v", err)
	}

	if got := value(t, reg, "rejections_total", L{"policy": "bulkhead", "name": "db", "reason": "bulkhead_full"}); got != 1 {
		t.Errorf("rejections_total{reason=bulkhead_full} = %v, want 1", got)
	}
	if got := value(t, reg, "calls_total", L{"policy": "bulkhead", "name": "db", "outcome": "rejected"}); got != 1 {
		t.Errorf("calls_total{outcome=rejected} = %v, want 1", got)
	}
	if n, sum := histogram(t, reg, "queue_wait_seconds", L{"policy": "bulkhead", "name": "db"}); n != 1 || sum < 0.0499 || sum > 0.0501 {
		t.Errorf("queue_wait_seconds: count %d sum %v, want 1 and 0.05", n, sum)
	}
}

func TestMetricsRateLimitTimeoutFallback(t *testing.T) {
	m, reg := newMetrics(t)
	clk := clock.NewManual(time.Time{})
	ctx := context.Background()

	rl, err := resilience.NewRateLimiter(resilience.RateLimitConfig{Name: "api", Rate: 1, Burst: 1, Clock: clk, Observer: m})
	if err != nil {
		t.Fatal(err)
	}
	_ = rl.Execute(ctx, func(context.Context) error { return nil })
	if err := rl.Execute(ctx, func(context.Context) error { return nil }); !errors.Is(err, resilience.ErrRateLimited) {
		t.Fatalf("second call: %v, want ErrRateLimited", err)
	}
	if got := value(t, reg, "rejections_total", L{"policy": "ratelimit", "name": "api", "reason": "rate_limited"}); got != 1 {
		t.Errorf("rejections_total{reason=rate_limited} = %v, want 1", got)
	}

	to, err := resilience.NewTimeout(resilience.TimeoutConfig{Name: "slow", Duration: time.Second, Clock: clk, Observer: m})
	if err != nil {
		t.Fatal(err)
	}
	fb := resilience.FallbackWith(resilience.FallbackConfig[int]{
		Name: "cached", Observer: m, Func: func(context.Context, error) (int, error) { return 42, nil },
	})
	var v int
	err = drive(t, clk, func() error {
		var err error
		v, err = resilience.Execute(ctx, func(ctx context.Context) (int, error) { <-ctx.Done(); return 0, ctx.Err() },
			fb, resilience.WithTimeout[int](to))
		return err
	})
	if err != nil || v != 42 {
		t.Fatalf("fallback over timeout: %v, %v; want 42, nil", v, err)
	}
	if got := value(t, reg, "timeouts_total", L{"policy": "timeout", "name": "slow"}); got != 1 {
		t.Errorf("timeouts_total{policy=timeout} = %v, want 1", got)
	}
	if got := value(t, reg, "fallbacks_total", L{"name": "cached"}); got != 1 {
		t.Errorf("fallbacks_total = %v, want 1", got)
	}
}

// Hedge and Limiter events, and rejection reasons, straight from synthetic events.
func TestMetricsSyntheticEvents(t *testing.T) {
	m, reg := newMetrics(t)
	ctx := context.Background()
	m.Observe(ctx, resilience.Event{Kind: resilience.KindHedge, Name: "search", Type: resilience.EventHedge, Attempt: 2, Duration: time.Millisecond})
	m.SetLimiterLimit("backend", 20)
	if got := value(t, reg, "limiter_limit", L{"name": "backend"}); got != 20 {
		t.Errorf("limiter_limit = %v after SetLimiterLimit, want 20", got)
	}
	m.Observe(ctx, resilience.Event{Kind: resilience.KindLimiter, Name: "backend", Type: resilience.EventLimitChanged, Limit: 17})
	if got := value(t, reg, "hedges_total", L{"name": "search"}); got != 1 {
		t.Errorf("hedges_total = %v, want 1", got)
	}
	if got := value(t, reg, "limiter_limit", L{"name": "backend"}); got != 17 {
		t.Errorf("limiter_limit = %v, want 17", got)
	}

	for _, tc := range []struct {
		err    error
		reason string
	}{
		{resilience.ErrOpen, "open"},
		{fmt.Errorf("wrapped: %w", resilience.ErrBulkheadFull), "bulkhead_full"},
		{resilience.ErrRateLimited, "rate_limited"},
		{fmt.Errorf("%w: %w", resilience.ErrBudgetExhausted, resilience.ErrOpen), "budget_exhausted"},
		{resilience.ErrLimitExceeded, "limit_exceeded"},
		{errBoom, "other"},
		{nil, "other"},
	} {
		before := value(t, reg, "rejections_total", L{"policy": "limiter", "name": "x", "reason": tc.reason})
		m.Observe(ctx, resilience.Event{Kind: resilience.KindLimiter, Name: "x", Type: resilience.EventRejected, Err: tc.err})
		if got := value(t, reg, "rejections_total", L{"policy": "limiter", "name": "x", "reason": tc.reason}); got != before+1 {
			t.Errorf("rejection with %v: rejections_total{reason=%s} = %v, want %v", tc.err, tc.reason, got, before+1)
		}
	}

	// a throttle's success has no duration: counted, not observed
	m.Observe(ctx, resilience.Event{Kind: resilience.KindThrottle, Name: "th", Type: resilience.EventSuccess})
	if got := value(t, reg, "calls_total", L{"policy": "throttle", "name": "th", "outcome": "success"}); got != 1 {
		t.Errorf("throttle calls_total{success} = %v, want 1", got)
	}
	if n, _ := histogram(t, reg, "call_duration_seconds", L{"policy": "throttle"}); n != 0 {
		t.Errorf("throttle call without duration observed %d times", n)
	}
}

func TestNewMetricsErrors(t *testing.T) {
	if m, err := telemetry.NewMetrics(nil); err == nil || m != nil {
		t.Fatalf("NewMetrics(nil) = %v, %v; want an error", m, err)
	} else if !strings.Contains(err.Error(), "nil prometheus.Registerer") {
		t.Errorf("NewMetrics(nil) error %q does not say what is wrong", err)
	}

	reg := prometheus.NewRegistry()
	if _, err := telemetry.NewMetrics(reg); err != nil {
		t.Fatal(err)
	}
	_, err := telemetry.NewMetrics(reg)
	if err == nil {
		t.Fatal("second NewMetrics on the same registry succeeded")
	}
	var are prometheus.AlreadyRegisteredError
	if !errors.As(err, &are) {
		t.Errorf("duplicate registration error %q does not wrap prometheus.AlreadyRegisteredError", err)
	}
	if !strings.HasPrefix(err.Error(), `telemetry: registering resilience metrics (namespace "faultline"): `) {
		t.Errorf("duplicate registration error %q lacks context", err)
	}
	// another namespace on the same registry is fine
	if _, err := telemetry.NewMetrics(reg, telemetry.WithNamespace("other")); err != nil {
		t.Errorf("NewMetrics with another namespace: %v", err)
	}

	// a conflict on one metric registers none of them
	reg2 := prometheus.NewRegistry()
	reg2.MustRegister(prometheus.NewGauge(prometheus.GaugeOpts{Name: "faultline_resilience_hedges_total", Help: "clash"}))
	if _, err := telemetry.NewMetrics(reg2); err == nil {
		t.Fatal("NewMetrics over a clashing metric succeeded")
	}
	if _, err := telemetry.NewMetrics(reg2, telemetry.WithNamespace("x")); err != nil {
		t.Fatalf("NewMetrics after a failed registration: %v", err)
	}
	mfs, _ := reg2.Gather()
	for _, mf := range mfs {
		if strings.HasPrefix(mf.GetName(), "faultline_resilience_") && mf.GetName() != "faultline_resilience_hedges_total" {
			t.Errorf("failed registration left %s behind", mf.GetName())
		}
	}
}

func TestMetricsOptions(t *testing.T) {
	m, reg := newMetrics(t, telemetry.WithNamespace("shop"), telemetry.WithBuckets([]float64{0.1, 1}),
		telemetry.WithConstLabels(prometheus.Labels{"service": "checkout"}))
	m.Observe(context.Background(), resilience.Event{Kind: resilience.KindBreaker, Name: "p", Type: resilience.EventFailure, Duration: 300 * time.Millisecond})
	want := `
# HELP shop_resilience_call_duration_seconds How long calls let through by a policy ran, by outcome (success, failure).
# TYPE shop_resilience_call_duration_seconds histogram
shop_resilience_call_duration_seconds_bucket{name="p",outcome="failure",policy="breaker",service="checkout",le="0.1"} 0
shop_resilience_call_duration_seconds_bucket{name="p",outcome="failure",policy="breaker",service="checkout",le="1"} 1
shop_resilience_call_duration_seconds_bucket{name="p",outcome="failure",policy="breaker",service="checkout",le="+Inf"} 1
shop_resilience_call_duration_seconds_sum{name="p",outcome="failure",policy="breaker",service="checkout"} 0.3
shop_resilience_call_duration_seconds_count{name="p",outcome="failure",policy="breaker",service="checkout"} 1
# HELP shop_resilience_calls_total Calls that went through a resilience policy, by outcome (success, failure, ignored, rejected).
# TYPE shop_resilience_calls_total counter
shop_resilience_calls_total{name="p",outcome="failure",policy="breaker",service="checkout"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want),
		"shop_resilience_call_duration_seconds", "shop_resilience_calls_total"); err != nil {
		t.Error(err)
	}
}

func TestMetricsConcurrent(t *testing.T) {
	m, reg := newMetrics(t)
	const goroutines, per = 16, 500
	names := []string{"a", "b", "c", "d"}
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx := context.Background()
			for i := range per {
				name := names[(g+i)%len(names)]
				m.Observe(ctx, resilience.Event{Kind: resilience.KindBreaker, Name: name, Type: resilience.EventSuccess, Duration: time.Millisecond})
				m.Observe(ctx, resilience.Event{Kind: resilience.KindBreaker, Name: name, Type: resilience.EventRejected, Err: resilience.ErrOpen})
				m.Observe(ctx, resilience.Event{Kind: resilience.KindRetry, Name: name, Type: resilience.EventRetry, Attempt: 1})
				to := resilience.BreakerOpen
				if i%2 == 0 {
					to = resilience.BreakerClosed
				}
				m.Observe(ctx, resilience.Event{Kind: resilience.KindBreaker, Name: name, Type: resilience.EventStateChange, To: to})
			}
		}()
	}
	wg.Wait()
	var calls, rejections, retries float64
	for _, name := range names {
		calls += value(t, reg, "calls_total", L{"name": name, "outcome": "success"})
		rejections += value(t, reg, "rejections_total", L{"name": name, "reason": "open"})
		retries += value(t, reg, "retries_total", L{"name": name})
		open := value(t, reg, "breaker_state", L{"name": name, "state": "open"})
		closed := value(t, reg, "breaker_state", L{"name": name, "state": "closed"})
		if open+closed != 1 {
			t.Errorf("breaker %s: open %v + closed %v, want exactly one state at 1", name, open, closed)
		}
	}
	const total = goroutines * per
	if calls != total || rejections != total || retries != total {
		t.Errorf("calls %v, rejections %v, retries %v; want %d each", calls, rejections, retries, total)
	}
}

func TestMetricsObserveDoesNotAllocate(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector changes allocation counts")
	}
	m, _ := newMetrics(t)
	ctx := context.Background()
	events := benchEvents()
	for _, e := range events { // create the series
		m.Observe(ctx, e)
	}
	for _, e := range events {
		if n := testing.AllocsPerRun(100, func() { m.Observe(ctx, e) }); n != 0 {
			t.Errorf("Observe(%v) allocates %v times", e, n)
		}
	}
}

func benchEvents() []resilience.Event {
	return []resilience.Event{
		{Kind: resilience.KindBreaker, Name: "payments", Type: resilience.EventSuccess, Duration: 3 * time.Millisecond},
		{Kind: resilience.KindBreaker, Name: "payments", Type: resilience.EventFailure, Duration: 8 * time.Millisecond, Err: errBoom},
		{Kind: resilience.KindBreaker, Name: "payments", Type: resilience.EventRejected, Err: resilience.ErrOpen},
		{Kind: resilience.KindRetry, Name: "fetch", Type: resilience.EventRetry, Attempt: 1, Duration: 100 * time.Millisecond, Err: errBoom},
		{Kind: resilience.KindBulkhead, Name: "db", Type: resilience.EventAdmitted, Duration: time.Millisecond},
		{Kind: resilience.KindBreaker, Name: "payments", Type: resilience.EventStateChange, From: resilience.BreakerClosed, To: resilience.BreakerOpen},
	}
}

func BenchmarkMetricsObserve(b *testing.B) {
	ctx := context.Background()
	for _, e := range benchEvents() {
		b.Run(e.Type.String(), func(b *testing.B) {
			m, _ := newMetrics(b)
			m.Observe(ctx, e)
			b.ReportAllocs()
			for b.Loop() {
				m.Observe(ctx, e)
			}
		})
	}
	b.Run("parallel-success", func(b *testing.B) {
		m, _ := newMetrics(b)
		e := benchEvents()[0]
		m.Observe(ctx, e)
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				m.Observe(ctx, e)
			}
		})
	})
	b.Run("many-policies", func(b *testing.B) { // lookup among 100 series
		m, _ := newMetrics(b)
		events := make([]resilience.Event, 100)
		for i := range events {
			events[i] = resilience.Event{Kind: resilience.KindBreaker, Name: fmt.Sprintf("dep-%d", i), Type: resilience.EventSuccess, Duration: time.Millisecond}
			m.Observe(ctx, events[i])
		}
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			m.Observe(ctx, events[i%len(events)])
			i++
		}
	})
}

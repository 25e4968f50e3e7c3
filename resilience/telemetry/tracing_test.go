package telemetry_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/faultline-dev/faultline/clock"
	"github.com/faultline-dev/faultline/resilience"
	"github.com/faultline-dev/faultline/resilience/telemetry"
)

func newTracer(t *testing.T) (*tracetest.SpanRecorder, *sdktrace.TracerProvider) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	return rec, tp
}

func attrs(ev sdktrace.Event) map[attribute.Key]attribute.Value {
	m := map[attribute.Key]attribute.Value{}
	for _, kv := range ev.Attributes {
		m[kv.Key] = kv.Value
	}
	return m
}

func TestTracingRetry(t *testing.T) {
	rec, tp := newTracer(t)
	clk := clock.NewManual(time.Time{})
	call := failingRetry(t, clk, telemetry.Tracing())

	ctx, span := tp.Tracer("test").Start(context.Background(), "fetch")
	if err := drive(t, clk, func() error { return call(ctx) }); !errors.Is(err, errBoom) {
		t.Fatalf("retry: %v", err)
	}
	span.End()

	spans := rec.Ended()
	if len(spans) != 1 {
		t.Fatalf("%d spans ended, want 1", len(spans))
	}
	evs := spans[0].Events()
	wantNames := []string{"resilience.retry", "resilience.retry", "resilience.retries_exhausted"}
	if len(evs) != len(wantNames) {
		t.Fatalf("span events %v, want %v", evs, wantNames)
	}
	for i, ev := range evs {
		if ev.Name != wantNames[i] {
			t.Errorf("event %d is %q, want %q", i, ev.Name, wantNames[i])
		}
		a := attrs(ev)
		if got := a[telemetry.AttrPolicy].AsString(); got != "retry" {
			t.Errorf("event %d: resilience.policy = %q, want retry", i, got)
		}
		if got := a[telemetry.AttrName].AsString(); got != "fetch" {
			t.Errorf("event %d: resilience.name = %q, want fetch", i, got)
		}
		if got := a[telemetry.AttrAttempt].AsInt64(); got != int64(i+1) {
			t.Errorf("event %d: resilience.attempt = %d, want %d", i, got, i+1)
		}
		if got := a[telemetry.AttrError].AsString(); got != "boom" {
			t.Errorf("event %d: error.message = %q, want boom", i, got)
		}
	}
	// the default backoff: 100 ms then 200 ms
	for i, want := range []float64{100, 200} {
		if got := attrs(evs[i])[telemetry.AttrDelayMS].AsFloat64(); got != want {
			t.Errorf("retry %d: resilience.delay_ms = %v, want %v", i+1, got, want)
		}
	}
	if _, ok := attrs(evs[2])[telemetry.AttrDelayMS]; ok {
		t.Error("retries_exhausted has a delay")
	}
	if st := spans[0].Status(); st.Code != codes.Unset {
		t.Errorf("span status %v: Tracing must leave it to the caller", st)
	}
}

func TestTracingBreaker(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts []telemetry.TracingOption
		want []string
	}{
		// A call's outcome comes before the state change it causes.
		{"default", nil, []string{
			"resilience.failure", "resilience.failure", "resilience.state_change", "resilience.rejected",
			"resilience.state_change", "resilience.state_change",
		}},
		{"with success", []telemetry.TracingOption{telemetry.TraceSuccess()}, []string{
			"resilience.failure", "resilience.failure", "resilience.state_change", "resilience.rejected",
			"resilience.state_change", "resilience.success", "resilience.state_change",
		}},
		{"skip", []telemetry.TracingOption{telemetry.TraceSkip(resilience.EventFailure, resilience.EventStateChange)}, []string{
			"resilience.rejected",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec, tp := newTracer(t)
			clk := clock.NewManual(time.Time{})
			b, err := resilience.NewBreaker(resilience.BreakerConfig{
				Name: "payments", ConsecutiveFailures: 2, OpenDuration: time.Second, Clock: clk, Observer: telemetry.Tracing(tc.opts...),
			})
			if err != nil {
				t.Fatal(err)
			}
			ctx, span := tp.Tracer("test").Start(context.Background(), "checkout")
			for range 2 {
				_ = b.Execute(ctx, func(context.Context) error { clk.Advance(10 * time.Millisecond); return errBoom })
			}
			if err := b.Execute(ctx, func(context.Context) error { return nil }); !errors.Is(err, resilience.ErrOpen) {
				t.Fatalf("call on open breaker: %v", err)
			}
			clk.Advance(time.Second)
			if err := b.Execute(ctx, func(context.Context) error { return nil }); err != nil {
				t.Fatal(err)
			}
			span.End()

			evs := rec.Ended()[0].Events()
			var names []string
			for _, ev := range evs {
				names = append(names, ev.Name)
			}
			if len(names) != len(tc.want) {
				t.Fatalf("span events %v, want %v", names, tc.want)
			}
			for i := range names {
				if names[i] != tc.want[i] {
					t.Fatalf("span events %v, want %v", names, tc.want)
				}
			}
			if tc.name != "default" {
				return
			}
			fail := attrs(evs[0])
			if got := fail[telemetry.AttrDurationMS].AsFloat64(); got != 10 {
				t.Errorf("failure: resilience.duration_ms = %v, want 10", got)
			}
			trip := attrs(evs[2]) // the second failure, then the trip it caused
			if from, to := trip[telemetry.AttrStateFrom].AsString(), trip[telemetry.AttrStateTo].AsString(); from != "closed" || to != "open" {
				t.Errorf("state change %s -> %s, want closed -> open", from, to)
			}
			if got := trip[telemetry.AttrPolicy].AsString(); got != "breaker" {
				t.Errorf("state change: resilience.policy = %q", got)
			}
			rej := attrs(evs[3])
			if got := rej[telemetry.AttrError].AsString(); got != resilience.ErrOpen.Error() {
				t.Errorf("rejected: error.message = %q", got)
			}
			if st := rec.Ended()[0].Status(); st.Code != codes.Unset {
				t.Errorf("span status %v after a rejection: Tracing must leave it to the caller", st)
			}
		})
	}
}

func TestTracingWithoutRecordingSpan(t *testing.T) {
	obs := telemetry.Tracing(telemetry.TraceSuccess())
	e := resilience.Event{Kind: resilience.KindRetry, Name: "x", Type: resilience.EventRetry, Attempt: 1}
	obs.Observe(context.Background(), e) // no span: nothing to do, no panic

	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec), sdktrace.WithSampler(sdktrace.NeverSample()))
	defer func() { _ = tp.Shutdown(context.Background()) }()
	ctx, span := tp.Tracer("test").Start(context.Background(), "unsampled")
	obs.Observe(ctx, e)
	span.End()
	if n := len(rec.Ended()); n != 0 {
		t.Errorf("%d spans recorded with NeverSample", n)
	}
	if n := testing.AllocsPerRun(100, func() { obs.Observe(ctx, e) }); n != 0 && !raceEnabled {
		t.Errorf("Observe with a non-recording span allocates %v times", n)
	}
}

func TestSpanEventName(t *testing.T) {
	for ty, want := range map[resilience.EventType]string{
		resilience.EventSuccess:          "resilience.success",
		resilience.EventStateChange:      "resilience.state_change",
		resilience.EventRetriesExhausted: "resilience.retries_exhausted",
		resilience.EventLimitChanged:     "resilience.limit_changed",
		resilience.EventType(200):        "resilience.EventType(200)",
	} {
		if got := telemetry.SpanEventName(ty); got != want {
			t.Errorf("SpanEventName(%v) = %q, want %q", ty, got, want)
		}
	}
}

func BenchmarkTracingObserve(b *testing.B) {
	e := resilience.Event{Kind: resilience.KindRetry, Name: "fetch", Type: resilience.EventRetry, Attempt: 1, Duration: 100 * time.Millisecond, Err: errBoom}
	obs := telemetry.Tracing()
	b.Run("no-span", func(b *testing.B) {
		ctx := context.Background()
		b.ReportAllocs()
		for b.Loop() {
			obs.Observe(ctx, e)
		}
	})
	b.Run("recording", func(b *testing.B) {
		tp := sdktrace.NewTracerProvider(sdktrace.WithSpanLimits(sdktrace.SpanLimits{EventCountLimit: 16,
			AttributeValueLengthLimit: -1, AttributeCountLimit: 128, AttributePerEventCountLimit: 128,
			LinkCountLimit: 128, AttributePerLinkCountLimit: 128}))
		ctx, span := tp.Tracer("bench").Start(context.Background(), "op")
		defer span.End()
		b.ReportAllocs()
		for b.Loop() {
			obs.Observe(ctx, e)
		}
	})
}

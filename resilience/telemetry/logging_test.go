package telemetry_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/faultline-dev/faultline/clock"
	"github.com/faultline-dev/faultline/resilience"
	"github.com/faultline-dev/faultline/resilience/telemetry"
)

// jsonLogger returns a logger writing JSON at level and up into the returned buffer.
func jsonLogger(level slog.Level) (*slog.Logger, *bytes.Buffer) {
	var buf bytes.Buffer
	return slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: level})), &buf
}

func records(t *testing.T, buf *bytes.Buffer) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		if line == "" {
			continue
		}
		var r map[string]any
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("bad log line %q: %v", line, err)
		}
		out = append(out, r)
	}
	return out
}

func TestLoggingBreaker(t *testing.T) {
	lg, buf := jsonLogger(slog.LevelDebug)
	clk := clock.NewManual(time.Time{})
	b := trippedBreaker(t, clk, telemetry.Logging(lg))
	_ = b.Execute(context.Background(), func(context.Context) error { return nil }) // rejected
	clk.Advance(time.Second)
	_ = b.Execute(context.Background(), func(context.Context) error { return nil }) // probe closes it

	recs := records(t, buf)
	type rec struct{ level, event, to string }
	want := []rec{
		{"WARN", "state-change", "open"},
		{"DEBUG", "rejected", ""},
		{"INFO", "state-change", "half-open"},
		{"INFO", "state-change", "closed"},
	}
	if len(recs) != len(want) {
		t.Fatalf("%d records, want %d (calls are not logged by default):\n%s", len(recs), len(want), buf)
	}
	for i, r := range recs {
		got := rec{r["level"].(string), r["event"].(string), ""}
		if to, ok := r["to"].(string); ok {
			got.to = to
		}
		if got != want[i] {
			t.Errorf("record %d: %+v, want %+v", i, got, want[i])
		}
		if r["policy"] != "breaker" || r["name"] != "payments" {
			t.Errorf("record %d: policy %v name %v, want breaker payments", i, r["policy"], r["name"])
		}
	}
	if recs[0]["from"] != "closed" || recs[0]["msg"] != "resilience: circuit breaker state changed" {
		t.Errorf("trip record: %v", recs[0])
	}
	if recs[1]["error"] != resilience.ErrOpen.Error() {
		t.Errorf("rejection record error %v, want %q", recs[1]["error"], resilience.ErrOpen)
	}
}

func TestLoggingCalls(t *testing.T) {
	lg, buf := jsonLogger(slog.LevelDebug)
	clk := clock.NewManual(time.Time{})
	trippedBreaker(t, clk, telemetry.Logging(lg, telemetry.LogCalls(), telemetry.LogSkip(resilience.EventStateChange)))
	recs := records(t, buf)
	if len(recs) != 2 {
		t.Fatalf("%d records, want the 2 failures:\n%s", len(recs), buf)
	}
	for _, r := range recs {
		if r["level"] != "DEBUG" || r["event"] != "failure" || r["error"] != "boom" || r["duration"] != float64(10*time.Millisecond) {
			t.Errorf("failure record %v", r)
		}
	}
}

func TestLoggingRetry(t *testing.T) {
	lg, buf := jsonLogger(slog.LevelDebug)
	clk := clock.NewManual(time.Time{})
	call := failingRetry(t, clk, telemetry.Logging(lg))
	if err := drive(t, clk, func() error { return call(context.Background()) }); !errors.Is(err, errBoom) {
		t.Fatal(err)
	}
	recs := records(t, buf)
	if len(recs) != 3 {
		t.Fatalf("%d records, want 3:\n%s", len(recs), buf)
	}
	for i, want := range []struct {
		level, event string
		attempt      float64
		delay        any
	}{
		{"DEBUG", "retry", 1, float64(100 * time.Millisecond)},
		{"DEBUG", "retry", 2, float64(200 * time.Millisecond)},
		{"WARN", "retries-exhausted", 3, nil},
	} {
		r := recs[i]
		if r["level"] != want.level || r["event"] != want.event || r["attempt"] != want.attempt || r["delay"] != want.delay ||
			r["name"] != "fetch" || r["policy"] != "retry" || r["error"] != "boom" {
			t.Errorf("record %d: %v, want %+v", i, r, want)
		}
	}

	// at Info only the exhaustion is written
	lg, buf = jsonLogger(slog.LevelInfo)
	call = failingRetry(t, clk, telemetry.Logging(lg))
	_ = drive(t, clk, func() error { return call(context.Background()) })
	if recs := records(t, buf); len(recs) != 1 || recs[0]["event"] != "retries-exhausted" {
		t.Errorf("at Info: %v, want only retries-exhausted", recs)
	}
}

func TestLoggingLevels(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		e    resilience.Event
		opts []telemetry.LoggingOption
		want string // "" means not written
	}{
		{resilience.Event{Kind: resilience.KindBreaker, Type: resilience.EventSuccess}, nil, ""},
		{resilience.Event{Kind: resilience.KindBreaker, Type: resilience.EventIgnored}, []telemetry.LoggingOption{telemetry.LogCalls()}, "DEBUG"},
		{resilience.Event{Kind: resilience.KindBreaker, Type: resilience.EventStateChange, To: resilience.BreakerForcedOpen}, nil, "WARN"},
		{resilience.Event{Kind: resilience.KindBreaker, Type: resilience.EventStateChange, To: resilience.BreakerDisabled}, nil, "INFO"},
		{resilience.Event{Kind: resilience.KindBreaker, Type: resilience.EventStateChange, To: resilience.BreakerOpen},
			[]telemetry.LoggingOption{telemetry.LogLevel(resilience.EventStateChange, slog.LevelError)}, "ERROR"},
		{resilience.Event{Kind: resilience.KindTimeout, Type: resilience.EventTimeout, Duration: time.Second}, nil, "INFO"},
		{resilience.Event{Kind: resilience.KindFallback, Type: resilience.EventFallback, Err: errBoom}, nil, "INFO"},
		{resilience.Event{Kind: resilience.KindHedge, Type: resilience.EventHedge, Attempt: 2}, nil, "DEBUG"},
		{resilience.Event{Kind: resilience.KindLimiter, Type: resilience.EventLimitChanged, Limit: 8}, nil, "DEBUG"},
		{resilience.Event{Kind: resilience.KindBulkhead, Type: resilience.EventAdmitted, Duration: time.Millisecond}, nil, "DEBUG"},
		{resilience.Event{Kind: resilience.KindTimeout, Type: resilience.EventTimeout},
			[]telemetry.LoggingOption{telemetry.LogSkip(resilience.EventTimeout)}, ""},
	} {
		lg, buf := jsonLogger(slog.LevelDebug)
		telemetry.Logging(lg, tc.opts...).Observe(ctx, tc.e)
		recs := records(t, buf)
		switch {
		case tc.want == "" && len(recs) != 0:
			t.Errorf("%v: written %v, want nothing", tc.e, recs)
		case tc.want != "" && (len(recs) != 1 || recs[0]["level"] != tc.want):
			t.Errorf("%v: %v, want one record at %s", tc.e, recs, tc.want)
		}
	}
}

// countingHandler is disabled at every level and counts what it is asked.
type countingHandler struct{ enabled, handled atomic.Int64 }

func (h *countingHandler) Enabled(context.Context, slog.Level) bool { h.enabled.Add(1); return false }
func (h *countingHandler) Handle(context.Context, slog.Record) error {
	h.handled.Add(1)
	return nil
}
func (h *countingHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *countingHandler) WithGroup(string) slog.Handler      { return h }

func TestLoggingDisabled(t *testing.T) {
	h := &countingHandler{}
	obs := telemetry.Logging(slog.New(h), telemetry.LogCalls())
	e := resilience.Event{Kind: resilience.KindRetry, Name: "x", Type: resilience.EventRetry, Attempt: 1, Err: errBoom}
	for range 10 {
		obs.Observe(context.Background(), e)
	}
	if h.handled.Load() != 0 {
		t.Errorf("Handle called %d times on a disabled handler", h.handled.Load())
	}
	if h.enabled.Load() == 0 {
		t.Error("Enabled never asked")
	}
	if n := testing.AllocsPerRun(100, func() { obs.Observe(context.Background(), e) }); n != 0 && !raceEnabled {
		t.Errorf("Observe on a disabled logger allocates %v times", n)
	}
}

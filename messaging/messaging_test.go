package messaging

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/trace"
)

func TestValidTopic(t *testing.T) {
	for _, ok := range []string{"orders", "orders.created", "a-b_c.D9", strings.Repeat("x", 200)} {
		if err := ValidTopic(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"", ".orders", "orders.", "a..b", "a b", "a*", "a>", "ü", strings.Repeat("x", 201)} {
		if err := ValidTopic(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestSubscribeConfigDefaults(t *testing.T) {
	cfg, err := SubscribeConfig{Topic: "orders", Group: "billing"}.WithDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Concurrency != 1 || cfg.MaxDeliveries != DefaultMaxDeliveries || cfg.DeadLetterTopic != "orders.dlq" ||
		cfg.AckWait != DefaultAckWait || cfg.RedeliveryDelay == nil {
		t.Fatalf("defaults: %+v", cfg)
	}
	for _, tc := range []struct {
		cfg   SubscribeConfig
		field string
	}{
		{SubscribeConfig{Group: "g"}, "Topic"},
		{SubscribeConfig{Topic: "t"}, "Group"},
		{SubscribeConfig{Topic: "t", Group: "g", Concurrency: -1}, "Concurrency"},
		{SubscribeConfig{Topic: "t", Group: "g", MaxDeliveries: -1}, "MaxDeliveries"},
		{SubscribeConfig{Topic: "t", Group: "g", AckWait: -1}, "AckWait"},
		{SubscribeConfig{Topic: "a b", Group: "g"}, "Topic"},
		{SubscribeConfig{Topic: "t", Group: "g", DeadLetterTopic: "x y"}, "DeadLetterTopic"},
	} {
		if _, err := tc.cfg.WithDefaults(); err == nil || !strings.Contains(err.Error(), "SubscribeConfig."+tc.field) {
			t.Errorf("%+v: err = %v, want one naming %s", tc.cfg, err, tc.field)
		}
	}
}

func TestDecide(t *testing.T) {
	cfg, _ := SubscribeConfig{Topic: "t", Group: "g", MaxDeliveries: 3}.WithDefaults()
	boom := errors.New("boom")
	for _, tc := range []struct {
		attempt int
		err     error
		want    Decision
	}{
		{1, nil, Decision{Ack: true}},
		{1, boom, Decision{Delay: 100 * time.Millisecond, Reason: "boom"}},
		{2, boom, Decision{Delay: 200 * time.Millisecond, Reason: "boom"}},
		{3, boom, Decision{DeadLetter: true, Reason: "boom"}},
		{1, Nack(boom, 5*time.Second), Decision{Delay: 5 * time.Second, Reason: "nack (redeliver after 5s): boom"}},
		{1, Nack(boom, -1), Decision{Delay: 0, Reason: "nack (redeliver after 0s): boom"}},
		{1, DeadLetter(boom), Decision{DeadLetter: true, Reason: "dead-letter: boom"}},
	} {
		if got := Decide(cfg, tc.attempt, tc.err); got != tc.want {
			t.Errorf("attempt %d, %v: %+v, want %+v", tc.attempt, tc.err, got, tc.want)
		}
	}
	if !errors.Is(Nack(boom, 0), boom) || !errors.Is(DeadLetter(boom), boom) {
		t.Error("outcome errors must wrap the handler's error")
	}
}

func TestDefaultRedeliveryDelay(t *testing.T) {
	want := []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond}
	for i, w := range want {
		if d := DefaultRedeliveryDelay(i + 1); d != w {
			t.Errorf("attempt %d: %v, want %v", i+1, d, w)
		}
	}
	if d := DefaultRedeliveryDelay(100); d != 30*time.Second {
		t.Errorf("attempt 100: %v, want the 30s cap", d)
	}
}

func TestPrepareAndDeadLetterMessage(t *testing.T) {
	m := &Message{Topic: "orders", Key: "k", Headers: map[string]string{"a": "b"}, Payload: []byte("x"), Attempt: 5}
	if err := Prepare(m); err != nil || len(m.ID) != 32 {
		t.Fatalf("Prepare: %v, ID %q", err, m.ID)
	}
	if err := Prepare(&Message{Topic: "bad topic"}); err == nil {
		t.Error("bad topic accepted")
	}
	if err := Prepare(nil); err == nil {
		t.Error("nil message accepted")
	}
	cfg, _ := SubscribeConfig{Topic: "orders", Group: "g"}.WithDefaults()
	dl := DeadLetterMessage(cfg, m, "poison")
	if dl.ID != m.ID || dl.Topic != "orders.dlq" || dl.Key != "k" || string(dl.Payload) != "x" ||
		dl.Headers["a"] != "b" || dl.Headers[HeaderDeadLetterReason] != "poison" ||
		dl.Headers[HeaderOriginalTopic] != "orders" || dl.Headers[HeaderAttempts] != "5" {
		t.Fatalf("dead-letter message: %+v", dl)
	}
	if _, ok := m.Headers[HeaderDeadLetterReason]; ok {
		t.Error("DeadLetterMessage changed the original's headers")
	}
}

func TestTraceRoundTrip(t *testing.T) {
	tid, _ := trace.TraceIDFromHex("4bf92f3577b34da6a3ce929d0e0e4736")
	sid, _ := trace.SpanIDFromHex("00f067aa0ba902b7")
	sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: trace.FlagsSampled})
	ctx := trace.ContextWithSpanContext(context.Background(), sc)
	m := &Message{Topic: "orders"}
	InjectTrace(ctx, m)
	if got := m.Headers["traceparent"]; got != "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01" {
		t.Fatalf("traceparent = %q", got)
	}
	got := trace.SpanContextFromContext(ExtractTrace(context.Background(), m))
	if got.TraceID() != tid || got.SpanID() != sid || !got.IsRemote() {
		t.Fatalf("extracted %v", got)
	}
	empty := &Message{Topic: "orders"}
	InjectTrace(context.Background(), empty)
	if empty.Headers != nil {
		t.Errorf("no span context, yet headers %v", empty.Headers)
	}
}

package membus_test

import (
	"bytes"
	"context"
	"errors"
	"maps"
	"runtime"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/faultline-dev/faultline/clock"
	"github.com/faultline-dev/faultline/messaging"
	"github.com/faultline-dev/faultline/messaging/membus"
	"github.com/faultline-dev/faultline/messaging/messagingtest"
)

// TestConformance runs the conformance suite on the real clock, every client sharing one bus.
func TestConformance(t *testing.T) {
	bus := membus.New()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := bus.Close(ctx); err != nil {
			t.Errorf("closing the bus: %v", err)
		}
	})
	messagingtest.Run(t, messagingtest.Harness{
		Open: func(*testing.T) messaging.Broker { return bus.Client() },
		Drop: func(_ *testing.T, b messaging.Broker) { b.(*membus.Client).Drop() },
		// Short, so the quiet periods are short; long enough for the drain test's handler.
		AckWait: time.Second,
	})
}

// hangGuard bounds waits for things that must happen; no test waits on the wall clock otherwise.
const hangGuard = 10 * time.Second

type got struct {
	m   *messaging.Message
	at  time.Time // the manual clock at delivery
	ctx context.Context
}

// newBus returns a bus on a manual clock, closed at the end of the test, which then checks that
// no goroutine was left behind.
func newBus(t *testing.T) (*membus.Bus, *clock.Manual) {
	t.Helper()
	base := runtime.NumGoroutine()
	t.Cleanup(func() { checkNoLeak(t, base) })
	clk := clock.NewManual(time.Time{})
	bus := membus.New(membus.WithClock(clk))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
		defer cancel()
		if err := bus.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
		if n := clk.Timers(); n != 0 {
			t.Errorf("%d timers left after Close", n)
		}
	})
	return bus, clk
}

// checkNoLeak polls (it does not wait for any timeout) until the goroutines started by the test
// have exited.
func checkNoLeak(t *testing.T, base int) {
	t.Helper()
	deadline := time.Now().Add(hangGuard)
	for runtime.NumGoroutine() > base {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			t.Errorf("%d goroutines left behind (base %d):\n%s", runtime.NumGoroutine()-base, base, buf[:runtime.Stack(buf, true)])
			return
		}
		runtime.Gosched()
		time.Sleep(time.Millisecond)
	}
}

// recorder returns a handler that reports each delivery on a channel, then returns result's
// result (nil when result is nil).
func recorder(clk clock.Clock, result func(ctx context.Context, m *messaging.Message) error) (messaging.Handler, chan got) {
	ch := make(chan got, 100)
	return func(ctx context.Context, m *messaging.Message) error {
		cp := *m // the handler below may change m
		cp.Headers = maps.Clone(m.Headers)
		cp.Payload = bytes.Clone(m.Payload)
		ch <- got{m: &cp, at: clk.Now(), ctx: ctx}
		if result == nil {
			return nil
		}
		return result(ctx, m)
	}, ch
}

func recv(t *testing.T, ch <-chan got) got {
	t.Helper()
	timer := time.NewTimer(hangGuard)
	defer timer.Stop()
	select {
	case g := <-ch:
		return g
	case <-timer.C:
		t.Fatal("no delivery")
		panic("unreachable")
	}
}

func none(t *testing.T, ch <-chan got, what string) {
	t.Helper()
	select {
	case g := <-ch:
		t.Fatalf("%s: unexpected delivery of %q attempt %d", what, g.m.Payload, g.m.Attempt)
	default:
	}
}

func idle(t *testing.T, bus *membus.Bus) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
	defer cancel()
	if err := bus.WaitIdle(ctx); err != nil {
		t.Fatalf("WaitIdle: %v", err)
	}
}

func subscribe(t *testing.T, b messaging.Broker, cfg messaging.SubscribeConfig, h messaging.Handler) messaging.Subscription {
	t.Helper()
	sub, err := b.Subscribe(context.Background(), cfg, h)
	if err != nil {
		t.Fatal(err)
	}
	return sub
}

func publish(t *testing.T, b messaging.Broker, msgs ...*messaging.Message) {
	t.Helper()
	if err := b.Publish(context.Background(), msgs...); err != nil {
		t.Fatal(err)
	}
}

func msg(topic, key, payload string) *messaging.Message {
	return &messaging.Message{Topic: topic, Key: key, Payload: []byte(payload)}
}

func checkClock(t *testing.T, clk *clock.Manual, timers int, next time.Time) {
	t.Helper()
	if n := clk.Timers(); n != timers {
		t.Fatalf("%d timers pending, want %d", n, timers)
	}
	if timers == 0 {
		return
	}
	if d, _ := clk.NextDeadline(); !d.Equal(next) {
		t.Fatalf("next deadline %v, want %v", d, next)
	}
}

// TestNackDelayExact: a Nack'ed message comes back exactly after its delay, not a nanosecond
// before.
func TestNackDelayExact(t *testing.T) {
	bus, clk := newBus(t)
	h, ch := recorder(clk, func(_ context.Context, m *messaging.Message) error {
		if m.Attempt == 1 {
			return messaging.Nack(errors.New("later"), 5*time.Second)
		}
		return nil
	})
	subscribe(t, bus, messaging.SubscribeConfig{Topic: "orders", Group: "billing", AckWait: time.Hour}, h)
	t0 := clk.Now()
	publish(t, bus, msg("orders", "", "x"))
	if g := recv(t, ch); g.m.Attempt != 1 || !g.at.Equal(t0) {
		t.Fatalf("first delivery: attempt %d at %v", g.m.Attempt, g.at.Sub(t0))
	}
	idle(t, bus)
	checkClock(t, clk, 1, t0.Add(5*time.Second)) // the AckWait timer is gone, the delay is set
	clk.Advance(5*time.Second - time.Nanosecond)
	none(t, ch, "before the delay")
	checkClock(t, clk, 1, t0.Add(5*time.Second))
	clk.Advance(time.Nanosecond)
	if g := recv(t, ch); g.m.Attempt != 2 || g.at.Sub(t0) != 5*time.Second || string(g.m.Payload) != "x" {
		t.Fatalf("redelivery: attempt %d at %v, payload %q", g.m.Attempt, g.at.Sub(t0), g.m.Payload)
	}
	idle(t, bus)
	checkClock(t, clk, 0, time.Time{})
	if n := bus.Backlog("orders", "billing"); n != 0 {
		t.Errorf("backlog %d after the ack", n)
	}
}

// TestRedeliveryDelayThenDeadLetter: plain errors back off by RedeliveryDelay(attempt); the
// MaxDeliveries-th failure dead-letters with the reason, topic and attempt count.
func TestRedeliveryDelayThenDeadLetter(t *testing.T) {
	bus, clk := newBus(t)
	h, ch := recorder(clk, func(context.Context, *messaging.Message) error { return errors.New("boom") })
	dh, dlq := recorder(clk, nil)
	subscribe(t, bus.Client(), messaging.SubscribeConfig{Topic: "orders.dlq", Group: "ops"}, dh)
	subscribe(t, bus, messaging.SubscribeConfig{Topic: "orders", Group: "billing", MaxDeliveries: 3}, h)
	m := msg("orders", "k", "x")
	m.Headers = map[string]string{"x-keep": "yes"}
	publish(t, bus, m)
	now := clk.Now()
	for attempt := 1; attempt <= 3; attempt++ {
		g := recv(t, ch)
		if g.m.Attempt != attempt || !g.at.Equal(now) {
			t.Fatalf("delivery %d: attempt %d at %v, want at %v", attempt, g.m.Attempt, g.at, now)
		}
		idle(t, bus)
		if attempt == 3 {
			break
		}
		delay := messaging.DefaultRedeliveryDelay(attempt)
		now = now.Add(delay)
		checkClock(t, clk, 1, now)
		clk.Advance(delay)
	}
	d := recv(t, dlq)
	if d.m.ID != m.ID || d.m.Topic != "orders.dlq" || d.m.Key != "k" || d.m.Attempt != 1 ||
		d.m.Headers["x-keep"] != "yes" || d.m.Headers[messaging.HeaderDeadLetterReason] != "boom" ||
		d.m.Headers[messaging.HeaderOriginalTopic] != "orders" || d.m.Headers[messaging.HeaderAttempts] != "3" {
		t.Fatalf("dead-lettered message: %+v", d.m)
	}
	idle(t, bus)
	checkClock(t, clk, 0, time.Time{})
	none(t, ch, "after dead-lettering")
	if n := bus.Backlog("orders", "billing"); n != 0 {
		t.Errorf("backlog %d", n)
	}
}

// TestDeadLetterAtOnce: DeadLetter(err) dead-letters on the first attempt, to DeadLetterTopic.
func TestDeadLetterAtOnce(t *testing.T) {
	bus, clk := newBus(t)
	h, ch := recorder(clk, func(context.Context, *messaging.Message) error {
		return messaging.DeadLetter(errors.New("poison"))
	})
	dh, dlq := recorder(clk, nil)
	subscribe(t, bus, messaging.SubscribeConfig{Topic: "poison", Group: "ops"}, dh)
	subscribe(t, bus, messaging.SubscribeConfig{Topic: "orders", Group: "billing", DeadLetterTopic: "poison"}, h)
	publish(t, bus, msg("orders", "", "x"))
	recv(t, ch)
	d := recv(t, dlq)
	if !strings.Contains(d.m.Headers[messaging.HeaderDeadLetterReason], "poison") || d.m.Headers[messaging.HeaderAttempts] != "1" {
		t.Fatalf("headers %v", d.m.Headers)
	}
	idle(t, bus)
	none(t, ch, "after DeadLetter")
	checkClock(t, clk, 0, time.Time{})
}

// TestAckWaitExact: a stuck handler keeps its message exactly AckWait; then another member gets
// it. The stuck handler's late result changes nothing.
func TestAckWaitExact(t *testing.T) {
	bus, clk := newBus(t)
	release := make(chan struct{})
	ha, cha := recorder(clk, func(context.Context, *messaging.Message) error { <-release; return nil })
	cfg := messaging.SubscribeConfig{Topic: "orders", Group: "billing", AckWait: 10 * time.Second}
	subscribe(t, bus, cfg, ha)
	t0 := clk.Now()
	publish(t, bus, msg("orders", "k", "x"))
	recv(t, cha)
	hb, chb := recorder(clk, nil)
	subscribe(t, bus.Client(), cfg, hb)
	checkClock(t, clk, 1, t0.Add(10*time.Second))
	clk.Advance(10*time.Second - time.Nanosecond)
	none(t, chb, "before AckWait")
	clk.Advance(time.Nanosecond)
	if g := recv(t, chb); g.m.Attempt != 2 || g.at.Sub(t0) != 10*time.Second {
		t.Fatalf("redelivery: attempt %d at %v", g.m.Attempt, g.at.Sub(t0))
	}
	close(release)
	idle(t, bus)
	checkClock(t, clk, 0, time.Time{})
	none(t, cha, "after the ack")
	none(t, chb, "after the ack")
	if n := bus.Backlog("orders", "billing"); n != 0 {
		t.Errorf("backlog %d", n)
	}
}

// TestAckWaitLastDeliveryDeadLetters: AckWait passing on the MaxDeliveries-th delivery
// dead-letters the message.
func TestAckWaitLastDeliveryDeadLetters(t *testing.T) {
	bus, clk := newBus(t)
	release := make(chan struct{})
	h, ch := recorder(clk, func(context.Context, *messaging.Message) error { <-release; return nil })
	dh, dlq := recorder(clk, nil)
	subscribe(t, bus, messaging.SubscribeConfig{Topic: "orders.dlq", Group: "ops"}, dh)
	subscribe(t, bus, messaging.SubscribeConfig{Topic: "orders", Group: "billing", AckWait: time.Second, MaxDeliveries: 1}, h)
	publish(t, bus, msg("orders", "", "x"))
	recv(t, ch)
	clk.Advance(time.Second)
	d := recv(t, dlq)
	if !strings.Contains(d.m.Headers[messaging.HeaderDeadLetterReason], "AckWait") || d.m.Headers[messaging.HeaderAttempts] != "1" {
		t.Fatalf("headers %v", d.m.Headers)
	}
	close(release)
	idle(t, bus)
	none(t, ch, "after dead-lettering")
	if n := bus.Backlog("orders", "billing"); n != 0 {
		t.Errorf("backlog %d", n)
	}
}

// TestLateAck: an ack after AckWait still counts while the message has not been handed out again.
func TestLateAck(t *testing.T) {
	bus, clk := newBus(t)
	release := make(chan struct{})
	h, ch := recorder(clk, func(context.Context, *messaging.Message) error { <-release; return nil })
	cfg := messaging.SubscribeConfig{Topic: "orders", Group: "billing", AckWait: time.Second}
	subscribe(t, bus, cfg, h)
	publish(t, bus, msg("orders", "", "x"))
	recv(t, ch)
	clk.Advance(time.Second) // expired, but the only member is busy
	close(release)
	idle(t, bus)
	if n := bus.Backlog("orders", "billing"); n != 0 {
		t.Fatalf("backlog %d after a late ack", n)
	}
	hb, chb := recorder(clk, nil)
	subscribe(t, bus.Client(), cfg, hb)
	idle(t, bus)
	none(t, chb, "after a late ack")
}

// TestOrderingPerKey: a key's messages run one at a time in publish order, also across a Nack
// delay, while other keys go on.
func TestOrderingPerKey(t *testing.T) {
	bus, clk := newBus(t)
	results := map[string]chan error{}
	for _, p := range []string{"a1", "a2", "a3", "b1", "b2"} {
		results[p] = make(chan error, 1)
	}
	h, ch := recorder(clk, func(_ context.Context, m *messaging.Message) error { return <-results[string(m.Payload)] })
	subscribe(t, bus, messaging.SubscribeConfig{Topic: "orders", Group: "billing", Concurrency: 4, AckWait: time.Hour}, h)
	t0 := clk.Now()
	publish(t, bus, msg("orders", "a", "a1"), msg("orders", "a", "a2"), msg("orders", "b", "b1"), msg("orders", "a", "a3"), msg("orders", "b", "b2"))
	if n := bus.Running(); n != 2 {
		t.Fatalf("%d handlers running, want 2 (a1 and b1)", n)
	}
	first := map[string]bool{string(recv(t, ch).m.Payload): true, string(recv(t, ch).m.Payload): true}
	if !first["a1"] || !first["b1"] {
		t.Fatalf("first deliveries %v", first)
	}
	results["a1"] <- messaging.Nack(errors.New("later"), 3*time.Second)
	results["b1"] <- nil
	if g := recv(t, ch); string(g.m.Payload) != "b2" {
		t.Fatalf("got %q, want b2", g.m.Payload)
	}
	results["b2"] <- nil
	idle(t, bus)
	none(t, ch, "while a1 waits for its redelivery")
	checkClock(t, clk, 1, t0.Add(3*time.Second))
	if n := bus.Backlog("orders", "billing"); n != 3 {
		t.Fatalf("backlog %d, want 3 (a1, a2, a3)", n)
	}
	clk.Advance(3 * time.Second)
	for _, want := range []string{"a1", "a2", "a3"} {
		g := recv(t, ch)
		if string(g.m.Payload) != want {
			t.Fatalf("got %q attempt %d, want %s", g.m.Payload, g.m.Attempt, want)
		}
		if n := bus.Running(); n != 1 {
			t.Fatalf("%d handlers running with key a taken", n)
		}
		results[want] <- nil
	}
	idle(t, bus)
	checkClock(t, clk, 0, time.Time{})
}

// TestCloseDrains: Close waits for the handler in flight without cancelling it; its ack holds.
func TestCloseDrains(t *testing.T) {
	bus, clk := newBus(t)
	release := make(chan struct{})
	ctxErr := make(chan error, 1)
	h, ch := recorder(clk, func(ctx context.Context, _ *messaging.Message) error {
		<-release
		ctxErr <- ctx.Err()
		return nil
	})
	client := bus.Client()
	sub := subscribe(t, client, messaging.SubscribeConfig{Topic: "orders", Group: "billing"}, h)
	m1 := msg("orders", "", "m1")
	publish(t, bus, m1)
	recv(t, ch)
	closed := make(chan error, 1)
	go func() { closed <- sub.Close(context.Background()) }()
	select {
	case err := <-closed:
		t.Fatalf("Close returned %v with a handler running", err)
	default:
	}
	close(release)
	timer := time.NewTimer(hangGuard)
	defer timer.Stop()
	select {
	case err := <-closed:
		if err != nil {
			t.Fatal(err)
		}
	case <-timer.C:
		t.Fatal("Close did not return")
	}
	if err := <-ctxErr; err != nil {
		t.Errorf("handler ctx ended during the drain: %v", err)
	}
	publish(t, bus, msg("orders", "", "m2"))
	none(t, ch, "after Close")
	if n := bus.Backlog("orders", "billing"); n != 1 {
		t.Fatalf("backlog %d, want 1 (m2)", n)
	}
	hb, chb := recorder(clk, nil)
	subscribe(t, bus, messaging.SubscribeConfig{Topic: "orders", Group: "billing"}, hb)
	if g := recv(t, chb); string(g.m.Payload) != "m2" || g.m.Attempt != 1 {
		t.Fatalf("new member got %q attempt %d, want m2", g.m.Payload, g.m.Attempt)
	}
	idle(t, bus)
	none(t, chb, "after the drained ack")
	if err := client.Close(context.Background()); err != nil {
		t.Errorf("client Close after its subscription's: %v", err)
	}
}

// TestCloseDeadline: past Close's deadline the handler's ctx is cancelled, Close returns ctx's
// error, and the message goes back to the group at once.
func TestCloseDeadline(t *testing.T) {
	bus, clk := newBus(t)
	h, ch := recorder(clk, func(ctx context.Context, _ *messaging.Message) error {
		<-ctx.Done()
		return ctx.Err()
	})
	cfg := messaging.SubscribeConfig{Topic: "orders", Group: "billing", AckWait: time.Hour}
	sub := subscribe(t, bus, cfg, h)
	publish(t, bus, msg("orders", "", "x"))
	recv(t, ch)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := sub.Close(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Close = %v, want context.Canceled", err)
	}
	hb, chb := recorder(clk, nil)
	subscribe(t, bus.Client(), cfg, hb)
	if g := recv(t, chb); g.m.Attempt != 2 {
		t.Fatalf("redelivery attempt %d", g.m.Attempt)
	}
	idle(t, bus)
	if err := sub.Close(context.Background()); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if n := bus.Backlog("orders", "billing"); n != 0 {
		t.Errorf("backlog %d", n)
	}
}

// TestGroups: a new group starts with the messages published from then on; a group keeps its
// messages while it has no member; each group gets every message.
func TestGroups(t *testing.T) {
	bus, clk := newBus(t)
	publish(t, bus, msg("orders", "", "before"))
	h1, ch1 := recorder(clk, nil)
	sub := subscribe(t, bus, messaging.SubscribeConfig{Topic: "orders", Group: "one"}, h1)
	if err := sub.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	publish(t, bus, msg("orders", "", "kept"))
	if n := bus.Backlog("orders", "one"); n != 1 {
		t.Fatalf("backlog %d, want 1", n)
	}
	h2, ch2 := recorder(clk, nil)
	subscribe(t, bus, messaging.SubscribeConfig{Topic: "orders", Group: "two"}, h2)
	subscribe(t, bus, messaging.SubscribeConfig{Topic: "orders", Group: "one"}, h1)
	if g := recv(t, ch1); string(g.m.Payload) != "kept" {
		t.Fatalf("group one got %q", g.m.Payload)
	}
	publish(t, bus, msg("orders", "", "both"))
	if g := recv(t, ch1); string(g.m.Payload) != "both" {
		t.Fatalf("group one got %q", g.m.Payload)
	}
	if g := recv(t, ch2); string(g.m.Payload) != "both" {
		t.Fatalf("group two got %q", g.m.Payload)
	}
	idle(t, bus)
	none(t, ch1, "end")
	none(t, ch2, "end")
}

// TestPublishCopies: Publish fills the caller's empty ID and nothing else of its message; neither
// the caller nor a handler changing a message affects a delivery.
func TestPublishCopies(t *testing.T) {
	bus, clk := newBus(t)
	h, ch := recorder(clk, func(_ context.Context, m *messaging.Message) error {
		if m.Attempt == 1 {
			m.Headers["h"] = "changed by the handler"
			m.Payload[0] = 'Z'
			return messaging.Nack(nil, 0)
		}
		return nil
	})
	subscribe(t, bus, messaging.SubscribeConfig{Topic: "orders", Group: "billing"}, h)
	tid, _ := trace.TraceIDFromHex("0af7651916cd43dd8448eb211c80319c")
	sid, _ := trace.SpanIDFromHex("b7ad6b7169203331")
	ctx := trace.ContextWithSpanContext(context.Background(),
		trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: trace.FlagsSampled}))
	m := &messaging.Message{Topic: "orders", Headers: map[string]string{"h": "v"}, Payload: []byte("abc")}
	if err := bus.Publish(ctx, m); err != nil {
		t.Fatal(err)
	}
	if m.ID == "" || len(m.Headers) != 1 {
		t.Fatalf("caller's message after Publish: %+v", m)
	}
	m.Payload[0] = 'X'
	g1 := recv(t, ch)
	if g1.m.ID != m.ID || string(g1.m.Payload) != "abc" || !g1.m.PublishedAt.Equal(clk.Now()) ||
		g1.m.Headers["traceparent"] != "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01" ||
		trace.SpanContextFromContext(g1.ctx).TraceID() != tid {
		t.Fatalf("first delivery %+v", g1.m)
	}
	g2 := recv(t, ch)
	if g2.m.Attempt != 2 || string(g2.m.Payload) != "abc" || g2.m.Headers["h"] != "v" {
		t.Fatalf("redelivery %+v", g2.m)
	}
	idle(t, bus)
}

// TestClosed: a closed client or bus refuses work; closing twice is fine; closing one client
// leaves the others working.
func TestClosed(t *testing.T) {
	bus, clk := newBus(t)
	a, b := bus.Client(), bus.Client()
	h, ch := recorder(clk, nil)
	subscribe(t, b, messaging.SubscribeConfig{Topic: "orders", Group: "billing"}, h)
	for range 2 {
		if err := a.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.Publish(context.Background(), msg("orders", "", "x")); !errors.Is(err, membus.ErrClosed) {
		t.Errorf("Publish on a closed client: %v", err)
	}
	if _, err := a.Subscribe(context.Background(), messaging.SubscribeConfig{Topic: "orders", Group: "g"}, h); !errors.Is(err, membus.ErrClosed) {
		t.Errorf("Subscribe on a closed client: %v", err)
	}
	publish(t, bus, msg("orders", "", "x"))
	recv(t, ch)
	idle(t, bus)
	for range 2 {
		if err := bus.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Publish(context.Background(), msg("orders", "", "x")); !errors.Is(err, membus.ErrClosed) {
		t.Errorf("Publish on a client of a closed bus: %v", err)
	}
	if err := bus.Client().Publish(context.Background(), msg("orders", "", "x")); !errors.Is(err, membus.ErrClosed) {
		t.Errorf("Publish on a new client of a closed bus: %v", err)
	}
	if _, err := bus.Subscribe(context.Background(), messaging.SubscribeConfig{Topic: "orders"}, h); err == nil || !strings.Contains(err.Error(), "Group") {
		t.Errorf("Subscribe without a group: %v", err)
	}
}

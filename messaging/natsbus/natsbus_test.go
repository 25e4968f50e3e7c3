package natsbus

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/faultline-dev/faultline/messaging"
)

// checkNoLeak fails the test when goroutines started during it are still running at its end
// (after its other cleanups, which close the buses). Finishing goroutines get a bounded chance.
func checkNoLeak(t *testing.T) {
	t.Helper()
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(5 * time.Second)
		for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if n := runtime.NumGoroutine(); n > before {
			buf := make([]byte, 1<<20)
			t.Errorf("goroutine leak: %d before, %d after\n%s", before, n, buf[:runtime.Stack(buf, true)])
		}
	})
}

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// openBus opens a Bus and closes it at the end of the test.
func openBus(t *testing.T, cfg Config) *Bus {
	t.Helper()
	b, err := Open(ctxT(t, 10*time.Second), cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := b.Close(ctxT(t, 10*time.Second)); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return b
}

var topicSeq atomic.Int64

func newTopic(t *testing.T) string {
	return fmt.Sprintf("natsbus.test.%d.%d", time.Now().UnixNano()%1e9, topicSeq.Add(1))
}

// recv collects deliveries.
type recv struct {
	mu   sync.Mutex
	msgs []*messaging.Message
	at   []time.Time
	ch   chan *messaging.Message
}

func newRecv() *recv { return &recv{ch: make(chan *messaging.Message, 1000)} }

func (r *recv) add(m *messaging.Message) {
	r.mu.Lock()
	r.msgs = append(r.msgs, m)
	r.at = append(r.at, time.Now())
	r.mu.Unlock()
	r.ch <- m
}

func (r *recv) next(t *testing.T, d time.Duration) *messaging.Message {
	t.Helper()
	select {
	case m := <-r.ch:
		return m
	case <-time.After(d):
		t.Fatalf("no delivery within %v", d)
		return nil
	}
}

func (r *recv) none(t *testing.T, d time.Duration) {
	t.Helper()
	select {
	case m := <-r.ch:
		t.Fatalf("unexpected delivery %q attempt %d", m.Payload, m.Attempt)
	case <-time.After(d):
	}
}

func subscribe(t *testing.T, b *Bus, cfg messaging.SubscribeConfig, h messaging.Handler) messaging.Subscription {
	t.Helper()
	s, err := b.Subscribe(ctxT(t, 10*time.Second), cfg, h)
	if err != nil {
		t.Fatalf("Subscribe: %v", err)
	}
	t.Cleanup(func() { _ = s.Close(ctxT(t, 5*time.Second)) })
	return s
}

func publish(t *testing.T, b *Bus, msgs ...*messaging.Message) {
	t.Helper()
	if err := b.Publish(ctxT(t, 10*time.Second), msgs...); err != nil {
		t.Fatalf("Publish: %v", err)
	}
}

func TestRoundTrip(t *testing.T) {
	checkNoLeak(t)
	for _, noListen := range []bool{false, true} {
		t.Run(fmt.Sprintf("NoListen=%v", noListen), func(t *testing.T) {
			b := openBus(t, Config{NoListen: noListen})
			if got := b.ClientURL() == ""; got != noListen {
				t.Fatalf("ClientURL %q with NoListen %v", b.ClientURL(), noListen)
			}
			topic := newTopic(t)
			r := newRecv()
			var traced atomic.Bool
			subscribe(t, b, messaging.SubscribeConfig{Topic: topic, Group: "g 1/ä"}, func(ctx context.Context, m *messaging.Message) error {
				traced.Store(trace.SpanContextFromContext(ctx).IsRemote())
				r.add(m)
				return nil
			})
			tid, _ := trace.TraceIDFromHex("0102030405060708090a0b0c0d0e0f10")
			sid, _ := trace.SpanIDFromHex("0102030405060708")
			pctx := trace.ContextWithSpanContext(ctxT(t, 5*time.Second), trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: 1}))
			in := &messaging.Message{Topic: topic, Key: "k1", Headers: map[string]string{"x-a": "1", "X-Mixed": "2"}, Payload: []byte("hello")}
			if err := b.Publish(pctx, in); err != nil {
				t.Fatal(err)
			}
			if in.ID == "" {
				t.Fatal("Publish left the ID empty")
			}
			m := r.next(t, 5*time.Second)
			if m.ID != in.ID || m.Topic != topic || m.Key != "k1" || string(m.Payload) != "hello" || m.Attempt != 1 {
				t.Fatalf("got %+v, want id %s", m, in.ID)
			}
			if m.Headers["x-a"] != "1" || m.Headers["X-Mixed"] != "2" || m.Headers["traceparent"] == "" {
				t.Fatalf("headers %v", m.Headers)
			}
			if _, ok := m.Headers[HeaderKey]; ok {
				t.Fatalf("internal header leaked: %v", m.Headers)
			}
			if m.PublishedAt.IsZero() || time.Since(m.PublishedAt) > time.Minute {
				t.Fatalf("PublishedAt %v", m.PublishedAt)
			}
			if !traced.Load() {
				t.Fatal("handler context carries no remote span context")
			}
			r.none(t, 300*time.Millisecond)
		})
	}
}

func TestGroups(t *testing.T) {
	checkNoLeak(t)
	b := openBus(t, Config{})
	topic := newTopic(t)
	var a1, a2, other atomic.Int64
	all := make(chan struct{}, 100)
	count := func(n *atomic.Int64) messaging.Handler {
		return func(context.Context, *messaging.Message) error { n.Add(1); all <- struct{}{}; return nil }
	}
	subscribe(t, b, messaging.SubscribeConfig{Topic: topic, Group: "a", Concurrency: 2}, count(&a1))
	subscribe(t, b, messaging.SubscribeConfig{Topic: topic, Group: "a", Concurrency: 2}, count(&a2))
	subscribe(t, b, messaging.SubscribeConfig{Topic: topic, Group: "b"}, count(&other))
	const n = 20
	for i := range n {
		publish(t, b, &messaging.Message{Topic: topic, Payload: fmt.Appendf(nil, "%d", i)})
	}
	for range 2 * n {
		select {
		case <-all:
		case <-time.After(10 * time.Second):
			t.Fatalf("group a %d+%d, group b %d of %d", a1.Load(), a2.Load(), other.Load(), n)
		}
	}
	time.Sleep(200 * time.Millisecond)
	if a1.Load()+a2.Load() != n || other.Load() != n {
		t.Fatalf("group a %d+%d, group b %d, want %d each", a1.Load(), a2.Load(), other.Load(), n)
	}
}

func TestNewGroupStartsWithNewMessages(t *testing.T) {
	checkNoLeak(t)
	b := openBus(t, Config{})
	topic := newTopic(t)
	publish(t, b, &messaging.Message{Topic: topic, Payload: []byte("old")})
	r := newRecv()
	subscribe(t, b, messaging.SubscribeConfig{Topic: topic, Group: "late"}, func(_ context.Context, m *messaging.Message) error { r.add(m); return nil })
	publish(t, b, &messaging.Message{Topic: topic, Payload: []byte("new")})
	if m := r.next(t, 5*time.Second); string(m.Payload) != "new" {
		t.Fatalf("got %q, want new", m.Payload)
	}
	r.none(t, 300*time.Millisecond)
}

func TestNackDelay(t *testing.T) {
	checkNoLeak(t)
	b := openBus(t, Config{})
	topic := newTopic(t)
	r := newRecv()
	const delay = 400 * time.Millisecond
	subscribe(t, b, messaging.SubscribeConfig{Topic: topic, Group: "g"}, func(_ context.Context, m *messaging.Message) error {
		r.add(m)
		if m.Attempt == 1 {
			return messaging.Nack(errors.New("later"), delay)
		}
		return nil
	})
	publish(t, b, &messaging.Message{Topic: topic, Payload: []byte("x")})
	first := r.next(t, 5*time.Second)
	second := r.next(t, 5*time.Second)
	if first.Attempt != 1 || second.Attempt != 2 || second.ID != first.ID {
		t.Fatalf("attempts %d, %d; ids %s, %s", first.Attempt, second.Attempt, first.ID, second.ID)
	}
	r.mu.Lock()
	gap := r.at[1].Sub(r.at[0])
	r.mu.Unlock()
	if gap < delay-50*time.Millisecond {
		t.Fatalf("redelivered after %v, want at least %v", gap, delay)
	}
	r.none(t, 300*time.Millisecond)
}

func TestDeadLetter(t *testing.T) {
	checkNoLeak(t)
	b := openBus(t, Config{})
	topic := newTopic(t)
	dlq := newRecv()
	subscribe(t, b, messaging.SubscribeConfig{Topic: topic + messaging.DeadLetterSuffix, Group: "dlq"}, func(_ context.Context, m *messaging.Message) error { dlq.add(m); return nil })
	r := newRecv()
	subscribe(t, b, messaging.SubscribeConfig{
		Topic: topic, Group: "g", MaxDeliveries: 3,
		RedeliveryDelay: func(int) time.Duration { return 10 * time.Millisecond },
	}, func(_ context.Context, m *messaging.Message) error {
		r.add(m)
		if string(m.Payload) == "poison" {
			return messaging.DeadLetter(errors.New("bad payload"))
		}
		return errors.New("always fails")
	})

	publish(t, b, &messaging.Message{Topic: topic, Key: "k", Headers: map[string]string{"h": "v"}, Payload: []byte("flaky")})
	for i := 1; i <= 3; i++ {
		if m := r.next(t, 5*time.Second); m.Attempt != i {
			t.Fatalf("attempt %d, want %d", m.Attempt, i)
		}
	}
	d := dlq.next(t, 5*time.Second)
	if string(d.Payload) != "flaky" || d.Key != "k" || d.Headers["h"] != "v" ||
		d.Headers[messaging.HeaderAttempts] != "3" || d.Headers[messaging.HeaderOriginalTopic] != topic ||
		d.Headers[messaging.HeaderDeadLetterReason] == "" || d.Topic != topic+messaging.DeadLetterSuffix {
		t.Fatalf("dead letter %+v", d)
	}
	r.none(t, 300*time.Millisecond)

	in := &messaging.Message{Topic: topic, Payload: []byte("poison")}
	publish(t, b, in)
	if m := r.next(t, 5*time.Second); m.Attempt != 1 {
		t.Fatalf("attempt %d", m.Attempt)
	}
	d = dlq.next(t, 5*time.Second)
	if d.ID != in.ID || d.Headers[messaging.HeaderAttempts] != "1" {
		t.Fatalf("dead letter %+v, want id %s", d, in.ID)
	}
	r.none(t, 300*time.Millisecond)
	dlq.none(t, 100*time.Millisecond)
}

func TestAckWaitRedelivers(t *testing.T) {
	checkNoLeak(t)
	b := openBus(t, Config{})
	topic := newTopic(t)
	r := newRecv()
	release := make(chan struct{})
	subscribe(t, b, messaging.SubscribeConfig{Topic: topic, Group: "g", Concurrency: 2, AckWait: 500 * time.Millisecond}, func(ctx context.Context, m *messaging.Message) error {
		r.add(m)
		if m.Attempt == 1 {
			select { // outlive AckWait
			case <-release:
			case <-ctx.Done():
			}
		}
		return nil
	})
	publish(t, b, &messaging.Message{Topic: topic, Payload: []byte("slow")})
	if m := r.next(t, 5*time.Second); m.Attempt != 1 {
		t.Fatalf("attempt %d", m.Attempt)
	}
	if m := r.next(t, 5*time.Second); m.Attempt != 2 {
		t.Fatalf("attempt %d", m.Attempt)
	}
	close(release)
}

func TestCloseDrains(t *testing.T) {
	checkNoLeak(t)
	b := openBus(t, Config{})
	topic := newTopic(t)
	started := make(chan struct{}, 10)
	release := make(chan struct{})
	var finished, cancelled atomic.Int64
	h := func(ctx context.Context, m *messaging.Message) error {
		started <- struct{}{}
		select {
		case <-release:
			finished.Add(1)
			return nil
		case <-ctx.Done():
			cancelled.Add(1)
			return ctx.Err()
		}
	}

	// Close waits for the running handler.
	s, err := b.Subscribe(ctxT(t, 5*time.Second), messaging.SubscribeConfig{Topic: topic, Group: "g"}, h)
	if err != nil {
		t.Fatal(err)
	}
	publish(t, b, &messaging.Message{Topic: topic, Payload: []byte("1")})
	<-started
	closed := make(chan error, 1)
	go func() { closed <- s.Close(ctxT(t, 5*time.Second)) }()
	select {
	case err := <-closed:
		t.Fatalf("Close returned %v while a handler ran", err)
	case <-time.After(200 * time.Millisecond):
	}
	close(release)
	if err := <-closed; err != nil || finished.Load() != 1 {
		t.Fatalf("Close: %v, finished %d", err, finished.Load())
	}
	if err := s.Close(ctxT(t, time.Second)); err != nil {
		t.Fatalf("second Close: %v", err)
	}

	// Past the deadline, the handler's context is cancelled and Close reports it.
	release = make(chan struct{})
	s, err = b.Subscribe(ctxT(t, 5*time.Second), messaging.SubscribeConfig{Topic: topic, Group: "g"}, h)
	if err != nil {
		t.Fatal(err)
	}
	publish(t, b, &messaging.Message{Topic: topic, Payload: []byte("2")})
	<-started
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := s.Close(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Close = %v, want DeadlineExceeded", err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for cancelled.Load() != 1 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if cancelled.Load() != 1 {
		t.Fatal("handler context not cancelled")
	}
	if err := b.Publish(ctxT(t, time.Second), &messaging.Message{Topic: topic}); err != nil {
		t.Fatalf("Publish after a subscription closed: %v", err)
	}
}

func TestBusCloseClosesSubscriptions(t *testing.T) {
	checkNoLeak(t)
	b, err := Open(ctxT(t, 10*time.Second), Config{})
	if err != nil {
		t.Fatal(err)
	}
	topic := newTopic(t)
	done := make(chan struct{})
	if _, err := b.Subscribe(ctxT(t, 5*time.Second), messaging.SubscribeConfig{Topic: topic, Group: "g"}, func(context.Context, *messaging.Message) error {
		close(done)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	publish(t, b, &messaging.Message{Topic: topic})
	<-done
	tmp := b.tmp
	if err := b.Close(ctxT(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(ctxT(t, time.Second)); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := os.Stat(tmp); !os.IsNotExist(err) {
		t.Fatalf("temporary store %s still there: %v", tmp, err)
	}
	if err := b.Publish(ctxT(t, time.Second), &messaging.Message{Topic: topic}); !errors.Is(err, ErrClosed) {
		t.Fatalf("Publish after Close = %v", err)
	}
	if _, err := b.Subscribe(ctxT(t, time.Second), messaging.SubscribeConfig{Topic: topic, Group: "g"}, func(context.Context, *messaging.Message) error { return nil }); !errors.Is(err, ErrClosed) {
		t.Fatalf("Subscribe after Close = %v", err)
	}
}

func TestStoreSurvivesRestart(t *testing.T) {
	checkNoLeak(t)
	dir := t.TempDir()
	topic := newTopic(t)
	noop := func(context.Context, *messaging.Message) error { return nil }

	b, err := Open(ctxT(t, 10*time.Second), Config{StoreDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	s, err := b.Subscribe(ctxT(t, 5*time.Second), messaging.SubscribeConfig{Topic: topic, Group: "g"}, noop)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(ctxT(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		publish(t, b, &messaging.Message{Topic: topic, Payload: fmt.Appendf(nil, "%d", i)})
	}
	if err := b.Close(ctxT(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("named store removed: %v", err)
	}

	b = openBus(t, Config{StoreDir: dir})
	r := newRecv()
	subscribe(t, b, messaging.SubscribeConfig{Topic: topic, Group: "g"}, func(_ context.Context, m *messaging.Message) error { r.add(m); return nil })
	for i := range 3 {
		if m := r.next(t, 5*time.Second); string(m.Payload) != fmt.Sprint(i) {
			t.Fatalf("got %q, want %d", m.Payload, i)
		}
	}
}

func TestDropConnection(t *testing.T) {
	checkNoLeak(t)
	owner := openBus(t, Config{FetchWait: 2 * time.Second})
	for _, tc := range []struct {
		name string
		b    *Bus
	}{
		{"in-process", owner},
		{"tcp", openBus(t, Config{URL: owner.ClientURL()})},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := tc.b
			topic := newTopic(t)
			r := newRecv()
			subscribe(t, b, messaging.SubscribeConfig{Topic: topic, Group: "g", AckWait: time.Second}, func(_ context.Context, m *messaging.Message) error { r.add(m); return nil })
			publish(t, b, &messaging.Message{Topic: topic, Payload: []byte("before")})
			if m := r.next(t, 5*time.Second); string(m.Payload) != "before" {
				t.Fatalf("got %q", m.Payload)
			}
			if err := b.DropConnection(); err != nil {
				t.Fatal(err)
			}
			publish(t, b, &messaging.Message{Topic: topic, Payload: []byte("after")})
			if m := r.next(t, 10*time.Second); string(m.Payload) != "after" {
				t.Fatalf("got %q", m.Payload)
			}
		})
	}
}

func TestOrderedByKey(t *testing.T) {
	checkNoLeak(t)
	owner := openBus(t, Config{OrderedByKey: true})
	if !owner.Capabilities().OrderedByKey {
		t.Fatal("Capabilities().OrderedByKey = false")
	}
	other := openBus(t, Config{URL: owner.ClientURL(), OrderedByKey: true})
	topic := newTopic(t)
	var mu sync.Mutex
	var got []string
	var running atomic.Int64
	done := make(chan struct{})
	const n = 30
	h := func(_ context.Context, m *messaging.Message) error {
		if running.Add(1) != 1 {
			t.Error("two handlers of the group ran at once")
		}
		defer running.Add(-1)
		if m.Attempt == 1 && string(m.Payload) == "k-5" {
			return messaging.Nack(errors.New("once more"), 50*time.Millisecond)
		}
		mu.Lock()
		defer mu.Unlock()
		got = append(got, string(m.Payload))
		if len(got) == n {
			close(done)
		}
		return nil
	}
	subscribe(t, owner, messaging.SubscribeConfig{Topic: topic, Group: "g", Concurrency: 4}, h)
	subscribe(t, other, messaging.SubscribeConfig{Topic: topic, Group: "g", Concurrency: 4}, h)
	msgs := make([]*messaging.Message, n)
	for i := range msgs {
		msgs[i] = &messaging.Message{Topic: topic, Key: "k", Payload: fmt.Appendf(nil, "k-%d", i)}
	}
	publish(t, owner, msgs...)
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatalf("got %d of %d", len(got), n)
	}
	mu.Lock()
	defer mu.Unlock()
	for i, p := range got {
		if p != fmt.Sprintf("k-%d", i) {
			t.Fatalf("order broken at %d: %v", i, got)
		}
	}
}

func TestNames(t *testing.T) {
	if StreamName("a.b") == StreamName("a_b") {
		t.Fatal("a.b and a_b share a stream name")
	}
	if ConsumerName("t1", "g") == ConsumerName("t2", "g") {
		t.Fatal("one group's consumers on two topics share a name")
	}
	if got := ConsumerName("t", "g 1/ä"); got[:6] != "g_1___" {
		t.Fatalf("ConsumerName = %q", got)
	}
}

func TestOpenUnreachable(t *testing.T) {
	checkNoLeak(t)
	ctx := ctxT(t, 10*time.Second)
	if b, err := Open(ctx, Config{URL: "nats://127.0.0.1:1"}); err == nil {
		_ = b.Close(ctx)
		t.Fatal("Open of an unreachable server succeeded")
	}
}

func TestOpenRejectsNegativePrefetch(t *testing.T) {
	_, err := Open(context.Background(), Config{Prefetch: -1})
	if err == nil || !strings.Contains(err.Error(), "Config.Prefetch") {
		t.Fatalf("err = %v, want one naming Config.Prefetch", err)
	}
}

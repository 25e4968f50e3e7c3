package amqpbus_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/faultline-dev/faultline/messaging"
	"github.com/faultline-dev/faultline/messaging/amqpbus"
)

func brokerURL() string {
	if u := os.Getenv("FAULTLINE_AMQP_URL"); u != "" {
		return u
	}
	return amqpbus.DefaultURL
}

// requireBroker skips the test when RabbitMQ cannot be reached, unless
// FAULTLINE_REQUIRE_SERVICES=1, when it fails.
func requireBroker(t *testing.T) {
	t.Helper()
	u, err := url.Parse(brokerURL())
	if err != nil {
		t.Fatalf("FAULTLINE_AMQP_URL: %v", err)
	}
	host := u.Host
	if u.Port() == "" {
		host = net.JoinHostPort(u.Hostname(), "5672")
	}
	c, err := net.DialTimeout("tcp", host, 2*time.Second)
	if err != nil {
		if os.Getenv("FAULTLINE_REQUIRE_SERVICES") == "1" {
			t.Fatalf("RabbitMQ at %s unreachable: %v", host, err)
		}
		t.Skipf("RabbitMQ at %s unreachable (set FAULTLINE_REQUIRE_SERVICES=1 to fail): %v", host, err)
	}
	_ = c.Close()
}

// env is one test's namespace: a unique exchange and queue prefix, and every bus opened in it,
// whose queues and exchange are deleted when the test ends.
type env struct {
	t        *testing.T
	exchange string
	prefix   string
	mu       sync.Mutex
	buses    []*amqpbus.Bus
}

func newEnv(t *testing.T) *env {
	t.Helper()
	requireBroker(t)
	id := messaging.NewID()[:12]
	e := &env{t: t, exchange: "faultline-test-" + id, prefix: "ft-" + id + "."}
	t.Cleanup(e.cleanup)
	return e
}

func (e *env) open(mod ...func(*amqpbus.Config)) *amqpbus.Bus {
	e.t.Helper()
	cfg := amqpbus.Config{URL: brokerURL(), Exchange: e.exchange, QueuePrefix: e.prefix, QueueExpires: 10 * time.Minute}
	for _, m := range mod {
		m(&cfg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	b, err := amqpbus.Open(ctx, cfg)
	if err != nil {
		e.t.Fatalf("Open: %v", err)
	}
	e.mu.Lock()
	e.buses = append(e.buses, b)
	e.mu.Unlock()
	return b
}

func (e *env) cleanup() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	queues := map[string]bool{}
	e.mu.Lock()
	for _, b := range e.buses {
		_ = b.Close(ctx)
		for _, q := range b.Queues() {
			queues[q] = true
		}
	}
	e.mu.Unlock()
	conn, err := amqp.Dial(brokerURL())
	if err != nil {
		e.t.Logf("cleanup: %v", err)
		return
	}
	defer conn.Close()
	for q := range queues {
		ch, err := conn.Channel()
		if err != nil {
			e.t.Logf("cleanup: %v", err)
			return
		}
		if _, err := ch.QueueDelete(q, false, false, false); err != nil {
			e.t.Logf("cleanup: delete queue %s: %v", q, err)
		}
		_ = ch.Close()
	}
	if ch, err := conn.Channel(); err == nil {
		_ = ch.ExchangeDelete(e.exchange, false, false)
		_ = ch.Close()
	}
}

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func subscribe(t *testing.T, b *amqpbus.Bus, cfg messaging.SubscribeConfig, h messaging.Handler) messaging.Subscription {
	t.Helper()
	s, err := b.Subscribe(ctxT(t, 10*time.Second), cfg, h)
	if err != nil {
		t.Fatalf("Subscribe: %v", err)
	}
	t.Cleanup(func() { _ = s.Close(ctxT(t, 5*time.Second)) })
	return s
}

func recv(t *testing.T, c <-chan *messaging.Message, within time.Duration) *messaging.Message {
	t.Helper()
	select {
	case m := <-c:
		return m
	case <-time.After(within):
		t.Fatalf("no message within %v", within)
		return nil
	}
}

func collect(c chan<- *messaging.Message) messaging.Handler {
	return func(_ context.Context, m *messaging.Message) error {
		c <- m
		return nil
	}
}

func TestPublishRoundTrip(t *testing.T) {
	e := newEnv(t)
	b := e.open()
	got := make(chan *messaging.Message, 10)
	subscribe(t, b, messaging.SubscribeConfig{Topic: "orders.created", Group: "g"}, collect(got))

	msg := &messaging.Message{Topic: "orders.created", Key: "k1", Headers: map[string]string{"a": "b"}, Payload: []byte("hello")}
	if err := b.Publish(ctxT(t, 10*time.Second), msg); err != nil {
		t.Fatal(err)
	}
	if msg.ID == "" {
		t.Fatal("Publish left the ID empty")
	}
	m := recv(t, got, 10*time.Second)
	if m.ID != msg.ID || m.Key != "k1" || string(m.Payload) != "hello" || m.Headers["a"] != "b" || m.Attempt != 1 || m.Topic != "orders.created" {
		t.Fatalf("got %+v", m)
	}
	if len(m.Headers) != 1 {
		t.Fatalf("headers %v: want only the published ones", m.Headers)
	}
}

func TestPublishUnroutable(t *testing.T) {
	e := newEnv(t)
	b := e.open()
	err := b.Publish(ctxT(t, 10*time.Second), &messaging.Message{Topic: "nobody.listens", Payload: []byte("x")})
	if !errors.Is(err, amqpbus.ErrUnroutable) {
		t.Fatalf("err = %v, want ErrUnroutable", err)
	}
	b2 := e.open(func(c *amqpbus.Config) { c.AllowUnroutable = true })
	if err := b2.Publish(ctxT(t, 10*time.Second), &messaging.Message{Topic: "nobody.listens", Payload: []byte("x")}); err != nil {
		t.Fatalf("AllowUnroutable: %v", err)
	}
}

func TestNackWithDelay(t *testing.T) {
	e := newEnv(t)
	b := e.open()
	type seen struct {
		at      time.Time
		attempt int
	}
	got := make(chan seen, 10)
	subscribe(t, b, messaging.SubscribeConfig{Topic: "t", Group: "g"}, func(_ context.Context, m *messaging.Message) error {
		got <- seen{time.Now(), m.Attempt}
		if m.Attempt == 1 {
			return messaging.Nack(errors.New("later"), 400*time.Millisecond)
		}
		if m.Attempt == 2 {
			return messaging.Nack(errors.New("now"), 0)
		}
		return nil
	})
	if err := b.Publish(ctxT(t, 10*time.Second), &messaging.Message{Topic: "t", Headers: map[string]string{"h": "v"}}); err != nil {
		t.Fatal(err)
	}
	var s [3]seen
	for i := range s {
		select {
		case s[i] = <-got:
		case <-time.After(10 * time.Second):
			t.Fatalf("delivery %d missing", i+1)
		}
	}
	for i, x := range s {
		if x.attempt != i+1 {
			t.Fatalf("delivery %d has Attempt %d", i+1, x.attempt)
		}
	}
	if d := s[1].at.Sub(s[0].at); d < 400*time.Millisecond || d > 5*time.Second {
		t.Fatalf("redelivered after %v, want about 400ms", d)
	}
	select {
	case x := <-got:
		t.Fatalf("unexpected delivery %+v after ack", x)
	case <-time.After(300 * time.Millisecond):
	}
}

func TestDeadLetterAfterMaxDeliveries(t *testing.T) {
	for _, qt := range []string{"quorum", "classic"} {
		t.Run(qt, func(t *testing.T) {
			e := newEnv(t)
			b := e.open(func(c *amqpbus.Config) { c.QueueType = qt })
			dead := make(chan *messaging.Message, 10)
			subscribe(t, b, messaging.SubscribeConfig{Topic: "work.dlq", Group: "ops"}, collect(dead))
			var mu sync.Mutex
			var attempts []int
			subscribe(t, b, messaging.SubscribeConfig{
				Topic: "work", Group: "g", MaxDeliveries: 4,
				RedeliveryDelay: func(a int) time.Duration { return time.Duration(a%2) * 50 * time.Millisecond },
			}, func(_ context.Context, m *messaging.Message) error {
				mu.Lock()
				attempts = append(attempts, m.Attempt)
				mu.Unlock()
				return errors.New("boom")
			})
			msg := &messaging.Message{Topic: "work", Key: "k", Payload: []byte("p")}
			if err := b.Publish(ctxT(t, 10*time.Second), msg); err != nil {
				t.Fatal(err)
			}
			m := recv(t, dead, 15*time.Second)
			if m.ID != msg.ID || m.Key != "k" || string(m.Payload) != "p" ||
				m.Headers[messaging.HeaderOriginalTopic] != "work" || m.Headers[messaging.HeaderAttempts] != "4" ||
				m.Headers[messaging.HeaderDeadLetterReason] != "boom" {
				t.Fatalf("dead letter %+v", m)
			}
			mu.Lock()
			defer mu.Unlock()
			if fmt.Sprint(attempts) != "[1 2 3 4]" {
				t.Fatalf("attempts %v, want [1 2 3 4]", attempts)
			}
		})
	}
}

func TestDeadLetterExplicit(t *testing.T) {
	e := newEnv(t)
	b := e.open()
	dead := make(chan *messaging.Message, 10)
	subscribe(t, b, messaging.SubscribeConfig{Topic: "poison.parked", Group: "ops"}, collect(dead))
	subscribe(t, b, messaging.SubscribeConfig{Topic: "poison", Group: "g", DeadLetterTopic: "poison.parked"},
		func(context.Context, *messaging.Message) error { return messaging.DeadLetter(errors.New("bad input")) })
	if err := b.Publish(ctxT(t, 10*time.Second), &messaging.Message{Topic: "poison"}); err != nil {
		t.Fatal(err)
	}
	m := recv(t, dead, 10*time.Second)
	if m.Headers[messaging.HeaderAttempts] != "1" || m.Headers[messaging.HeaderDeadLetterReason] != "dead-letter: bad input" {
		t.Fatalf("dead letter %+v", m)
	}
}

func TestDeadLetterParkedWithoutSubscriber(t *testing.T) {
	e := newEnv(t)
	b := e.open()
	subscribe(t, b, messaging.SubscribeConfig{Topic: "x", Group: "g"},
		func(context.Context, *messaging.Message) error { return messaging.DeadLetter(nil) })
	if err := b.Publish(ctxT(t, 10*time.Second), &messaging.Message{Topic: "x"}); err != nil {
		t.Fatal(err)
	}
	conn, err := amqp.Dial(brokerURL())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		q, err := ch.QueueDeclarePassive(e.prefix+"x.dlq", true, false, false, false, nil)
		if err != nil {
			t.Fatal(err)
		}
		if q.Messages == 1 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("parking queue holds %d messages, want 1", q.Messages)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestReconnectLosesNothingConfirmed(t *testing.T) {
	e := newEnv(t)
	pub := e.open(func(c *amqpbus.Config) { c.ReconnectBackoff = 20 * time.Millisecond })
	sub := e.open(func(c *amqpbus.Config) { c.ReconnectBackoff = 20 * time.Millisecond })
	var mu sync.Mutex
	seen := map[string]bool{}
	subscribe(t, sub, messaging.SubscribeConfig{Topic: "r", Group: "g", Concurrency: 4}, func(_ context.Context, m *messaging.Message) error {
		mu.Lock()
		seen[m.ID] = true
		mu.Unlock()
		return nil
	})
	const n = 200
	var confirmed []string
	ctx := ctxT(t, 60*time.Second)
	for i := range n {
		if i%40 == 20 {
			pub.DropConnection()
		}
		if i%50 == 30 {
			sub.DropConnection()
		}
		m := &messaging.Message{Topic: "r", Payload: fmt.Appendf(nil, "%d", i)}
		if err := pub.Publish(ctx, m); err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
		confirmed = append(confirmed, m.ID)
	}
	if pub.Reconnects() != 5 {
		t.Fatalf("publisher reconnected %d times, want 5", pub.Reconnects())
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		mu.Lock()
		missing := 0
		for _, id := range confirmed {
			if !seen[id] {
				missing++
			}
		}
		mu.Unlock()
		if missing == 0 && sub.Reconnects() == 4 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d confirmed messages never delivered; subscriber reconnected %d times, want 4", missing, n, sub.Reconnects())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestPublishWaitsForReconnect(t *testing.T) {
	e := newEnv(t)
	b := e.open(func(c *amqpbus.Config) { c.ReconnectBackoff = 200 * time.Millisecond })
	got := make(chan *messaging.Message, 10)
	subscribe(t, b, messaging.SubscribeConfig{Topic: "w", Group: "g"}, collect(got))
	b.DropConnection()
	if err := b.Publish(ctxT(t, 20*time.Second), &messaging.Message{Topic: "w"}); err != nil {
		t.Fatal(err)
	}
	recv(t, got, 10*time.Second)
	if b.Reconnects() != 1 {
		t.Fatalf("%d reconnects, want 1", b.Reconnects())
	}
	// A ctx that ends during the reconnect makes Publish fail, never succeed unconfirmed.
	b.DropConnection()
	ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
	defer cancel()
	time.Sleep(5 * time.Millisecond)
	if err := b.Publish(ctx, &messaging.Message{Topic: "w"}); err == nil {
		t.Fatal("Publish with an expired ctx succeeded")
	}
}

func TestCloseDrains(t *testing.T) {
	e := newEnv(t)
	b := e.open()
	started := make(chan struct{}, 1)
	finished := make(chan struct{}, 1)
	if _, err := b.Subscribe(ctxT(t, 10*time.Second), messaging.SubscribeConfig{Topic: "d", Group: "g"}, func(context.Context, *messaging.Message) error {
		started <- struct{}{}
		time.Sleep(500 * time.Millisecond)
		finished <- struct{}{}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := b.Publish(ctxT(t, 10*time.Second), &messaging.Message{Topic: "d"}); err != nil {
		t.Fatal(err)
	}
	<-started
	if err := b.Close(ctxT(t, 10*time.Second)); err != nil {
		t.Fatalf("Close: %v", err)
	}
	select {
	case <-finished:
	default:
		t.Fatal("Close returned before the handler finished")
	}
	// The message was acknowledged while draining: a new subscriber of the group gets nothing.
	b2 := e.open()
	got := make(chan *messaging.Message, 1)
	subscribe(t, b2, messaging.SubscribeConfig{Topic: "d", Group: "g"}, collect(got))
	select {
	case m := <-got:
		t.Fatalf("redelivered %+v after a drained ack", m)
	case <-time.After(500 * time.Millisecond):
	}
}

func TestCloseDeadlineCancelsHandlers(t *testing.T) {
	e := newEnv(t)
	b := e.open()
	started := make(chan struct{}, 1)
	cancelled := make(chan struct{})
	if _, err := b.Subscribe(ctxT(t, 10*time.Second), messaging.SubscribeConfig{Topic: "c", Group: "g"}, func(ctx context.Context, _ *messaging.Message) error {
		started <- struct{}{}
		<-ctx.Done()
		close(cancelled)
		return ctx.Err()
	}); err != nil {
		t.Fatal(err)
	}
	if err := b.Publish(ctxT(t, 10*time.Second), &messaging.Message{Topic: "c"}); err != nil {
		t.Fatal(err)
	}
	<-started
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := b.Close(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Close = %v, want DeadlineExceeded", err)
	}
	select {
	case <-cancelled:
	case <-time.After(5 * time.Second):
		t.Fatal("handler ctx not cancelled")
	}
	// Not acknowledged: the group gets it again.
	b2 := e.open()
	got := make(chan *messaging.Message, 1)
	subscribe(t, b2, messaging.SubscribeConfig{Topic: "c", Group: "g"}, collect(got))
	if m := recv(t, got, 10*time.Second); m.Attempt != 2 {
		t.Fatalf("redelivery has Attempt %d, want 2", m.Attempt)
	}
}

func TestAckWaitRedeliversFromStuckHandler(t *testing.T) {
	e := newEnv(t)
	stuck, healthy := e.open(), e.open()
	release := make(chan struct{})
	defer close(release)
	cfg := messaging.SubscribeConfig{Topic: "s", Group: "g", AckWait: 500 * time.Millisecond}
	entered := make(chan struct{}, 10)
	subscribe(t, stuck, cfg, func(context.Context, *messaging.Message) error {
		entered <- struct{}{}
		<-release
		return nil // ignored: AckWait gave the message back
	})
	if err := stuck.Publish(ctxT(t, 10*time.Second), &messaging.Message{Topic: "s"}); err != nil {
		t.Fatal(err)
	}
	<-entered // the stuck client holds it
	got := make(chan *messaging.Message, 10)
	subscribe(t, healthy, cfg, collect(got))
	m := recv(t, got, 10*time.Second)
	if m.Attempt < 2 {
		t.Fatalf("Attempt %d, want at least 2", m.Attempt)
	}
}

func TestRetryTTLQueueCount(t *testing.T) {
	// Delays share retry queues: many distinct delays map onto few TTLs, never shorter.
	seen := map[int64]bool{}
	for ms := 1; ms <= 30000; ms++ {
		ttl := amqpbus.RetryTTLForTest(time.Duration(ms) * time.Millisecond)
		if ttl < int64(ms) || float64(ttl) > float64(ms)*1.125+1 {
			t.Fatalf("delay %dms -> ttl %d", ms, ttl)
		}
		seen[ttl] = true
	}
	if len(seen) > 200 {
		t.Fatalf("%d distinct retry queues for delays up to 30s", len(seen))
	}
}

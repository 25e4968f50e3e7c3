// Package messagingtest is the conformance suite every messaging.Broker implementation runs: it
// checks, against the broker under test, each guarantee the messaging package documents
// (round trip, consumer groups, ordering per key where the broker claims it, redelivery after a
// Nack, an error or a consumer crash, dead-lettering, load sharing, no loss across a dropped
// connection, graceful Close, input validation).
//
// An implementation's test calls Run with a Harness:
//
//	func TestConformance(t *testing.T) {
//		messagingtest.Run(t, messagingtest.Harness{
//			Open:    func(t *testing.T) messaging.Broker { return connect(t) },
//			Drop:    func(t *testing.T, b messaging.Broker) { b.(*Bus).dropConnections() },
//			AckWait: time.Second,
//		})
//	}
//
// Every subtest uses its own random topic and group names, so runs against shared real servers
// never see each other's messages. The suite waits by polling with generous deadlines
// (hangGuard); the only fixed waits are the quiet periods that check that something does NOT
// happen (a message redelivered after its ack, or after it was dead-lettered).
package messagingtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/faultline-dev/faultline/messaging"
)

// Harness builds clients of the broker under test.
type Harness struct {
	// Open returns a new client of the broker under test: a separate connection to the same
	// broker, as another process would have. The suite closes what it opens.
	Open func(t *testing.T) messaging.Broker
	// Drop breaks every connection of b to the broker; the implementation must reconnect by itself
	// and lose nothing. Nil skips the reconnect test.
	Drop func(t *testing.T, b messaging.Broker)
	// AckWait is the AckWait the suite's subscriptions use (short, so a stuck consumer's messages
	// are redelivered quickly). Zero means 2s.
	AckWait time.Duration
}

const (
	// hangGuard bounds every wait for something that must happen.
	hangGuard = 30 * time.Second
	// tolerance is how much earlier than asked a delayed redelivery may come (timer and clock
	// granularity between processes).
	tolerance = 150 * time.Millisecond
)

// Run runs every conformance test as subtests of t.
func Run(t *testing.T, h Harness) {
	t.Helper()
	if h.Open == nil {
		t.Fatal("messagingtest: Harness.Open is nil")
	}
	s := &suite{h: h, ackWait: h.AckWait}
	if s.ackWait <= 0 {
		s.ackWait = 2 * time.Second
	}
	for _, tc := range []struct {
		name string
		run  func(*testing.T)
	}{
		{"RoundTrip", s.testRoundTrip},
		{"EveryGroupGetsEveryMessage", s.testTwoGroups},
		{"OrderedByKey", s.testOrderedByKey},
		{"RedeliveryAfterNack", s.testNack},
		{"RedeliveryAfterError", s.testError},
		{"RedeliveryAfterCrash", s.testCrash},
		{"DeadLetterAfterMaxDeliveries", s.testDeadLetterMax},
		{"DeadLetterAtOnce", s.testDeadLetterNow},
		{"GroupLoadSplit", s.testLoadSplit},
		{"NoLossAcrossDrop", s.testDrop},
		{"CloseDrains/Subscription", func(t *testing.T) { s.testCloseDrains(t, false) }},
		{"CloseDrains/Broker", func(t *testing.T) { s.testCloseDrains(t, true) }},
		{"CloseDeadlineCancelsHandlers", s.testCloseDeadline},
		{"CloseAfterDropKeepsDeadline", s.testCloseAfterDrop},
		{"CloseTwice", s.testCloseTwice},
		{"SubscribeBadConfig", s.testBadConfig},
		{"PublishInvalidTopic", s.testInvalidTopic},
	} {
		t.Run(tc.name, tc.run)
	}
}

type suite struct {
	h       Harness
	ackWait time.Duration
}

// quiet is how long the suite watches for something that must not happen: long enough for an
// unacknowledged message to come back after AckWait.
func (s *suite) quiet() time.Duration { return s.ackWait + time.Second }

// open returns a new client, closed when the test ends (after the test's later cleanups).
func (s *suite) open(t *testing.T) messaging.Broker {
	t.Helper()
	b := s.h.Open(t)
	if b == nil {
		t.Fatal("Harness.Open returned nil")
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
		defer cancel()
		if err := b.Close(ctx); err != nil {
			t.Errorf("closing a client at the end of the test: %v", err)
		}
	})
	return b
}

// subscribe subscribes with the suite's AckWait unless cfg sets one; it fails the test on error.
func (s *suite) subscribe(t *testing.T, b messaging.Broker, cfg messaging.SubscribeConfig, h messaging.Handler) messaging.Subscription {
	t.Helper()
	if cfg.AckWait == 0 {
		cfg.AckWait = s.ackWait
	}
	ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
	defer cancel()
	sub, err := b.Subscribe(ctx, cfg, h)
	if err != nil {
		t.Fatalf("Subscribe(topic %s, group %s): %v", cfg.Topic, cfg.Group, err)
	}
	if sub == nil {
		t.Fatalf("Subscribe(topic %s, group %s) returned a nil Subscription and no error", cfg.Topic, cfg.Group)
	}
	return sub
}

func publish(t *testing.T, b messaging.Broker, msgs ...*messaging.Message) {
	t.Helper()
	publishCtx(t, context.Background(), b, msgs...)
}

func publishCtx(t *testing.T, ctx context.Context, b messaging.Broker, msgs ...*messaging.Message) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, hangGuard)
	defer cancel()
	if err := b.Publish(ctx, msgs...); err != nil {
		t.Fatalf("Publish of %d messages: %v", len(msgs), err)
	}
}

// names returns a fresh topic and group for one test. Groups use dashes only: some brokers
// (NATS durable consumer names) take no dots.
func names(short string) (topic, group string) {
	id := messaging.NewID()[:8]
	return "conf." + short + "." + id, "conf-" + short + "-" + id
}

// delivery is one call of a handler, as the suite saw it.
type delivery struct {
	msg     messaging.Message // a deep copy
	at      time.Time         // wall clock at the handler's start
	who     string            // which subscription
	traceID trace.TraceID     // from the handler's ctx
}

func (d delivery) String() string {
	id := d.msg.ID
	if len(id) > 8 {
		id = id[:8]
	}
	return fmt.Sprintf("%s#%d@%s", id, d.msg.Attempt, d.who)
}

func copyMessage(m *messaging.Message) messaging.Message {
	c := *m
	c.Headers = maps.Clone(m.Headers)
	c.Payload = bytes.Clone(m.Payload)
	return c
}

// collector gathers deliveries from handlers running on any goroutine; the test goroutine waits
// on it. Handlers never call t methods (they may outlive the test).
type collector struct {
	mu      sync.Mutex
	list    []delivery
	changed chan struct{} // closed and replaced on every change
}

func newCollector() *collector { return &collector{changed: make(chan struct{})} }

func (c *collector) record(ctx context.Context, who string, m *messaging.Message) delivery {
	d := delivery{msg: copyMessage(m), at: time.Now(), who: who, traceID: trace.SpanContextFromContext(ctx).TraceID()}
	c.mu.Lock()
	c.list = append(c.list, d)
	close(c.changed)
	c.changed = make(chan struct{})
	c.mu.Unlock()
	return d
}

// handler records each delivery, then returns then's result (nil when then is nil).
func (c *collector) handler(who string, then func(ctx context.Context, m *messaging.Message) error) messaging.Handler {
	return func(ctx context.Context, m *messaging.Message) error {
		c.record(ctx, who, m)
		if then == nil {
			return nil
		}
		return then(ctx, m)
	}
}

func (c *collector) all() []delivery {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.list)
}

// waitFor waits until cond holds for the deliveries so far, and returns them; it fails the test
// after hangGuard.
func (c *collector) waitFor(t *testing.T, what string, cond func([]delivery) bool) []delivery {
	t.Helper()
	deadline := time.NewTimer(hangGuard)
	defer deadline.Stop()
	for {
		c.mu.Lock()
		list, changed := slices.Clone(c.list), c.changed
		c.mu.Unlock()
		if cond(list) {
			return list
		}
		select {
		case <-changed:
		case <-deadline.C:
			t.Fatalf("after %v, still waiting for %s; %d deliveries: %s", hangGuard, what, len(list), summary(list))
		}
	}
}

// summary lists deliveries briefly, the first 30 of them.
func summary(list []delivery) string {
	var b strings.Builder
	for i, d := range list {
		if i == 30 {
			fmt.Fprintf(&b, " … (%d more)", len(list)-i)
			break
		}
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(d.String())
	}
	return b.String()
}

// ofID returns the deliveries of message id, in arrival order.
func ofID(list []delivery, id string) []delivery {
	var out []delivery
	for _, d := range list {
		if d.msg.ID == id {
			out = append(out, d)
		}
	}
	return out
}

// hasAll reports a condition: every id delivered at least once (to subscription who, unless empty).
func hasAll(ids []string, who string) func([]delivery) bool {
	return func(list []delivery) bool {
		seen := make(map[string]bool, len(list))
		for _, d := range list {
			if who == "" || d.who == who {
				seen[d.msg.ID] = true
			}
		}
		for _, id := range ids {
			if !seen[id] {
				return false
			}
		}
		return true
	}
}

// hasAttempt reports a condition: message id delivered with an Attempt of at least n.
func hasAttempt(id string, n int) func([]delivery) bool {
	return func(list []delivery) bool {
		for _, d := range ofID(list, id) {
			if d.msg.Attempt >= n {
				return true
			}
		}
		return false
	}
}

// wait blocks for d on the wall clock (a quiet period).
func wait(d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	<-t.C
}

// awaitChan waits for ch to be closed or to deliver, failing the test after hangGuard.
func awaitChan[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	deadline := time.NewTimer(hangGuard)
	defer deadline.Stop()
	select {
	case v := <-ch:
		return v
	case <-deadline.C:
		t.Fatalf("after %v, still waiting for %s", hangGuard, what)
		panic("unreachable")
	}
}

func newMessage(topic string, i int) *messaging.Message {
	return &messaging.Message{
		ID:      messaging.NewID(),
		Topic:   topic,
		Key:     "k" + strconv.Itoa(i),
		Payload: []byte(strconv.Itoa(i)),
	}
}

func checkSame(t *testing.T, what string, got messaging.Message, want *messaging.Message) {
	t.Helper()
	if got.ID != want.ID {
		t.Errorf("%s: ID %q, want %q", what, got.ID, want.ID)
	}
	if got.Topic != want.Topic {
		t.Errorf("%s: Topic %q, want %q", what, got.Topic, want.Topic)
	}
	if got.Key != want.Key {
		t.Errorf("%s: Key %q, want %q", what, got.Key, want.Key)
	}
	if !bytes.Equal(got.Payload, want.Payload) {
		t.Errorf("%s: Payload %q, want %q", what, got.Payload, want.Payload)
	}
	for k, v := range want.Headers {
		if got.Headers[k] != v {
			t.Errorf("%s: header %q = %q, want %q (headers %v)", what, k, got.Headers[k], v, got.Headers)
		}
	}
}

// testRoundTrip: what a producer publishes arrives as it was: ID, topic, key, headers, payload,
// Attempt 1, and the trace context of the publishing ctx, in the headers and in the handler's ctx.
func (s *suite) testRoundTrip(t *testing.T) {
	topic, group := names("roundtrip")
	pub, sub := s.open(t), s.open(t)
	c := newCollector()
	s.subscribe(t, sub, messaging.SubscribeConfig{Topic: topic, Group: group}, c.handler("sub", nil))

	tid, _ := trace.TraceIDFromHex(messaging.NewID())
	sid, _ := trace.SpanIDFromHex(messaging.NewID()[:16])
	sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: trace.FlagsSampled})
	ctx := trace.ContextWithSpanContext(context.Background(), sc)
	wantTraceparent := fmt.Sprintf("00-%s-%s-01", tid, sid)

	own := "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	m1 := &messaging.Message{
		ID:      messaging.NewID(),
		Topic:   topic,
		Key:     "key-1",
		Headers: map[string]string{"x-a": "1", "x-b": "two words", "x-empty": ""},
		Payload: []byte{0, 1, 2, 0xff, 'h', 'i', '\n'},
	}
	m2 := &messaging.Message{Topic: topic, Payload: []byte("second, no ID, key or headers")}
	m3 := &messaging.Message{ID: messaging.NewID(), Topic: topic, Key: "key-3", Headers: map[string]string{"traceparent": own}}
	want1, want3 := copyMessage(m1), copyMessage(m3)
	publishCtx(t, ctx, pub, m1, m2, m3)
	if m2.ID == "" {
		t.Fatal("Publish did not fill the empty ID of a message")
	}
	want2 := copyMessage(m2)

	list := c.waitFor(t, "the 3 published messages", hasAll([]string{m1.ID, m2.ID, m3.ID}, ""))
	for i, want := range []*messaging.Message{&want1, &want2, &want3} {
		d := ofID(list, want.ID)[0]
		what := fmt.Sprintf("message %d", i+1)
		checkSame(t, what, d.msg, want)
		if d.msg.Attempt != 1 {
			t.Errorf("%s: Attempt %d on the first delivery, want 1", what, d.msg.Attempt)
		}
		wantTP, wantTrace := wantTraceparent, tid.String()
		if i == 2 { // carried its own trace context: Publish must keep it
			wantTP, wantTrace = own, "0af7651916cd43dd8448eb211c80319c"
		}
		if got := d.msg.Headers["traceparent"]; got != wantTP {
			t.Errorf("%s: traceparent header %q, want %q", what, got, wantTP)
		}
		if got := d.traceID.String(); got != wantTrace {
			t.Errorf("%s: the handler's ctx carries trace %s, want %s (ExtractTrace before the handler)", what, got, wantTrace)
		}
	}
	if d := ofID(list, m2.ID)[0]; len(d.msg.Payload) == 0 || d.msg.Key != "" {
		t.Errorf("message 2: key %q payload %q", d.msg.Key, d.msg.Payload)
	}
}

// testTwoGroups: each of two groups gets every message, each counting its own attempts.
func (s *suite) testTwoGroups(t *testing.T) {
	topic, group := names("groups")
	pub, a, b := s.open(t), s.open(t), s.open(t)
	ca, cb := newCollector(), newCollector()
	s.subscribe(t, a, messaging.SubscribeConfig{Topic: topic, Group: group + "-a"}, ca.handler("a", nil))
	s.subscribe(t, b, messaging.SubscribeConfig{Topic: topic, Group: group + "-b"}, cb.handler("b", nil))
	var msgs []*messaging.Message
	var ids []string
	for i := range 20 {
		m := newMessage(topic, i)
		msgs, ids = append(msgs, m), append(ids, m.ID)
	}
	publish(t, pub, msgs[:10]...)
	publish(t, pub, msgs[10:]...)
	for _, c := range []*collector{ca, cb} {
		list := c.waitFor(t, "every message in each group", hasAll(ids, ""))
		for _, id := range ids {
			if d := ofID(list, id)[0]; d.msg.Attempt != 1 {
				t.Errorf("group %s: first delivery of %s has Attempt %d, want 1", d.who, d, d.msg.Attempt)
			}
		}
	}
}

// testOrderedByKey: with Concurrency > 1 and interleaved keys, each key's messages are handled in
// publish order and never two of one key at once. Redelivered duplicates of messages already seen
// are tolerated (at least once); a new message out of order is not.
func (s *suite) testOrderedByKey(t *testing.T) {
	pub := s.open(t)
	if !pub.Capabilities().OrderedByKey {
		t.Skip("the broker does not claim Capabilities.OrderedByKey")
	}
	sub := s.open(t)
	topic, group := names("ordered")
	const keys, perKey = 5, 30
	var (
		mu         sync.Mutex
		inFlight   = map[string]int{}
		violations []string
		running    int
		maxRunning int
	)
	c := newCollector()
	h := func(ctx context.Context, m *messaging.Message) error {
		mu.Lock()
		if inFlight[m.Key] > 0 {
			violations = append(violations, fmt.Sprintf("key %s: message %s started while another of its key was in flight", m.Key, m.Payload))
		}
		inFlight[m.Key]++
		running++
		maxRunning = max(maxRunning, running)
		mu.Unlock()
		// Record the start order, which is the order that matters, then work a little, so
		// handlers overlap.
		c.record(ctx, "sub", m)
		time.Sleep(time.Duration(m.Payload[len(m.Payload)-1]%3) * time.Millisecond)
		mu.Lock()
		inFlight[m.Key]--
		running--
		mu.Unlock()
		return nil
	}
	s.subscribe(t, sub, messaging.SubscribeConfig{Topic: topic, Group: group, Concurrency: 8}, h)

	var all []*messaging.Message
	for i := range perKey {
		for k := range keys {
			all = append(all, &messaging.Message{Topic: topic, Key: fmt.Sprintf("key%d", k), Payload: []byte(strconv.Itoa(i))})
		}
	}
	for batch := range slices.Chunk(all, 25) {
		publish(t, pub, batch...)
	}

	// check returns an error on the first out-of-order message, and whether every key is complete.
	check := func(list []delivery) (complete bool, err error) {
		next := map[string]int{}
		seen := map[string]map[int]bool{}
		for _, d := range list {
			n, convErr := strconv.Atoi(string(d.msg.Payload))
			if convErr != nil {
				return false, fmt.Errorf("unexpected payload %q", d.msg.Payload)
			}
			if seen[d.msg.Key] == nil {
				seen[d.msg.Key] = map[int]bool{}
			}
			if seen[d.msg.Key][n] {
				continue // a redelivered duplicate
			}
			if n != next[d.msg.Key] {
				return false, fmt.Errorf("key %s: message #%d arrived while #%d was the next in publish order", d.msg.Key, n, next[d.msg.Key])
			}
			seen[d.msg.Key][n] = true
			next[d.msg.Key]++
		}
		for k := range keys {
			if next[fmt.Sprintf("key%d", k)] < perKey {
				return false, nil
			}
		}
		return true, nil
	}
	var orderErr error
	c.waitFor(t, "every message of every key", func(list []delivery) bool {
		done, err := check(list)
		if err != nil {
			orderErr = err
			return true
		}
		return done
	})
	if orderErr != nil {
		t.Error(orderErr)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, v := range violations[:min(len(violations), 10)] {
		t.Error(v)
	}
	t.Logf("at most %d handlers ran at once", maxRunning)
}

// testNack: a Nack'ed message comes back with Attempt 2, not before its delay; Nack(err, 0) comes
// back too.
func (s *suite) testNack(t *testing.T) {
	topic, group := names("nack")
	pub, sub := s.open(t), s.open(t)
	const delay = time.Second
	slow := newMessage(topic, 1)
	slow.Headers = map[string]string{"x-keep": "yes"}
	fast := newMessage(topic, 2)
	c := newCollector()
	s.subscribe(t, sub, messaging.SubscribeConfig{Topic: topic, Group: group, Concurrency: 2},
		c.handler("sub", func(_ context.Context, m *messaging.Message) error {
			if m.Attempt > 1 {
				return nil
			}
			if m.ID == slow.ID {
				return messaging.Nack(errors.New("conformance: nack with a delay"), delay)
			}
			return messaging.Nack(errors.New("conformance: nack at once"), 0)
		}))
	want := copyMessage(slow)
	publish(t, pub, slow, fast)
	list := c.waitFor(t, "both nacked messages redelivered", func(l []delivery) bool {
		return hasAttempt(slow.ID, 2)(l) && hasAttempt(fast.ID, 2)(l)
	})
	for _, id := range []string{slow.ID, fast.ID} {
		ds := ofID(list, id)
		if ds[0].msg.Attempt != 1 || ds[1].msg.Attempt != 2 {
			t.Errorf("deliveries of one message: %s, want attempts 1 then 2", summary(ds))
		}
	}
	ds := ofID(list, slow.ID)
	checkSame(t, "the redelivered message", ds[1].msg, &want)
	if gap := ds[1].at.Sub(ds[0].at); gap < delay-tolerance {
		t.Errorf("redelivered %v after a Nack with delay %v", gap, delay)
	}
}

// testError: a plain error redelivers after RedeliveryDelay(attempt), Attempt counting up.
func (s *suite) testError(t *testing.T) {
	topic, group := names("error")
	pub, sub := s.open(t), s.open(t)
	const step = 250 * time.Millisecond
	m := newMessage(topic, 1)
	c := newCollector()
	s.subscribe(t, sub, messaging.SubscribeConfig{
		Topic: topic, Group: group,
		RedeliveryDelay: func(attempt int) time.Duration { return time.Duration(attempt) * step },
	}, c.handler("sub", func(_ context.Context, m *messaging.Message) error {
		if m.Attempt < 3 {
			return fmt.Errorf("conformance: failure %d", m.Attempt)
		}
		return nil
	}))
	publish(t, pub, m)
	list := c.waitFor(t, "the third delivery", hasAttempt(m.ID, 3))
	ds := ofID(list, m.ID)
	if len(ds) != 3 || ds[0].msg.Attempt != 1 || ds[1].msg.Attempt != 2 || ds[2].msg.Attempt != 3 {
		t.Fatalf("deliveries %s, want attempts 1, 2, 3", summary(ds))
	}
	for i := 1; i < 3; i++ {
		if gap, want := ds[i].at.Sub(ds[i-1].at), time.Duration(i)*step; gap < want-tolerance {
			t.Errorf("attempt %d came %v after attempt %d failed, want RedeliveryDelay(%d) = %v", i+1, gap, i, i, want)
		}
	}
}

// testCrash: a consumer whose handler never returns keeps the message only for AckWait; then
// another member of the group gets it, with Attempt ≥ 2.
func (s *suite) testCrash(t *testing.T) {
	topic, group := names("crash")
	pub, a, b := s.open(t), s.open(t), s.open(t)
	release := make(chan struct{})
	t.Cleanup(func() { close(release) }) // runs before the clients are closed
	c := newCollector()
	s.subscribe(t, a, messaging.SubscribeConfig{Topic: topic, Group: group}, c.handler("a", func(ctx context.Context, _ *messaging.Message) error {
		select { // stuck until the test ends
		case <-release:
		case <-ctx.Done():
		}
		return nil
	}))
	m := newMessage(topic, 1)
	publish(t, pub, m)
	first := c.waitFor(t, "the first delivery, to client a", hasAll([]string{m.ID}, "a"))
	s.subscribe(t, b, messaging.SubscribeConfig{Topic: topic, Group: group}, c.handler("b", nil))
	list := c.waitFor(t, "the redelivery to client b after AckWait", hasAll([]string{m.ID}, "b"))
	for _, d := range ofID(list, m.ID) {
		if d.who == "b" {
			if d.msg.Attempt < 2 {
				t.Errorf("redelivery after a crash has Attempt %d, want ≥ 2", d.msg.Attempt)
			}
			t.Logf("redelivered %v after the first delivery (AckWait %v)", d.at.Sub(first[0].at), s.ackWait)
			break
		}
	}
}

// testDeadLetterMax: a message failing MaxDeliveries times goes to the dead-letter topic with the
// reason, original topic and attempt count, and is not delivered again on its topic.
func (s *suite) testDeadLetterMax(t *testing.T) {
	topic, group := names("dlqmax")
	pub, sub, dlq := s.open(t), s.open(t), s.open(t)
	const maxDeliveries = 3
	c, cd := newCollector(), newCollector()
	s.subscribe(t, dlq, messaging.SubscribeConfig{Topic: topic + messaging.DeadLetterSuffix, Group: group + "-dlq"}, cd.handler("dlq", nil))
	s.subscribe(t, sub, messaging.SubscribeConfig{
		Topic: topic, Group: group, MaxDeliveries: maxDeliveries,
		RedeliveryDelay: func(int) time.Duration { return 50 * time.Millisecond },
	}, c.handler("sub", func(context.Context, *messaging.Message) error {
		return errors.New("conformance: always fails")
	}))
	m := newMessage(topic, 1)
	m.Headers = map[string]string{"x-keep": "yes"}
	want := copyMessage(m)
	publish(t, pub, m)
	dl := cd.waitFor(t, "the dead-lettered message", hasAll([]string{m.ID}, ""))[0].msg
	want.Topic = topic + messaging.DeadLetterSuffix
	checkSame(t, "the dead-lettered message", dl, &want)
	if r := dl.Headers[messaging.HeaderDeadLetterReason]; !strings.Contains(r, "always fails") {
		t.Errorf("header %s = %q, want the handler's error", messaging.HeaderDeadLetterReason, r)
	}
	if o := dl.Headers[messaging.HeaderOriginalTopic]; o != topic {
		t.Errorf("header %s = %q, want %q", messaging.HeaderOriginalTopic, o, topic)
	}
	if a := dl.Headers[messaging.HeaderAttempts]; a != strconv.Itoa(maxDeliveries) {
		t.Errorf("header %s = %q, want %d", messaging.HeaderAttempts, a, maxDeliveries)
	}
	wait(s.quiet())
	ds := ofID(c.all(), m.ID)
	if len(ds) != maxDeliveries {
		t.Errorf("delivered %d times on its topic (%s), want MaxDeliveries = %d and nothing after dead-lettering", len(ds), summary(ds), maxDeliveries)
	}
	for i, d := range ds {
		if d.msg.Attempt != i+1 {
			t.Errorf("deliveries %s, want attempts 1 to %d", summary(ds), maxDeliveries)
			break
		}
	}
}

// testDeadLetterNow: DeadLetter(err) dead-letters at the first attempt, to a configured
// DeadLetterTopic.
func (s *suite) testDeadLetterNow(t *testing.T) {
	topic, group := names("dlqnow")
	dlqTopic := topic + ".poison"
	pub, sub, dlq := s.open(t), s.open(t), s.open(t)
	c, cd := newCollector(), newCollector()
	s.subscribe(t, dlq, messaging.SubscribeConfig{Topic: dlqTopic, Group: group + "-dlq"}, cd.handler("dlq", nil))
	s.subscribe(t, sub, messaging.SubscribeConfig{Topic: topic, Group: group, DeadLetterTopic: dlqTopic, MaxDeliveries: 5},
		c.handler("sub", func(context.Context, *messaging.Message) error {
			return messaging.DeadLetter(errors.New("conformance: poison"))
		}))
	m := newMessage(topic, 1)
	want := copyMessage(m)
	publish(t, pub, m)
	dl := cd.waitFor(t, "the dead-lettered message", hasAll([]string{m.ID}, ""))[0].msg
	want.Topic = dlqTopic
	checkSame(t, "the dead-lettered message", dl, &want)
	if r := dl.Headers[messaging.HeaderDeadLetterReason]; !strings.Contains(r, "poison") {
		t.Errorf("header %s = %q, want the handler's error", messaging.HeaderDeadLetterReason, r)
	}
	if o := dl.Headers[messaging.HeaderOriginalTopic]; o != topic {
		t.Errorf("header %s = %q, want %q", messaging.HeaderOriginalTopic, o, topic)
	}
	if a := dl.Headers[messaging.HeaderAttempts]; a != "1" {
		t.Errorf("header %s = %q, want 1", messaging.HeaderAttempts, a)
	}
	wait(s.quiet())
	if ds := ofID(c.all(), m.ID); len(ds) != 1 {
		t.Errorf("delivered %d times on its topic (%s), want once: DeadLetter dead-letters at once", len(ds), summary(ds))
	}
}

// testLoadSplit: two subscriptions of one group share the messages: together they get each one,
// once when handlers succeed, and each gets some.
func (s *suite) testLoadSplit(t *testing.T) {
	topic, group := names("split")
	pub, a, b := s.open(t), s.open(t), s.open(t)
	c := newCollector()
	work := func(context.Context, *messaging.Message) error { time.Sleep(time.Millisecond); return nil }
	s.subscribe(t, a, messaging.SubscribeConfig{Topic: topic, Group: group}, c.handler("a", work))
	s.subscribe(t, b, messaging.SubscribeConfig{Topic: topic, Group: group}, c.handler("b", work))
	const n = 200
	var msgs []*messaging.Message
	var ids []string
	for i := range n {
		m := newMessage(topic, i) // distinct keys, so partitioned brokers spread them
		msgs, ids = append(msgs, m), append(ids, m.ID)
	}
	for batch := range slices.Chunk(msgs, 20) {
		publish(t, pub, batch...)
	}
	c.waitFor(t, "every message in the group", hasAll(ids, ""))
	wait(500 * time.Millisecond) // a duplicate would show up now
	list := c.all()
	count := map[string]int{}
	per := map[string]int{}
	for _, d := range list {
		count[d.msg.ID]++
		per[d.who]++
	}
	for _, id := range ids {
		if count[id] != 1 {
			t.Errorf("message %s handled %d times (%s), want once", id[:8], count[id], summary(ofID(list, id)))
		}
	}
	if per["a"] == 0 || per["b"] == 0 {
		t.Errorf("split a=%d b=%d: both members of the group should get a share", per["a"], per["b"])
	}
	t.Logf("split a=%d b=%d", per["a"], per["b"])
}

// testDrop: a publisher publishes continuously while first the subscriber's and then the
// publisher's connections are broken; every message whose Publish returned nil is delivered.
func (s *suite) testDrop(t *testing.T) {
	if s.h.Drop == nil {
		t.Skip("Harness.Drop is nil")
	}
	topic, group := names("drop")
	pub, sub := s.open(t), s.open(t)
	c := newCollector()
	s.subscribe(t, sub, messaging.SubscribeConfig{Topic: topic, Group: group}, c.handler("sub", nil))

	var (
		mu       sync.Mutex
		ok       []string
		failed   []error
		progress = make(chan struct{})
	)
	stop, stopped := make(chan struct{}), make(chan struct{})
	var stopOnce sync.Once
	halt := func() {
		stopOnce.Do(func() { close(stop) })
		<-stopped
	}
	defer halt()
	waitOK := func(n int, what string) {
		t.Helper()
		deadline := time.NewTimer(hangGuard)
		defer deadline.Stop()
		for {
			mu.Lock()
			got, ch, nfail := len(ok), progress, len(failed)
			var last error
			if nfail > 0 {
				last = failed[nfail-1]
			}
			mu.Unlock()
			if got >= n {
				return
			}
			select {
			case <-ch:
			case <-deadline.C:
				t.Fatalf("%s: only %d publishes succeeded in %v; %d failed, the last with: %v", what, got, hangGuard, nfail, last)
			}
		}
	}
	go func() {
		defer close(stopped)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			m := newMessage(topic, i)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			err := pub.Publish(ctx, m)
			cancel()
			mu.Lock()
			if err == nil {
				ok = append(ok, m.ID)
			} else {
				failed = append(failed, err)
			}
			close(progress)
			progress = make(chan struct{})
			mu.Unlock()
			time.Sleep(time.Millisecond) // a steady stream, not a flood
		}
	}()
	waitOK(100, "before the drop")
	s.h.Drop(t, sub)
	waitOK(200, "after dropping the subscriber")
	s.h.Drop(t, pub)
	mu.Lock()
	n := len(ok)
	mu.Unlock()
	waitOK(n+100, "after dropping the publisher")
	halt()

	mu.Lock()
	ids := slices.Clone(ok)
	t.Logf("%d publishes succeeded, %d failed", len(ok), len(failed))
	mu.Unlock()
	c.waitFor(t, "every message published without error", hasAll(ids, ""))
}

// testCloseDrains: Close (of the subscription, or of the whole client) waits for the handler in
// flight, does not cancel it, and its ack holds: the message does not come back to the group.
func (s *suite) testCloseDrains(t *testing.T, broker bool) {
	topic, group := names("drain")
	pub, client := s.open(t), s.open(t)
	started, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	var finished atomic.Bool
	var ctxErr atomic.Value
	c := newCollector()
	sub := s.subscribe(t, client, messaging.SubscribeConfig{Topic: topic, Group: group}, c.handler("old", func(ctx context.Context, _ *messaging.Message) error {
		first := false
		once.Do(func() { first = true })
		if first {
			close(started)
			select {
			case <-release:
			case <-time.After(hangGuard):
			}
			if err := ctx.Err(); err != nil {
				ctxErr.Store(err)
			}
			finished.Store(true)
		}
		return nil
	}))
	m1 := newMessage(topic, 1)
	publish(t, pub, m1)
	awaitChan(t, started, "the handler to start")

	closed := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
		defer cancel()
		if broker {
			closed <- client.Close(ctx)
		} else {
			closed <- sub.Close(ctx)
		}
	}()
	select {
	case err := <-closed:
		t.Fatalf("Close returned (%v) while a handler was running", err)
	case <-time.After(300 * time.Millisecond):
	}
	close(release)
	if err := awaitChan(t, closed, "Close to return after the handler finished"); err != nil {
		t.Errorf("Close: %v", err)
	}
	if !finished.Load() {
		t.Error("Close returned before the handler in flight finished")
	}
	if err := ctxErr.Load(); err != nil {
		t.Errorf("the handler's ctx ended during a drain within Close's deadline: %v", err)
	}

	// The ack holds: a new member of the group gets the next message, never the drained one.
	other := s.open(t)
	c2 := newCollector()
	s.subscribe(t, other, messaging.SubscribeConfig{Topic: topic, Group: group}, c2.handler("new", nil))
	m2 := newMessage(topic, 2)
	publish(t, pub, m2)
	c2.waitFor(t, "a message published after Close, to the new subscriber", hasAll([]string{m2.ID}, ""))
	wait(s.quiet())
	if ds := ofID(c2.all(), m1.ID); len(ds) > 0 {
		t.Errorf("the message acknowledged during Close's drain was delivered again: %s", summary(ds))
	}
	if ds := ofID(c.all(), m1.ID); len(ds) != 1 {
		t.Errorf("the drained message was delivered %d times to the closed subscription: %s", len(ds), summary(ds))
	}
}

// testCloseDeadline: a handler still running when Close's ctx ends has its ctx cancelled, Close
// returns ctx's error, and the message is redelivered to the group.
func (s *suite) testCloseDeadline(t *testing.T) {
	topic, group := names("deadline")
	pub, client := s.open(t), s.open(t)
	started, returned := make(chan struct{}), make(chan struct{})
	var once sync.Once
	c := newCollector()
	sub := s.subscribe(t, client, messaging.SubscribeConfig{Topic: topic, Group: group}, c.handler("old", func(ctx context.Context, _ *messaging.Message) error {
		first := false
		once.Do(func() { first = true })
		if !first {
			return nil
		}
		close(started)
		defer close(returned)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(hangGuard):
			return nil
		}
	}))
	m := newMessage(topic, 1)
	publish(t, pub, m)
	awaitChan(t, started, "the handler to start")
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	err := sub.Close(ctx)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Close past its deadline with a handler running returned %v, want context.DeadlineExceeded", err)
	}
	awaitChan(t, returned, "the handler's ctx to be cancelled after Close's deadline")

	other := s.open(t)
	s.subscribe(t, other, messaging.SubscribeConfig{Topic: topic, Group: group}, c.handler("new", nil))
	list := c.waitFor(t, "the unacknowledged message redelivered to the group", hasAll([]string{m.ID}, "new"))
	for _, d := range ofID(list, m.ID) {
		if d.who == "new" && d.msg.Attempt < 2 {
			t.Errorf("redelivery has Attempt %d, want ≥ 2", d.msg.Attempt)
		}
	}
}

// testCloseAfterDrop: with a handler in flight and the client's connection just dropped, Close
// of the subscription and then of the client return within their deadlines (a dead connection
// must not make them wait for something it will never send).
func (s *suite) testCloseAfterDrop(t *testing.T) {
	if s.h.Drop == nil {
		t.Skip("the harness cannot drop connections")
	}
	topic, group := names("closedrop")
	pub, client := s.open(t), s.open(t)
	started := make(chan struct{})
	var once sync.Once
	sub := s.subscribe(t, client, messaging.SubscribeConfig{Topic: topic, Group: group},
		func(ctx context.Context, _ *messaging.Message) error {
			once.Do(func() { close(started) })
			<-ctx.Done() // held until Close gives up on it
			return ctx.Err()
		})
	publish(t, pub, newMessage(topic, 1))
	awaitChan(t, started, "the handler to start")
	s.h.Drop(t, client)
	for _, c := range []struct {
		what  string
		close func(context.Context) error
	}{
		{"the subscription", sub.Close},
		{"the client", client.Close},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		returned := make(chan struct{})
		go func() { _ = c.close(ctx); close(returned) }()
		select {
		case <-returned:
		case <-time.After(10 * time.Second): // generous: the deadline is 0.5 s
			t.Errorf("Close of %s after a dropped connection did not return within 10 s of a 0.5 s deadline", c.what)
		}
		cancel()
	}
}

// testCloseTwice: closing a subscription or a client twice is fine, in any order.
func (s *suite) testCloseTwice(t *testing.T) {
	topic, group := names("close")
	b := s.open(t)
	ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
	defer cancel()
	sub := s.subscribe(t, b, messaging.SubscribeConfig{Topic: topic, Group: group}, func(context.Context, *messaging.Message) error { return nil })
	for i := range 2 {
		if err := sub.Close(ctx); err != nil {
			t.Errorf("Subscription.Close #%d: %v", i+1, err)
		}
	}
	sub2 := s.subscribe(t, b, messaging.SubscribeConfig{Topic: topic, Group: group}, func(context.Context, *messaging.Message) error { return nil })
	for i := range 2 {
		if err := b.Close(ctx); err != nil {
			t.Errorf("Broker.Close #%d: %v", i+1, err)
		}
	}
	if err := sub2.Close(ctx); err != nil {
		t.Errorf("Subscription.Close after Broker.Close: %v", err)
	}
}

// testBadConfig: Subscribe rejects a bad config with an error naming the field.
func (s *suite) testBadConfig(t *testing.T) {
	topic, group := names("badcfg")
	b := s.open(t)
	h := func(context.Context, *messaging.Message) error { return nil }
	for _, tc := range []struct {
		cfg   messaging.SubscribeConfig
		field string
	}{
		{messaging.SubscribeConfig{Group: group}, "Topic"},
		{messaging.SubscribeConfig{Topic: topic}, "Group"},
		{messaging.SubscribeConfig{Topic: "bad topic", Group: group}, "Topic"},
		{messaging.SubscribeConfig{Topic: topic + "..x", Group: group}, "Topic"},
		{messaging.SubscribeConfig{Topic: topic, Group: group, Concurrency: -1}, "Concurrency"},
		{messaging.SubscribeConfig{Topic: topic, Group: group, MaxDeliveries: -1}, "MaxDeliveries"},
		{messaging.SubscribeConfig{Topic: topic, Group: group, AckWait: -time.Second}, "AckWait"},
		{messaging.SubscribeConfig{Topic: topic, Group: group, DeadLetterTopic: "x y"}, "DeadLetterTopic"},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
		sub, err := b.Subscribe(ctx, tc.cfg, h)
		switch {
		case err == nil:
			t.Errorf("Subscribe(%+v) accepted a bad %s", tc.cfg, tc.field)
			if sub != nil {
				_ = sub.Close(ctx)
			}
		case !strings.Contains(err.Error(), tc.field):
			t.Errorf("Subscribe with a bad %s: error %q does not name the field", tc.field, err)
		}
		cancel()
	}
}

// testInvalidTopic: Publish rejects a message without a valid topic (and a nil message).
func (s *suite) testInvalidTopic(t *testing.T) {
	topic, _ := names("badtopic")
	b := s.open(t)
	for _, bad := range []string{"", "has space", topic + "..x", "." + topic, topic + ".", "a/b", "a*", "a>", strings.Repeat("x", 201)} {
		ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
		if err := b.Publish(ctx, &messaging.Message{Topic: bad, Payload: []byte("x")}); err == nil {
			t.Errorf("Publish to topic %q: no error", bad)
		}
		cancel()
	}
	ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
	defer cancel()
	if err := b.Publish(ctx, nil); err == nil {
		t.Error("Publish(nil): no error")
	}
	if err := b.Publish(ctx, &messaging.Message{Topic: topic}, &messaging.Message{Topic: "bad topic"}); err == nil {
		t.Error("Publish of a valid and an invalid message: no error")
	}
}

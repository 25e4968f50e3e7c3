// Package membus is an in-memory messaging.Broker for unit tests: topics, consumer groups
// (competing consumers), ordering per key, Nack delays, AckWait redelivery and dead-lettering,
// all timed by an injected clock.Clock, so a test with a clock.Manual never sleeps.
//
// A Bus is one broker. It is itself a client (a messaging.Broker); Client returns more clients
// sharing its state, as separate processes connected to one broker would. A consumer group keeps
// its messages from its first Subscribe on, also while it has no subscriber, until they are
// acknowledged or dead-lettered.
//
// Tests on a manual clock synchronize with WaitIdle (no handler running) and the clock's
// WaitForTimers / NextDeadline before they advance the clock.
package membus

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"sync"

	"github.com/faultline-dev/faultline/clock"
	"github.com/faultline-dev/faultline/messaging"
)

// ErrClosed is returned by Publish and Subscribe on a closed client or bus.
var ErrClosed = errors.New("membus: closed")

// Option configures a Bus.
type Option func(*Bus)

// WithClock sets the clock that times redelivery delays and AckWait (clock.Real() by default).
func WithClock(c clock.Clock) Option {
	return func(b *Bus) {
		if c != nil {
			b.clk = c
		}
	}
}

// Bus is an in-memory broker, and its own first client. It is safe for concurrent use.
type Bus struct {
	clk clock.Clock

	mu      sync.Mutex
	topics  map[string]map[string]*group // topic → group name → group
	seq     uint64                       // publish order
	closed  bool
	clients map[*Client]struct{}
	running int           // handler goroutines running
	changed chan struct{} // closed and replaced when running drops
	def     *Client
}

// New returns an empty bus.
func New(opts ...Option) *Bus {
	b := &Bus{
		clk:     clock.Real(),
		topics:  make(map[string]map[string]*group),
		clients: make(map[*Client]struct{}),
		changed: make(chan struct{}),
	}
	for _, o := range opts {
		o(b)
	}
	b.def = b.Client()
	return b
}

// Client returns a new client of the bus: a messaging.Broker sharing the bus's topics and groups,
// with its own subscriptions and its own Close. A client of a closed bus is closed.
func (b *Bus) Client() *Client {
	c := &Client{bus: b, subs: make(map[*subscription]struct{})}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		c.closed = true
	} else {
		b.clients[c] = struct{}{}
	}
	return c
}

// Publish publishes through the bus's own client.
func (b *Bus) Publish(ctx context.Context, msgs ...*messaging.Message) error {
	return b.def.Publish(ctx, msgs...)
}

// Subscribe subscribes through the bus's own client.
func (b *Bus) Subscribe(ctx context.Context, cfg messaging.SubscribeConfig, h messaging.Handler) (messaging.Subscription, error) {
	return b.def.Subscribe(ctx, cfg, h)
}

// Capabilities reports that the bus orders messages by key.
func (b *Bus) Capabilities() messaging.Capabilities {
	return messaging.Capabilities{OrderedByKey: true}
}

// Close closes every client of the bus (draining their subscriptions, at most until ctx ends)
// and stops its timers; then Publish and Subscribe return ErrClosed. It is safe to call more than
// once.
func (b *Bus) Close(ctx context.Context) error {
	b.mu.Lock()
	b.closed = true
	clients := make([]*Client, 0, len(b.clients))
	for c := range b.clients {
		clients = append(clients, c)
	}
	b.mu.Unlock()
	errs := make([]error, len(clients))
	var wg sync.WaitGroup
	for i, c := range clients {
		wg.Go(func() { errs[i] = c.Close(ctx) })
	}
	wg.Wait()
	b.mu.Lock()
	for _, groups := range b.topics {
		for _, g := range groups {
			g.stopTimers()
		}
	}
	b.mu.Unlock()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// WaitIdle waits until no handler is running on the bus, or ctx ends (returning its error). Every
// delivery decision is made when a message is published, a handler returns, a subscriber comes
// or a timer fires, so once the bus is idle whatever is left waits on the clock or on a
// subscriber. (A clock.Manual runs a fired timer's callback on a new goroutine: after Advance,
// wait for the delivery it causes, not for WaitIdle.)
func (b *Bus) WaitIdle(ctx context.Context) error {
	for {
		b.mu.Lock()
		n, ch := b.running, b.changed
		b.mu.Unlock()
		if n == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ch:
		}
	}
}

// Running returns how many handlers are running on the bus.
func (b *Bus) Running() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.running
}

// Backlog returns how many messages group has not yet acknowledged or dead-lettered on topic:
// waiting, being handled, or waiting for a redelivery delay. It is 0 for a group that never
// subscribed.
func (b *Bus) Backlog(topic, group string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	g := b.topics[topic][group]
	if g == nil {
		return 0
	}
	return g.backlog
}

func (b *Bus) notifyLocked() {
	close(b.changed)
	b.changed = make(chan struct{})
}

// publishLocked enqueues m (owned by the bus from now on) for every group of its topic.
func (b *Bus) publishLocked(m *messaging.Message) {
	for _, g := range b.topics[m.Topic] {
		b.seq++
		g.queue = append(g.queue, &entry{msg: m, seq: b.seq}) // seq grows: the queue stays sorted
		g.backlog++
		g.dispatch()
	}
}

// Client is one client of a Bus, as a separate connection would be.
type Client struct {
	bus    *Bus
	subs   map[*subscription]struct{} // guarded by bus.mu
	closed bool                       // guarded by bus.mu
}

var _ messaging.Broker = (*Client)(nil)
var _ messaging.Broker = (*Bus)(nil)

// Drop simulates a broken connection. An in-memory client has none, so it does nothing: the
// conformance suite's Harness.Drop for membus.
func (c *Client) Drop() {}

// Capabilities reports that the bus orders messages by key.
func (c *Client) Capabilities() messaging.Capabilities {
	return messaging.Capabilities{OrderedByKey: true}
}

// Publish validates every message (filling empty IDs), then enqueues copies of them all at once
// for every group of their topics. The caller's messages get their IDs but no other change; the
// trace context of ctx goes into the copies.
func (c *Client) Publish(ctx context.Context, msgs ...*messaging.Message) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	copies := make([]*messaging.Message, len(msgs))
	for i, m := range msgs {
		if err := messaging.Prepare(m); err != nil {
			return err
		}
		cp := &messaging.Message{ID: m.ID, Topic: m.Topic, Key: m.Key, Headers: maps.Clone(m.Headers), Payload: bytes.Clone(m.Payload)}
		messaging.InjectTrace(ctx, cp)
		copies[i] = cp
	}
	b := c.bus
	now := b.clk.Now()
	b.mu.Lock()
	defer b.mu.Unlock()
	if c.closed || b.closed {
		return ErrClosed
	}
	for _, m := range copies {
		m.PublishedAt = now
		b.publishLocked(m)
	}
	return nil
}

// Subscribe registers h as a member of cfg.Group on cfg.Topic. A group's first Subscribe creates
// it, with the messages published from then on; a later member gets the group's backlog.
func (c *Client) Subscribe(ctx context.Context, cfg messaging.SubscribeConfig, h messaging.Handler) (messaging.Subscription, error) {
	cfg, err := cfg.WithDefaults()
	if err != nil {
		return nil, err
	}
	if h == nil {
		return nil, errors.New("membus: nil Handler")
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	b := c.bus
	b.mu.Lock()
	defer b.mu.Unlock()
	if c.closed || b.closed {
		return nil, ErrClosed
	}
	groups := b.topics[cfg.Topic]
	if groups == nil {
		groups = make(map[string]*group)
		b.topics[cfg.Topic] = groups
	}
	g := groups[cfg.Group]
	if g == nil {
		g = &group{bus: b, keyOwner: make(map[string]*entry), delayed: make(map[*entry]struct{})}
		groups[cfg.Group] = g
	}
	hctx, cancel := context.WithCancel(context.Background())
	s := &subscription{
		g: g, client: c, cfg: cfg, h: h, ctx: hctx, cancel: cancel,
		inflight: make(map[*delivery]struct{}),
		drained:  make(chan struct{}),
	}
	g.subs = append(g.subs, s)
	c.subs[s] = struct{}{}
	g.dispatch()
	return s, nil
}

// Close closes every subscription of the client, draining them at most until ctx ends, after
// which Publish and Subscribe return ErrClosed. It is safe to call more than once.
func (c *Client) Close(ctx context.Context) error {
	b := c.bus
	b.mu.Lock()
	c.closed = true
	subs := make([]*subscription, 0, len(c.subs))
	for s := range c.subs {
		subs = append(subs, s)
	}
	b.mu.Unlock()
	errs := make([]error, len(subs))
	var wg sync.WaitGroup
	for i, s := range subs {
		wg.Go(func() { errs[i] = s.Close(ctx) })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// group is one consumer group on one topic. All its fields are guarded by bus.mu.
type group struct {
	bus      *Bus
	queue    []*entry            // ready for delivery, in publish order
	keyOwner map[string]*entry   // key → its message being handled or waiting for redelivery
	delayed  map[*entry]struct{} // waiting for a redelivery delay
	subs     []*subscription     // open members
	rr       int                 // round-robin position in subs
	backlog  int
}

// entry is one message for one group.
type entry struct {
	msg      *messaging.Message // shared between groups; never modified
	seq      uint64
	attempts int
	cur      *delivery   // the current delivery, nil when not being handled
	timer    clock.Timer // the redelivery delay, while delayed
	done     bool        // acknowledged or dead-lettered
}

// delivery is one handing of an entry to a handler.
type delivery struct {
	e        *entry
	s        *subscription
	attempt  int
	ackTimer clock.Timer
}

// dispatch hands ready messages to members with a free slot, in publish order, skipping the
// messages whose key is taken by an earlier one.
func (g *group) dispatch() {
	b := g.bus
	if b.closed {
		return
	}
	for {
		i := g.nextReady()
		if i < 0 {
			return
		}
		s := g.pickSub()
		if s == nil {
			return
		}
		e := g.queue[i]
		g.queue = append(g.queue[:i], g.queue[i+1:]...)
		if e.msg.Key != "" {
			g.keyOwner[e.msg.Key] = e
		}
		e.attempts++
		d := &delivery{e: e, s: s, attempt: e.attempts}
		e.cur = d
		s.running++
		s.inflight[d] = struct{}{}
		b.running++
		d.ackTimer = b.clk.AfterFunc(s.cfg.AckWait, func() { g.expire(d) })
		go s.run(d, e.copy(d.attempt))
	}
}

func (g *group) nextReady() int {
	for i, e := range g.queue {
		if e.msg.Key == "" {
			return i
		}
		if o := g.keyOwner[e.msg.Key]; o == nil || o == e {
			return i
		}
	}
	return -1
}

func (g *group) pickSub() *subscription {
	n := len(g.subs)
	for i := range n {
		j := (g.rr + i) % n
		if s := g.subs[j]; s.running < s.cfg.Concurrency {
			g.rr = (j + 1) % n
			return s
		}
	}
	return nil
}

// copy returns the message as delivered for attempt, for the handler to own.
func (e *entry) copy(attempt int) *messaging.Message {
	m := *e.msg
	m.Headers = maps.Clone(e.msg.Headers)
	m.Payload = bytes.Clone(e.msg.Payload)
	m.Attempt = attempt
	return &m
}

// settle applies the decision for e's delivery d, which is over.
func (g *group) settle(d *delivery, dec messaging.Decision) {
	e, b := d.e, g.bus
	d.ackTimer.Stop()
	delete(d.s.inflight, d)
	e.cur = nil
	switch {
	case dec.Ack:
		g.finish(e)
	case dec.DeadLetter:
		g.finish(e)
		dl := messaging.DeadLetterMessage(d.s.cfg, e.copy(d.attempt), dec.Reason)
		dl.PublishedAt = b.clk.Now()
		b.publishLocked(dl)
	case dec.Delay <= 0:
		g.requeue(e)
	default:
		g.delayed[e] = struct{}{}
		e.timer = b.clk.AfterFunc(dec.Delay, func() {
			b.mu.Lock()
			defer b.mu.Unlock()
			if _, ok := g.delayed[e]; !ok || b.closed {
				return
			}
			delete(g.delayed, e)
			e.timer = nil
			g.requeue(e)
			g.dispatch()
		})
	}
}

// finish removes e for good: acknowledged or dead-lettered.
func (g *group) finish(e *entry) {
	e.done = true
	g.backlog--
	if e.msg.Key != "" && g.keyOwner[e.msg.Key] == e {
		delete(g.keyOwner, e.msg.Key)
	}
}

// requeue puts e back among the ready messages, in its publish position.
func (g *group) requeue(e *entry) {
	i := len(g.queue)
	for i > 0 && g.queue[i-1].seq > e.seq {
		i--
	}
	g.queue = append(g.queue, nil)
	copy(g.queue[i+1:], g.queue[i:])
	g.queue[i] = e
}

// expire handles AckWait passing for delivery d.
func (g *group) expire(d *delivery) {
	b := g.bus
	b.mu.Lock()
	defer b.mu.Unlock()
	if d.e.cur != d || b.closed {
		return
	}
	g.abandon(d, fmt.Errorf("membus: not acknowledged within AckWait %v", d.s.cfg.AckWait))
	g.dispatch()
}

// abandon ends delivery d without a result from its handler: redelivered at once, or
// dead-lettered when it was the last allowed delivery.
func (g *group) abandon(d *delivery, reason error) {
	dec := messaging.Decision{Reason: reason.Error()}
	if d.attempt >= d.s.cfg.MaxDeliveries {
		dec.DeadLetter = true
	}
	g.settle(d, dec)
}

// handled applies the handler's result for d.
func (g *group) handled(d *delivery, err error) {
	e := d.e
	switch {
	case e.cur == d:
		g.settle(d, messaging.Decide(d.s.cfg, d.attempt, err))
	case err == nil && !e.done && e.cur == nil:
		// A late ack, after AckWait, for a message not handed out again yet: it still counts.
		if _, ok := g.delayed[e]; ok {
			e.timer.Stop()
			delete(g.delayed, e)
		} else {
			for i, q := range g.queue {
				if q == e {
					g.queue = append(g.queue[:i], g.queue[i+1:]...)
					break
				}
			}
		}
		g.finish(e)
	}
}

func (g *group) stopTimers() {
	for e := range g.delayed {
		e.timer.Stop()
	}
	for _, s := range g.subs {
		for d := range s.inflight {
			d.ackTimer.Stop()
		}
	}
}

// subscription is one member of a group.
type subscription struct {
	g       *group
	client  *Client
	cfg     messaging.SubscribeConfig
	h       messaging.Handler
	ctx     context.Context // the handlers' context, cancelled past Close's deadline
	cancel  context.CancelFunc
	drained chan struct{} // closed once closing and no handler runs

	// Guarded by bus.mu:
	running  int                    // handlers running, including ones whose delivery expired
	inflight map[*delivery]struct{} // current deliveries
	closing  bool
}

func (s *subscription) run(d *delivery, m *messaging.Message) {
	err := s.h(messaging.ExtractTrace(s.ctx, m), m)
	b := s.g.bus
	b.mu.Lock()
	defer b.mu.Unlock()
	s.running--
	b.running--
	s.g.handled(d, err)
	if s.closing && s.running == 0 {
		s.finishDrain()
	}
	s.g.dispatch()
	b.notifyLocked()
}

func (s *subscription) finishDrain() {
	select {
	case <-s.drained:
	default:
		close(s.drained)
		s.cancel()
	}
}

// Close stops deliveries to the subscription and waits for its running handlers, at most until
// ctx ends; then it cancels their contexts, hands their messages back to the group for
// redelivery at once, and returns ctx's error.
func (s *subscription) Close(ctx context.Context) error {
	b := s.g.bus
	g := s.g
	b.mu.Lock()
	if !s.closing {
		s.closing = true
		for i, o := range g.subs {
			if o == s {
				g.subs = append(g.subs[:i], g.subs[i+1:]...)
				break
			}
		}
		if s.running == 0 {
			s.finishDrain()
		}
	}
	b.mu.Unlock()
	select {
	case <-s.drained:
		return nil
	case <-ctx.Done():
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	select {
	case <-s.drained:
		return nil
	default:
	}
	s.cancel()
	for d := range s.inflight {
		g.abandon(d, errors.New("membus: subscription closed before its handler finished"))
	}
	g.dispatch()
	return ctx.Err()
}

package shop

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/faultline-dev/faultline/messaging"
)

// TroubleConfig says how much trouble a TroubledBroker makes. The zero value makes none. The
// draws come from one source seeded with Seed; goroutine scheduling decides which message gets
// which draw, so a seed replays the amount of trouble, not every detail.
type TroubleConfig struct {
	// Seed seeds the draws.
	Seed uint64
	// DuplicateDelivery is the probability that a delivered message is handed to the handler a
	// second time, after a pause of up to MaxDelay: what a broker does when an acknowledgement is
	// lost. The copy may run while the first delivery is still in its handler.
	DuplicateDelivery float64
	// DuplicatePublish is the probability that a published message is published a second time
	// with the same ID, as an outbox relay does when it dies between publishing and marking the
	// row sent. (NATS JetStream drops the copy within its 2-minute duplicate window; Kafka
	// delivers it.)
	DuplicatePublish float64
	// Delay is the probability that a delivery is held back before its handler runs, for a pause
	// drawn uniformly from (0, MaxDelay]. The message stays unacknowledged meanwhile.
	Delay float64
	// MaxDelay bounds the pauses of Delay and DuplicateDelivery. Zero means 1 s.
	MaxDelay time.Duration
}

// Validate reports the first field out of range.
func (c TroubleConfig) Validate() error {
	for _, p := range []struct {
		name string
		v    float64
	}{{"DuplicateDelivery", c.DuplicateDelivery}, {"DuplicatePublish", c.DuplicatePublish}, {"Delay", c.Delay}} {
		if !(p.v >= 0 && p.v <= 1) {
			return fmt.Errorf("shop: TroubleConfig.%s %v: want a probability in [0, 1]", p.name, p.v)
		}
	}
	if c.MaxDelay < 0 {
		return fmt.Errorf("shop: TroubleConfig.MaxDelay %v: must not be negative", c.MaxDelay)
	}
	return nil
}

// Any reports whether c makes any trouble.
func (c TroubleConfig) Any() bool {
	return c.DuplicateDelivery > 0 || c.DuplicatePublish > 0 || c.Delay > 0
}

// TroubleStats counts what a TroubledBroker did.
type TroubleStats struct {
	// Published counts the messages published through it (not counting the copies).
	Published int64 `json:"published"`
	// PublishedTwice counts the messages it published a second time.
	PublishedTwice int64 `json:"publishedTwice"`
	// Delivered counts the deliveries it passed to handlers (not counting the copies).
	Delivered int64 `json:"delivered"`
	// Delayed counts the deliveries it held back; DelayCut those whose pause was cut short
	// because the subscription was closed or the service killed (their handler never ran).
	Delayed  int64 `json:"delayed"`
	DelayCut int64 `json:"delayCut"`
	// DeliveredTwice counts the copies it handed to handlers a second time.
	DeliveredTwice int64 `json:"deliveredTwice"`
}

// Add adds o's counts to s.
func (s *TroubleStats) Add(o TroubleStats) {
	s.Published += o.Published
	s.PublishedTwice += o.PublishedTwice
	s.Delivered += o.Delivered
	s.Delayed += o.Delayed
	s.DelayCut += o.DelayCut
	s.DeliveredTwice += o.DeliveredTwice
}

// TroubledBroker is a messaging.Broker that passes everything to another broker and makes
// trouble on the way, as its TroubleConfig says: it duplicates and delays deliveries to the
// handlers subscribed through it and duplicates publishes. Everything it does is something a
// real broker does under at-least-once delivery, so a correct system must not notice beyond
// latency.
//
// Its Close closes the subscriptions made through it, not the broker it wraps (several
// TroubledBrokers, one per service, may share that one; its owner closes it).
type TroubledBroker struct {
	inner messaging.Broker
	cfg   TroubleConfig

	rndMu sync.Mutex
	rnd   *rand.Rand

	published, publishedTwice, delivered, delayed, delayCut, deliveredTwice atomic.Int64

	mu     sync.Mutex
	subs   map[*troubledSub]struct{}
	closed bool
}

var _ messaging.Broker = (*TroubledBroker)(nil)

// NewTroubledBroker wraps inner.
func NewTroubledBroker(inner messaging.Broker, cfg TroubleConfig) (*TroubledBroker, error) {
	if inner == nil {
		return nil, errors.New("shop: NewTroubledBroker: nil broker")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.MaxDelay == 0 {
		cfg.MaxDelay = time.Second
	}
	return &TroubledBroker{
		inner: inner, cfg: cfg,
		rnd:  rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x5deece66d)),
		subs: map[*troubledSub]struct{}{},
	}, nil
}

// Stats returns the counts so far.
func (b *TroubledBroker) Stats() TroubleStats {
	return TroubleStats{
		Published: b.published.Load(), PublishedTwice: b.publishedTwice.Load(),
		Delivered: b.delivered.Load(), Delayed: b.delayed.Load(), DelayCut: b.delayCut.Load(),
		DeliveredTwice: b.deliveredTwice.Load(),
	}
}

// chance draws a number in [0, 1) and reports whether it is below p.
func (b *TroubledBroker) chance(p float64) bool {
	if p <= 0 {
		return false
	}
	b.rndMu.Lock()
	defer b.rndMu.Unlock()
	return b.rnd.Float64() < p
}

// pause draws a pause in (0, MaxDelay].
func (b *TroubledBroker) pause() time.Duration {
	b.rndMu.Lock()
	defer b.rndMu.Unlock()
	return time.Duration(b.rnd.Int64N(int64(b.cfg.MaxDelay))) + 1
}

// Publish publishes msgs through the inner broker, then publishes again the ones drawn for
// duplication (same IDs), as a relay that crashed before marking them sent would.
func (b *TroubledBroker) Publish(ctx context.Context, msgs ...*messaging.Message) error {
	if err := b.inner.Publish(ctx, msgs...); err != nil {
		return err
	}
	b.published.Add(int64(len(msgs)))
	var again []*messaging.Message
	for _, m := range msgs {
		if b.chance(b.cfg.DuplicatePublish) {
			again = append(again, m)
		}
	}
	if len(again) == 0 {
		return nil
	}
	if err := b.inner.Publish(ctx, again...); err != nil {
		// The originals were accepted; a failed copy is no trouble to report.
		return nil
	}
	b.publishedTwice.Add(int64(len(again)))
	return nil
}

// Subscribe subscribes h through the inner broker, wrapped so its deliveries may be delayed and
// duplicated.
func (b *TroubledBroker) Subscribe(ctx context.Context, cfg messaging.SubscribeConfig, h messaging.Handler) (messaging.Subscription, error) {
	if h == nil {
		return nil, errors.New("shop: troubled broker: nil handler")
	}
	s := &troubledSub{b: b, h: h}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		s.cancel()
		return nil, errors.New("shop: troubled broker: closed")
	}
	b.subs[s] = struct{}{}
	b.mu.Unlock()
	inner, err := b.inner.Subscribe(ctx, cfg, s.handle)
	if err != nil {
		b.forget(s)
		s.cancel()
		return nil, err
	}
	s.inner = inner
	return s, nil
}

func (b *TroubledBroker) forget(s *troubledSub) {
	b.mu.Lock()
	delete(b.subs, s)
	b.mu.Unlock()
}

// Capabilities are the inner broker's: delays and copies never reorder what the broker orders by
// key, since a delayed delivery holds its place until its handler returns. (Copies are the
// exception a consumer must tolerate anyway.)
func (b *TroubledBroker) Capabilities() messaging.Capabilities { return b.inner.Capabilities() }

// Close closes the subscriptions made through b, within ctx. It does not close the inner broker.
// It is safe to call more than once.
func (b *TroubledBroker) Close(ctx context.Context) error {
	b.mu.Lock()
	b.closed = true
	subs := make([]*troubledSub, 0, len(b.subs))
	for s := range b.subs {
		subs = append(subs, s)
	}
	b.mu.Unlock()
	var errs []error
	for _, s := range subs {
		errs = append(errs, s.Close(ctx))
	}
	return errors.Join(errs...)
}

// troubledSub is a subscription whose handler may be delayed and duplicated.
type troubledSub struct {
	b      *TroubledBroker
	h      messaging.Handler
	inner  messaging.Subscription
	ctx    context.Context // ends the copies still waiting to be delivered
	cancel context.CancelFunc
	copies sync.WaitGroup
	once   sync.Once
	err    error
}

func (s *troubledSub) handle(ctx context.Context, msg *messaging.Message) error {
	b := s.b
	b.delivered.Add(1)
	if b.chance(b.cfg.Delay) {
		b.delayed.Add(1)
		t := time.NewTimer(b.pause())
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			b.delayCut.Add(1)
			return fmt.Errorf("shop: delayed delivery cut short: %w", ctx.Err())
		case <-s.ctx.Done():
			t.Stop()
			b.delayCut.Add(1)
			return fmt.Errorf("shop: delayed delivery cut short: %w", context.Canceled)
		}
	}
	if b.chance(b.cfg.DuplicateDelivery) {
		s.deliverCopy(msg)
	}
	return s.h(ctx, msg)
}

// deliverCopy hands a copy of msg to the handler again after a pause, unless the subscription is
// closed first. Its result is dropped: the broker already decided on the original.
func (s *troubledSub) deliverCopy(msg *messaging.Message) {
	cp := *msg
	cp.Attempt = msg.Attempt + 1
	cp.Headers = make(map[string]string, len(msg.Headers))
	for k, v := range msg.Headers {
		cp.Headers[k] = v
	}
	cp.Payload = append([]byte(nil), msg.Payload...)
	d := s.b.pause()
	s.copies.Add(1)
	go func() {
		defer s.copies.Done()
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
		case <-s.ctx.Done():
			return
		}
		s.b.deliveredTwice.Add(1)
		_ = s.h(s.ctx, &cp)
	}()
}

// Close closes the inner subscription (handlers in flight drain within ctx, as the broker does),
// then ends the copies still waiting and waits for the ones running.
func (s *troubledSub) Close(ctx context.Context) error {
	s.once.Do(func() {
		if s.inner != nil {
			s.err = s.inner.Close(ctx)
		}
		s.cancel()
		s.copies.Wait()
		s.b.forget(s)
	})
	return s.err
}

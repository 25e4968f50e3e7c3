package natsbus

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/faultline-dev/faultline/messaging"
)

// ackTimeout bounds the wait for the server to confirm an acknowledgement or a dead-letter
// publish after the handler returned (the handler's context may be cancelled by then).
const ackTimeout = 5 * time.Second

// Subscribe creates or updates the group's durable pull consumer and starts fetching. It returns
// once the consumer exists, so messages published afterwards reach the group.
func (b *Bus) Subscribe(ctx context.Context, cfg messaging.SubscribeConfig, h messaging.Handler) (messaging.Subscription, error) {
	cfg, err := cfg.WithDefaults()
	if err != nil {
		return nil, err
	}
	if h == nil {
		return nil, errors.New("natsbus: nil handler")
	}
	if b.isClosed() {
		return nil, ErrClosed
	}
	stream, err := b.stream(ctx, cfg.Topic)
	if err != nil {
		return nil, err
	}
	cons, err := b.consumer(ctx, stream, cfg)
	if err != nil {
		return nil, err
	}

	s := &subscription{
		bus:      b,
		cfg:      cfg,
		h:        h,
		cons:     cons,
		slots:    make(chan struct{}, cfg.Concurrency),
		prefetch: b.prefetch(cfg.Concurrency),
		done:     make(chan struct{}),
	}
	s.stopCtx, s.stop = context.WithCancel(context.Background())
	s.handlerCtx, s.cancelHandlers = context.WithCancel(context.Background())

	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil, ErrClosed
	}
	b.subs[s] = struct{}{}
	b.mu.Unlock()

	go s.fetchLoop()
	return s, nil
}

// consumer creates the group's durable consumer (DeliverPolicy "new") or updates the settings a
// subscription may change on an existing one (AckWait, MaxAckPending).
func (b *Bus) consumer(ctx context.Context, stream string, cfg messaging.SubscribeConfig) (jetstream.Consumer, error) {
	name := ConsumerName(cfg.Topic, cfg.Group)
	for range 3 {
		c, err := b.js.Consumer(ctx, stream, name)
		if err == nil {
			cc := c.CachedInfo().Config
			want := cc
			want.AckWait = cfg.AckWait
			want.MaxAckPending = b.maxAckPending(cc.MaxAckPending)
			if want.AckWait == cc.AckWait && want.MaxAckPending == cc.MaxAckPending {
				return c, nil
			}
			c, err = b.js.UpdateConsumer(ctx, stream, want)
			if err != nil {
				return nil, fmt.Errorf("natsbus: updating consumer %s on %s: %w", name, stream, err)
			}
			return c, nil
		}
		if !errors.Is(err, jetstream.ErrConsumerNotFound) {
			return nil, fmt.Errorf("natsbus: looking up consumer %s on %s: %w", name, stream, err)
		}
		c, err = b.js.CreateConsumer(ctx, stream, jetstream.ConsumerConfig{
			Durable:       name,
			Description:   fmt.Sprintf("faultline group %q on %q", cfg.Group, cfg.Topic),
			FilterSubject: cfg.Topic,
			DeliverPolicy: jetstream.DeliverNewPolicy,
			AckPolicy:     jetstream.AckExplicitPolicy,
			AckWait:       cfg.AckWait,
			MaxDeliver:    -1,
			MaxAckPending: b.maxAckPending(0),
		})
		if err == nil {
			return c, nil
		}
		if !errors.Is(err, jetstream.ErrConsumerExists) {
			return nil, fmt.Errorf("natsbus: creating consumer %s on %s: %w", name, stream, err)
		}
		// Another subscription of the group created it with other settings: update it.
	}
	return nil, fmt.Errorf("natsbus: no consumer %s on %s after 3 tries", name, stream)
}

// maxAckPending is 1 with OrderedByKey; otherwise the current value, or 1000 (the server's
// default) in place of 0 or of the 1 an ordered Bus left.
func (b *Bus) maxAckPending(cur int) int {
	if b.cfg.OrderedByKey {
		return 1
	}
	if cur == 0 || cur == 1 {
		return 1000
	}
	return cur
}

type subscription struct {
	bus   *Bus
	cfg   messaging.SubscribeConfig
	h     messaging.Handler
	cons  jetstream.Consumer
	slots chan struct{} // one token per running handler
	// prefetch is how many messages the pull keeps buffered ahead of the handlers.
	prefetch int

	stopCtx        context.Context // ends fetching
	stop           context.CancelFunc
	handlerCtx     context.Context // ends the handlers after the drain deadline
	cancelHandlers context.CancelFunc
	handlers       sync.WaitGroup
	done           chan struct{} // closed when fetchLoop has returned
	once           sync.Once
}

// fetchLoop keeps one continuous pull open (JetStream's Messages iterator, which re-pulls as its
// buffer drains instead of one request and reply inbox per fetch) and starts a handler for each
// message once a handler slot is free, until the subscription stops. The iterator is renewed
// after a reconnect and after errors.
func (s *subscription) fetchLoop() {
	defer close(s.done)
	backoff := 50 * time.Millisecond
	for s.stopCtx.Err() == nil {
		err := s.pull()
		if s.stopCtx.Err() != nil {
			return
		}
		if err != nil {
			// Server or connection trouble: back off, then pull again.
			select {
			case <-time.After(backoff):
			case <-s.stopCtx.Done():
				return
			}
			backoff = min(backoff*2, 2*time.Second)
			continue
		}
		backoff = 50 * time.Millisecond
	}
}

// pull runs one message iterator until it ends (stop, reconnect or error).
func (s *subscription) pull() error {
	iter, err := s.cons.Messages(
		jetstream.PullMaxMessages(s.prefetch),
		jetstream.PullExpiry(max(s.bus.cfg.FetchWait, time.Second)), // JetStream's minimum
	)
	if err != nil {
		return err
	}
	// Stop the iterator on Close and on a reconnect (pull requests made before it are gone);
	// Drain lets the messages already buffered come out of Next, to be nacked below.
	stopOnClose := context.AfterFunc(s.stopCtx, iter.Drain)
	defer stopOnClose()
	stopOnReconnect := context.AfterFunc(s.bus.generation(), iter.Drain)
	defer stopOnReconnect()
	defer iter.Stop()
	for {
		// A free slot first, so a message taken from the buffer starts at once.
		select {
		case s.slots <- struct{}{}:
		case <-s.stopCtx.Done():
			s.nakRest(iter)
			return nil
		}
		m, err := iter.Next()
		if err != nil {
			<-s.slots
			if errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				return nil
			}
			return err
		}
		if s.stopCtx.Err() != nil {
			<-s.slots
			_ = m.Nak() // stopping: let another member of the group have it now
			s.nakRest(iter)
			return nil
		}
		s.handlers.Add(1)
		go s.handle(m)
	}
}

// nakRest nacks the messages still buffered in a draining iterator, so other members of the group
// get them at once instead of after AckWait.
func (s *subscription) nakRest(iter jetstream.MessagesContext) {
	iter.Drain()
	for {
		m, err := iter.Next()
		if err != nil {
			return
		}
		_ = m.Nak()
	}
}

// handle runs the handler for one delivery and acknowledges it as messaging.Decide says.
func (s *subscription) handle(m jetstream.Msg) {
	defer func() { <-s.slots }()
	defer s.handlers.Done()

	md, err := m.Metadata()
	if err != nil {
		_ = m.Term() // not a JetStream delivery: nothing sensible to do with it
		return
	}
	msg := toMessage(m, md)
	cfg := s.cfg

	var d messaging.Decision
	if msg.Attempt > cfg.MaxDeliveries {
		// The previous MaxDeliveries deliveries were never acknowledged (handler past AckWait,
		// consumer crashed): dead-letter without running the handler again.
		d = messaging.Decision{DeadLetter: true, Reason: fmt.Sprintf("delivered %d times without an acknowledgement", msg.Attempt-1)}
	} else {
		d = messaging.Decide(cfg, msg.Attempt, s.run(msg))
	}

	ctx, cancel := context.WithTimeout(context.Background(), ackTimeout)
	defer cancel()
	switch {
	case d.Ack:
		_ = m.DoubleAck(ctx)
	case d.DeadLetter:
		dl := messaging.DeadLetterMessage(cfg, msg, d.Reason)
		if err := s.bus.publish(ctx, dl, dl.ID+"."+cfg.Group, true); err != nil {
			// Not dead-lettered: keep the original and try again on its next delivery.
			_ = m.NakWithDelay(cfg.RedeliveryDelay(msg.Attempt))
			return
		}
		_ = m.Term()
	case d.Delay > 0:
		_ = m.NakWithDelay(d.Delay)
	default:
		_ = m.Nak()
	}
}

// run calls the handler, turning a panic into an error (a plain error: redelivered later).
func (s *subscription) run(msg *messaging.Message) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("natsbus: handler panicked: %v", r)
		}
	}()
	return s.h(messaging.ExtractTrace(s.handlerCtx, msg), msg)
}

// toMessage converts a delivery.
func toMessage(m jetstream.Msg, md *jetstream.MsgMetadata) *messaging.Message {
	msg := &messaging.Message{
		Topic:       m.Subject(),
		Payload:     m.Data(),
		Attempt:     attemptOf(md.NumDelivered),
		PublishedAt: md.Timestamp,
	}
	var dedupID string
	for k, vs := range m.Headers() {
		if len(vs) == 0 {
			continue
		}
		switch k {
		case jetstream.MsgIDHeader:
			dedupID = vs[0]
		case HeaderID:
			msg.ID = vs[0]
		case HeaderKey:
			msg.Key = vs[0]
		default:
			if msg.Headers == nil {
				msg.Headers = make(map[string]string)
			}
			msg.Headers[k] = vs[0]
		}
	}
	if msg.ID == "" {
		msg.ID = dedupID
	}
	if msg.ID == "" { // published without an ID (a plain NATS client): the stream position
		msg.ID = md.Stream + ":" + strconv.FormatUint(md.Sequence.Stream, 10)
	}
	return msg
}

// attemptOf turns JetStream's delivery count into Message.Attempt: the client reads it from the
// reply subject as 0 when malformed (or wrapped past 64 bits when too long), so 0 counts as the
// first delivery and a count beyond int saturates at math.MaxInt (dead-lettered at once) rather
// than turning negative.
func attemptOf(numDelivered uint64) int {
	switch {
	case numDelivered == 0:
		return 1
	case numDelivered > math.MaxInt:
		return math.MaxInt
	}
	return int(numDelivered)
}

// Close stops fetching, waits for the running handlers until ctx ends, then cancels their
// contexts and returns ctx's error. Deliveries not acknowledged go to the group's other members
// after AckWait (or at once, for those fetched but not started). The durable consumer stays.
func (s *subscription) Close(ctx context.Context) error {
	s.once.Do(s.stop)
	<-s.done
	idle := make(chan struct{})
	go func() { s.handlers.Wait(); close(idle) }()
	var err error
	select {
	case <-idle:
	case <-ctx.Done():
		s.cancelHandlers()
		err = ctx.Err()
	}
	s.bus.mu.Lock()
	delete(s.bus.subs, s)
	s.bus.mu.Unlock()
	if err == nil {
		s.cancelHandlers() // release the context's resources
	}
	return err
}

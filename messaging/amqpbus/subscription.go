package amqpbus

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"strconv"
	"strings"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/faultline-dev/faultline/messaging"
)

type subscription struct {
	b       *Bus
	cfg     messaging.SubscribeConfig
	h       messaging.Handler
	queue   string // the group's queue
	parking string // the dead-letter topic's parking queue

	started chan error // one value: nil once consuming, or the first setup error

	stopCtx    context.Context // done once Close is called
	stop       context.CancelFunc
	hardCtx    context.Context // handlers' base context, done past the drain deadline
	hardCancel context.CancelFunc
	runDone    chan struct{}

	slots    chan struct{} // one per running handler (abandoned ones included)
	handlers sync.WaitGroup

	mu        sync.Mutex
	abandoned int           // handlers still running whose delivery AckWait already gave back
	wake      chan struct{} // a slot was freed
	pause     chan struct{} // every slot is held by an abandoned handler
}

func newSubscription(b *Bus, cfg messaging.SubscribeConfig, h messaging.Handler) *subscription {
	s := &subscription{
		b:       b,
		cfg:     cfg,
		h:       h,
		queue:   b.cfg.QueuePrefix + cfg.Topic + "." + cfg.Group,
		parking: b.cfg.QueuePrefix + cfg.DeadLetterTopic,
		started: make(chan error, 1),
		runDone: make(chan struct{}),
		slots:   make(chan struct{}, cfg.Concurrency),
		wake:    make(chan struct{}, 1),
		pause:   make(chan struct{}, 1),
	}
	s.stopCtx, s.stop = context.WithCancel(context.Background())
	s.hardCtx, s.hardCancel = context.WithCancel(context.Background())
	return s
}

func poke(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

func (s *subscription) allAbandoned() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.abandoned >= s.cfg.Concurrency
}

// Close stops consuming, waits for the handlers in flight until ctx ends, then closes the channel
// (the server requeues whatever is unacknowledged).
func (s *subscription) Close(ctx context.Context) error {
	s.stop()
	defer s.b.removeSub(s)
	select {
	case <-s.runDone:
		return nil
	case <-ctx.Done():
		s.hardCancel()
		<-s.runDone
		return ctx.Err()
	}
}

func (s *subscription) run() {
	defer close(s.runDone)
	defer s.hardCancel()
	started := false
	report := func(err error) {
		if !started {
			started = true
			s.started <- err
		}
	}
	var ch *amqp.Channel
	delay := s.b.cfg.ReconnectBackoff
	for s.stopCtx.Err() == nil {
		// Paused while every slot is held by a handler that overran AckWait.
		for s.allAbandoned() && s.stopCtx.Err() == nil {
			select {
			case <-s.wake:
			case <-s.stopCtx.Done():
			}
		}
		if s.stopCtx.Err() != nil {
			break
		}
		st, err := s.b.current(s.stopCtx)
		if err != nil {
			if errors.Is(err, ErrClosed) {
				report(err)
				break
			}
			continue
		}
		var deliveries <-chan amqp.Delivery
		var tag string
		ch, deliveries, tag, err = s.setup(st)
		if err != nil {
			if !started {
				report(err)
				return
			}
			select {
			case <-time.After(delay):
			case <-s.stopCtx.Done():
			}
			delay = min(delay*2, s.b.cfg.ReconnectMaxBackoff)
			continue
		}
		delay = s.b.cfg.ReconnectBackoff
		report(nil)
		s.consume(ch, deliveries, tag)
	}
	report(ErrClosed)
	s.drain()
	if ch != nil {
		_ = ch.Close()
	}
}

// drain waits for every handler, or for the hard stop.
func (s *subscription) drain() {
	drained := make(chan struct{})
	go func() {
		s.handlers.Wait()
		close(drained)
	}()
	select {
	case <-drained:
	case <-s.hardCtx.Done():
	}
}

func (s *subscription) queueArgs() amqp.Table {
	args := amqp.Table{}
	if s.b.quorum {
		args[amqp.QueueTypeArg] = amqp.QueueTypeQuorum
	} else {
		args[amqp.QueueTypeArg] = amqp.QueueTypeClassic
	}
	if s.b.cfg.QueueExpires > 0 {
		args[amqp.QueueTTLArg] = s.b.cfg.QueueExpires.Milliseconds()
	}
	return args
}

// setup opens a channel, declares the group's queue (bound to the topic) and the dead-letter
// topic's parking queue, sets the prefetch and starts consuming.
func (s *subscription) setup(st *state) (*amqp.Channel, <-chan amqp.Delivery, string, error) {
	ch, err := st.conn.Channel()
	if err != nil {
		return nil, nil, "", fmt.Errorf("amqpbus: subscribe %s/%s: open channel: %w", s.cfg.Topic, s.cfg.Group, err)
	}
	fail := func(what string, err error) (*amqp.Channel, <-chan amqp.Delivery, string, error) {
		_ = ch.Close()
		return nil, nil, "", fmt.Errorf("amqpbus: subscribe %s/%s: %s: %w", s.cfg.Topic, s.cfg.Group, what, err)
	}
	for _, q := range []struct{ name, key string }{{s.queue, s.cfg.Topic}, {s.parking, s.cfg.DeadLetterTopic}} {
		if _, err := ch.QueueDeclare(q.name, true, false, false, false, s.queueArgs()); err != nil {
			return fail("declare queue "+q.name, err)
		}
		s.b.noteQueue(q.name)
		if err := ch.QueueBind(q.name, q.key, s.b.cfg.Exchange, false, nil); err != nil {
			return fail("bind queue "+q.name, err)
		}
	}
	if err := ch.Qos(s.cfg.Concurrency, 0, false); err != nil {
		return fail("qos", err)
	}
	tag := "faultline-" + messaging.NewID()
	deliveries, err := ch.Consume(s.queue, tag, false, false, false, false, nil)
	if err != nil {
		return fail("consume", err)
	}
	return ch, deliveries, tag, nil
}

// consume dispatches deliveries until the channel closes, the subscription stops (then it
// cancels the consumer and gives back what was not started) or every slot is abandoned (then it
// closes the channel, so the server hands the group's messages to its other consumers).
func (s *subscription) consume(ch *amqp.Channel, deliveries <-chan amqp.Delivery, tag string) {
	for {
		select {
		case d, ok := <-deliveries:
			if !ok {
				return
			}
			s.dispatch(ch, d)
		case <-s.pause:
			if s.allAbandoned() {
				_ = ch.Close()
				for range deliveries {
				}
				return
			}
		case <-s.stopCtx.Done():
			if err := ch.Cancel(tag, false); err != nil {
				// The channel or its connection is gone (a drop): closing it ends the deliveries.
				_ = ch.Close()
			}
			// Give back what was already delivered; stop waiting when Close's deadline passes
			// (a dead connection may never close the deliveries channel).
			for {
				select {
				case d, ok := <-deliveries:
					if !ok {
						return
					}
					_ = d.Nack(false, true)
				case <-s.hardCtx.Done():
					_ = ch.Close()
					return
				}
			}
		}
	}
}

// job is one delivery: waiting for a slot, running, then settled exactly once (by the handler's
// result, or by AckWait giving it back).
type job struct {
	d       amqp.Delivery
	ch      *amqp.Channel
	timer   *time.Timer
	expired chan struct{}

	mu      sync.Mutex
	running bool
	settled bool
}

func (s *subscription) dispatch(ch *amqp.Channel, d amqp.Delivery) {
	j := &job{d: d, ch: ch, expired: make(chan struct{})}
	j.timer = time.AfterFunc(s.cfg.AckWait, func() { s.expire(j) })
wait:
	select {
	case s.slots <- struct{}{}:
	case <-j.expired:
		return
	case <-s.pause:
		// Every slot is held by an abandoned handler: give this one back and let consume stop.
		if s.allAbandoned() {
			if j.claim() {
				j.timer.Stop()
				_ = d.Nack(false, true)
			}
			poke(s.pause)
			return
		}
		goto wait
	case <-s.stopCtx.Done():
		if j.claim() {
			j.timer.Stop()
			_ = d.Nack(false, true)
		}
		return
	}
	j.mu.Lock()
	if j.settled {
		j.mu.Unlock()
		<-s.slots
		return
	}
	j.running = true
	j.mu.Unlock()
	s.handlers.Add(1)
	go s.handle(j)
}

// claim settles j if nobody has; it reports whether the caller did.
func (j *job) claim() bool {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.settled {
		return false
	}
	j.settled = true
	return true
}

// expire gives the delivery back to the queue once AckWait has passed without a result. A handler
// still running keeps its slot; its result is ignored.
func (s *subscription) expire(j *job) {
	j.mu.Lock()
	if j.settled {
		j.mu.Unlock()
		return
	}
	j.settled = true
	running := j.running
	if running {
		s.mu.Lock()
		s.abandoned++
		all := s.abandoned >= s.cfg.Concurrency
		s.mu.Unlock()
		if all {
			poke(s.pause)
		}
	}
	j.mu.Unlock()
	_ = j.d.Nack(false, true)
	if !running {
		close(j.expired)
	}
}

func (s *subscription) handle(j *job) {
	defer s.handlers.Done()
	msg := s.toMessage(j.d)
	err := s.call(messaging.ExtractTrace(s.hardCtx, msg), msg)
	j.timer.Stop()
	j.mu.Lock()
	mine := !j.settled
	j.settled = true
	j.mu.Unlock()
	if mine {
		s.settle(j, msg, err)
	} else {
		s.mu.Lock()
		s.abandoned--
		s.mu.Unlock()
	}
	<-s.slots
	poke(s.wake)
}

func (s *subscription) call(ctx context.Context, msg *messaging.Message) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("amqpbus: handler panic: %v", r)
		}
	}()
	return s.h(ctx, msg)
}

// settle carries out what messaging.Decide says about the handler's result.
func (s *subscription) settle(j *job, msg *messaging.Message, herr error) {
	d := j.d
	if j.ch.IsClosed() {
		// The channel died while the handler ran: RabbitMQ has already requeued the delivery.
		return
	}
	dec := messaging.Decide(s.cfg, msg.Attempt, herr)
	if dec.Ack {
		_ = d.Ack(false)
		return
	}
	ctx, cancel := context.WithTimeout(s.hardCtx, 30*time.Second)
	defer cancel()
	var err error
	switch {
	case dec.DeadLetter:
		dl := messaging.DeadLetterMessage(s.cfg, msg, dec.Reason)
		err = s.b.publish(ctx, []outgoing{{exchange: s.b.cfg.Exchange, key: dl.Topic, msg: toPublishing(dl, nil)}}, true)
	case dec.Delay <= 0 && s.b.quorum:
		// The quorum queue counts this redelivery in x-delivery-count.
		_ = d.Nack(false, true)
		return
	case dec.Delay <= 0:
		// A classic queue does not count: republish with the attempt count, then ack.
		err = s.b.publish(ctx, []outgoing{{key: s.queue, msg: toPublishing(msg, amqp.Table{HeaderAttempt: strconv.Itoa(msg.Attempt)})}}, true)
	default:
		var q string
		q, err = s.declareRetryQueue(j.ch, dec.Delay)
		if err == nil {
			err = s.b.publish(ctx, []outgoing{{key: q, msg: toPublishing(msg, amqp.Table{HeaderAttempt: strconv.Itoa(msg.Attempt)})}}, true)
		}
	}
	if err != nil {
		// Could not hand it on: give it back to the queue now.
		_ = d.Nack(false, true)
		return
	}
	_ = d.Ack(false)
}

// retryTTL rounds a delay up to whole milliseconds with at most 4 significant bits, so arbitrary
// delays share a bounded set of retry queues (at most 12.5% longer than asked).
func retryTTL(delay time.Duration) int64 {
	ms := int64((delay + time.Millisecond - 1) / time.Millisecond)
	if ms < 16 {
		return max(ms, 1)
	}
	shift := bits.Len64(uint64(ms)) - 4
	return (ms + 1<<shift - 1) >> shift << shift
}

// declareRetryQueue declares the group's retry queue for delay: messages expire after the delay
// and are dead-lettered through the default exchange straight back to the group's queue. The
// queue deletes itself a minute after its last declaration outlives its TTL; each use re-declares
// it.
func (s *subscription) declareRetryQueue(ch *amqp.Channel, delay time.Duration) (string, error) {
	ttl := retryTTL(delay)
	name := s.queue + ".retry." + strconv.FormatInt(ttl, 10) + "ms"
	args := amqp.Table{
		amqp.QueueTypeArg:           amqp.QueueTypeClassic,
		amqp.QueueMessageTTLArg:     ttl,
		"x-dead-letter-exchange":    "",
		"x-dead-letter-routing-key": s.queue,
		amqp.QueueTTLArg:            ttl + time.Minute.Milliseconds(),
	}
	if _, err := ch.QueueDeclare(name, true, false, false, false, args); err != nil {
		return "", fmt.Errorf("amqpbus: declare retry queue %s: %w", name, err)
	}
	s.b.noteQueue(name)
	return name, nil
}

// toMessage converts a delivery, computing the attempt number.
func (s *subscription) toMessage(d amqp.Delivery) *messaging.Message {
	return deliveryMessage(d, s.cfg.Topic, s.b.quorum)
}

// deliveryMessage converts a delivery consumed from topic's queue (a quorum queue, or a classic
// one), computing the attempt number: the deliveries before a republish (HeaderAttempt) plus
// those the queue counted (x-delivery-count, or Redelivered on a classic queue) plus one. Header
// values of any AMQP type are accepted; counts that are malformed, negative or out of range count
// as zero, so Attempt is always at least 1 (and saturates instead of overflowing).
func deliveryMessage(d amqp.Delivery, topic string, quorum bool) *messaging.Message {
	msg := &messaging.Message{ID: d.MessageId, Topic: topic, Payload: d.Body}
	prior := 0
	count := 0
	for k, v := range d.Headers {
		switch {
		case k == HeaderKey:
			msg.Key = headerString(v)
			continue
		case k == HeaderAttempt:
			prior = headerCount(headerString(v))
			continue
		case k == "x-delivery-count":
			count = headerCount(v)
			continue
		case k == "x-death" || strings.HasPrefix(k, "x-first-death-") || strings.HasPrefix(k, "x-last-death-"):
			continue
		}
		if msg.Headers == nil {
			msg.Headers = make(map[string]string, len(d.Headers))
		}
		msg.Headers[k] = headerString(v)
	}
	if !quorum && d.Redelivered {
		count = 1 // a classic queue only tells "delivered before"
	}
	msg.Attempt = prior + min(count, math.MaxInt-1-prior) + 1
	return msg
}

// headerCount reads a delivery count, prior attempts or deliveries (an integer of any AMQP type, or
// a decimal string), as a non-negative int: anything else, negative or beyond int counts as 0.
func headerCount(v any) int {
	n := headerInt(v)
	if n <= 0 || uint64(n) > math.MaxInt {
		return 0
	}
	return int(n)
}

func headerString(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case []byte:
		return string(v)
	case nil:
		return ""
	default:
		return fmt.Sprint(v)
	}
}

func headerInt(v any) int64 {
	switch v := v.(type) {
	case int:
		return int64(v)
	case int8:
		return int64(v)
	case int16:
		return int64(v)
	case int32:
		return int64(v)
	case int64:
		return v
	case uint:
		return int64(v)
	case uint8:
		return int64(v)
	case uint16:
		return int64(v)
	case uint32:
		return int64(v)
	case uint64:
		return int64(v)
	case string:
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return 0 // ParseInt returns ±MaxInt64 with the error for an out-of-range number
		}
		return n
	}
	return 0
}

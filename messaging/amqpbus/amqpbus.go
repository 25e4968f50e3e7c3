// Package amqpbus is faultline's messaging.Broker on RabbitMQ (AMQP 0-9-1, amqp091-go).
//
// Topology: topics are routing keys on one durable topic exchange (Config.Exchange); a consumer
// group is a durable queue "<topic>.<group>" bound to its topic (a quorum queue when the server
// has them, else classic). Publish waits for a publisher confirm per message and treats a nack or
// a basic.return (mandatory flag: no queue bound to the topic) as an error. Delayed redelivery
// goes through per-delay retry queues (queue TTL, dead-lettered back to the group's queue through
// the default exchange). Dead letters are published, confirmed, to the dead-letter topic, where a
// durable parking queue named after that topic keeps them. The connection is watched and
// re-established with backoff; subscriptions re-declare their topology and resume. See
// docs/messaging/rabbitmq.md.
package amqpbus

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/faultline-dev/faultline/messaging"
)

// Config configures a Bus.
type Config struct {
	// URL is the AMQP URL. Empty means DefaultURL.
	URL string
	// Exchange is the topic exchange every topic is a routing key on. Empty means "faultline".
	Exchange string
	// QueuePrefix is prepended to every queue name the bus declares (group, retry and parking
	// queues). Empty by default.
	QueuePrefix string
	// QueueType is "quorum", "classic" or empty: quorum when the server is RabbitMQ 3.8 or later.
	// Quorum queues count deliveries themselves (x-delivery-count), so a message redelivered
	// after a consumer crash is counted exactly; on classic queues the bus counts attempts in a
	// header and can only tell "redelivered at least once" after a crash.
	QueueType string
	// QueueExpires, when positive, deletes the bus's group and parking queues after they have
	// been unused (no consumer, not re-declared) that long (x-expires). For tests; zero keeps them.
	QueueExpires time.Duration
	// AllowUnroutable makes Publish succeed for a message that no queue is bound to (it is
	// dropped). By default such a message is returned by the server and Publish fails with
	// ErrUnroutable.
	AllowUnroutable bool
	// ReconnectBackoff is the first delay between reconnection attempts; it doubles up to
	// ReconnectMaxBackoff. Zero means 100 ms and 5 s.
	ReconnectBackoff    time.Duration
	ReconnectMaxBackoff time.Duration
	// Heartbeat is the AMQP heartbeat interval. Zero means 10 s.
	Heartbeat time.Duration
}

// DefaultURL is the broker Open dials when Config.URL is empty.
const DefaultURL = "amqp://guest:guest@127.0.0.1:5672/"

// Headers the bus adds to the AMQP message.
const (
	// HeaderKey carries Message.Key.
	HeaderKey = "faultline-key"
	// HeaderAttempt carries the number of deliveries a message had before it was republished
	// (to a retry queue, or straight back to a classic queue).
	HeaderAttempt = "faultline-attempt"
)

// ErrUnroutable is returned by Publish for a message that no queue is bound to.
var ErrUnroutable = errors.New("amqpbus: message unroutable (no queue bound to its topic)")

// ErrClosed is returned after Close.
var ErrClosed = errors.New("amqpbus: closed")

// Bus is a messaging.Broker on RabbitMQ.
type Bus struct {
	cfg    Config
	quorum bool

	mu       sync.Mutex
	st       *state        // nil while disconnected
	ready    chan struct{} // closed when st is set
	closed   bool
	subs     map[*subscription]struct{}
	queues   map[string]struct{}
	netConn  net.Conn
	done     chan struct{} // closed by Close
	loopDone chan struct{}

	pubMu sync.Mutex // serializes publishing: one batch in flight, so returns belong to it

	reconnects atomic.Int64 // successful reconnections, for tests
}

// state is one connection with its confirm-mode publishing channel.
type state struct {
	conn      *amqp.Connection
	pub       *amqp.Channel
	connClose chan *amqp.Error
	pubClose  chan *amqp.Error
	barrier   chan chan struct{}
	retDone   chan struct{} // closed when the returns collector ends (with the channel)

	retMu    sync.Mutex
	returned map[string]amqp.Return // by message ID
}

var _ messaging.Broker = (*Bus)(nil)

// Open connects to RabbitMQ, declares the exchange and starts watching the connection.
func Open(ctx context.Context, cfg Config) (*Bus, error) {
	if cfg.URL == "" {
		cfg.URL = DefaultURL
	}
	if cfg.Exchange == "" {
		cfg.Exchange = "faultline"
	}
	if cfg.ReconnectBackoff <= 0 {
		cfg.ReconnectBackoff = 100 * time.Millisecond
	}
	if cfg.ReconnectMaxBackoff <= 0 {
		cfg.ReconnectMaxBackoff = 5 * time.Second
	}
	if cfg.Heartbeat <= 0 {
		cfg.Heartbeat = 10 * time.Second
	}
	switch cfg.QueueType {
	case "", "quorum", "classic":
	default:
		return nil, fmt.Errorf("amqpbus: Config.QueueType %q: want quorum, classic or empty", cfg.QueueType)
	}
	b := &Bus{
		cfg:      cfg,
		ready:    make(chan struct{}),
		subs:     map[*subscription]struct{}{},
		queues:   map[string]struct{}{},
		done:     make(chan struct{}),
		loopDone: make(chan struct{}),
	}
	st, err := b.connect(ctx)
	if err != nil {
		return nil, err
	}
	switch cfg.QueueType {
	case "quorum":
		b.quorum = true
	case "classic":
	default:
		b.quorum = serverAtLeast(st.conn.Properties, 3, 8)
	}
	b.setUp(st)
	go b.supervise()
	return b, nil
}

func serverAtLeast(props amqp.Table, major, minor int) bool {
	v, _ := props["version"].(string)
	parts := strings.SplitN(v, ".", 3)
	if len(parts) < 2 {
		return false
	}
	ma, err1 := strconv.Atoi(parts[0])
	mi, err2 := strconv.Atoi(parts[1])
	if err1 != nil || err2 != nil {
		return false
	}
	return ma > major || ma == major && mi >= minor
}

// connect dials, opens the publishing channel in confirm mode and declares the exchange. It
// retries nothing: ctx bounds the dial.
func (b *Bus) connect(ctx context.Context) (*state, error) {
	timeout := 30 * time.Second
	if dl, ok := ctx.Deadline(); ok {
		timeout = max(time.Until(dl), time.Millisecond)
	}
	var nc net.Conn
	var ncMu sync.Mutex
	conn, err := amqp.DialConfig(b.cfg.URL, amqp.Config{
		Heartbeat: b.cfg.Heartbeat,
		Locale:    "en_US",
		Dial: func(network, addr string) (net.Conn, error) {
			c, err := net.DialTimeout(network, addr, timeout)
			if err != nil {
				return nil, err
			}
			_ = c.SetDeadline(time.Now().Add(timeout))
			ncMu.Lock()
			nc = c
			ncMu.Unlock()
			return c, nil
		},
	})
	if err != nil {
		return nil, fmt.Errorf("amqpbus: dial: %w", err)
	}
	st := &state{
		conn:     conn,
		barrier:  make(chan chan struct{}),
		retDone:  make(chan struct{}),
		returned: map[string]amqp.Return{},
	}
	st.connClose = conn.NotifyClose(make(chan *amqp.Error, 1))
	fail := func(err error) (*state, error) {
		_ = conn.Close()
		return nil, err
	}
	pub, err := conn.Channel()
	if err != nil {
		return fail(fmt.Errorf("amqpbus: open channel: %w", err))
	}
	st.pub = pub
	st.pubClose = pub.NotifyClose(make(chan *amqp.Error, 1))
	if err := pub.Confirm(false); err != nil {
		return fail(fmt.Errorf("amqpbus: confirm mode: %w", err))
	}
	returns := pub.NotifyReturn(make(chan amqp.Return))
	go st.collectReturns(returns)
	if err := pub.ExchangeDeclare(b.cfg.Exchange, amqp.ExchangeTopic, true, false, false, false, nil); err != nil {
		return fail(fmt.Errorf("amqpbus: declare exchange %q: %w", b.cfg.Exchange, err))
	}
	ncMu.Lock()
	b.mu.Lock()
	b.netConn = nc
	b.mu.Unlock()
	ncMu.Unlock()
	return st, nil
}

// collectReturns records basic.return frames by message ID. The reader goroutine hands a return
// over (synchronously) before it processes the confirm that follows it, so once a confirm is
// seen, a barrier round trip through this goroutine guarantees the return is recorded.
func (st *state) collectReturns(returns chan amqp.Return) {
	defer close(st.retDone)
	for {
		select {
		case r, ok := <-returns:
			if !ok {
				return
			}
			st.retMu.Lock()
			st.returned[r.MessageId] = r
			st.retMu.Unlock()
		case reply := <-st.barrier:
			close(reply)
		}
	}
}

func (st *state) sync(ctx context.Context) error {
	reply := make(chan struct{})
	select {
	case st.barrier <- reply:
		select {
		case <-reply:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	case <-st.retDone: // every return is recorded
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (st *state) takeReturn(id string) (amqp.Return, bool) {
	st.retMu.Lock()
	defer st.retMu.Unlock()
	r, ok := st.returned[id]
	delete(st.returned, id)
	return r, ok
}

// setUp installs st as the current connection, unless the bus is closed.
func (b *Bus) setUp(st *state) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return false
	}
	b.st = st
	close(b.ready)
	return true
}

// supervise reconnects whenever the connection or the publishing channel closes.
func (b *Bus) supervise() {
	defer close(b.loopDone)
	for {
		b.mu.Lock()
		st := b.st
		b.mu.Unlock()
		select {
		case <-st.connClose:
		case <-st.pubClose:
		case <-b.done:
			return
		}
		b.mu.Lock()
		if b.closed {
			b.mu.Unlock()
			return
		}
		b.st = nil
		b.ready = make(chan struct{})
		b.mu.Unlock()
		_ = st.conn.Close()
		delay := b.cfg.ReconnectBackoff
		for {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			nst, err := b.connect(ctx)
			cancel()
			if err == nil {
				if !b.setUp(nst) {
					_ = nst.conn.Close()
					return
				}
				b.reconnects.Add(1)
				break
			}
			select {
			case <-time.After(delay):
			case <-b.done:
				return
			}
			delay = min(delay*2, b.cfg.ReconnectMaxBackoff)
		}
	}
}

// current waits until the bus is connected (bounded by ctx) and returns the connection state.
func (b *Bus) current(ctx context.Context) (*state, error) {
	for {
		b.mu.Lock()
		st, ready, closed := b.st, b.ready, b.closed
		b.mu.Unlock()
		if closed {
			return nil, ErrClosed
		}
		if st != nil && !st.conn.IsClosed() && !st.pub.IsClosed() {
			return st, nil
		}
		if st != nil { // closed but not noticed yet by supervise
			select {
			case <-time.After(10 * time.Millisecond):
			case <-ctx.Done():
				return nil, ctx.Err()
			}
			continue
		}
		select {
		case <-ready:
		case <-b.done:
			return nil, ErrClosed
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// DropConnection closes the underlying network connection abruptly, as a network failure
// would. The bus reconnects by itself; it is a hook for failure tests.
func (b *Bus) DropConnection() {
	b.mu.Lock()
	nc := b.netConn
	b.mu.Unlock()
	if nc != nil {
		_ = nc.Close()
	}
}

// Queues returns the names of the queues this bus declared (group, retry and parking queues),
// so that tests can delete them.
func (b *Bus) Queues() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]string, 0, len(b.queues))
	for q := range b.queues {
		out = append(out, q)
	}
	return out
}

func (b *Bus) noteQueue(name string) {
	b.mu.Lock()
	b.queues[name] = struct{}{}
	b.mu.Unlock()
}

// Capabilities: RabbitMQ's competing consumers do not keep per-key order.
func (b *Bus) Capabilities() messaging.Capabilities {
	return messaging.Capabilities{OrderedByKey: false}
}

// Publish publishes msgs to their topics (routing keys on the exchange) and returns once the
// broker confirmed every one. A connection lost mid-way is waited out (bounded by ctx) and the
// unconfirmed messages are published again, with the same IDs.
func (b *Bus) Publish(ctx context.Context, msgs ...*messaging.Message) error {
	pubs := make([]outgoing, 0, len(msgs))
	for _, m := range msgs {
		if err := messaging.Prepare(m); err != nil {
			return err
		}
		messaging.InjectTrace(ctx, m)
		pubs = append(pubs, outgoing{exchange: b.cfg.Exchange, key: m.Topic, msg: toPublishing(m, nil)})
	}
	return b.publish(ctx, pubs, !b.cfg.AllowUnroutable)
}

type outgoing struct {
	exchange, key string
	msg           amqp.Publishing
}

func toPublishing(m *messaging.Message, extra amqp.Table) amqp.Publishing {
	h := make(amqp.Table, len(m.Headers)+len(extra)+1)
	for k, v := range m.Headers {
		h[k] = v
	}
	if m.Key != "" {
		h[HeaderKey] = m.Key
	}
	for k, v := range extra {
		h[k] = v
	}
	return amqp.Publishing{
		Headers:      h,
		DeliveryMode: amqp.Persistent,
		MessageId:    m.ID,
		Timestamp:    time.Now(),
		Body:         m.Payload,
	}
}

// errFatal marks a publish error that retrying will not fix.
type errFatal struct{ err error }

func (e errFatal) Error() string { return e.err.Error() }
func (e errFatal) Unwrap() error { return e.err }

func (b *Bus) publish(ctx context.Context, pubs []outgoing, mandatory bool) error {
	b.pubMu.Lock()
	defer b.pubMu.Unlock()
	for len(pubs) > 0 {
		st, err := b.current(ctx)
		if err != nil {
			return fmt.Errorf("amqpbus: publish: %w", err)
		}
		n, err := st.publishBatch(ctx, pubs, mandatory)
		pubs = pubs[n:]
		if err == nil {
			continue
		}
		var fatal errFatal
		if errors.As(err, &fatal) || ctx.Err() != nil {
			return err
		}
		// The channel or connection failed: wait for the reconnect and publish the rest again.
		select {
		case <-time.After(10 * time.Millisecond):
		case <-ctx.Done():
			return fmt.Errorf("amqpbus: publish: %w (after %v)", ctx.Err(), err)
		}
	}
	return nil
}

// publishBatch publishes pubs on the confirm channel and waits for their confirms. It returns how
// many leading messages are done (confirmed) and the first error.
func (st *state) publishBatch(ctx context.Context, pubs []outgoing, mandatory bool) (int, error) {
	st.retMu.Lock()
	clear(st.returned) // returns of earlier batches that gave up waiting
	st.retMu.Unlock()
	confirms := make([]*amqp.DeferredConfirmation, 0, len(pubs))
	var sendErr error
	for _, p := range pubs {
		dc, err := st.pub.PublishWithDeferredConfirmWithContext(ctx, p.exchange, p.key, mandatory, false, p.msg)
		if err != nil {
			sendErr = err
			break
		}
		confirms = append(confirms, dc)
	}
	done := 0
	var firstErr error
	for i, dc := range confirms {
		ok, err := dc.WaitContext(ctx)
		if err != nil {
			return done, fmt.Errorf("amqpbus: publish %q: waiting for confirm: %w", pubs[i].msg.MessageId, err)
		}
		if !ok {
			if st.conn.IsClosed() || st.pub.IsClosed() {
				// Closing the channel nacks every outstanding confirm: not the broker's nack.
				if firstErr == nil {
					firstErr = fmt.Errorf("amqpbus: publish %q: channel closed before the confirm", pubs[i].msg.MessageId)
				}
				break
			}
			if firstErr == nil {
				firstErr = errFatal{fmt.Errorf("amqpbus: publish %q: nacked by the broker", pubs[i].msg.MessageId)}
			}
		}
		if firstErr == nil {
			done = i + 1
		}
	}
	if mandatory && done > 0 {
		if err := st.sync(ctx); err != nil {
			return 0, fmt.Errorf("amqpbus: publish: waiting for returns: %w", err)
		}
		for i := range done {
			if r, ok := st.takeReturn(pubs[i].msg.MessageId); ok {
				return i, errFatal{fmt.Errorf("%w: %q to %q: %d %s", ErrUnroutable, r.MessageId, r.RoutingKey, r.ReplyCode, r.ReplyText)}
			}
		}
	}
	if firstErr != nil {
		return done, firstErr
	}
	if sendErr != nil {
		return done, fmt.Errorf("amqpbus: publish: %w", sendErr)
	}
	return done, nil
}

// Subscribe declares the group's queue, binds it to the topic and starts consuming.
func (b *Bus) Subscribe(ctx context.Context, cfg messaging.SubscribeConfig, h messaging.Handler) (messaging.Subscription, error) {
	cfg, err := cfg.WithDefaults()
	if err != nil {
		return nil, err
	}
	if h == nil {
		return nil, errors.New("amqpbus: nil handler")
	}
	s := newSubscription(b, cfg, h)
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil, ErrClosed
	}
	b.subs[s] = struct{}{}
	b.mu.Unlock()
	go s.run()
	select {
	case err := <-s.started:
		if err != nil {
			_ = s.Close(context.Background())
			return nil, err
		}
		return s, nil
	case <-ctx.Done():
		_ = s.Close(context.Background())
		return nil, ctx.Err()
	}
}

func (b *Bus) removeSub(s *subscription) {
	b.mu.Lock()
	delete(b.subs, s)
	b.mu.Unlock()
}

// Close closes every subscription, draining in-flight handlers until ctx ends, then the
// connection.
func (b *Bus) Close(ctx context.Context) error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	subs := make([]*subscription, 0, len(b.subs))
	for s := range b.subs {
		subs = append(subs, s)
	}
	b.mu.Unlock()
	var errs []error
	var wg sync.WaitGroup
	var emu sync.Mutex
	for _, s := range subs {
		wg.Go(func() {
			if err := s.Close(ctx); err != nil {
				emu.Lock()
				errs = append(errs, err)
				emu.Unlock()
			}
		})
	}
	wg.Wait()
	b.mu.Lock()
	b.closed = true
	close(b.done) // a publish waiting for a reconnect gives up with ErrClosed
	b.mu.Unlock()
	b.pubMu.Lock() // a publish in progress finishes (bounded by its own ctx)
	b.mu.Lock()
	st := b.st
	b.mu.Unlock()
	b.pubMu.Unlock()
	if st != nil {
		_ = st.conn.Close()
	}
	<-b.loopDone
	if len(errs) > 0 {
		return errs[0]
	}
	return nil
}

// Package natsbus is faultline's messaging.Broker on NATS JetStream.
//
// With Config.URL empty, Open starts an embedded, in-process nats-server with JetStream (file
// store in Config.StoreDir, or a temporary directory removed on Close), so faultline works with
// nothing installed; with Config.URL set, the same code talks to an external server.
//
// Mapping (see docs/messaging/nats.md):
//
//   - a topic T is the subject T. It is stored in the stream that already captures T, if any
//     (a stream you provisioned, e.g. "ORDERS" with subjects "orders.>"), else in a stream of its
//     own, created idempotently: named by StreamName(T), subjects [T], file storage, limits
//     retention, the 2-minute duplicate window;
//   - a consumer group G is a durable pull consumer on that stream, named by ConsumerName(T, G),
//     filtered on T, explicit ack, AckWait from SubscribeConfig, MaxDeliver unlimited (faultline
//     decides dead-lettering with messaging.Decide), DeliverPolicy "new" when the group first
//     subscribes;
//   - Message.ID travels as "Nats-Msg-Id" (JetStream deduplicates within its window), Message.Key
//     as HeaderKey, Headers as NATS headers; Attempt is the delivery count JetStream reports.
//
// Publish waits for the JetStream ack of every message. Ordering by key is claimed only with
// Config.OrderedByKey, which runs every group one message at a time (MaxAckPending 1).
package natsbus

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/faultline-dev/faultline/messaging"
)

// Headers natsbus adds to the NATS message besides the caller's.
const (
	// HeaderKey carries Message.Key.
	HeaderKey = "faultline-key"
	// HeaderID carries Message.ID when "Nats-Msg-Id" holds something else: a dead-letter copy is
	// deduplicated per group (ID + "." + group), so two groups' copies of one message both land.
	HeaderID = "faultline-id"
)

// ErrClosed is returned by Publish and Subscribe after Close.
var ErrClosed = errors.New("natsbus: closed")

// Config configures a Bus. The zero value runs an embedded server in a temporary directory.
type Config struct {
	// URL of an external NATS server with JetStream, e.g. "nats://127.0.0.1:4222" (a
	// comma-separated list for a cluster). Empty starts an embedded server.
	URL string
	// StoreDir is the embedded server's JetStream store. Empty means a temporary directory,
	// removed on Close; a directory you name is kept, and a later Open with it finds the streams,
	// consumers and unacknowledged messages again. Ignored with URL set.
	StoreDir string
	// Name is the connection name the server shows (monitoring, nats CLI). Empty means "faultline".
	Name string
	// NoListen keeps the embedded server off the network: only this Bus reaches it, in process.
	// By default it listens on 127.0.0.1 at a random port (see ClientURL).
	NoListen bool
	// OrderedByKey makes every consumer group handle one message at a time (JetStream
	// MaxAckPending 1 on the durable consumer), so messages reach a group in publish order across
	// all of its subscriptions, also through redeliveries; Capabilities then reports OrderedByKey.
	// It costs all parallelism within a group (Concurrency has no effect). Off by default.
	OrderedByKey bool
	// Replicas for the streams natsbus creates (clustered servers). Zero means 1.
	Replicas int
	// MaxAge bounds how long the streams natsbus creates keep messages. Zero means forever
	// (limits retention without limits).
	MaxAge time.Duration
	// PublishTimeout bounds the wait for one JetStream ack (and other JetStream API calls) when
	// the caller's context has no deadline. Zero means 5 s.
	PublishTimeout time.Duration
	// Prefetch is how many messages a subscription keeps pulled ahead of its handlers, so the
	// next message is at hand when a handler finishes (one round trip per message instead of
	// two). A prefetched message's AckWait runs while it waits, up to Prefetch/Concurrency
	// handler durations: with handlers slower than AckWait/16, lower it (to Concurrency, say) or
	// raise AckWait. Zero means DefaultPrefetch or 2×Concurrency, whichever is larger.
	Prefetch int
	// FetchWait is how long one pull request waits for messages before the next one (at least
	// 1 s, JetStream's minimum). Zero means
	// 5 s. A pull request is also renewed at once after a reconnect.
	FetchWait time.Duration
	// NATSOptions are applied after natsbus's own connection options (authentication, TLS).
	NATSOptions []nats.Option
}

// Bus is a messaging.Broker on NATS JetStream.
type Bus struct {
	cfg Config
	ns  *server.Server // embedded server, nil with Config.URL
	tmp string         // temporary store to remove on Close
	nc  *nats.Conn
	js  jetstream.JetStream

	streams sync.Map // topic -> stream name

	mu       sync.Mutex
	closed   bool
	subs     map[*subscription]struct{}
	gen      context.Context // cancelled at every reconnect, ending pull requests
	genStop  context.CancelFunc
	created  []string // streams this Bus created (tests delete them on external servers)
	closeErr error
	done     chan struct{}
}

var _ messaging.Broker = (*Bus)(nil)

// Open connects to cfg.URL, or starts an embedded server when it is empty, and returns the Bus.
func Open(ctx context.Context, cfg Config) (*Bus, error) {
	if cfg.Prefetch < 0 {
		return nil, fmt.Errorf("natsbus: Config.Prefetch %d: must not be negative", cfg.Prefetch)
	}
	if cfg.Name == "" {
		cfg.Name = "faultline"
	}
	if cfg.Replicas == 0 {
		cfg.Replicas = 1
	}
	if cfg.PublishTimeout <= 0 {
		cfg.PublishTimeout = 5 * time.Second
	}
	if cfg.FetchWait <= 0 {
		cfg.FetchWait = 5 * time.Second
	}
	b := &Bus{cfg: cfg, subs: map[*subscription]struct{}{}, done: make(chan struct{})}
	b.gen, b.genStop = context.WithCancel(context.Background())

	opts := []nats.Option{
		nats.Name(cfg.Name),
		nats.MaxReconnects(-1),
		nats.CustomReconnectDelay(reconnectDelay),
		nats.ReconnectHandler(func(*nats.Conn) { b.renewPulls() }),
	}
	url := cfg.URL
	if url == "" {
		if err := b.startEmbedded(ctx); err != nil {
			return nil, err
		}
		opts = append(opts, nats.InProcessServer(b.ns))
	}
	opts = append(opts, cfg.NATSOptions...)
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		b.stopEmbedded()
		return nil, fmt.Errorf("natsbus: connect %s: %w", b.where(), err)
	}
	b.nc = nc
	b.js, err = jetstream.New(nc, jetstream.WithDefaultTimeout(cfg.PublishTimeout))
	if err == nil {
		_, err = b.js.AccountInfo(ctx)
	}
	if err != nil {
		nc.Close()
		b.stopEmbedded()
		return nil, fmt.Errorf("natsbus: JetStream at %s: %w", b.where(), err)
	}
	return b, nil
}

// reconnectDelay backs off from 50 ms, doubling per attempt up to 2 s, with up to 25% jitter.
func reconnectDelay(attempts int) time.Duration {
	d := 50 * time.Millisecond
	for i := 1; i < attempts && d < 2*time.Second; i++ {
		d *= 2
	}
	d = min(d, 2*time.Second)
	return d + rand.N(d/4+1)
}

func (b *Bus) where() string {
	if b.cfg.URL != "" {
		return b.cfg.URL
	}
	return "embedded server"
}

func (b *Bus) startEmbedded(ctx context.Context) error {
	dir := b.cfg.StoreDir
	if dir == "" {
		tmp, err := os.MkdirTemp("", "faultline-nats-")
		if err != nil {
			return fmt.Errorf("natsbus: embedded store: %w", err)
		}
		dir, b.tmp = tmp, tmp
	}
	opts := &server.Options{
		ServerName: "faultline-embedded",
		Host:       "127.0.0.1",
		Port:       server.RANDOM_PORT,
		DontListen: b.cfg.NoListen,
		JetStream:  true,
		StoreDir:   dir,
		NoLog:      true,
		NoSigs:     true,
	}
	ns, err := server.NewServer(opts)
	if err != nil {
		b.removeTmp()
		return fmt.Errorf("natsbus: embedded server: %w", err)
	}
	ns.Start()
	wait := 10 * time.Second
	if dl, ok := ctx.Deadline(); ok {
		wait = max(time.Until(dl), time.Millisecond)
	}
	if !ns.ReadyForConnections(wait) {
		ns.Shutdown()
		ns.WaitForShutdown()
		b.removeTmp()
		return fmt.Errorf("natsbus: embedded server not ready after %v", wait)
	}
	b.ns = ns
	return nil
}

func (b *Bus) stopEmbedded() {
	if b.ns != nil {
		b.ns.Shutdown()
		b.ns.WaitForShutdown()
	}
	b.removeTmp()
}

func (b *Bus) removeTmp() {
	if b.tmp != "" {
		_ = os.RemoveAll(b.tmp)
	}
}

// ClientURL is the embedded server's address for other clients (another Open with Config.URL,
// the nats CLI), or "" for an external server or with NoListen.
func (b *Bus) ClientURL() string {
	if b.ns == nil || b.cfg.NoListen {
		return ""
	}
	return b.ns.ClientURL()
}

// Conn is the underlying NATS connection, for what the messaging interface does not cover.
func (b *Bus) Conn() *nats.Conn { return b.nc }

// DropConnection closes the network connection under the client, which reconnects at once (a
// fault injection hook for tests): in-flight pull requests are renewed, unacknowledged
// deliveries are redelivered after AckWait, publishes wait for their acks across the reconnect.
func (b *Bus) DropConnection() error { return b.nc.ForceReconnect() }

// renewPulls ends the pull requests in flight, which may have been lost with the old connection.
func (b *Bus) renewPulls() {
	b.mu.Lock()
	b.genStop()
	b.gen, b.genStop = context.WithCancel(context.Background())
	b.mu.Unlock()
}

// DefaultPrefetch is the smallest default Config.Prefetch.
const DefaultPrefetch = 16

// prefetch returns how many messages a subscription with concurrency handlers pulls ahead.
func (b *Bus) prefetch(concurrency int) int {
	if b.cfg.Prefetch > 0 {
		return b.cfg.Prefetch
	}
	return max(DefaultPrefetch, 2*concurrency)
}

func (b *Bus) generation() context.Context {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.gen
}

// Capabilities reports OrderedByKey when Config.OrderedByKey is set.
func (b *Bus) Capabilities() messaging.Capabilities {
	return messaging.Capabilities{OrderedByKey: b.cfg.OrderedByKey}
}

// StreamName is the stream natsbus creates for topic when no stream captures it yet:
// "faultline_" + the topic with dots as underscores + "_" + 8 hex digits of its SHA-256 (so
// "a.b" and "a_b" get different streams).
func StreamName(topic string) string {
	return "faultline_" + safeName(topic, 100) + "_" + shortHash(topic)
}

// ConsumerName is the durable consumer of group on topic: the group's name with characters other
// than letters, digits, '-' and '_' as underscores, "_", and 8 hex digits of a hash of both (a
// shared stream can hold several topics a group consumes).
func ConsumerName(topic, group string) string {
	return safeName(group, 100) + "_" + shortHash(topic+"\x00"+group)
}

func safeName(s string, n int) string {
	var sb strings.Builder
	for i := 0; i < len(s) && sb.Len() < n; i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' {
			sb.WriteByte(c)
		} else {
			sb.WriteByte('_')
		}
	}
	return sb.String()
}

func shortHash(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:4])
}

// stream returns the stream that stores topic, creating it when none does.
func (b *Bus) stream(ctx context.Context, topic string) (string, error) {
	if name, ok := b.streams.Load(topic); ok {
		return name.(string), nil
	}
	name, err := b.ensureStream(ctx, topic)
	if err != nil {
		return "", err
	}
	b.streams.Store(topic, name)
	return name, nil
}

func (b *Bus) ensureStream(ctx context.Context, topic string) (string, error) {
	for range 3 {
		name, err := b.js.StreamNameBySubject(ctx, topic)
		if err == nil {
			return name, nil
		}
		if !errors.Is(err, jetstream.ErrStreamNotFound) {
			return "", fmt.Errorf("natsbus: looking up the stream of %q: %w", topic, err)
		}
		name = StreamName(topic)
		_, err = b.js.CreateStream(ctx, jetstream.StreamConfig{
			Name:        name,
			Description: "faultline topic " + topic,
			Subjects:    []string{topic},
			Storage:     jetstream.FileStorage,
			Retention:   jetstream.LimitsPolicy,
			Replicas:    b.cfg.Replicas,
			MaxAge:      b.cfg.MaxAge,
		})
		if err == nil {
			b.mu.Lock()
			b.created = append(b.created, name)
			b.mu.Unlock()
			return name, nil
		}
		// Created concurrently (same name, or another stream now capturing topic): look again.
		if !errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) && !isSubjectOverlap(err) {
			return "", fmt.Errorf("natsbus: creating stream %s for %q: %w", name, topic, err)
		}
	}
	return "", fmt.Errorf("natsbus: no stream for %q after 3 tries", topic)
}

// errCodeStreamSubjectOverlap is the server's JSStreamSubjectOverlapErr (nats.go has no constant).
const errCodeStreamSubjectOverlap jetstream.ErrorCode = 10065

func isSubjectOverlap(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode == errCodeStreamSubjectOverlap
}

// Publish sends msgs one after the other, each waiting for its JetStream ack.
func (b *Bus) Publish(ctx context.Context, msgs ...*messaging.Message) error {
	if b.isClosed() {
		return ErrClosed
	}
	for _, m := range msgs {
		if err := messaging.Prepare(m); err != nil {
			return err
		}
		messaging.InjectTrace(ctx, m)
		if err := b.publish(ctx, m, m.ID, false); err != nil {
			return err
		}
	}
	return nil
}

// publish sends m with dedupID as "Nats-Msg-Id" and waits for the ack; with idHeader it also
// carries m.ID in HeaderID.
func (b *Bus) publish(ctx context.Context, m *messaging.Message, dedupID string, idHeader bool) error {
	nm := toNATSMsg(m, dedupID, idHeader)
	for attempt := 0; ; attempt++ {
		if _, err := b.stream(ctx, m.Topic); err != nil {
			return err
		}
		_, err := b.js.PublishMsg(ctx, nm)
		if err == nil {
			return nil
		}
		if errors.Is(err, jetstream.ErrNoStreamResponse) && attempt == 0 {
			b.streams.Delete(m.Topic) // the stream was deleted behind our back: make it again
			continue
		}
		return fmt.Errorf("natsbus: publish %q (id %s): %w", m.Topic, m.ID, err)
	}
}

// toNATSMsg builds the NATS message publish sends for m (the writer toMessage reads back).
func toNATSMsg(m *messaging.Message, dedupID string, idHeader bool) *nats.Msg {
	nm := nats.NewMsg(m.Topic)
	nm.Data = m.Payload
	for k, v := range m.Headers {
		nm.Header[k] = []string{v}
	}
	nm.Header[jetstream.MsgIDHeader] = []string{dedupID}
	if idHeader {
		nm.Header[HeaderID] = []string{m.ID}
	}
	if m.Key != "" {
		nm.Header[HeaderKey] = []string{m.Key}
	}
	return nm
}

func (b *Bus) isClosed() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.closed
}

// Close closes every subscription, draining each as Subscription.Close does (all within ctx),
// then the connection and the embedded server. It returns the first error; later calls wait for
// the first one and return its result.
func (b *Bus) Close(ctx context.Context) error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		<-b.done
		return b.closeErr
	}
	b.closed = true
	subs := make([]*subscription, 0, len(b.subs))
	for s := range b.subs {
		subs = append(subs, s)
	}
	b.mu.Unlock()

	errs := make([]error, len(subs))
	var wg sync.WaitGroup
	for i, s := range subs {
		wg.Go(func() { errs[i] = s.Close(ctx) })
	}
	wg.Wait()
	b.nc.Close()
	b.mu.Lock()
	b.genStop()
	b.mu.Unlock()
	b.stopEmbedded()
	b.closeErr = errors.Join(errs...)
	if b.closeErr != nil && ctx.Err() != nil {
		b.closeErr = ctx.Err()
	}
	close(b.done)
	return b.closeErr
}

// Package kafkabus implements messaging.Broker on Apache Kafka with franz-go.
//
// Mapping: a messaging topic is a Kafka topic (created on first use with Config.Partitions
// partitions), Message.Key is the record key (so one key lands on one partition and keeps its
// order), Message.Headers are record headers plus the message ID in HeaderID, and a
// SubscribeConfig.Group is a Kafka consumer group.
//
// Kafka has no per-message acknowledgement, only a committed offset per partition, so the
// acknowledgement protocol is built on top of it: each partition's records are handled one at a
// time, in order; a record whose handler asks for redelivery is retried in place (blocking its
// partition, which keeps the per-key order) until it is acknowledged or dead-lettered; the
// committed offset only ever moves past records that are fully decided. A consumer that crashes
// loses its partitions after the session timeout (derived from SubscribeConfig.AckWait) and the
// group's other members resume from the committed offsets. See docs/messaging/kafka.md.
package kafkabus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/faultline-dev/faultline/messaging"
)

// HeaderID is the record header that carries Message.ID.
const HeaderID = "faultline-id"

// Defaults for Config's zero fields.
const (
	DefaultPartitions        = 6
	DefaultMinSessionTimeout = 6 * time.Second
	DefaultMaxSessionTimeout = 30 * time.Minute
	DefaultCommitInterval    = 200 * time.Millisecond
)

// Config configures a Bus.
type Config struct {
	// Brokers are the seed brokers, host:port. Required.
	Brokers []string
	// Partitions is the partition count of the topics the Bus creates (topics that already exist
	// keep theirs). Zero means DefaultPartitions. The partition count bounds how many members of a
	// group consume a topic at once.
	Partitions int
	// ReplicationFactor of the topics the Bus creates. Zero means the broker's default
	// (default.replication.factor).
	ReplicationFactor int16
	// MinSessionTimeout and MaxSessionTimeout are the broker's group.min.session.timeout.ms and
	// group.max.session.timeout.ms: the consumer group session timeout is
	// SubscribeConfig.AckWait clamped to them (a broker refuses a session timeout out of its
	// range). Zero means DefaultMinSessionTimeout (6 s) and DefaultMaxSessionTimeout (30 min),
	// Kafka's defaults.
	MinSessionTimeout time.Duration
	MaxSessionTimeout time.Duration
	// CommitInterval is how often a subscription commits the offsets of the records it has
	// decided (acknowledged or dead-lettered); it also commits when partitions are revoked and on
	// Close. Zero means DefaultCommitInterval. A crash loses at most this much of commits, and
	// those records are delivered again (at-least-once).
	CommitInterval time.Duration
	// ClientID is the Kafka client ID. Empty means "faultline".
	ClientID string
	// Options are added to every franz-go client the Bus creates (TLS, SASL, logging, ...).
	Options []kgo.Opt
	// Logger receives the Bus's own warnings (failed commits, dead-letter retries). Nil discards.
	Logger *slog.Logger
}

func (cfg Config) withDefaults() (Config, error) {
	if len(cfg.Brokers) == 0 {
		return cfg, errors.New("kafkabus: Config.Brokers is required")
	}
	if cfg.Partitions < 0 || cfg.MinSessionTimeout < 0 || cfg.MaxSessionTimeout < 0 || cfg.CommitInterval < 0 {
		return cfg, errors.New("kafkabus: Config fields must not be negative")
	}
	if cfg.Partitions == 0 {
		cfg.Partitions = DefaultPartitions
	}
	if cfg.ReplicationFactor == 0 {
		cfg.ReplicationFactor = -1
	}
	if cfg.MinSessionTimeout == 0 {
		cfg.MinSessionTimeout = DefaultMinSessionTimeout
	}
	if cfg.MaxSessionTimeout == 0 {
		cfg.MaxSessionTimeout = DefaultMaxSessionTimeout
	}
	if cfg.MaxSessionTimeout < cfg.MinSessionTimeout {
		return cfg, fmt.Errorf("kafkabus: MaxSessionTimeout %v below MinSessionTimeout %v", cfg.MaxSessionTimeout, cfg.MinSessionTimeout)
	}
	if cfg.CommitInterval == 0 {
		cfg.CommitInterval = DefaultCommitInterval
	}
	if cfg.ClientID == "" {
		cfg.ClientID = "faultline"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return cfg, nil
}

// SessionTimeout returns the consumer group session timeout a subscription with the given AckWait
// uses under cfg: AckWait clamped to [MinSessionTimeout, MaxSessionTimeout].
func (cfg Config) SessionTimeout(ackWait time.Duration) time.Duration {
	minT, maxT := cfg.MinSessionTimeout, cfg.MaxSessionTimeout
	if minT == 0 {
		minT = DefaultMinSessionTimeout
	}
	if maxT == 0 {
		maxT = DefaultMaxSessionTimeout
	}
	return min(max(ackWait, minT), maxT)
}

// Bus is a messaging.Broker on a Kafka cluster. It holds one producing client; each subscription
// has its own consumer-group client.
type Bus struct {
	cfg  Config
	prod *kgo.Client
	adm  *kadm.Client

	topicsMu sync.Mutex
	topics   map[string]bool // created or known to exist

	mu     sync.Mutex
	subs   map[*subscription]struct{}
	closed bool
}

var _ messaging.Broker = (*Bus)(nil)

// Open connects to the cluster (it checks that a broker answers) and returns a Bus.
func Open(ctx context.Context, cfg Config) (*Bus, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	opts := []kgo.Opt{
		kgo.SeedBrokers(cfg.Brokers...),
		kgo.ClientID(cfg.ClientID),
		kgo.RequiredAcks(kgo.AllISRAcks()), // idempotent producing is on by default and needs all ISR acks
		kgo.ProducerLinger(0),
	}
	prod, err := kgo.NewClient(append(opts, cfg.Options...)...)
	if err != nil {
		return nil, fmt.Errorf("kafkabus: %w", err)
	}
	if err := prod.Ping(ctx); err != nil {
		prod.Close()
		return nil, fmt.Errorf("kafkabus: connecting to %v: %w", cfg.Brokers, err)
	}
	return &Bus{
		cfg:    cfg,
		prod:   prod,
		adm:    kadm.NewClient(prod),
		topics: make(map[string]bool),
		subs:   make(map[*subscription]struct{}),
	}, nil
}

// Capabilities: a key is on one partition and a partition is consumed in order, one record at a
// time.
func (b *Bus) Capabilities() messaging.Capabilities {
	return messaging.Capabilities{OrderedByKey: true}
}

// Client returns the Bus's producing franz-go client (for administration or metrics).
func (b *Bus) Client() *kgo.Client { return b.prod }

// ensureTopics creates the topics not known to exist yet, ignoring "already exists".
func (b *Bus) ensureTopics(ctx context.Context, topics ...string) error {
	b.topicsMu.Lock()
	defer b.topicsMu.Unlock()
	var missing []string
	for _, t := range topics {
		if !b.topics[t] && !contains(missing, t) {
			missing = append(missing, t)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	resp, err := b.adm.CreateTopics(ctx, int32(b.cfg.Partitions), b.cfg.ReplicationFactor, nil, missing...)
	if err != nil {
		return fmt.Errorf("kafkabus: creating topics %v: %w", missing, err)
	}
	for _, t := range missing {
		r, ok := resp[t]
		if ok && r.Err != nil && !errors.Is(r.Err, kerr.TopicAlreadyExists) {
			return fmt.Errorf("kafkabus: creating topic %q: %w", t, r.Err)
		}
		b.topics[t] = true
	}
	return nil
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// Publish produces msgs synchronously (acks from all in-sync replicas, idempotent producer) and
// returns once every record is acknowledged, or the first error.
func (b *Bus) Publish(ctx context.Context, msgs ...*messaging.Message) error {
	b.mu.Lock()
	closed := b.closed
	b.mu.Unlock()
	if closed {
		return errors.New("kafkabus: publish on a closed bus")
	}
	if len(msgs) == 0 {
		return nil
	}
	var topics []string
	for _, m := range msgs {
		if err := messaging.Prepare(m); err != nil {
			return err
		}
		topics = append(topics, m.Topic)
	}
	if err := b.ensureTopics(ctx, topics...); err != nil {
		return err
	}
	recs := make([]*kgo.Record, len(msgs))
	for i, m := range msgs {
		messaging.InjectTrace(ctx, m)
		recs[i] = toRecord(m)
	}
	return b.produce(ctx, recs)
}

func (b *Bus) produce(ctx context.Context, recs []*kgo.Record) error {
	if err := b.prod.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		return fmt.Errorf("kafkabus: publish: %w", err)
	}
	return nil
}

func toRecord(m *messaging.Message) *kgo.Record {
	r := &kgo.Record{Topic: m.Topic, Value: m.Payload}
	if r.Value == nil {
		r.Value = []byte{} // a nil value would be a tombstone
	}
	if m.Key != "" {
		r.Key = []byte(m.Key)
	}
	r.Headers = make([]kgo.RecordHeader, 0, len(m.Headers)+1)
	r.Headers = append(r.Headers, kgo.RecordHeader{Key: HeaderID, Value: []byte(m.ID)})
	for k, v := range m.Headers {
		if k == HeaderID {
			continue
		}
		r.Headers = append(r.Headers, kgo.RecordHeader{Key: k, Value: []byte(v)})
	}
	return r
}

// toMessage builds a fresh Message (headers copied) from a consumed record.
func toMessage(r *kgo.Record, attempt int) *messaging.Message {
	m := &messaging.Message{
		Topic:       r.Topic,
		Key:         string(r.Key),
		Payload:     r.Value,
		Attempt:     attempt,
		PublishedAt: r.Timestamp,
	}
	for _, h := range r.Headers {
		if h.Key == HeaderID {
			m.ID = string(h.Value)
			continue
		}
		if m.Headers == nil {
			m.Headers = make(map[string]string, len(r.Headers))
		}
		m.Headers[h.Key] = string(h.Value)
	}
	return m
}

// Close closes every subscription (draining each as Subscription.Close does, concurrently) and
// then the producing client. It returns the first error.
func (b *Bus) Close(ctx context.Context) error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
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
	b.prod.Close()
	return errors.Join(errs...)
}

func (b *Bus) forget(s *subscription) {
	b.mu.Lock()
	delete(b.subs, s)
	b.mu.Unlock()
}

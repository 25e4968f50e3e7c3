// Package messaging is faultline's publish/subscribe interface: producers publish messages to
// topics, consumer groups share a topic's messages (competing consumers), every message is
// delivered at least once, acknowledged by the handler's result, redelivered after a failure or a
// consumer crash, and dead-lettered after too many deliveries.
//
// Implementations live at the edges: natsbus (NATS JetStream, embedded in-process by default),
// kafkabus (franz-go), amqpbus (RabbitMQ) and membus (in memory, for unit tests). Each one passes
// the conformance suite in messaging/messagingtest. The transactional outbox (package outbox)
// publishes through a Publisher; the inbox (package inbox) makes a Handler apply each message
// once.
package messaging

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"time"
)

// Message is what a producer publishes and a consumer receives.
type Message struct {
	// ID identifies the message for deduplication (the inbox keys on it). Publish fills an empty
	// ID with a new random one (NewID); a producer that may publish the same message twice (an
	// outbox relay after a crash) must set it, so the copies share it.
	ID string
	// Topic is where the message is published. Required; see ValidTopic for the allowed form.
	Topic string
	// Key orders messages: messages with the same non-empty key are delivered to a consumer group
	// in publish order, one at a time, where the broker supports it (Capabilities.OrderedByKey).
	// It also picks the Kafka partition.
	Key string
	// Headers are carried as they are. The W3C trace context travels as "traceparent" and
	// "tracestate" (see InjectTrace and ExtractTrace).
	Headers map[string]string
	// Payload is the body, opaque to the broker.
	Payload []byte

	// Set on delivery only:

	// Attempt is the delivery count, 1 for the first delivery. After a consumer crash some brokers
	// can only approximate it: it never over-counts but may under-count (see each broker's docs).
	Attempt int
	// PublishedAt is when the broker accepted the message, when the broker tells (zero otherwise).
	PublishedAt time.Time
}

// Publisher publishes messages. Publish returns once the broker has accepted every message
// durably (JetStream ack, Kafka produce ack from all in-sync replicas, RabbitMQ publisher
// confirm), or an error; after an error some messages may have been accepted, so a caller that
// retries must keep their IDs. Messages of one Publish call with the same key keep their order.
type Publisher interface {
	Publish(ctx context.Context, msgs ...*Message) error
}

// Handler processes one delivered message. Its result is the acknowledgement:
//
//   - nil acknowledges the message: it is not delivered to this group again;
//   - an error made with Nack asks for redelivery after the given delay;
//   - an error made with DeadLetter sends the message to the dead-letter topic at once;
//   - any other error asks for redelivery after the subscription's RedeliveryDelay.
//
// A message delivered MaxDeliveries times without an acknowledgement goes to the dead-letter topic;
// one that arrives with Attempt already above MaxDeliveries (earlier deliveries timed out) is
// dead-lettered without running the handler.
// The handler's ctx ends when the subscription is closed past its drain deadline.
type Handler func(ctx context.Context, msg *Message) error

// SubscribeConfig configures a subscription.
type SubscribeConfig struct {
	// Topic to consume. Required.
	Topic string
	// Group is the consumer group: subscriptions with the same group share the topic's messages
	// (each message goes to one of them); each group gets every message. Required.
	Group string
	// Concurrency is how many handlers may run at once in this subscription. Zero means 1.
	// Messages with the same key still run one at a time, in order, when the broker orders by key.
	Concurrency int
	// MaxDeliveries is how many times a message is delivered before it is dead-lettered. Zero means
	// DefaultMaxDeliveries.
	MaxDeliveries int
	// DeadLetterTopic receives messages that were dead-lettered, with the headers
	// HeaderDeadLetterReason, HeaderOriginalTopic and HeaderAttempts added. Empty means
	// Topic + DeadLetterSuffix.
	DeadLetterTopic string
	// AckWait is how long a delivered message may stay unacknowledged (a handler still running, or a
	// consumer that crashed) before the broker redelivers it, to this subscription or another
	// member of the group. A handler that overruns it is not cancelled; its late result is ignored
	// where the broker can tell. Zero means DefaultAckWait.
	AckWait time.Duration
	// RedeliveryDelay is the delay before redelivering a message whose handler returned a plain
	// error, by attempt (1-based). Nil means DefaultRedeliveryDelay.
	RedeliveryDelay func(attempt int) time.Duration
}

// Defaults for SubscribeConfig's zero fields.
const (
	DefaultMaxDeliveries = 5
	DefaultAckWait       = 30 * time.Second
	DeadLetterSuffix     = ".dlq"
)

// Headers added to a dead-lettered message.
const (
	HeaderDeadLetterReason = "faultline-dead-letter-reason"
	HeaderOriginalTopic    = "faultline-original-topic"
	HeaderAttempts         = "faultline-attempts"
)

// DefaultRedeliveryDelay backs off exponentially from 100 ms, doubling per attempt, up to 30 s.
func DefaultRedeliveryDelay(attempt int) time.Duration {
	d := 100 * time.Millisecond
	for i := 1; i < attempt && d < 30*time.Second; i++ {
		d *= 2
	}
	return min(d, 30*time.Second)
}

// WithDefaults returns cfg with its zero fields filled in, or an error naming the first bad field.
// Implementations call it in Subscribe.
func (cfg SubscribeConfig) WithDefaults() (SubscribeConfig, error) {
	switch {
	case cfg.Topic == "":
		return cfg, errors.New("messaging: SubscribeConfig.Topic is required")
	case cfg.Group == "":
		return cfg, errors.New("messaging: SubscribeConfig.Group is required")
	case cfg.Concurrency < 0:
		return cfg, fmt.Errorf("messaging: SubscribeConfig.Concurrency %d: must not be negative", cfg.Concurrency)
	case cfg.MaxDeliveries < 0:
		return cfg, fmt.Errorf("messaging: SubscribeConfig.MaxDeliveries %d: must not be negative", cfg.MaxDeliveries)
	case cfg.AckWait < 0:
		return cfg, fmt.Errorf("messaging: SubscribeConfig.AckWait %v: must not be negative", cfg.AckWait)
	}
	if err := ValidTopic(cfg.Topic); err != nil {
		return cfg, fmt.Errorf("messaging: SubscribeConfig.Topic: %w", err)
	}
	if cfg.Concurrency == 0 {
		cfg.Concurrency = 1
	}
	if cfg.MaxDeliveries == 0 {
		cfg.MaxDeliveries = DefaultMaxDeliveries
	}
	if cfg.DeadLetterTopic == "" {
		cfg.DeadLetterTopic = cfg.Topic + DeadLetterSuffix
	}
	if err := ValidTopic(cfg.DeadLetterTopic); err != nil {
		return cfg, fmt.Errorf("messaging: SubscribeConfig.DeadLetterTopic: %w", err)
	}
	if cfg.AckWait == 0 {
		cfg.AckWait = DefaultAckWait
	}
	if cfg.RedeliveryDelay == nil {
		cfg.RedeliveryDelay = DefaultRedeliveryDelay
	}
	return cfg, nil
}

// ValidTopic reports whether name can be a topic on every broker: 1 to 200 characters from
// [A-Za-z0-9._-], not starting or ending with a dot and without two dots in a row (NATS subject
// tokens, Kafka topic names and RabbitMQ routing keys all accept that).
func ValidTopic(name string) error {
	if name == "" || len(name) > 200 {
		return fmt.Errorf("topic %q: want 1 to 200 characters", name)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.'
		if !ok {
			return fmt.Errorf("topic %q: character %q at %d: want letters, digits, '.', '_' or '-'", name, c, i)
		}
		if c == '.' && (i == 0 || i == len(name)-1 || name[i-1] == '.') {
			return fmt.Errorf("topic %q: a dot at %d: dots separate non-empty words", name, i)
		}
	}
	return nil
}

// Subscription is a running consumer.
type Subscription interface {
	// Close stops receiving and waits for the handlers in flight to finish, at most until ctx
	// ends; then their contexts are cancelled and Close returns ctx's error. Messages not
	// acknowledged are redelivered (to this group's other subscribers, or later). Close is safe to
	// call more than once.
	Close(ctx context.Context) error
}

// Capabilities says what a broker guarantees beyond at-least-once delivery; the conformance
// suite checks exactly these.
type Capabilities struct {
	// OrderedByKey: messages with the same key reach a group in publish order, one at a time.
	OrderedByKey bool
}

// Broker publishes and subscribes.
type Broker interface {
	Publisher
	// Subscribe starts consuming cfg.Topic as cfg.Group with h. It returns once the subscription
	// is registered with the broker, so a message published after Subscribe returns reaches it
	// (or another member of its group). A group that has never subscribed before starts with the
	// messages published from then on.
	Subscribe(ctx context.Context, cfg SubscribeConfig, h Handler) (Subscription, error)
	// Capabilities reports the broker's guarantees.
	Capabilities() Capabilities
	// Close closes every subscription (draining as Subscription.Close does) and the connection.
	Close(ctx context.Context) error
}

// Outcome errors a Handler returns.

type nackError struct {
	err   error
	delay time.Duration
}

func (e *nackError) Error() string {
	return fmt.Sprintf("nack (redeliver after %v): %v", e.delay, e.err)
}
func (e *nackError) Unwrap() error { return e.err }

type deadLetterError struct{ err error }

func (e *deadLetterError) Error() string { return fmt.Sprintf("dead-letter: %v", e.err) }
func (e *deadLetterError) Unwrap() error { return e.err }

// Nack returns a handler result that asks for redelivery after delay (0: at once).
func Nack(err error, delay time.Duration) error {
	if err == nil {
		err = errors.New("nacked")
	}
	return &nackError{err: err, delay: max(delay, 0)}
}

// DeadLetter returns a handler result that sends the message to the dead-letter topic at once (a
// poison message that no retry will fix).
func DeadLetter(err error) error {
	if err == nil {
		err = errors.New("dead-lettered")
	}
	return &deadLetterError{err: err}
}

// Decision is what a broker does with a handled message, from the handler's result.
type Decision struct {
	// Ack: the message is done. Otherwise it is redelivered after Delay, unless DeadLetter.
	Ack        bool
	DeadLetter bool
	Delay      time.Duration
	// Reason is the handler's error text, for the dead-letter header.
	Reason string
}

// Decide turns a handler's result for a message delivered for the attempt-th time into what the
// broker must do, under cfg (after WithDefaults). Every implementation uses it, so they agree.
func Decide(cfg SubscribeConfig, attempt int, err error) Decision {
	if err == nil {
		return Decision{Ack: true}
	}
	d := Decision{Reason: err.Error()}
	var dl *deadLetterError
	var nk *nackError
	switch {
	case errors.As(err, &dl):
		d.DeadLetter = true
	case attempt >= cfg.MaxDeliveries:
		d.DeadLetter = true
	case errors.As(err, &nk):
		d.Delay = nk.delay
	default:
		d.Delay = cfg.RedeliveryDelay(attempt)
	}
	return d
}

// DeadLetterMessage returns the copy of msg to publish on the dead-letter topic: same ID, key and
// payload, the headers plus the reason, original topic and attempt count.
func DeadLetterMessage(cfg SubscribeConfig, msg *Message, reason string) *Message {
	h := make(map[string]string, len(msg.Headers)+3)
	for k, v := range msg.Headers {
		h[k] = v
	}
	h[HeaderDeadLetterReason] = reason
	h[HeaderOriginalTopic] = msg.Topic
	h[HeaderAttempts] = fmt.Sprint(msg.Attempt)
	return &Message{ID: msg.ID, Topic: cfg.DeadLetterTopic, Key: msg.Key, Headers: h, Payload: msg.Payload}
}

// NewID returns a new random message ID: 32 hex characters (128 random bits).
func NewID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("messaging: crypto/rand failed: " + err.Error())
	}
	return hex.EncodeToString(b[:])
}

// Prepare checks msg for publishing and fills an empty ID. Implementations call it in Publish.
func Prepare(msg *Message) error {
	if msg == nil {
		return errors.New("messaging: nil message")
	}
	if err := ValidTopic(msg.Topic); err != nil {
		return fmt.Errorf("messaging: message %q: %w", msg.ID, err)
	}
	if msg.ID == "" {
		msg.ID = NewID()
	}
	return nil
}

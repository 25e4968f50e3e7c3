package shop

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/faultline-dev/faultline/messaging"
)

// Defaults for Config's and Timing's zero fields.
const (
	DefaultNamespace   = "shop"
	DefaultConcurrency = 32
	// DefaultAckWait is how long a participant's command may stay unacknowledged before the
	// broker delivers it again (after a crash of the process that had it). It must exceed the
	// longest delay a TroubledBroker injects.
	DefaultAckWait = 15 * time.Second

	DefaultStepTimeout             = 5 * time.Second
	DefaultDeadline                = 4 * time.Second
	DefaultMaxAttempts             = 3
	DefaultCompensationMaxAttempts = 50
)

// Config is what every service needs.
type Config struct {
	// Store is where the service's database is. Required.
	Store Store
	// Broker carries the commands and replies. Required.
	Broker messaging.Broker
	// Namespace prefixes the topics and consumer groups (Namespace.inventory.commands,
	// Namespace.payment.commands, Namespace.orders.replies), so that runs sharing a broker do not
	// see each other's messages. Empty means DefaultNamespace.
	Namespace string
	// Concurrency is how many commands (replies, for the order service) are handled at once.
	// Zero means DefaultConcurrency.
	Concurrency int
	// AckWait is the subscription's AckWait (see messaging.SubscribeConfig). Zero means
	// DefaultAckWait.
	AckWait time.Duration
	// Logger receives the service's logs. Nil discards them.
	Logger *slog.Logger
}

func (c Config) withDefaults(svc Service) (Config, error) {
	var errs []error
	if err := c.Store.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("%s service: %w", svc, err))
	}
	if c.Broker == nil {
		errs = append(errs, fmt.Errorf("%s service: Config.Broker is nil", svc))
	}
	if c.Namespace == "" {
		c.Namespace = DefaultNamespace
	}
	if err := messaging.ValidTopic(c.Namespace); err != nil {
		errs = append(errs, fmt.Errorf("%s service: Config.Namespace: %w", svc, err))
	}
	if c.Concurrency < 0 {
		errs = append(errs, fmt.Errorf("%s service: Config.Concurrency %d: must not be negative", svc, c.Concurrency))
	}
	if c.Concurrency == 0 {
		c.Concurrency = DefaultConcurrency
	}
	if c.AckWait < 0 {
		errs = append(errs, fmt.Errorf("%s service: Config.AckWait %v: must not be negative", svc, c.AckWait))
	}
	if c.AckWait == 0 {
		c.AckWait = DefaultAckWait
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	c.Logger = c.Logger.With("service", string(svc))
	return c, errors.Join(errs...)
}

// Topics are the topics of a namespace.
type Topics struct {
	// InventoryCommands and PaymentCommands carry the saga's commands to the participants.
	InventoryCommands string
	PaymentCommands   string
	// Replies carries the participants' replies to the order service.
	Replies string
}

// TopicsOf returns the topics of namespace ns (empty: DefaultNamespace).
func TopicsOf(ns string) Topics {
	if ns == "" {
		ns = DefaultNamespace
	}
	return Topics{
		InventoryCommands: ns + ".inventory.commands",
		PaymentCommands:   ns + ".payment.commands",
		Replies:           ns + ".orders.replies",
	}
}

// All lists the topics, with the dead-letter topics that subscriptions may create.
func (t Topics) All() []string {
	var out []string
	for _, x := range []string{t.InventoryCommands, t.PaymentCommands, t.Replies} {
		out = append(out, x, x+messaging.DeadLetterSuffix)
	}
	return out
}

// group is the consumer group of svc in namespace ns.
func group(ns string, svc Service) string { return ns + "-" + string(svc) }

// Timing sets the order saga's timeouts and attempt budgets.
type Timing struct {
	// StepTimeout bounds each attempt of the reserve and charge steps: without a reply by then,
	// the command is sent again (a new attempt). Keep it well above the delays a TroubledBroker
	// injects, or retries dominate. Zero means DefaultStepTimeout.
	StepTimeout time.Duration
	// Deadline is the saga's deadline from PlaceOrder: an order not approved by then is
	// compensated and rejected. Zero means DefaultDeadline.
	Deadline time.Duration
	// MaxAttempts is how many times reserve and charge are tried before the saga compensates.
	// Zero means DefaultMaxAttempts.
	MaxAttempts int
	// CompensationMaxAttempts is how many times a compensation is tried before the saga is
	// parked as needs-attention (a person would look; Check counts it as unfinished). Zero means
	// DefaultCompensationMaxAttempts.
	CompensationMaxAttempts int
}

func (t Timing) withDefaults() (Timing, error) {
	if t.StepTimeout < 0 || t.Deadline < 0 || t.MaxAttempts < 0 || t.CompensationMaxAttempts < 0 {
		return t, fmt.Errorf("shop: Timing %+v: fields must not be negative", t)
	}
	if t.StepTimeout == 0 {
		t.StepTimeout = DefaultStepTimeout
	}
	if t.Deadline == 0 {
		t.Deadline = DefaultDeadline
	}
	if t.MaxAttempts == 0 {
		t.MaxAttempts = DefaultMaxAttempts
	}
	if t.CompensationMaxAttempts == 0 {
		t.CompensationMaxAttempts = DefaultCompensationMaxAttempts
	}
	return t, nil
}

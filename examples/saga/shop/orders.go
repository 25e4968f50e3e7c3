package shop

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/faultline-dev/faultline/messaging"
	"github.com/faultline-dev/faultline/resilience"
	"github.com/faultline-dev/faultline/saga"
)

// SagaName is the name of the order saga's definition.
const SagaName = "place-order"

// Order statuses in the orders table.
const (
	StatusPending  = "PENDING"
	StatusApproved = "APPROVED"
	StatusRejected = "REJECTED"
)

// The steps of the order saga.
const (
	StepCreate  = "create-order"
	StepReserve = "reserve-stock"
	StepCharge  = "charge-payment"
	StepApprove = "approve-order"
)

// OrderConfig configures an OrderService.
type OrderConfig struct {
	Config
	// Timing sets the saga's timeouts and attempt budgets.
	Timing Timing
	// Seed drives the retry jitter. Zero draws one.
	Seed uint64
	// OnEnd, when set, is called once an order's saga has ended (completed or compensated; also
	// parked as needs-attention), after the change committed. It must not block.
	OnEnd func(Outcome)
}

// Outcome is how an order's saga ended.
type Outcome struct {
	OrderID string
	// Status is saga.StatusCompleted (the order is APPROVED), saga.StatusCompensated (REJECTED),
	// or saga.StatusNeedsAttention (parked for a person).
	Status saga.Status
	// Reason says why it was compensated or parked.
	Reason string
}

// OrderService takes orders and runs the order saga for each, as the orchestrator:
//
//	create-order   (Local: insert the order PENDING)        ⟲ Local: mark it REJECTED
//	reserve-stock  (Command to the inventory service)       ⟲ Command: release the stock
//	charge-payment (Command to the payment service)         ⟲ Command: refund the charge
//	approve-order  (Local: mark the order APPROVED)
//
// Local steps run in the orchestrator's own transaction in the orders database; commands go out
// through its outbox, replies come back on its reply topic. It owns its database: the orders
// table, the saga tables and the outbox.
//
// An OrderService runs once: Run until its context ends, then Close. To restart after a crash,
// make a new one over the same Store: it resumes every saga in flight.
type OrderService struct {
	cfg    OrderConfig
	topics Topics
	db     *db
	orch   *saga.Orchestrator
	broker *crashBroker
	ready  chan struct{}
	once   sync.Once
}

// NewOrderService checks cfg and returns the service; call Migrate, then Run.
func NewOrderService(cfg OrderConfig) (*OrderService, error) {
	base, err := cfg.Config.withDefaults(Orders)
	tm, terr := cfg.Timing.withDefaults()
	if err = errors.Join(err, terr); err != nil {
		return nil, err
	}
	cfg.Config, cfg.Timing = base, tm
	d, err := cfg.Store.open(Orders)
	if err != nil {
		return nil, err
	}
	s := &OrderService{cfg: cfg, topics: TopicsOf(cfg.Namespace), db: d, ready: make(chan struct{})}
	s.broker = &crashBroker{Broker: cfg.Broker}
	s.orch, err = saga.NewOrchestrator(saga.Config{
		DB:               d.DB,
		Dialect:          d.dialect,
		Table:            cfg.Store.sagaTable(),
		Outbox:           cfg.Store.outboxTable(Orders),
		Definitions:      []*saga.Definition{s.definition()},
		Broker:           s.broker,
		Name:             group(cfg.Namespace, Orders),
		ReplyTopic:       s.topics.Replies,
		ReplyConcurrency: cfg.Concurrency,
		Seed:             cfg.Seed,
		Logger:           cfg.Logger,
		OnTransition:     s.transition,
	})
	if err != nil {
		d.Close()
		return nil, fmt.Errorf("orders service: %w", err)
	}
	return s, nil
}

// definition is the order saga.
func (s *OrderService) definition() *saga.Definition {
	tm := s.cfg.Timing
	backoff := resilience.Backoff{Base: 200 * time.Millisecond, Max: 2 * time.Second, Jitter: resilience.JitterFull}
	d := saga.New(SagaName).
		Step(saga.Step{Name: StepCreate, Action: saga.Local(s.create), Compensate: saga.Local(s.setStatus(StatusRejected))}).
		Step(saga.Step{
			Name: StepReserve, Action: saga.Command(s.topics.InventoryCommands), Compensate: saga.Command(s.topics.InventoryCommands),
			Timeout: tm.StepTimeout, MaxAttempts: tm.MaxAttempts, Backoff: backoff,
		}).
		Step(saga.Step{
			Name: StepCharge, Action: saga.Command(s.topics.PaymentCommands), Compensate: saga.Command(s.topics.PaymentCommands),
			Timeout: tm.StepTimeout, MaxAttempts: tm.MaxAttempts, Backoff: backoff,
		}).
		Step(saga.Step{Name: StepApprove, Action: saga.Local(s.setStatus(StatusApproved))})
	d.Timeout = tm.Deadline
	d.CompensationMaxAttempts = tm.CompensationMaxAttempts
	return d
}

// orderOf decodes the saga's input. A malformed order is refused: no retry can fix it.
func orderOf(req *saga.Request) (Order, error) {
	var o Order
	if err := json.Unmarshal(req.Input, &o); err != nil {
		return o, saga.Fail(fmt.Errorf("malformed order: %w", err))
	}
	if err := o.Validate(); err != nil {
		return o, saga.Fail(err)
	}
	return o, nil
}

func (s *OrderService) create(ctx context.Context, tx *sql.Tx, req *saga.Request) (json.RawMessage, error) {
	o, err := orderOf(req)
	if err != nil {
		return nil, err
	}
	_, err = tx.ExecContext(ctx, s.db.q("INSERT INTO orders (id, customer, sku, qty, amount, status) VALUES (?, ?, ?, ?, ?, ?)"),
		o.ID, o.Customer, o.SKU, o.Qty, o.Amount, StatusPending)
	return nil, err
}

func (s *OrderService) setStatus(status string) saga.LocalHandler {
	return func(ctx context.Context, tx *sql.Tx, req *saga.Request) (json.RawMessage, error) {
		res, err := tx.ExecContext(ctx, s.db.q("UPDATE orders SET status = ? WHERE id = ?"), status, req.SagaID)
		if err != nil {
			return nil, err
		}
		if n, err := res.RowsAffected(); err != nil || n != 1 {
			return nil, fmt.Errorf("order %s: set %s: %d rows (%v)", req.SagaID, status, n, err)
		}
		return nil, nil
	}
}

// transition reports ended sagas to OnEnd.
func (s *OrderService) transition(st *saga.State, _ []saga.LogEntry) {
	if s.cfg.OnEnd == nil {
		return
	}
	if st.Status.Terminal() || st.Status == saga.StatusNeedsAttention {
		s.cfg.OnEnd(Outcome{OrderID: st.ID, Status: st.Status, Reason: st.Reason})
	}
}

// ordersSchema is the orders table.
const ordersSchema = `CREATE TABLE IF NOT EXISTS orders (
	id       TEXT    PRIMARY KEY,
	customer TEXT    NOT NULL,
	sku      TEXT    NOT NULL,
	qty      INTEGER NOT NULL,
	amount   BIGINT  NOT NULL,
	status   TEXT    NOT NULL
)`

// Migrate creates the orders table, the saga tables and the outbox (idempotent).
func (s *OrderService) Migrate(ctx context.Context) error {
	if err := s.db.migrate(ctx, ordersSchema); err != nil {
		return fmt.Errorf("orders service: migrate: %w", err)
	}
	if err := s.orch.Migrate(ctx); err != nil {
		return fmt.Errorf("orders service: migrate: %w", err)
	}
	return nil
}

// PlaceOrder starts the saga of o: in one transaction of the orders database it inserts the
// order PENDING and writes the reserve-stock command to the outbox. It returns once that
// committed; the saga goes on in Run. The order's ID is the saga's; placing an ID twice is an
// error wrapping saga.ErrExists.
func (s *OrderService) PlaceOrder(ctx context.Context, o Order) error {
	if err := o.Validate(); err != nil {
		return err
	}
	if err := s.orch.Start(ctx, SagaName, o.ID, o); err != nil {
		return fmt.Errorf("place order %s: %w", o.ID, err)
	}
	return nil
}

// Run runs the orchestrator until ctx ends: the outbox relay, the reply subscription, timeouts,
// retries and deadlines; it first resumes the sagas in flight. When ctx ends, work in flight is
// abandoned as in a crash (replies being handled roll back and are delivered again to the next
// instance), which the saga's durability makes safe. It returns ctx's error.
func (s *OrderService) Run(ctx context.Context) error {
	s.broker.setStop(ctx)
	s.once.Do(func() { close(s.ready) })
	return s.orch.Run(ctx)
}

// Ready is closed once Run has started. The orchestrator subscribes to replies before it sends
// any command, so no reply can be missed.
func (s *OrderService) Ready() <-chan struct{} { return s.ready }

// Orchestrator is the saga orchestrator (its Store lists and counts sagas).
func (s *OrderService) Orchestrator() *saga.Orchestrator { return s.orch }

// Counts returns how many sagas are in each status.
func (s *OrderService) Counts(ctx context.Context) (map[saga.Status]int, error) {
	return s.orch.Store().Counts(ctx)
}

// Close closes the database. Call it after Run returned.
func (s *OrderService) Close() error { return s.db.Close() }

// crashBroker makes the orchestrator's reply subscription stop as a crash would once Run's
// context ends: saga.Orchestrator.Run lets the reply handlers in flight finish (for up to 10 s)
// when it stops, and a crashing process does not.
type crashBroker struct {
	messaging.Broker
	mu   sync.Mutex
	stop context.Context
}

func (b *crashBroker) setStop(ctx context.Context) {
	b.mu.Lock()
	b.stop = ctx
	b.mu.Unlock()
}

// Subscribe subscribes through the wrapped broker; once Run's context has ended, the
// subscription's Close abandons the handlers in flight.
func (b *crashBroker) Subscribe(ctx context.Context, cfg messaging.SubscribeConfig, h messaging.Handler) (messaging.Subscription, error) {
	sub, err := b.Broker.Subscribe(ctx, cfg, h)
	if err != nil {
		return nil, err
	}
	b.mu.Lock()
	stop := b.stop
	b.mu.Unlock()
	if stop == nil {
		return sub, nil
	}
	return crashSub{sub, stop}, nil
}

type crashSub struct {
	messaging.Subscription
	stop context.Context
}

// Close closes the subscription without waiting for its handlers once the service stopped.
func (s crashSub) Close(ctx context.Context) error {
	if s.stop.Err() != nil {
		abandon, cancel := context.WithCancel(ctx)
		cancel()
		return s.Subscription.Close(abandon)
	}
	return s.Subscription.Close(ctx)
}

package saga

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"

	"github.com/faultline-dev/faultline/clock"
	"github.com/faultline-dev/faultline/messaging"
	"github.com/faultline-dev/faultline/outbox"
)

// DefaultHTTPMaxBody is ParticipantConfig.HTTPMaxBody's default: the largest request body the
// HTTP handler reads.
const DefaultHTTPMaxBody = 1 << 20

// TxHandler carries out one step operation for a Participant, inside the transaction that also
// records it in the barrier (and, for commands, writes the reply to the outbox). It must make its
// writes through tx and must not commit or roll it back. It returns the step's output (JSON, may
// be nil), an error made with Fail for a business refusal (its writes are undone, the refusal is
// recorded and answered), or any other error for transient trouble (everything is rolled back and
// the request is retried).
type TxHandler func(ctx context.Context, tx *sql.Tx, req *Request) (json.RawMessage, error)

// ParticipantConfig configures a Participant.
type ParticipantConfig struct {
	// DB is the participant's own database: its business tables, the barrier table and the
	// outbox its replies go through. SQLite (open it with "_txlock=immediate", a busy timeout and
	// WAL) or PostgreSQL through pgx's database/sql driver. Required.
	DB *sql.DB
	// Dialect is DB's SQL flavour: SQLite or Postgres. Required.
	Dialect Dialect
	// BarrierTable is the barrier table. Empty means DefaultBarrierTable.
	BarrierTable string
	// Outbox is the outbox table replies to commands are written to, for an outbox.Relay to
	// publish. The zero value is outbox.DefaultTable in Dialect; a zero Outbox.Dialect means
	// Dialect.
	Outbox outbox.Table
	// Clock stamps the barrier's rows. Nil means clock.Real().
	Clock clock.Clock
	// Logger receives dead-lettered and failed requests. Nil discards.
	Logger *slog.Logger
	// TxOptions are passed to BeginTx. Nil means the database's default (see
	// BarrierConfig.TxOptions).
	TxOptions *sql.TxOptions
	// HTTPMaxBody is the largest request body HTTPHandler reads, in bytes. Zero means
	// DefaultHTTPMaxBody.
	HTTPMaxBody int64
	// ReplyWritten, when set, is called after a transaction that wrote a reply to the outbox
	// committed: pass the outbox relay's Wake so replies go out at once instead of at the relay's
	// next poll (PostgreSQL relays are woken by NOTIFY anyway).
	ReplyWritten func()
}

// Participant serves the steps a service takes part in, over messaging (Command steps: Handler)
// and over HTTP (HTTP steps: HTTPHandler), from one registration per step (Handle). Every request
// goes through a Barrier in the participant's database, so each (saga, step, op) is applied once,
// a compensation without its action is a no-op, and an action after its compensation is skipped.
//
//	p, err := saga.NewParticipant(saga.ParticipantConfig{DB: db, Dialect: saga.Postgres})
//	p.Handle("reserve-stock", reserve, release)
//	sub, err := broker.Subscribe(ctx, messaging.SubscribeConfig{Topic: "stock.commands", Group: "stock"}, p.Handler())
//	http.Handle("POST /saga/stock", p.HTTPHandler())
//
// A Participant is safe for concurrent use.
type Participant struct {
	db        *sql.DB
	barrier   *Barrier
	outbox    outbox.Table
	replySeen string // SELECT of a reply's message ID in the outbox
	log       *slog.Logger
	txOpts    *sql.TxOptions
	maxBody   int64
	written   func()

	mu    sync.RWMutex
	steps map[string]stepHandlers
}

type stepHandlers struct{ action, compensate TxHandler }

// NewParticipant checks cfg and returns a Participant; register its steps with Handle. The tables
// must exist (Migrate).
func NewParticipant(cfg ParticipantConfig) (*Participant, error) {
	if cfg.DB == nil {
		return nil, errors.New("saga participant: ParticipantConfig.DB is nil")
	}
	b, err := NewBarrier(BarrierConfig{DB: cfg.DB, Dialect: cfg.Dialect, Table: cfg.BarrierTable, Clock: cfg.Clock, TxOptions: cfg.TxOptions})
	if err != nil {
		return nil, fmt.Errorf("saga participant: %w", err)
	}
	if cfg.Outbox.Dialect == 0 {
		cfg.Outbox.Dialect = cfg.Dialect
	}
	if cfg.Outbox.Dialect != cfg.Dialect {
		return nil, fmt.Errorf("saga participant: Outbox.Dialect %v differs from Dialect %v: replies must commit with the barrier", cfg.Outbox.Dialect, cfg.Dialect)
	}
	if _, err := cfg.Outbox.Schema(); err != nil { // validates the table's name and channel
		return nil, fmt.Errorf("saga participant: Outbox: %w", err)
	}
	name := cfg.Outbox.Name
	if name == "" {
		name = outbox.DefaultTable
	}
	ph := "?"
	if cfg.Dialect == Postgres {
		ph = "$1"
	}
	if cfg.HTTPMaxBody < 0 {
		return nil, fmt.Errorf("saga participant: ParticipantConfig.HTTPMaxBody is %d, want ≥ 0 (0 means %d)", cfg.HTTPMaxBody, DefaultHTTPMaxBody)
	}
	if cfg.HTTPMaxBody == 0 {
		cfg.HTTPMaxBody = DefaultHTTPMaxBody
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Participant{
		written:   cfg.ReplyWritten,
		db:        cfg.DB,
		barrier:   b,
		outbox:    cfg.Outbox,
		replySeen: `SELECT 1 FROM ` + name + ` WHERE message_id = ` + ph,
		log:       cfg.Logger,
		txOpts:    cfg.TxOptions,
		maxBody:   cfg.HTTPMaxBody,
		steps:     make(map[string]stepHandlers),
	}, nil
}

// Migrate creates the barrier table and the outbox table if they do not exist.
func (p *Participant) Migrate(ctx context.Context) error {
	if err := p.barrier.Migrate(ctx); err != nil {
		return fmt.Errorf("saga participant: %w", err)
	}
	if err := p.outbox.Migrate(ctx, p.db); err != nil {
		return fmt.Errorf("saga participant: %w", err)
	}
	return nil
}

// Barrier returns the participant's barrier: for Cleanup and Lookup.
func (p *Participant) Barrier() *Barrier { return p.barrier }

// Handle registers the action and compensation of the step named step (Request.Step), served by
// both Handler and HTTPHandler. A nil compensate means the step has nothing to undo: its
// compensation succeeds without doing anything (still through the barrier, so a late action is
// skipped). Handle panics, as http.ServeMux does, when step is empty, action is nil or step is
// registered already.
func (p *Participant) Handle(step string, action, compensate TxHandler) {
	switch {
	case step == "":
		panic("saga participant: Handle: empty step name")
	case action == nil:
		panic(fmt.Sprintf("saga participant: Handle(%q): nil action", step))
	}
	if compensate == nil {
		compensate = func(context.Context, *sql.Tx, *Request) (json.RawMessage, error) { return nil, nil }
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.steps[step]; ok {
		panic(fmt.Sprintf("saga participant: Handle(%q): step registered twice", step))
	}
	p.steps[step] = stepHandlers{action: action, compensate: compensate}
}

// Steps returns the names of the registered steps, sorted.
func (p *Participant) Steps() []string {
	p.mu.RLock()
	defer p.mu.RUnlock()
	names := make([]string, 0, len(p.steps))
	for n := range p.steps {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// ErrUnknownStep is the cause of the answer to a request for a step that was not registered
// with Handle.
var ErrUnknownStep = errors.New("saga participant: unknown step")

// handlerFor returns the barrier function that serves req.
func (p *Participant) handlerFor(req *Request) (func(context.Context, *sql.Tx) (json.RawMessage, error), error) {
	p.mu.RLock()
	h, ok := p.steps[req.Step]
	p.mu.RUnlock()
	if !ok {
		known := p.Steps()
		list := "none"
		if len(known) > 0 {
			list = strings.Join(known, ", ")
		}
		return nil, fmt.Errorf("%w %q (saga %q); this participant serves: %s", ErrUnknownStep, req.Step, req.Saga, list)
	}
	fn := h.action
	if req.Op == OpCompensate {
		fn = h.compensate
	}
	return func(ctx context.Context, tx *sql.Tx) (json.RawMessage, error) { return fn(ctx, tx, req) }, nil
}

// Handler returns the messaging.Handler of the participant's command topic. For each command it:
//
//   - decodes the payload as a Request; an undecodable or invalid one, a step not registered,
//     and a missing or invalid HeaderReplyTo header are dead-lettered (no retry can fix them);
//   - begins a transaction, runs the step's handler through the barrier (Barrier.Do), writes the
//     Reply to the outbox (topic: the HeaderReplyTo header; key and HeaderSagaID: the saga ID; ID
//     derived from the key and attempt; the command's trace context) and commits;
//   - on a transient error rolls back and returns the error, so the broker redelivers the
//     command.
//
// A duplicate command (a redelivery, or the orchestrator's next attempt after a timeout) is
// answered with the outcome recorded the first time. A new attempt gets a reply of its own (a new
// message ID); a redelivered attempt whose reply is already in the outbox writes nothing more.
func (p *Participant) Handler() messaging.Handler {
	return func(ctx context.Context, msg *messaging.Message) error {
		if msg == nil {
			return messaging.DeadLetter(errors.New("saga participant: nil message"))
		}
		ctx = messaging.ExtractTrace(ctx, msg)
		req, err := DecodeRequest(msg.Payload)
		if err != nil {
			return p.deadLetter(msg, fmt.Errorf("saga participant: message %q on %s: undecodable command: %w", msg.ID, msg.Topic, err))
		}
		fn, err := p.handlerFor(req)
		if err != nil {
			return p.deadLetter(msg, fmt.Errorf("saga participant: message %q on %s: %w", msg.ID, msg.Topic, err))
		}
		replyTo := msg.Headers[HeaderReplyTo]
		if replyTo == "" {
			return p.deadLetter(msg, fmt.Errorf("saga participant: message %q on %s: no %s header: nowhere to reply", msg.ID, msg.Topic, HeaderReplyTo))
		}
		if err := messaging.ValidTopic(replyTo); err != nil {
			return p.deadLetter(msg, fmt.Errorf("saga participant: message %q on %s: header %s: %w", msg.ID, msg.Topic, HeaderReplyTo, err))
		}
		if err := p.serveCommand(ctx, req, fn, replyTo); err != nil {
			p.log.Info("saga participant: command failed, to be redelivered", "message", msg.ID, "key", req.Key().String(), "attempt", req.Attempt, "err", err)
			return err
		}
		return nil
	}
}

func (p *Participant) deadLetter(msg *messaging.Message, err error) error {
	p.log.Warn("saga participant: dead-lettering command", "message", msg.ID, "topic", msg.Topic, "err", err)
	return messaging.DeadLetter(err)
}

// serveCommand runs req through the barrier and writes its reply to the outbox, in one
// transaction.
func (p *Participant) serveCommand(ctx context.Context, req *Request, fn func(context.Context, *sql.Tx) (json.RawMessage, error), replyTo string) error {
	k := req.Key()
	tx, err := p.db.BeginTx(ctx, p.txOpts)
	if err != nil {
		return fmt.Errorf("saga participant: %s attempt %d: begin: %w", k, req.Attempt, err)
	}
	done := false
	defer func() {
		if !done {
			_ = tx.Rollback() // also when a handler panics
		}
	}()
	rep, fresh, err := p.barrier.do(ctx, tx, req, fn)
	if err != nil {
		return fmt.Errorf("saga participant: attempt %d: %w", req.Attempt, err)
	}
	payload, err := json.Marshal(rep)
	if err != nil {
		return fmt.Errorf("saga participant: %s attempt %d: encode reply: %w", k, req.Attempt, err)
	}
	m := &messaging.Message{
		ID:      replyMessageID(k, req.Attempt),
		Topic:   replyTo,
		Key:     req.SagaID,
		Headers: map[string]string{HeaderSagaID: req.SagaID},
		Payload: payload,
	}
	messaging.InjectTrace(ctx, m)
	if err := p.writeReply(ctx, tx, m, fresh); err != nil {
		return fmt.Errorf("saga participant: %s attempt %d: %w", k, req.Attempt, err)
	}
	done = true
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("saga participant: %s attempt %d: commit: %w", k, req.Attempt, err)
	}
	if p.written != nil {
		p.written()
	}
	return nil
}

// replySavepoint brackets the insert of a reply, so that losing a race for its message ID leaves
// the transaction usable.
const replySavepoint = "faultline_saga_reply"

// writeReply adds m to the outbox in tx unless a reply with its ID is there already: the same
// attempt delivered again. Deliveries of the first attempt are serialized by the barrier, so the
// check sees the reply of the one that went first. Later duplicates of an attempt are answered
// from the committed barrier row without waiting for each other, so they may race to insert the
// same reply; the loser's insert fails on the unique message ID (PostgreSQL makes it wait for
// the winner to commit), is rolled back to a savepoint, and the reply found on a second look is
// the winner's.
//
// When fresh (tx is the first to answer this key), no reply to it can exist yet and a concurrent
// duplicate waits on the barrier row, so the reply is inserted without looking first.
func (p *Participant) writeReply(ctx context.Context, tx *sql.Tx, m *messaging.Message, fresh bool) error {
	if fresh {
		if err := p.outbox.Add(ctx, tx, m); err != nil {
			return fmt.Errorf("write reply: %w", err)
		}
		return nil
	}
	if ok, err := p.replyWritten(ctx, tx, m.ID); err != nil || ok {
		return err
	}
	if _, err := tx.ExecContext(ctx, "SAVEPOINT "+replySavepoint); err != nil {
		return fmt.Errorf("write reply: savepoint: %w", err)
	}
	if aerr := p.outbox.Add(ctx, tx, m); aerr != nil {
		if _, err := tx.ExecContext(ctx, "ROLLBACK TO SAVEPOINT "+replySavepoint); err != nil {
			return fmt.Errorf("write reply: %w (then rollback to savepoint: %v)", aerr, err)
		}
		if ok, err := p.replyWritten(ctx, tx, m.ID); err != nil || !ok {
			return fmt.Errorf("write reply: %w", aerr)
		}
	}
	if _, err := tx.ExecContext(ctx, "RELEASE SAVEPOINT "+replySavepoint); err != nil {
		return fmt.Errorf("write reply: release savepoint: %w", err)
	}
	return nil
}

// replyWritten reports whether the outbox holds a message with id, committed or written by tx.
func (p *Participant) replyWritten(ctx context.Context, tx *sql.Tx, id string) (bool, error) {
	var one int
	err := tx.QueryRowContext(ctx, p.replySeen, id).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("look up reply %q: %w", id, err)
	}
	return true, nil
}

package saga

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/faultline-dev/faultline/clock"
	"github.com/faultline-dev/faultline/messaging"
	"github.com/faultline-dev/faultline/outbox"
	"github.com/faultline-dev/faultline/resilience"
)

// Defaults for an orchestrator's zero Config fields.
const (
	DefaultName             = "faultline-saga"
	DefaultPollInterval     = time.Second
	DefaultReplyConcurrency = 16
	DefaultShutdownTimeout  = 10 * time.Second
	// DefaultReplyTopicPrefix + Config.Name is where participants send replies.
	DefaultReplyTopicPrefix = "faultline.saga.replies."
)

// Config configures an Orchestrator.
type Config struct {
	// DB holds the saga tables and the outbox of commands. SQLite (open it with
	// "_txlock=immediate", a busy timeout and WAL) or PostgreSQL through pgx's database/sql
	// driver. Required.
	DB      *sql.DB
	Dialect Dialect
	// Table is the saga table (DefaultTable when empty).
	Table string
	// Outbox is where command messages are written; the zero value is outbox.DefaultTable in
	// Dialect.
	Outbox outbox.Table
	// Definitions are the sagas this orchestrator runs. Required.
	Definitions []*Definition
	// Broker publishes the commands of Command steps (through the outbox relay that Run runs)
	// and delivers their replies. Required when a definition has Command steps.
	Broker messaging.Broker
	// Name identifies the orchestrator: its reply topic and consumer group. Empty means
	// DefaultName.
	Name string
	// ReplyTopic is where participants reply. Empty means DefaultReplyTopicPrefix + Name.
	ReplyTopic string
	// ReplyConcurrency is how many replies are handled at once. Zero means
	// DefaultReplyConcurrency.
	ReplyConcurrency int
	// PollInterval is the longest the orchestrator waits before looking for due sagas (timeouts,
	// retries, deadlines, operator requests) that it was not told about. Zero means
	// DefaultPollInterval.
	PollInterval time.Duration
	// RelayBatchSize and RelayPollInterval tune the outbox relay that Run starts; zero means the
	// relay's defaults.
	RelayBatchSize    int
	RelayPollInterval time.Duration
	// ShutdownTimeout is how long Run, once its context ends, lets the reply handlers in flight
	// finish before it cancels them. Zero means DefaultShutdownTimeout.
	ShutdownTimeout time.Duration
	// Clock is the time source. Nil means clock.Real().
	Clock clock.Clock
	// Seed drives the backoff jitter. Zero draws a random seed, reported by Seed().
	Seed uint64
	// Logger receives errors and progress. Nil discards.
	Logger *slog.Logger
	// OnTransition, when set, is called after each committed change of a saga with its new state
	// and the history entries the change added: for metrics, tests and progress displays. It must
	// not block.
	OnTransition func(st *State, log []LogEntry)

	// crash, set by tests, is called at named points; an error stops the operation there as a
	// crash would (the transaction rolls back, nothing after it happens).
	crash func(point string) error
}

// Orchestrator runs sagas durably: every change of a saga's state is one transaction that also
// writes the commands to send (outbox), so a crash at any instruction loses nothing and sends
// nothing that was not recorded; Run resumes every saga in flight.
type Orchestrator struct {
	cfg    Config
	store  *Store
	defs   map[string]*Definition
	specs  map[string]*spec
	names  []string // the definitions' names, sorted
	clk    clock.Clock
	log    *slog.Logger
	seed   uint64
	relay  *outbox.Relay
	obx    outbox.Store
	needBr bool

	rndMu sync.Mutex
	rnd   *rand.Rand

	mu      sync.Mutex
	running map[string]map[runKey]context.CancelFunc // in-process invocations in flight, by saga
	closing bool
	wg      sync.WaitGroup
	runCtx  context.Context

	wakeMu sync.Mutex
	wakeAt time.Time
	wakeCh chan struct{}
}

// NewOrchestrator checks cfg and returns an orchestrator. Call Migrate once, then Run.
func NewOrchestrator(cfg Config) (*Orchestrator, error) {
	if cfg.DB == nil {
		return nil, errors.New("saga orchestrator: Config.DB is nil")
	}
	store, err := NewStore(cfg.DB, cfg.Dialect, cfg.Table)
	if err != nil {
		return nil, fmt.Errorf("saga orchestrator: %w", err)
	}
	if cfg.Name == "" {
		cfg.Name = DefaultName
	}
	if cfg.ReplyTopic == "" {
		cfg.ReplyTopic = DefaultReplyTopicPrefix + cfg.Name
	}
	if err := messaging.ValidTopic(cfg.ReplyTopic); err != nil {
		return nil, fmt.Errorf("saga orchestrator: ReplyTopic: %w", err)
	}
	if cfg.ReplyConcurrency == 0 {
		cfg.ReplyConcurrency = DefaultReplyConcurrency
	}
	if cfg.PollInterval == 0 {
		cfg.PollInterval = DefaultPollInterval
	}
	if cfg.ShutdownTimeout == 0 {
		cfg.ShutdownTimeout = DefaultShutdownTimeout
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.Real()
	}
	if cfg.Outbox.Dialect == 0 {
		cfg.Outbox.Dialect = cfg.Dialect
	}
	if cfg.Outbox.Dialect != cfg.Dialect {
		return nil, fmt.Errorf("saga orchestrator: Outbox.Dialect %v differs from Dialect %v", cfg.Outbox.Dialect, cfg.Dialect)
	}
	if len(cfg.Definitions) == 0 {
		return nil, errors.New("saga orchestrator: Config.Definitions is empty")
	}
	o := &Orchestrator{
		cfg: cfg, store: store, clk: cfg.Clock,
		defs: map[string]*Definition{}, specs: map[string]*spec{},
		running: map[string]map[runKey]context.CancelFunc{},
		wakeCh:  make(chan struct{}, 1),
	}
	for _, d := range cfg.Definitions {
		if d == nil {
			return nil, errors.New("saga orchestrator: a definition is nil")
		}
		if err := d.Validate(); err != nil {
			return nil, fmt.Errorf("saga orchestrator: %w", err)
		}
		if o.defs[d.Name] != nil {
			return nil, fmt.Errorf("saga orchestrator: two definitions are named %q", d.Name)
		}
		o.defs[d.Name], o.specs[d.Name] = d, d.spec()
		o.names = append(o.names, d.Name)
		for _, s := range d.steps {
			if _, ok := s.Action.(commandInvoker); ok {
				o.needBr = true
			}
			if _, ok := s.Compensate.(commandInvoker); ok {
				o.needBr = true
			}
		}
	}
	if o.needBr && cfg.Broker == nil {
		return nil, errors.New("saga orchestrator: a definition has Command steps, so Config.Broker is required")
	}
	o.log = cfg.Logger
	if o.log == nil {
		o.log = slog.New(slog.DiscardHandler)
	}
	o.seed = cfg.Seed
	if o.seed == 0 {
		o.seed = rand.Uint64()
	}
	o.rnd = rand.New(rand.NewPCG(o.seed, o.seed^0x9e3779b97f4a7c15))
	if o.needBr {
		var err error
		switch cfg.Dialect {
		case SQLite:
			o.obx, err = outbox.NewSQLiteStore(outbox.SQLiteConfig{DB: cfg.DB, Table: cfg.Outbox.Name})
		default:
			o.obx, err = outbox.NewPostgresStore(outbox.PostgresConfig{DB: cfg.DB, Table: cfg.Outbox.Name, Channel: cfg.Outbox.Channel})
		}
		if err != nil {
			return nil, fmt.Errorf("saga orchestrator: outbox: %w", err)
		}
		o.relay, err = outbox.NewRelay(outbox.RelayConfig{
			Store: o.obx, Publisher: cfg.Broker, BatchSize: cfg.RelayBatchSize,
			PollInterval: cfg.RelayPollInterval, Clock: cfg.Clock, Logger: cfg.Logger, ID: cfg.Name,
		})
		if err != nil {
			return nil, fmt.Errorf("saga orchestrator: outbox relay: %w", err)
		}
	}
	return o, nil
}

// Seed returns the seed of the backoff jitter, to replay a run.
func (o *Orchestrator) Seed() uint64 { return o.seed }

// Store returns the orchestrator's saga store (read it, or file operator requests).
func (o *Orchestrator) Store() *Store { return o.store }

// ReplyTopic is the topic participants reply to.
func (o *Orchestrator) ReplyTopic() string { return o.cfg.ReplyTopic }

// Migrate creates the saga tables and the outbox table.
func (o *Orchestrator) Migrate(ctx context.Context) error {
	if err := o.store.Migrate(ctx); err != nil {
		return err
	}
	if err := o.cfg.Outbox.Migrate(ctx, o.cfg.DB); err != nil {
		return fmt.Errorf("saga orchestrator: migrate outbox: %w", err)
	}
	return nil
}

func (o *Orchestrator) draw() float64 {
	o.rndMu.Lock()
	defer o.rndMu.Unlock()
	return o.rnd.Float64()
}

func (o *Orchestrator) crash(point string) error {
	if o.cfg.crash == nil {
		return nil
	}
	return o.cfg.crash(point)
}

// Start starts saga sagaName with the given ID and input (marshalled to JSON; a json.RawMessage
// or []byte is taken as it is) in its own transaction. An ID that exists already is an error
// that wraps ErrExists.
func (o *Orchestrator) Start(ctx context.Context, sagaName, id string, input any) error {
	tx, err := o.cfg.DB.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("saga %s: begin: %w", id, err)
	}
	defer tx.Rollback()
	funcs, st, log, err := o.start(ctx, tx, o.store.in(tx), sagaName, id, input)
	if err != nil {
		return err
	}
	if err := o.crash("start-before-commit"); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("saga %s: commit: %w", id, err)
	}
	o.store.warm(ctx)
	o.committed(st, log, funcs)
	return nil
}

// StartTx starts a saga inside the caller's transaction, so the saga starts if and only if the
// caller's own writes commit (an order row and the saga that processes it). Local steps of the
// first stage run in tx; commands are written to the outbox in tx. In-process (Func) steps are
// invoked by the running orchestrator once it sees the saga, at its next poll; call Wake after
// the commit to make that immediate.
func (o *Orchestrator) StartTx(ctx context.Context, tx *sql.Tx, sagaName, id string, input any) error {
	// The caller's transaction may come from another *sql.DB than Config.DB, so it does not
	// use the store's prepared statements.
	funcs, _, _, err := o.start(ctx, tx, tx, sagaName, id, input)
	if err != nil {
		return err
	}
	if len(funcs) > 0 {
		if err := o.store.setWake(ctx, tx, &lockedRow{st: &State{ID: id}}, o.clk.Now()); err != nil {
			return err
		}
	}
	return nil
}

// ErrExists: a saga with that ID exists already.
var ErrExists = errors.New("saga: a saga with this ID exists already")

// start inserts a new saga in tx, running its first Local steps; q is tx, through the store's
// statement cache or not.
func (o *Orchestrator) start(ctx context.Context, tx *sql.Tx, q querier, sagaName, id string, input any) ([]invocation, *State, []LogEntry, error) {
	sp := o.specs[sagaName]
	if sp == nil {
		return nil, nil, nil, fmt.Errorf("saga %s: no definition named %q", id, sagaName)
	}
	if id == "" {
		return nil, nil, nil, fmt.Errorf("saga %q: empty ID", sagaName)
	}
	raw, err := encodeInput(input)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("saga %s: input: %w", id, err)
	}
	var exists int
	err = q.QueryRowContext(ctx, fmt.Sprintf("SELECT 1 FROM %s WHERE id = %s", o.store.table, o.store.ph(1)), id).Scan(&exists)
	if err == nil {
		return nil, nil, nil, fmt.Errorf("saga %s: %w", id, ErrExists)
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return nil, nil, nil, fmt.Errorf("saga %s: %w", id, err)
	}
	now := o.clk.Now()
	st := newState(sp, id, raw, now)
	t := newTransition(sp, st, now, o.draw)
	t.start()
	funcs, err := o.perform(ctx, tx, t)
	if err != nil {
		return nil, nil, nil, err
	}
	st.Version = 1
	if err := o.store.insert(ctx, q, st, wake(sp, st), t.log); err != nil {
		return nil, nil, nil, err
	}
	return funcs, st, t.log, nil
}

func encodeInput(input any) (json.RawMessage, error) {
	switch v := input.(type) {
	case nil:
		return nil, nil
	case json.RawMessage:
		if !json.Valid(v) {
			return nil, errors.New("not valid JSON")
		}
		return v, nil
	case []byte:
		if !json.Valid(v) {
			return nil, errors.New("not valid JSON")
		}
		return json.RawMessage(v), nil
	}
	return json.Marshal(input)
}

// perform carries out the transition's invocations that belong in the transaction: Local steps
// run (their results feed back, which may start more), commands go to the outbox. It returns the
// in-process invocations to start after the commit.
func (o *Orchestrator) perform(ctx context.Context, tx *sql.Tx, t *transition) ([]invocation, error) {
	def := o.defs[t.sp.name]
	var funcs []invocation
	for len(t.invokes) > 0 {
		inv := t.invokes[0]
		t.invokes = t.invokes[1:]
		step := def.steps[inv.step]
		invoker := step.Action
		if inv.op == OpCompensate {
			invoker = step.Compensate
		}
		switch v := invoker.(type) {
		case funcInvoker:
			funcs = append(funcs, inv)
		case commandInvoker:
			if err := o.sendCommand(ctx, tx, t.st, inv, v.topic); err != nil {
				return nil, err
			}
		case localInvoker:
			r, err := o.runLocal(ctx, tx, t.st, inv, v.fn)
			if err != nil {
				return nil, err
			}
			t.result(r)
		}
	}
	return funcs, nil
}

func (o *Orchestrator) request(st *State, inv invocation) *Request {
	name := st.Steps[inv.step].Name
	req := &Request{SagaID: st.ID, Saga: st.Saga, Step: name, Op: inv.op, Attempt: inv.attempt, Input: st.Input}
	for _, s := range st.Steps {
		if s.Output != nil && s.Status != StepPending {
			if req.Results == nil {
				req.Results = map[string]json.RawMessage{}
			}
			req.Results[s.Name] = s.Output
		}
	}
	return req
}

func (o *Orchestrator) sendCommand(ctx context.Context, tx *sql.Tx, st *State, inv invocation, topic string) error {
	req := o.request(st, inv)
	payload, err := json.Marshal(req)
	if err != nil {
		return fmt.Errorf("saga %s: encode command: %w", st.ID, err)
	}
	msg := &messaging.Message{
		ID:      commandMessageID(req.Key(), inv.attempt),
		Topic:   topic,
		Key:     st.ID,
		Headers: map[string]string{HeaderReplyTo: o.cfg.ReplyTopic, HeaderSagaID: st.ID},
		Payload: payload,
	}
	messaging.InjectTrace(ctx, msg)
	if err := o.cfg.Outbox.Add(ctx, tx, msg); err != nil {
		return fmt.Errorf("saga %s: step %s: write command: %w", st.ID, req.Step, err)
	}
	return nil
}

func (o *Orchestrator) runLocal(ctx context.Context, tx *sql.Tx, st *State, inv invocation, fn LocalHandler) (Result, error) {
	req := o.request(st, inv)
	if _, err := tx.ExecContext(ctx, "SAVEPOINT faultline_saga_local"); err != nil {
		return Result{}, fmt.Errorf("saga %s: step %s: savepoint: %w", st.ID, req.Step, err)
	}
	out, ferr := fn(ctx, tx, req)
	r := Result{Step: req.Step, Op: inv.op, Attempt: inv.attempt, Output: out}
	if ferr != nil {
		if ctx.Err() != nil {
			return Result{}, ctx.Err()
		}
		if _, err := tx.ExecContext(ctx, "ROLLBACK TO SAVEPOINT faultline_saga_local"); err != nil {
			return Result{}, fmt.Errorf("saga %s: step %s: rollback to savepoint: %w", st.ID, req.Step, err)
		}
		r.Output, r.Err, r.Failure = nil, ferr, IsFailure(ferr)
	}
	if _, err := tx.ExecContext(ctx, "RELEASE SAVEPOINT faultline_saga_local"); err != nil {
		return Result{}, fmt.Errorf("saga %s: step %s: release savepoint: %w", st.ID, req.Step, err)
	}
	return r, nil
}

// update applies one change to a saga in a transaction: load (locked), apply, perform, save,
// commit; then starts the in-process invocations and reports the change.
//
// dispatchAll also starts the in-process invocations that the saga's state says are in flight but
// this process is not running (after StartTx, or a restart).
func (o *Orchestrator) update(ctx context.Context, id string, dispatchAll bool, apply func(t *transition, row *lockedRow) error) (*State, error) {
	tx, err := o.cfg.DB.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("saga %s: begin: %w", id, err)
	}
	defer tx.Rollback()
	row, err := o.store.load(ctx, o.store.in(tx), id)
	if err != nil {
		return nil, err
	}
	sp := o.specs[row.st.Saga]
	if sp == nil {
		return nil, fmt.Errorf("saga %s: no definition named %q in this orchestrator", id, row.st.Saga)
	}
	before := row.st.Version
	now := o.clk.Now()
	t := newTransition(sp, row.st, now, o.draw)
	if err := apply(t, row); err != nil {
		return nil, err
	}
	funcs, err := o.perform(ctx, tx, t)
	if err != nil {
		return nil, err
	}
	if err := o.crash("update-before-save"); err != nil {
		return nil, err
	}
	w := wake(sp, row.st)
	if row.request != "" && !row.consumed {
		w = time.Unix(0, 0) // the request is still due
	}
	changed := len(t.log) > 0
	if changed {
		row.st.Version = before + 1
		row.st.UpdatedAt = now
		if err := o.store.save(ctx, o.store.in(tx), row, w, t.log); err != nil {
			return nil, err
		}
	} else if row.consumed || row.wakeAt.Valid != !w.IsZero() || (row.wakeAt.Valid && row.wakeAt.Int64 != w.UnixNano()) {
		if err := o.store.setWake(ctx, o.store.in(tx), row, w); err != nil {
			return nil, err
		}
	} else {
		tx.Rollback()
		if dispatchAll {
			o.dispatchInFlight(row.st)
		}
		return row.st, nil
	}
	if err := o.crash("update-before-commit"); err != nil {
		return nil, err
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("saga %s: commit: %w", id, err)
	}
	o.store.warm(ctx)
	if changed {
		o.committed(row.st, t.log, funcs)
	}
	if dispatchAll {
		o.dispatchInFlight(row.st)
	}
	return row.st, nil
}

// committed runs after a change committed: report it, wake the relay and the timer, start
// in-process invocations.
func (o *Orchestrator) committed(st *State, log []LogEntry, funcs []invocation) {
	o.cancelStale(st)
	if o.cfg.OnTransition != nil {
		o.cfg.OnTransition(st, log)
	}
	if o.relay != nil {
		o.relay.Wake()
	}
	if w := wake(o.specs[st.Saga], st); !w.IsZero() {
		o.wakeBy(w)
	}
	for _, inv := range funcs {
		o.invoke(st, inv)
	}
}

// dispatchInFlight starts the in-process invocations the state says are in flight but this
// process is not running: after a restart, or after StartTx.
func (o *Orchestrator) dispatchInFlight(st *State) {
	if st.Status != StatusRunning && st.Status != StatusCompensating {
		return
	}
	def := o.defs[st.Saga]
	for i := range st.Steps {
		ss := &st.Steps[i]
		if !ss.InFlight {
			continue
		}
		inv := def.steps[i].Action
		if ss.Op == OpCompensate {
			inv = def.steps[i].Compensate
		}
		if _, ok := inv.(funcInvoker); ok {
			o.invoke(st, invocation{step: i, op: ss.Op, attempt: ss.Attempt})
		}
	}
}

// runKey names one in-process invocation of a saga.
type runKey struct {
	step    int
	op      Op
	attempt int
}

// cancelStale cancels the in-process invocations of st that are no longer in flight (timed out,
// or the saga turned back): their results would be ignored.
func (o *Orchestrator) cancelStale(st *State) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for k, cancel := range o.running[st.ID] {
		ss := &st.Steps[k.step]
		if !ss.InFlight || ss.Op != k.op || ss.Attempt != k.attempt {
			cancel()
		}
	}
}

// invoke runs one in-process invocation in a goroutine (once per key and attempt in this
// process) and feeds its result back.
func (o *Orchestrator) invoke(st *State, inv invocation) {
	key := runKey{step: inv.step, op: inv.op, attempt: inv.attempt}
	o.mu.Lock()
	if o.closing || o.runCtx == nil {
		o.mu.Unlock()
		return // Run picks it up when it starts (dispatchInFlight over every active saga)
	}
	if _, ok := o.running[st.ID][key]; ok {
		o.mu.Unlock()
		return
	}
	ctx, cancel := context.WithCancel(o.runCtx)
	if o.running[st.ID] == nil {
		o.running[st.ID] = map[runKey]context.CancelFunc{}
	}
	o.running[st.ID][key] = cancel
	o.wg.Add(1)
	o.mu.Unlock()

	def := o.defs[st.Saga]
	step := def.steps[inv.step]
	fn := step.Action.(funcInvoker).fn
	if inv.op == OpCompensate {
		fn = step.Compensate.(funcInvoker).fn
	}
	req := o.request(st, inv)
	timeout := o.specs[st.Saga].steps[inv.step].timeout
	go func() {
		defer o.wg.Done()
		defer func() {
			o.mu.Lock()
			delete(o.running[st.ID], key)
			if len(o.running[st.ID]) == 0 {
				delete(o.running, st.ID)
			}
			o.mu.Unlock()
			cancel()
		}()
		callCtx, stop := context.WithTimeout(ctx, timeout)
		var out json.RawMessage
		var err error
		if step.Policy != nil {
			out, err = resilience.Execute(callCtx, func(ctx context.Context) (json.RawMessage, error) { return fn(ctx, req) }, step.Policy)
		} else {
			out, err = fn(callCtx, req)
		}
		stop()
		if ctx.Err() != nil {
			return // cancelled: the attempt is stale, or the orchestrator stopped (Run resumes it)
		}
		r := Result{Step: req.Step, Op: inv.op, Attempt: inv.attempt, Output: out}
		if err != nil {
			r.Output, r.Err, r.Failure = nil, err, IsFailure(err)
		}
		if _, uerr := o.update(ctx, st.ID, false, func(t *transition, _ *lockedRow) error { t.result(r); return nil }); uerr != nil && ctx.Err() == nil {
			o.log.Error("saga: record step result", "saga", st.ID, "step", req.Step, "op", inv.op, "attempt", inv.attempt, "err", uerr)
			o.wakeBy(o.clk.Now()) // the timeout will retry the step
		}
	}()
}

// HandleReply is the messaging.Handler of the reply topic (Run subscribes it; subscribe it
// yourself to run replies on a broker of your choice).
func (o *Orchestrator) HandleReply(ctx context.Context, msg *messaging.Message) error {
	rep, err := DecodeReply(msg.Payload)
	if err != nil {
		return messaging.DeadLetter(fmt.Errorf("saga reply %s: %w", msg.ID, err))
	}
	// The next command continues the reply's trace.
	ctx = messaging.ExtractTrace(ctx, msg)
	if err := o.crash("reply-before-update"); err != nil {
		return err
	}
	r := Result{Step: rep.Step, Op: rep.Op, Attempt: rep.Attempt, Output: rep.Output}
	if rep.Status == ReplyFailed {
		msg := rep.Error
		if msg == "" {
			msg = "refused"
		}
		r.Output, r.Err, r.Failure = nil, errors.New(msg), true
	}
	_, err = o.update(ctx, rep.SagaID, false, func(t *transition, _ *lockedRow) error { t.result(r); return nil })
	if errors.Is(err, ErrNotFound) {
		o.log.Warn("saga: reply for an unknown saga, dropped", "saga", rep.SagaID, "step", rep.Step)
		return nil
	}
	if err != nil {
		return err
	}
	return o.crash("reply-after-update")
}

// Tick processes every saga that is due (timeouts, retries, deadlines, operator requests) and
// returns how many it looked at. Run calls it; tests on a manual clock call it directly.
func (o *Orchestrator) Tick(ctx context.Context) (int, error) {
	n := 0
	for {
		ids, err := o.store.due(ctx, o.clk.Now(), 256, o.names)
		if err != nil {
			return n, err
		}
		var errs []error
		for _, id := range ids {
			if _, err := o.update(ctx, id, true, o.applyDue); err != nil {
				if ctx.Err() != nil {
					return n, ctx.Err()
				}
				// One saga's trouble (its database row, a crash point in tests) must not hold up
				// the others: it stays due and is tried again at the next tick.
				o.log.Error("saga: apply timers and requests", "saga", id, "err", err)
				errs = append(errs, err)
			}
		}
		if len(errs) > 0 {
			return n + len(ids), errors.Join(errs...)
		}
		n += len(ids)
		if len(ids) < 256 {
			return n, nil
		}
	}
}

// applyDue applies an operator request, or the passage of time.
func (o *Orchestrator) applyDue(t *transition, row *lockedRow) error {
	row.consumed = row.request != ""
	switch {
	case row.request == requestRetry:
		if err := t.retry(); err != nil {
			t.note(-1, "", 0, "request-rejected", "retry: "+err.Error())
		}
	case len(row.request) >= len(requestAbort) && row.request[:len(requestAbort)] == requestAbort:
		if err := t.abort(row.request[len(requestAbort):]); err != nil {
			t.note(-1, "", 0, "request-rejected", "abort: "+err.Error())
		}
	}
	t.tick()
	return nil
}

// Retry resumes a needs-attention saga with a fresh attempt budget.
func (o *Orchestrator) Retry(ctx context.Context, id string) error {
	_, err := o.update(ctx, id, false, func(t *transition, _ *lockedRow) error { return t.retry() })
	return err
}

// Abort compensates a running saga, or ends a needs-attention saga as aborted.
func (o *Orchestrator) Abort(ctx context.Context, id, reason string) error {
	_, err := o.update(ctx, id, false, func(t *transition, _ *lockedRow) error { return t.abort(reason) })
	return err
}

// Get returns a saga's state.
func (o *Orchestrator) Get(ctx context.Context, id string) (*State, error) {
	return o.store.Get(ctx, id)
}

// Wake makes Run look for due sagas now (after StartTx committed).
func (o *Orchestrator) Wake() { o.wakeBy(time.Time{}) }

// wakeBy makes the timer loop run by w (the zero time: now).
func (o *Orchestrator) wakeBy(w time.Time) {
	o.wakeMu.Lock()
	if w.IsZero() || o.wakeAt.IsZero() || w.Before(o.wakeAt) {
		o.wakeAt = w
		if w.IsZero() {
			o.wakeAt = o.clk.Now()
		}
		select {
		case o.wakeCh <- struct{}{}:
		default:
		}
	}
	o.wakeMu.Unlock()
}

// Run runs the orchestrator until ctx ends: it resumes every saga in flight, publishes the
// outbox, handles replies and applies timeouts, retries, deadlines and operator requests. On
// return, in-process invocations have been cancelled and waited for.
func (o *Orchestrator) Run(ctx context.Context) error {
	o.mu.Lock()
	if o.runCtx != nil {
		o.mu.Unlock()
		return errors.New("saga orchestrator: Run called twice")
	}
	runCtx, cancel := context.WithCancel(ctx)
	o.runCtx = runCtx
	o.mu.Unlock()
	defer func() {
		cancel()
		o.mu.Lock()
		o.closing = true
		o.mu.Unlock()
		o.wg.Wait()
	}()

	var sub messaging.Subscription
	errc := make(chan error, 2)
	if o.needBr {
		var err error
		sub, err = o.cfg.Broker.Subscribe(runCtx, messaging.SubscribeConfig{
			Topic: o.cfg.ReplyTopic, Group: o.cfg.Name, Concurrency: o.cfg.ReplyConcurrency,
		}, o.HandleReply)
		if err != nil {
			return fmt.Errorf("saga orchestrator: subscribe to replies: %w", err)
		}
		defer func() {
			cctx, ccancel := context.WithTimeout(context.Background(), o.cfg.ShutdownTimeout)
			defer ccancel()
			_ = sub.Close(cctx)
		}()
		go func() { errc <- o.relay.Run(runCtx) }()
	}
	if err := o.resume(runCtx); err != nil && runCtx.Err() == nil {
		o.log.Error("saga: resume sagas in flight", "err", err)
	}
	err := o.timerLoop(runCtx)
	cancel()
	if o.needBr {
		if rerr := <-errc; rerr != nil && !errors.Is(rerr, context.Canceled) && err == nil {
			err = rerr
		}
	}
	if errors.Is(err, context.Canceled) && ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}

// resume starts the in-process invocations of every active saga (after a restart).
func (o *Orchestrator) resume(ctx context.Context) error {
	after := ""
	for {
		ids, err := o.store.active(ctx, after, 500, o.names)
		if err != nil {
			return err
		}
		for _, id := range ids {
			st, err := o.store.Get(ctx, id)
			if err != nil {
				return err
			}
			if o.defs[st.Saga] == nil {
				continue
			}
			o.dispatchInFlight(st)
			if w := wake(o.specs[st.Saga], st); !w.IsZero() {
				o.wakeBy(w)
			}
		}
		if len(ids) < 500 {
			return nil
		}
		after = ids[len(ids)-1]
	}
}

func (o *Orchestrator) timerLoop(ctx context.Context) error {
	timer := o.clk.NewTimer(o.cfg.PollInterval)
	defer timer.Stop()
	for {
		if _, err := o.Tick(ctx); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			o.log.Error("saga: tick", "err", err)
		}
		next := o.cfg.PollInterval
		if w, err := o.store.nextWake(ctx, o.names); err == nil && !w.IsZero() {
			next = min(next, max(w.Sub(o.clk.Now()), 0))
		}
		o.wakeMu.Lock()
		o.wakeAt = o.clk.Now().Add(next)
		o.wakeMu.Unlock()
		timer.Reset(next)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-timer.C():
		case <-o.wakeCh:
		}
	}
}

package twophase

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/faultline-dev/faultline/clock"
)

// Defaults for Config's zero fields.
const (
	DefaultCoordinatorTable = "faultline_2pc_log"
	DefaultPrepareTimeout   = 5 * time.Second
)

// Coordinator errors callers branch on.
var (
	// ErrCrashed: the coordinator stopped at a crash point (Config.Crash) and serves nothing any
	// more; its log is as the crash left it. Start a new Coordinator on the same log and call
	// Recover.
	ErrCrashed = errors.New("coordinator crashed")
	// ErrDuplicate: the transaction id is in use (running, or in the log).
	ErrDuplicate = errors.New("transaction id already in use")
)

// CrashPoint names a point in the coordinator's work where Config.Crash can stop it.
type CrashPoint string

// Crash points, in the order a transaction passes them.
const (
	// CrashAfterBegin: the begin record is durable, no prepare has gone out.
	CrashAfterBegin CrashPoint = "after-begin-before-prepare"
	// CrashAfterPrepare: the votes are in (or the deadline passed), the decision is not logged.
	// Participants that voted yes are in doubt; recovery aborts (presumed abort).
	CrashAfterPrepare CrashPoint = "after-prepare-before-decision"
	// CrashAfterDecision: the decision is durable and no participant knows it. Participants that
	// voted yes stay in doubt, holding their locks, until a coordinator recovers.
	CrashAfterDecision CrashPoint = "after-decision-logged-before-send"
	// CrashMidSend: some participants were sent the decision, the others not yet (checked
	// before each decision message but the first).
	CrashMidSend CrashPoint = "mid-send"
	// CrashBeforeForget: every participant acknowledged; the log record is not deleted yet.
	CrashBeforeForget CrashPoint = "after-send-before-forget"
)

// CrashPoints returns every crash point, in order.
func CrashPoints() []CrashPoint {
	return []CrashPoint{CrashAfterBegin, CrashAfterPrepare, CrashAfterDecision, CrashMidSend, CrashBeforeForget}
}

// Config configures a Coordinator.
type Config struct {
	// DB holds the coordinator's log. Required.
	DB *sql.DB
	// Dialect of DB: SQLite or Postgres. Required.
	Dialect Dialect
	// Table is the log table's name, schema-qualified on PostgreSQL if you like. Empty means
	// DefaultCoordinatorTable.
	Table string
	// Participants maps each participant's name to the way to reach it: a *Participant in the
	// same process, Network.Resource, or NewHTTPResource. Required.
	Participants map[string]Resource
	// Clock is the time source for the prepare deadline and the log's times. Nil means
	// clock.Real().
	Clock clock.Clock
	// PrepareTimeout is how long the coordinator waits for every vote once the prepares are out;
	// then it aborts. Zero means DefaultPrepareTimeout.
	PrepareTimeout time.Duration
	// Logger receives decisions, undelivered messages and recovery. Nil discards.
	Logger *slog.Logger
	// Crash, when set (tests), is called at every crash point with the transaction's id; a non-nil
	// error crashes the coordinator there: the call in progress returns an error wrapping
	// ErrCrashed and that error, every later call returns ErrCrashed, and the log stays as it is.
	Crash func(point CrashPoint, txID string) error
}

// RecoveryReport says what Recover did.
type RecoveryReport struct {
	// Committed and Aborted count transactions whose logged decision was sent again.
	Committed, Aborted int
	// PresumedAborted counts transactions with no logged decision, aborted now.
	PresumedAborted int
	// Unfinished counts transactions that still have participants that did not acknowledge (they
	// stay in the log for the next Recover).
	Unfinished int
}

// Coordinator runs two-phase commits over Participants, logging the begin and the decision of
// each transaction in its own table before acting on them, so that Recover, after a restart,
// finishes what a crash interrupted. The protocol itself is Txn; the coordinator performs its
// actions. It is safe for concurrent use; one Coordinator at a time may use a log table.
type Coordinator struct {
	cfg   Config
	table string
	log   *slog.Logger

	mu        sync.Mutex
	active    map[string]*activeTx
	crashed   bool
	crashedCh chan struct{}
}

// activeTx is a transaction this coordinator is running (Run or Recover).
type activeTx struct {
	decision Outcome // once logged
}

// NewCoordinator checks cfg and returns a coordinator. Call Migrate once (idempotent), and
// Recover at start-up to finish what a previous incarnation left.
func NewCoordinator(cfg Config) (*Coordinator, error) {
	var errs []error
	if cfg.DB == nil {
		errs = append(errs, errors.New("DB is required"))
	}
	if !cfg.Dialect.valid() {
		errs = append(errs, fmt.Errorf("Dialect %v: want SQLite or Postgres", cfg.Dialect))
	}
	if cfg.Table == "" {
		cfg.Table = DefaultCoordinatorTable
	}
	if cfg.Dialect.valid() {
		if err := checkTableName(cfg.Dialect, cfg.Table); err != nil {
			errs = append(errs, fmt.Errorf("Table: %w", err))
		}
	}
	if len(cfg.Participants) == 0 {
		errs = append(errs, errors.New("Participants is required"))
	}
	for _, name := range slices.Sorted(maps.Keys(cfg.Participants)) {
		if name == "" {
			errs = append(errs, errors.New("Participants: empty name"))
		} else if cfg.Participants[name] == nil {
			errs = append(errs, fmt.Errorf("Participants[%q] is nil", name))
		}
	}
	if cfg.PrepareTimeout < 0 {
		errs = append(errs, fmt.Errorf("PrepareTimeout %v: must not be negative", cfg.PrepareTimeout))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("twophase: Config: %w", err)
	}
	if cfg.PrepareTimeout == 0 {
		cfg.PrepareTimeout = DefaultPrepareTimeout
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.Real()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	cfg.Participants = maps.Clone(cfg.Participants)
	return &Coordinator{
		cfg:       cfg,
		table:     cfg.Table,
		log:       cfg.Logger,
		active:    map[string]*activeTx{},
		crashedCh: make(chan struct{}),
	}, nil
}

// Migrate creates the log table (idempotent).
func (c *Coordinator) Migrate(ctx context.Context) error {
	stmts := []string{`CREATE TABLE IF NOT EXISTS ` + c.table + ` (
	tx_id        TEXT   PRIMARY KEY,
	participants TEXT   NOT NULL,
	decision     TEXT,
	created_at   BIGINT NOT NULL,
	decided_at   BIGINT
)`}
	if err := migrate(ctx, c.cfg.DB, c.cfg.Dialect, c.table, stmts); err != nil {
		return fmt.Errorf("twophase: coordinator: migrate %s: %w", c.table, err)
	}
	return nil
}

func (c *Coordinator) alive() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.crashed {
		return fmt.Errorf("twophase: coordinator: %w", ErrCrashed)
	}
	return nil
}

// crashAt calls the crash hook; a non-nil error crashes the coordinator.
func (c *Coordinator) crashAt(point CrashPoint, txID string) error {
	if c.cfg.Crash == nil {
		return nil
	}
	err := c.cfg.Crash(point, txID)
	if err == nil {
		return nil
	}
	c.mu.Lock()
	if !c.crashed {
		c.crashed = true
		close(c.crashedCh)
	}
	c.mu.Unlock()
	c.log.Warn("twophase: coordinator crashed", "tx", txID, "point", string(point), "err", err)
	return fmt.Errorf("twophase: coordinator: tx %s: %w at %s: %w", txID, ErrCrashed, point, err)
}

// register marks txID as running here; false when it already is.
func (c *Coordinator) register(txID string) (*activeTx, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.crashed {
		return nil, fmt.Errorf("twophase: coordinator: %w", ErrCrashed)
	}
	if c.active[txID] != nil {
		return nil, nil
	}
	a := &activeTx{}
	c.active[txID] = a
	return a, nil
}

func (c *Coordinator) unregister(txID string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.active, txID)
}

// Run executes transaction txID: ops maps each participant (a name in Config.Participants) to
// the operations it must apply. It returns once the decision is logged and has been sent to
// every participant once:
//
//   - Committed or Aborted with a nil error: the outcome is final. A participant that could not
//     be told is told by Recover (or asks, Participant.Resolve); Run does not wait for it.
//   - Committed or Aborted with an error: the decision is logged and final, but telling the
//     participants was interrupted (ctx ended, or the coordinator crashed).
//   - Undecided with an error: no decision was logged (a crash, a log failure, or ctx ended
//     while votes were awaited). The transaction will be aborted: by Recover, or when a
//     participant asks (presumed abort).
func (c *Coordinator) Run(ctx context.Context, txID string, ops map[string][]Op) (Outcome, error) {
	var errs []error
	if txID == "" {
		errs = append(errs, errors.New("empty transaction id"))
	}
	if len(ops) == 0 {
		errs = append(errs, errors.New("no participants"))
	}
	names := slices.Sorted(maps.Keys(ops))
	for _, name := range names {
		if c.cfg.Participants[name] == nil {
			errs = append(errs, fmt.Errorf("unknown participant %q", name))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return Undecided, fmt.Errorf("twophase: coordinator: run %s: %w", txID, err)
	}
	entry, err := c.register(txID)
	if err != nil {
		return Undecided, err
	}
	if entry == nil {
		return Undecided, fmt.Errorf("twophase: coordinator: run %s: %w", txID, ErrDuplicate)
	}
	defer c.unregister(txID)
	r := c.newRunner(NewTxn(txID, names, c.cfg.PrepareTimeout), ops, entry)
	return r.drive(ctx, r.txn.Step(Event{Kind: EventStart, Now: c.cfg.Clock.Now()}))
}

// Decision implements Decider: the outcome of txID as this coordinator knows it. A transaction
// it is running is Undecided until its decision is logged. A transaction that is in the log
// without a decision and that nothing runs (its coordinator crashed) is aborted now. A
// transaction the log does not know is Aborted: under presumed abort only commits are
// remembered until every participant has acknowledged them.
func (c *Coordinator) Decision(ctx context.Context, txID string) (Outcome, error) {
	c.mu.Lock()
	if c.crashed {
		c.mu.Unlock()
		return Undecided, fmt.Errorf("twophase: coordinator: decision %s: %w", txID, ErrCrashed)
	}
	if a := c.active[txID]; a != nil {
		d := a.decision
		c.mu.Unlock()
		return d, nil
	}
	c.mu.Unlock()
	d, found, err := c.readDecision(ctx, txID)
	if err != nil {
		return Undecided, fmt.Errorf("twophase: coordinator: decision %s: %w", txID, err)
	}
	if !found {
		return Aborted, nil
	}
	if d != Undecided {
		return d, nil
	}
	d, err = c.logDecision(ctx, txID, Aborted)
	if err != nil {
		return Undecided, fmt.Errorf("twophase: coordinator: decision %s: presume abort: %w", txID, err)
	}
	c.log.Info("twophase: presumed abort on enquiry", "tx", txID)
	return d, nil
}

// Recover finishes every transaction in the log that this coordinator is not running: a logged
// decision is sent again to all its participants (commit and abort are idempotent there), and a
// transaction with no logged decision is aborted (presumed abort). Call it after a restart, and
// from time to time to deliver decisions that could not be delivered. Recover goes on past a
// transaction it cannot finish; it stops early only when ctx ends or the coordinator crashes.
func (c *Coordinator) Recover(ctx context.Context) (RecoveryReport, error) {
	var rep RecoveryReport
	if err := c.alive(); err != nil {
		return rep, err
	}
	recs, err := c.readLog(ctx)
	if err != nil {
		return rep, fmt.Errorf("twophase: coordinator: recover: %w", err)
	}
	var errs []error
	for _, rec := range recs {
		entry, err := c.register(rec.id)
		if err != nil {
			return rep, err
		}
		if entry == nil {
			continue // Run or another Recover has it
		}
		// Read the record again now that nothing else may change it: a Run that was under way
		// when the log was read may have decided, or finished and forgotten it, since.
		d, found, err := c.readDecision(ctx, rec.id)
		if err != nil || !found {
			c.unregister(rec.id)
			if err != nil {
				errs = append(errs, fmt.Errorf("tx %s: %w", rec.id, err))
				rep.Unfinished++
			}
			continue
		}
		rec.decision = d
		var unknown []string
		for _, p := range rec.participants {
			if c.cfg.Participants[p] == nil {
				unknown = append(unknown, p)
			}
		}
		if len(unknown) > 0 {
			c.unregister(rec.id)
			rep.Unfinished++
			errs = append(errs, fmt.Errorf("tx %s: participants %q not in Config.Participants", rec.id, unknown))
			continue
		}
		entry.decision = rec.decision
		r := c.newRunner(RestoreTxn(rec.id, rec.participants, rec.decision), nil, entry)
		_, err = r.drive(ctx, r.txn.Step(Event{Kind: EventRecover, Now: c.cfg.Clock.Now()}))
		c.unregister(rec.id)
		switch {
		case rec.decision == Undecided:
			rep.PresumedAborted++
		case rec.decision == Committed:
			rep.Committed++
		default:
			rep.Aborted++
		}
		if r.txn.State() != StateDone {
			rep.Unfinished++
		}
		if err != nil {
			if errors.Is(err, ErrCrashed) || ctx.Err() != nil {
				return rep, err
			}
			errs = append(errs, err)
		}
	}
	c.log.Info("twophase: recovered", "committed", rep.Committed, "aborted", rep.Aborted,
		"presumed_aborted", rep.PresumedAborted, "unfinished", rep.Unfinished)
	if err := errors.Join(errs...); err != nil {
		return rep, fmt.Errorf("twophase: coordinator: recover: %w", err)
	}
	return rep, nil
}

type voteMsg struct {
	participant string
	vote        Vote
	err         error
}

// runner performs one transaction's actions.
type runner struct {
	c     *Coordinator
	txn   *Txn
	id    string
	ops   map[string][]Op
	entry *activeTx
	votes chan voteMsg

	prepCtx    context.Context
	prepCancel context.CancelFunc
	prepWG     sync.WaitGroup
	sent       int   // decision messages sent
	sendErr    error // the context's error if it ended while the decision was being sent
}

func (c *Coordinator) newRunner(t *Txn, ops map[string][]Op, entry *activeTx) *runner {
	return &runner{c: c, txn: t, id: t.ID(), ops: ops, entry: entry, votes: make(chan voteMsg, len(t.Participants()))}
}

func (r *runner) errorf(format string, args ...any) error {
	return fmt.Errorf("twophase: coordinator: tx %s: "+format, append([]any{r.id}, args...)...)
}

// drive performs acts and the actions that follow from them until the transaction is done or
// waits for nothing but acknowledgements that did not come.
func (r *runner) drive(ctx context.Context, acts []Action) (Outcome, error) {
	clk := r.c.cfg.Clock
	r.prepCtx, r.prepCancel = context.WithCancel(ctx)
	defer func() {
		r.prepCancel()
		r.prepWG.Wait() // every prepare call has returned
	}()
	var timer clock.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		for len(acts) > 0 {
			a := acts[0]
			acts = acts[1:]
			more, err := r.do(ctx, a)
			if err != nil {
				return r.txn.Decision(), err
			}
			acts = append(acts, more...)
		}
		if r.txn.State() != StatePreparing {
			if r.sendErr != nil {
				return r.txn.Decision(), r.errorf("decision %v logged, not sent to %q: %w", r.txn.Decision(), r.txn.Unacked(), r.sendErr)
			}
			return r.txn.Decision(), nil
		}
		if timer == nil {
			timer = clk.NewTimer(r.txn.Deadline().Sub(clk.Now()))
		}
		select {
		case v := <-r.votes:
			if v.err != nil {
				r.c.log.Warn("twophase: prepare failed, counted as a no vote", "tx", r.id, "participant", v.participant, "err", v.err)
			} else if !v.vote.Yes {
				r.c.log.Info("twophase: participant voted no", "tx", r.id, "participant", v.participant, "reason", v.vote.Reason)
			}
			ev := Event{Kind: EventVote, Participant: v.participant, Yes: v.vote.Yes, Now: clk.Now()}
			if v.err != nil {
				ev = Event{Kind: EventNoAnswer, Participant: v.participant, Now: clk.Now()}
			}
			acts = r.txn.Step(ev)
		case <-timer.C():
			now := clk.Now()
			acts = r.txn.Step(Event{Kind: EventTick, Now: now})
			if len(acts) == 0 {
				timer.Reset(r.txn.Deadline().Sub(now))
			} else {
				r.c.log.Info("twophase: prepare timed out", "tx", r.id, "timeout", r.c.cfg.PrepareTimeout)
			}
		case <-ctx.Done():
			return Undecided, r.errorf("waiting for votes: %w", ctx.Err())
		case <-r.c.crashedCh:
			return Undecided, r.errorf("waiting for votes: %w", ErrCrashed)
		}
	}
}

// do performs one action and returns the actions that follow.
func (r *runner) do(ctx context.Context, a Action) ([]Action, error) {
	c := r.c
	if err := c.alive(); err != nil {
		return nil, r.errorf("%v: %w", a, err)
	}
	now := func() time.Time { return c.cfg.Clock.Now() }
	switch a.Kind {
	case ActionLogBegin:
		if err := c.logBegin(ctx, r.id, r.txn.Participants()); err != nil {
			return nil, r.errorf("log begin: %w", err)
		}
		next := r.txn.Step(Event{Kind: EventLogged, Now: now()})
		if err := c.crashAt(CrashAfterBegin, r.id); err != nil {
			return nil, err
		}
		return next, nil

	case ActionSendPrepare:
		p, res, ops := a.Participant, c.cfg.Participants[a.Participant], r.ops[a.Participant]
		r.prepWG.Add(1)
		go func() {
			defer r.prepWG.Done()
			v, err := res.Prepare(r.prepCtx, r.id, ops)
			r.votes <- voteMsg{participant: p, vote: v, err: err}
		}()
		return nil, nil

	case ActionLogDecision:
		if err := c.crashAt(CrashAfterPrepare, r.id); err != nil {
			return nil, err
		}
		// No prepare is in flight once the decision is logged: an abort overtakes nothing.
		r.prepCancel()
		r.prepWG.Wait()
		d, err := c.logDecision(ctx, r.id, a.Outcome)
		if err != nil {
			return nil, r.errorf("log decision %v: %w", a.Outcome, err)
		}
		if d != a.Outcome {
			return nil, r.errorf("log decision %v: the log already holds %v", a.Outcome, d)
		}
		c.mu.Lock()
		r.entry.decision = d
		c.mu.Unlock()
		c.log.Info("twophase: decision logged", "tx", r.id, "outcome", d)
		next := r.txn.Step(Event{Kind: EventLogged, Now: now()})
		if err := c.crashAt(CrashAfterDecision, r.id); err != nil {
			return nil, err
		}
		return next, nil

	case ActionSendCommit, ActionSendAbort:
		if r.sendErr != nil {
			return nil, nil // ctx ended: the rest is Recover's
		}
		if r.sent > 0 {
			if err := c.crashAt(CrashMidSend, r.id); err != nil {
				return nil, err
			}
		}
		r.sent++
		res := c.cfg.Participants[a.Participant]
		var err error
		if a.Kind == ActionSendCommit {
			err = res.Commit(ctx, r.id)
		} else {
			err = res.Abort(ctx, r.id)
		}
		if err != nil {
			if ctx.Err() != nil {
				r.sendErr = ctx.Err()
				return nil, nil
			}
			c.log.Warn("twophase: decision not delivered; Recover will send it again", "tx", r.id,
				"participant", a.Participant, "outcome", r.txn.Decision(), "err", err)
			return nil, nil
		}
		return r.txn.Step(Event{Kind: EventAck, Participant: a.Participant, Now: now()}), nil

	case ActionForget:
		if err := c.crashAt(CrashBeforeForget, r.id); err != nil {
			return nil, err
		}
		if err := c.forget(ctx, r.id); err != nil {
			// Harmless: the next Recover sends the decision again and forgets it then.
			c.log.Warn("twophase: forget failed", "tx", r.id, "err", err)
		}
		return nil, nil
	}
	return nil, r.errorf("unknown action %v", a)
}

// logRecord is one row of the log.
type logRecord struct {
	id           string
	participants []string
	decision     Outcome
}

func (c *Coordinator) logBegin(ctx context.Context, txID string, participants []string) error {
	ps, err := json.Marshal(participants)
	if err != nil {
		return err
	}
	res, err := c.cfg.DB.ExecContext(ctx, c.cfg.Dialect.rebind(`INSERT INTO `+c.table+` (tx_id, participants, created_at) VALUES (?, ?, ?)
		ON CONFLICT (tx_id) DO NOTHING`), txID, string(ps), c.cfg.Clock.Now().UnixMicro())
	if err != nil {
		return fmt.Errorf("insert into %s: %w", c.table, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("insert into %s: %w", c.table, err)
	} else if n == 0 {
		return ErrDuplicate
	}
	return nil
}

// logDecision records d unless a decision is already logged, and returns the logged decision.
func (c *Coordinator) logDecision(ctx context.Context, txID string, d Outcome) (Outcome, error) {
	res, err := c.cfg.DB.ExecContext(ctx, c.cfg.Dialect.rebind(`UPDATE `+c.table+` SET decision = ?, decided_at = ? WHERE tx_id = ? AND decision IS NULL`),
		outcomeText(d), c.cfg.Clock.Now().UnixMicro(), txID)
	if err != nil {
		return Undecided, fmt.Errorf("update %s: %w", c.table, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return Undecided, fmt.Errorf("update %s: %w", c.table, err)
	}
	if n == 1 {
		return d, nil
	}
	logged, found, err := c.readDecision(ctx, txID)
	if err != nil {
		return Undecided, err
	}
	if !found {
		return Undecided, fmt.Errorf("update %s: transaction not in the log", c.table)
	}
	return logged, nil
}

func (c *Coordinator) readDecision(ctx context.Context, txID string) (Outcome, bool, error) {
	var d sql.NullString
	err := c.cfg.DB.QueryRowContext(ctx, c.cfg.Dialect.rebind(`SELECT decision FROM `+c.table+` WHERE tx_id = ?`), txID).Scan(&d)
	if errors.Is(err, sql.ErrNoRows) {
		return Undecided, false, nil
	}
	if err != nil {
		return Undecided, false, fmt.Errorf("read %s: %w", c.table, err)
	}
	if !d.Valid {
		return Undecided, true, nil
	}
	o, err := parseOutcome(d.String)
	if err != nil {
		return Undecided, true, fmt.Errorf("read %s: %w", c.table, err)
	}
	return o, true, nil
}

func (c *Coordinator) readLog(ctx context.Context) ([]logRecord, error) {
	rows, err := c.cfg.DB.QueryContext(ctx, `SELECT tx_id, participants, decision FROM `+c.table+` ORDER BY created_at, tx_id`)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", c.table, err)
	}
	defer rows.Close()
	var recs []logRecord
	for rows.Next() {
		var (
			rec logRecord
			ps  string
			d   sql.NullString
		)
		if err := rows.Scan(&rec.id, &ps, &d); err != nil {
			return nil, fmt.Errorf("read %s: %w", c.table, err)
		}
		if err := json.Unmarshal([]byte(ps), &rec.participants); err != nil {
			return nil, fmt.Errorf("read %s: tx %s: participants: %w", c.table, rec.id, err)
		}
		if d.Valid {
			if rec.decision, err = parseOutcome(d.String); err != nil {
				return nil, fmt.Errorf("read %s: tx %s: %w", c.table, rec.id, err)
			}
		}
		recs = append(recs, rec)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", c.table, err)
	}
	return recs, nil
}

func (c *Coordinator) forget(ctx context.Context, txID string) error {
	if _, err := c.cfg.DB.ExecContext(ctx, c.cfg.Dialect.rebind(`DELETE FROM `+c.table+` WHERE tx_id = ?`), txID); err != nil {
		return fmt.Errorf("delete from %s: %w", c.table, err)
	}
	return nil
}

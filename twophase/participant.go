package twophase

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/faultline-dev/faultline/clock"
	"github.com/faultline-dev/faultline/internal/sqlmigrate"
)

// Defaults for ParticipantConfig's zero fields.
const (
	DefaultParticipantTable = "faultline_2pc"
	DefaultLockTimeout      = 5 * time.Second
)

// Participant errors callers branch on.
var (
	// ErrNotRecovered: the participant has not run Recover, so it does not know which keys its
	// in-doubt transactions lock and must not serve anything yet.
	ErrNotRecovered = errors.New("participant not recovered (call Recover at start-up)")
	// ErrInsufficientFunds: the change would make a balance negative.
	ErrInsufficientFunds = errors.New("insufficient funds")
	// ErrNotPrepared: Commit of a transaction the participant has not prepared.
	ErrNotPrepared = errors.New("transaction not prepared")
	// ErrConflict: the decision contradicts what the participant recorded (commit of an aborted
	// transaction, abort of a committed one); a protocol violation.
	ErrConflict = errors.New("decision conflicts with the participant's record")
)

// ParticipantConfig configures a Participant.
type ParticipantConfig struct {
	// Name identifies the participant in errors and logs. Required.
	Name string
	// DB holds the participant's accounts, prepared transactions and outcomes; it is the
	// participant's own database. Required.
	DB *sql.DB
	// Dialect of DB: SQLite or Postgres. Required.
	Dialect Dialect
	// Table is the prefix of the participant's tables: Table+"_accounts" (key → balance),
	// Table+"_prepared" (prepared transactions with their operations) and Table+"_outcomes"
	// (committed and aborted transaction ids). Schema-qualified on PostgreSQL if you like. Empty
	// means DefaultParticipantTable.
	Table string
	// Clock is the time source for lock waits and hold times. Nil means clock.Real().
	Clock clock.Clock
	// LockTimeout bounds how long Prepare waits for the locks of its keys; when it passes,
	// Prepare votes no (this is how a distributed deadlock between two transactions ends). Get
	// and Update wait as long as their context allows. Zero means DefaultLockTimeout.
	LockTimeout time.Duration
	// Coordinator answers Resolve's questions about in-doubt transactions. Nil means the
	// participant never asks and waits for the coordinator to resend its decision.
	Coordinator Decider
	// Logger receives recovery and resolution events. Nil discards.
	Logger *slog.Logger
}

// ParticipantStats is a snapshot of a participant's locks and transactions. Durations are on the
// participant's clock.
type ParticipantStats struct {
	// InDoubt counts transactions that voted yes and wait for the decision, holding their locks.
	InDoubt int
	// LocksHeld counts keys locked now; LongestHeldNow is the age of the oldest of those locks.
	LocksHeld      int
	LongestHeldNow time.Duration
	// Waiting counts operations (prepares, Get, Update) waiting for a lock now; Waited counts
	// every operation that ever had to wait; WaitTotal and WaitMax are their waiting times.
	Waiting   int
	Waited    int64
	WaitTotal time.Duration
	WaitMax   time.Duration
	// LockTimeouts counts prepares that gave up waiting (and voted no).
	LockTimeouts int64
	// Holds counts locks released; HoldTotal and HoldMax are how long they had been held (a lock
	// reacquired by Recover counts from the moment its transaction prepared). RecentHolds lists
	// the last 64.
	Holds       int64
	HoldTotal   time.Duration
	HoldMax     time.Duration
	RecentHolds []LockHold
	// Transactions prepared (voted yes), committed, aborted and refused (voted no) by this
	// incarnation of the participant.
	Prepared, Committed, Aborted, VotedNo int64
}

type ptxState int

const (
	ptxPreparing ptxState = iota // waiting for locks or validating
	ptxPrepared                  // voted yes, locks held: in doubt
)

// ptx is a transaction the participant is preparing or has prepared.
type ptx struct {
	id     string
	ops    []Op
	keys   []string
	state  ptxState
	abort  bool               // Abort arrived while preparing
	cancel context.CancelFunc // ends the prepare's lock wait
	// unsure: recording the prepare failed, so it may or may not be durable. The transaction is
	// kept as prepared (locks held) until the decision, but never votes yes.
	unsure bool
}

// Participant is a resource manager in two-phase commit: it owns a database of accounts (key →
// integer balance) and takes part in transactions that change them. Prepare locks the touched
// keys, validates the change, records the transaction durably and votes yes while keeping the
// locks; Commit applies the change and releases them; Abort releases them. Get and Update are
// local reads and writes that wait for the same locks, so they stall behind an in-doubt
// transaction. After a restart, Recover reloads the prepared transactions and locks their keys
// again before the participant serves anything. It is safe for concurrent use.
type Participant struct {
	cfg   ParticipantConfig
	db    *sql.DB
	d     Dialect
	tAcc  string
	tPrep string
	tOut  string
	locks *lockTable
	log   *slog.Logger
	seq   atomic.Uint64 // local lock owners

	mu        sync.Mutex // the transaction table and every durable change of a transaction's state
	txs       map[string]*ptx
	recovered bool
	closed    bool

	prepared, committed, aborted, votedNo int64

	// afterPrepareWrite, when set (tests), runs after the prepared record is committed; an error
	// stands for a commit whose acknowledgement was lost.
	afterPrepareWrite func() error
}

// NewParticipant checks cfg and returns a participant. Call Migrate once (idempotent), then
// Recover, before anything else.
func NewParticipant(cfg ParticipantConfig) (*Participant, error) {
	var errs []error
	if cfg.Name == "" {
		errs = append(errs, errors.New("Name is required"))
	}
	if cfg.DB == nil {
		errs = append(errs, errors.New("DB is required"))
	}
	if !cfg.Dialect.valid() {
		errs = append(errs, fmt.Errorf("Dialect %v: want SQLite or Postgres", cfg.Dialect))
	}
	if cfg.Table == "" {
		cfg.Table = DefaultParticipantTable
	}
	if cfg.Dialect.valid() {
		if err := checkTableName(cfg.Dialect, cfg.Table); err != nil {
			errs = append(errs, fmt.Errorf("Table: %w", err))
		}
	}
	if cfg.LockTimeout < 0 {
		errs = append(errs, fmt.Errorf("LockTimeout %v: must not be negative", cfg.LockTimeout))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("twophase: ParticipantConfig: %w", err)
	}
	if cfg.LockTimeout == 0 {
		cfg.LockTimeout = DefaultLockTimeout
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.Real()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Participant{
		cfg:   cfg,
		db:    cfg.DB,
		d:     cfg.Dialect,
		tAcc:  cfg.Table + "_accounts",
		tPrep: cfg.Table + "_prepared",
		tOut:  cfg.Table + "_outcomes",
		locks: newLockTable(cfg.Clock),
		log:   cfg.Logger.With("participant", cfg.Name),
		txs:   map[string]*ptx{},
	}, nil
}

// Name returns the participant's name.
func (p *Participant) Name() string { return p.cfg.Name }

func (p *Participant) errorf(format string, args ...any) error {
	return fmt.Errorf("twophase: participant %q: "+format, append([]any{p.cfg.Name}, args...)...)
}

// Migrate creates the participant's tables (idempotent).
func (p *Participant) Migrate(ctx context.Context) error {
	stmts := []string{
		`CREATE TABLE IF NOT EXISTS ` + p.tAcc + ` (
	acct    TEXT   PRIMARY KEY,
	balance BIGINT NOT NULL
)`,
		`CREATE TABLE IF NOT EXISTS ` + p.tPrep + ` (
	tx_id       TEXT   PRIMARY KEY,
	ops         TEXT   NOT NULL,
	prepared_at BIGINT NOT NULL
)`,
		`CREATE TABLE IF NOT EXISTS ` + p.tOut + ` (
	tx_id      TEXT   PRIMARY KEY,
	outcome    TEXT   NOT NULL,
	decided_at BIGINT NOT NULL
)`,
	}
	if err := migrate(ctx, p.db, p.d, p.cfg.Table, stmts); err != nil {
		return p.errorf("migrate: %w", err)
	}
	return nil
}

// migrate runs stmts in one transaction; on PostgreSQL under an advisory lock, so concurrent
// migrations of the same tables do not collide.
func migrate(ctx context.Context, db *sql.DB, d Dialect, name string, stmts []string) error {
	return sqlmigrate.Apply(ctx, db, d == Postgres, "faultline_twophase_migrate:"+name, stmts)
}

func txOwner(txID string) string { return "tx:" + txID }

// opKeys returns the distinct keys of ops, sorted (the lock order).
func opKeys(ops []Op) []string {
	keys := make([]string, 0, len(ops))
	for _, op := range ops {
		keys = append(keys, op.Key)
	}
	slices.Sort(keys)
	return slices.Compact(keys)
}

// ready reports whether the participant may serve (under p.mu).
func (p *Participant) readyLocked() error {
	if p.closed {
		return ErrClosed
	}
	if !p.recovered {
		return ErrNotRecovered
	}
	return nil
}

func (p *Participant) ready() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.readyLocked()
}

// Recover reloads the prepared transactions from the database and locks their keys again: they
// are in doubt and stay locked until the decision arrives (Commit or Abort from the
// coordinator). If a Coordinator is configured, Recover then asks it (Resolve); when it cannot
// be reached the transactions simply stay in doubt. Recover returns how many transactions are
// still in doubt. Call it once at start-up, before the participant serves anything; calling it
// again does no harm.
func (p *Participant) Recover(ctx context.Context) (int, error) {
	if err := p.reload(ctx); err != nil {
		return 0, err
	}
	if p.cfg.Coordinator != nil {
		if _, err := p.Resolve(ctx); err != nil {
			if ctx.Err() != nil {
				return len(p.InDoubt()), err
			}
			p.log.Warn("twophase: in-doubt transactions stay blocked", "err", err)
		}
	}
	return len(p.InDoubt()), nil
}

func (p *Participant) reload(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return p.errorf("recover: %w", ErrClosed)
	}
	rows, err := p.db.QueryContext(ctx, `SELECT tx_id, ops, prepared_at FROM `+p.tPrep+` ORDER BY tx_id`)
	if err != nil {
		return p.errorf("recover: read %s: %w", p.tPrep, err)
	}
	defer rows.Close()
	type row struct {
		id    string
		ops   []Op
		since time.Time
	}
	var found []row
	for rows.Next() {
		var (
			id, opsJSON string
			at          int64
		)
		if err := rows.Scan(&id, &opsJSON, &at); err != nil {
			return p.errorf("recover: read %s: %w", p.tPrep, err)
		}
		var ops []Op
		if err := json.Unmarshal([]byte(opsJSON), &ops); err != nil {
			return p.errorf("recover: transaction %s: operations: %w", id, err)
		}
		found = append(found, row{id, ops, time.UnixMicro(at)})
	}
	if err := rows.Err(); err != nil {
		return p.errorf("recover: read %s: %w", p.tPrep, err)
	}
	for _, r := range found {
		if p.txs[r.id] != nil {
			continue
		}
		keys := opKeys(r.ops)
		if err := p.locks.grant(txOwner(r.id), keys, r.since); err != nil {
			return p.errorf("recover: transaction %s: %w", r.id, err)
		}
		p.txs[r.id] = &ptx{id: r.id, ops: r.ops, keys: keys, state: ptxPrepared}
		p.log.Info("twophase: in doubt after restart", "tx", r.id, "keys", keys)
	}
	p.recovered = true
	return nil
}

// Resolve asks the Coordinator how each in-doubt transaction ended and applies the decision. It
// returns how many it resolved; transactions the coordinator has not decided, or cannot answer
// for, stay in doubt (the errors are returned, joined).
func (p *Participant) Resolve(ctx context.Context) (int, error) {
	if p.cfg.Coordinator == nil {
		return 0, p.errorf("resolve: no Coordinator configured")
	}
	var (
		n    int
		errs []error
	)
	for _, id := range p.InDoubt() {
		o, err := p.cfg.Coordinator.Decision(ctx, id)
		if err != nil {
			errs = append(errs, fmt.Errorf("ask about %s: %w", id, err))
			if ctx.Err() != nil {
				break
			}
			continue
		}
		switch o {
		case Committed:
			err = p.Commit(ctx, id)
		case Aborted:
			err = p.Abort(ctx, id)
		default:
			continue
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		p.log.Info("twophase: resolved in-doubt transaction", "tx", id, "outcome", o)
		n++
	}
	if err := errors.Join(errs...); err != nil {
		return n, p.errorf("resolve: %w", err)
	}
	return n, nil
}

// Prepare implements Resource. It locks the keys ops touch (in key order, waiting at most
// LockTimeout), checks that no balance would go negative, records the transaction and its
// operations durably and votes yes, keeping the locks. It votes no (and records the
// transaction as aborted, so a repeated prepare votes no again) when a lock wait times out, a
// balance would go negative, an operation names no key, or the transaction was aborted before.
// A repeated prepare of a prepared or committed transaction votes yes again. An error means no
// vote: the coordinator treats it as no.
func (p *Participant) Prepare(ctx context.Context, txID string, ops []Op) (Vote, error) {
	if txID == "" {
		return Vote{}, p.errorf("prepare: empty transaction id")
	}
	p.mu.Lock()
	if err := p.readyLocked(); err != nil {
		p.mu.Unlock()
		return Vote{}, p.errorf("prepare %s: %w", txID, err)
	}
	if t := p.txs[txID]; t != nil {
		p.mu.Unlock()
		if t.state == ptxPrepared && t.unsure {
			return Vote{Reason: "an earlier prepare failed"}, nil
		}
		if t.state == ptxPrepared {
			return Vote{Yes: true}, nil
		}
		return Vote{}, p.errorf("prepare %s: already being prepared", txID)
	}
	switch o, err := p.outcome(ctx, txID); {
	case err != nil:
		p.mu.Unlock()
		return Vote{}, p.errorf("prepare %s: %w", txID, err)
	case o == Committed:
		p.mu.Unlock()
		return Vote{Yes: true}, nil
	case o == Aborted:
		p.mu.Unlock()
		p.votedNoAdd()
		return Vote{Reason: "transaction already aborted here"}, nil
	}
	for i, op := range ops {
		if op.Key == "" {
			defer p.mu.Unlock()
			return p.refuseLocked(ctx, txID, fmt.Sprintf("operation %d has no key", i))
		}
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	t := &ptx{id: txID, ops: slices.Clone(ops), keys: opKeys(ops), cancel: cancel}
	p.txs[txID] = t
	p.mu.Unlock()

	err := p.locks.acquire(wctx, txOwner(txID), t.keys, p.cfg.LockTimeout)

	p.mu.Lock()
	defer p.mu.Unlock()
	if err == nil && (t.abort || p.closed) {
		p.locks.release(txOwner(txID), t.keys)
	}
	switch {
	case t.abort:
		delete(p.txs, txID)
		p.votedNo++
		return Vote{Reason: "aborted while preparing"}, nil
	case p.closed:
		delete(p.txs, txID)
		return Vote{}, p.errorf("prepare %s: %w", txID, ErrClosed)
	case errors.Is(err, ErrLockTimeout):
		delete(p.txs, txID)
		return p.refuseLocked(ctx, txID, err.Error())
	case err != nil:
		delete(p.txs, txID)
		return Vote{}, p.errorf("prepare %s: lock: %w", txID, err)
	}
	vote, err := p.recordPrepared(ctx, t)
	if err != nil {
		// The write may have happened all the same (a context cancelled during the commit, a
		// connection lost): behave as prepared, locks held. No yes vote leaves, so the
		// coordinator aborts; its abort, or Resolve, releases the locks.
		t.state, t.unsure = ptxPrepared, true
		return Vote{}, p.errorf("prepare %s: %w", txID, err)
	}
	if !vote.Yes {
		p.locks.release(txOwner(txID), t.keys)
		delete(p.txs, txID)
		p.votedNo++
		return vote, nil
	}
	t.state = ptxPrepared
	p.prepared++
	return vote, nil
}

func (p *Participant) votedNoAdd() {
	p.mu.Lock()
	p.votedNo++
	p.mu.Unlock()
}

// refuseLocked records txID as aborted and votes no (under p.mu).
func (p *Participant) refuseLocked(ctx context.Context, txID, reason string) (Vote, error) {
	if err := p.recordOutcome(ctx, p.db, txID, Aborted); err != nil {
		return Vote{}, p.errorf("prepare %s: vote no (%s): %w", txID, reason, err)
	}
	p.votedNo++
	return Vote{Reason: reason}, nil
}

type execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// outcome returns what the database recorded about txID: Committed, Aborted or Undecided
// (nothing).
func (p *Participant) outcome(ctx context.Context, txID string) (Outcome, error) {
	var s string
	err := p.db.QueryRowContext(ctx, p.d.rebind(`SELECT outcome FROM `+p.tOut+` WHERE tx_id = ?`), txID).Scan(&s)
	if errors.Is(err, sql.ErrNoRows) {
		return Undecided, nil
	}
	if err != nil {
		return Undecided, fmt.Errorf("read %s: %w", p.tOut, err)
	}
	return parseOutcome(s)
}

func parseOutcome(s string) (Outcome, error) {
	switch s {
	case "commit":
		return Committed, nil
	case "abort":
		return Aborted, nil
	}
	return Undecided, fmt.Errorf("unknown outcome %q", s)
}

func outcomeText(o Outcome) string {
	if o == Committed {
		return "commit"
	}
	return "abort"
}

func (p *Participant) recordOutcome(ctx context.Context, db execer, txID string, o Outcome) error {
	_, err := db.ExecContext(ctx, p.d.rebind(`INSERT INTO `+p.tOut+` (tx_id, outcome, decided_at) VALUES (?, ?, ?) ON CONFLICT (tx_id) DO NOTHING`),
		txID, outcomeText(o), p.cfg.Clock.Now().UnixMicro())
	if err != nil {
		return fmt.Errorf("record %s in %s: %w", outcomeText(o), p.tOut, err)
	}
	return nil
}

func (p *Participant) balance(ctx context.Context, db execer, key string) (int64, error) {
	var b int64
	err := db.QueryRowContext(ctx, p.d.rebind(`SELECT balance FROM `+p.tAcc+` WHERE acct = ?`), key).Scan(&b)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read balance of %q: %w", key, err)
	}
	return b, nil
}

func (p *Participant) addBalance(ctx context.Context, db execer, key string, delta int64) error {
	_, err := db.ExecContext(ctx, p.d.rebind(`INSERT INTO `+p.tAcc+` AS a (acct, balance) VALUES (?, ?)
		ON CONFLICT (acct) DO UPDATE SET balance = a.balance + excluded.balance`), key, delta)
	if err != nil {
		return fmt.Errorf("update balance of %q: %w", key, err)
	}
	return nil
}

// sums returns each key's total delta.
func sums(ops []Op) map[string]int64 {
	m := make(map[string]int64, len(ops))
	for _, op := range ops {
		m[op.Key] += op.Delta
	}
	return m
}

// recordPrepared validates t's operations against the balances (its keys are locked) and, if
// they pass, records t as prepared, in one database transaction. A failed validation records t
// as aborted and returns a no vote.
func (p *Participant) recordPrepared(ctx context.Context, t *ptx) (Vote, error) {
	opsJSON, err := json.Marshal(t.ops)
	if err != nil {
		return Vote{}, fmt.Errorf("encode operations: %w", err)
	}
	tx, err := p.db.BeginTx(ctx, nil)
	if err != nil {
		return Vote{}, fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // after Commit it is a no-op
	vote := Vote{Yes: true}
	delta := sums(t.ops)
	for _, key := range t.keys {
		b, err := p.balance(ctx, tx, key)
		if err != nil {
			return Vote{}, err
		}
		if b+delta[key] < 0 {
			vote = Vote{Reason: fmt.Sprintf("%s: balance of %q is %d, change %d", ErrInsufficientFunds, key, b, delta[key])}
			break
		}
	}
	if vote.Yes {
		_, err = tx.ExecContext(ctx, p.d.rebind(`INSERT INTO `+p.tPrep+` (tx_id, ops, prepared_at) VALUES (?, ?, ?)`),
			t.id, string(opsJSON), p.cfg.Clock.Now().UnixMicro())
		if err != nil {
			return Vote{}, fmt.Errorf("record prepared in %s: %w", p.tPrep, err)
		}
	} else if err := p.recordOutcome(ctx, tx, t.id, Aborted); err != nil {
		return Vote{}, err
	}
	if err := tx.Commit(); err != nil {
		return Vote{}, fmt.Errorf("commit: %w", err)
	}
	if p.afterPrepareWrite != nil {
		if err := p.afterPrepareWrite(); err != nil {
			return Vote{}, fmt.Errorf("commit: %w", err)
		}
	}
	return vote, nil
}

// Commit implements Resource: it applies the prepared transaction's operations, records it as
// committed and releases its locks, in that order (a crash in between leaves it prepared, and
// the coordinator sends commit again). Committing a committed transaction does nothing.
func (p *Participant) Commit(ctx context.Context, txID string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.readyLocked(); err != nil {
		return p.errorf("commit %s: %w", txID, err)
	}
	t := p.txs[txID]
	if t == nil {
		switch o, err := p.outcome(ctx, txID); {
		case err != nil:
			return p.errorf("commit %s: %w", txID, err)
		case o == Committed:
			return nil
		case o == Aborted:
			return p.errorf("commit %s: it was aborted: %w", txID, ErrConflict)
		}
		return p.errorf("commit %s: %w", txID, ErrNotPrepared)
	}
	if t.state != ptxPrepared {
		return p.errorf("commit %s: still preparing: %w", txID, ErrNotPrepared)
	}
	if err := p.applyCommit(ctx, t); err != nil {
		return p.errorf("commit %s: %w", txID, err)
	}
	delete(p.txs, txID)
	p.locks.release(txOwner(txID), t.keys)
	p.committed++
	return nil
}

// applyCommit applies t in one database transaction that also deletes its prepared row. It is
// idempotent: when an earlier attempt committed although it reported an error (the context
// ended during the commit), the row is gone and the operations are not applied twice.
func (p *Participant) applyCommit(ctx context.Context, t *ptx) error {
	tx, err := p.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // after Commit it is a no-op
	res, err := tx.ExecContext(ctx, p.d.rebind(`DELETE FROM `+p.tPrep+` WHERE tx_id = ?`), t.id)
	if err != nil {
		return fmt.Errorf("delete from %s: %w", p.tPrep, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("delete from %s: %w", p.tPrep, err)
	} else if n == 0 {
		switch o, err := p.outcome(ctx, t.id); {
		case err != nil:
			return err
		case o == Committed:
			return nil
		case o == Aborted:
			return fmt.Errorf("it was aborted: %w", ErrConflict)
		}
		return fmt.Errorf("no prepared record: %w", ErrNotPrepared)
	}
	delta := sums(t.ops)
	for _, key := range t.keys {
		if err := p.addBalance(ctx, tx, key, delta[key]); err != nil {
			return err
		}
	}
	if err := p.recordOutcome(ctx, tx, t.id, Committed); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// Abort implements Resource: it forgets the prepared transaction, records it as aborted and
// releases its locks. Aborting an aborted transaction does nothing; aborting one the
// participant never saw records it as aborted, so a prepare that arrives late votes no; a
// prepare still waiting for its locks gives up and votes no.
func (p *Participant) Abort(ctx context.Context, txID string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.readyLocked(); err != nil {
		return p.errorf("abort %s: %w", txID, err)
	}
	t := p.txs[txID]
	if t == nil {
		switch o, err := p.outcome(ctx, txID); {
		case err != nil:
			return p.errorf("abort %s: %w", txID, err)
		case o == Aborted:
			return nil
		case o == Committed:
			return p.errorf("abort %s: it was committed: %w", txID, ErrConflict)
		}
		if err := p.recordOutcome(ctx, p.db, txID, Aborted); err != nil {
			return p.errorf("abort %s: %w", txID, err)
		}
		return nil
	}
	if t.state == ptxPreparing {
		t.abort = true
		t.cancel()
		if err := p.recordOutcome(ctx, p.db, txID, Aborted); err != nil {
			return p.errorf("abort %s: %w", txID, err)
		}
		return nil
	}
	tx, err := p.db.BeginTx(ctx, nil)
	if err != nil {
		return p.errorf("abort %s: begin: %w", txID, err)
	}
	defer tx.Rollback() //nolint:errcheck // after Commit it is a no-op
	var done string
	switch err := tx.QueryRowContext(ctx, p.d.rebind(`SELECT outcome FROM `+p.tOut+` WHERE tx_id = ?`), txID).Scan(&done); {
	case errors.Is(err, sql.ErrNoRows):
	case err != nil:
		return p.errorf("abort %s: read %s: %w", txID, p.tOut, err)
	case done == outcomeText(Committed):
		// An earlier Commit went through although it reported an error.
		return p.errorf("abort %s: it was committed: %w", txID, ErrConflict)
	}
	if _, err := tx.ExecContext(ctx, p.d.rebind(`DELETE FROM `+p.tPrep+` WHERE tx_id = ?`), txID); err != nil {
		return p.errorf("abort %s: delete from %s: %w", txID, p.tPrep, err)
	}
	if err := p.recordOutcome(ctx, tx, txID, Aborted); err != nil {
		return p.errorf("abort %s: %w", txID, err)
	}
	if err := tx.Commit(); err != nil {
		return p.errorf("abort %s: commit: %w", txID, err)
	}
	delete(p.txs, txID)
	p.locks.release(txOwner(txID), t.keys)
	p.aborted++
	return nil
}

func (p *Participant) localOwner() string {
	return "local:" + strconv.FormatUint(p.seq.Add(1), 10)
}

// Get returns key's balance (0 for an unknown key). It waits for the key's lock as long as ctx
// allows, so it does not return while a transaction holding the key is in doubt.
func (p *Participant) Get(ctx context.Context, key string) (int64, error) {
	if err := p.ready(); err != nil {
		return 0, p.errorf("get %q: %w", key, err)
	}
	owner := p.localOwner()
	if err := p.locks.acquire(ctx, owner, []string{key}, 0); err != nil {
		return 0, p.errorf("get %q: lock: %w", key, err)
	}
	defer p.locks.release(owner, []string{key})
	b, err := p.balance(ctx, p.db, key)
	if err != nil {
		return 0, p.errorf("get: %w", err)
	}
	return b, nil
}

// Update adds delta to key's balance outside any distributed transaction and returns the new
// balance; ErrInsufficientFunds if it would go negative. Like Get it waits for the key's lock as
// long as ctx allows.
func (p *Participant) Update(ctx context.Context, key string, delta int64) (int64, error) {
	if key == "" {
		return 0, p.errorf("update: empty key")
	}
	if err := p.ready(); err != nil {
		return 0, p.errorf("update %q: %w", key, err)
	}
	owner := p.localOwner()
	if err := p.locks.acquire(ctx, owner, []string{key}, 0); err != nil {
		return 0, p.errorf("update %q: lock: %w", key, err)
	}
	defer p.locks.release(owner, []string{key})
	tx, err := p.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, p.errorf("update %q: begin: %w", key, err)
	}
	defer tx.Rollback() //nolint:errcheck // after Commit it is a no-op
	b, err := p.balance(ctx, tx, key)
	if err != nil {
		return 0, p.errorf("update: %w", err)
	}
	if b+delta < 0 {
		return b, p.errorf("update %q: balance %d, change %d: %w", key, b, delta, ErrInsufficientFunds)
	}
	if err := p.addBalance(ctx, tx, key, delta); err != nil {
		return 0, p.errorf("update: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return 0, p.errorf("update %q: commit: %w", key, err)
	}
	return b + delta, nil
}

// InDoubt returns the ids of the transactions that voted yes and wait for the decision, sorted.
func (p *Participant) InDoubt() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var ids []string
	for id, t := range p.txs {
		if t.state == ptxPrepared {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids
}

// Stats returns a snapshot of the participant's locks and transactions.
func (p *Participant) Stats() ParticipantStats {
	var s ParticipantStats
	p.locks.fill(&s)
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, t := range p.txs {
		if t.state == ptxPrepared {
			s.InDoubt++
		}
	}
	s.Prepared, s.Committed, s.Aborted, s.VotedNo = p.prepared, p.committed, p.aborted, p.votedNo
	return s
}

// Close stops the participant as a crash would: operations waiting for a lock return ErrClosed,
// later calls fail with ErrClosed, and the database keeps what was durable (a new Participant
// over it, after Recover, carries on). Close does not close the database. It is idempotent.
func (p *Participant) Close() error {
	p.mu.Lock()
	p.closed = true
	for _, t := range p.txs {
		if t.cancel != nil && t.state == ptxPreparing {
			t.cancel()
		}
	}
	p.mu.Unlock()
	p.locks.close()
	return nil
}

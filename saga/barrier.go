package saga

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/faultline-dev/faultline/clock"
	"github.com/faultline-dev/faultline/internal/sqlmigrate"
)

// The participant's sub-transaction barrier, after the design of dtm's barrier (dtm-labs/dtm,
// "Sub-transaction barrier"), keyed and serialized on a unique key in the participant's own
// database instead of on dtm's gid/branch/op rows.

// Defaults for BarrierConfig's zero fields.
const (
	// DefaultBarrierTable is the barrier table's name.
	DefaultBarrierTable = "faultline_saga_barrier"
	// DefaultBarrierCleanupBatch is how many rows one Cleanup statement deletes.
	DefaultBarrierCleanupBatch = 1000
)

// BarrierStatus is the outcome a barrier row records for one (saga, step, op).
type BarrierStatus string

const (
	// BarrierSucceeded: the operation ran and its writes committed with the row. Duplicates are
	// answered ReplySucceeded with the stored output.
	BarrierSucceeded BarrierStatus = "succeeded"
	// BarrierFailed: the operation was refused for a business reason (its handler returned an
	// error made with Fail); its writes were rolled back and the reason is stored. Duplicates of
	// a refused action are answered ReplyFailed with the stored reason; a refused compensation
	// runs again at its next delivery.
	BarrierFailed BarrierStatus = "failed"
	// BarrierNullCompensated: a compensation that found nothing to undo (its action never ran,
	// was refused or was skipped) and succeeded without running its handler.
	BarrierNullCompensated BarrierStatus = "null-compensated"
	// BarrierSkipped: on an action's row, written by its compensation, which arrived first. The
	// action is never applied; it is answered ReplyFailed ("hanging" prevention).
	BarrierSkipped BarrierStatus = "skipped"

	// barrierPending marks a row claimed by a transaction that has not finished the operation.
	// Other transactions never see it: they wait on the row's key until it commits with a
	// final status, or rolls back.
	barrierPending BarrierStatus = "pending"
)

// skippedReason is stored on an action row written by its compensation and is the error of
// the ReplyFailed every late delivery of the action gets.
const skippedReason = "action skipped: the step was compensated before the action arrived"

// barrierSavepoint brackets a handler in Do, so a refusal undoes the handler's writes and keeps
// the barrier row.
const barrierSavepoint = "faultline_saga_barrier"

// BarrierConfig configures a Barrier.
type BarrierConfig struct {
	// DB is the participant's own database, the one its handlers write to. It holds the barrier
	// table. Required.
	DB *sql.DB
	// Dialect is DB's SQL flavour: SQLite or Postgres. Required.
	Dialect Dialect
	// Table is the barrier table: an identifier of letters, digits and underscores (on
	// PostgreSQL optionally "schema.name"), at most 48 characters a part. Empty means
	// DefaultBarrierTable.
	Table string
	// Clock stamps created_at. Nil means clock.Real().
	Clock clock.Clock
	// TxOptions are passed to BeginTx by Run. Nil means the database's default. On PostgreSQL
	// that should be READ COMMITTED (the default): a conflicting insert waits for the other
	// transaction and the next statement sees its row. Under REPEATABLE READ or SERIALIZABLE the
	// loser of a race fails with a serialization error instead, which Do returns as a transient
	// error: roll back and try again.
	TxOptions *sql.TxOptions
	// CleanupBatch is how many rows each Cleanup statement deletes. Zero means
	// DefaultBarrierCleanupBatch.
	CleanupBatch int
}

// Barrier makes a participant's step handlers safe against the three anomalies of saga
// participants (dtm's terms): duplicate requests are applied once (idempotency), a compensation
// whose action never ran succeeds without undoing anything (null compensation), and an action
// that arrives after its compensation is never applied (anti-hanging).
//
// It records each (saga ID, step, op) in a table of the participant's own database, in the
// transaction of the handler's writes, so the record and the writes commit together. Action and
// compensation of the same step are serialized by the table's unique key alone: each claims its
// row with an insert, and a compensation also inserts the action's row (marked skipped) to find
// out whether the action ran; whichever insert comes second waits for the first transaction and
// then sees its row. This holds on SQLite and on PostgreSQL under READ COMMITTED, across any
// number of processes sharing the database.
//
// A Barrier is safe for concurrent use.
type Barrier struct {
	db     *sql.DB
	d      Dialect
	table  string
	clk    clock.Clock
	txOpts *sql.TxOptions
	batch  int
	q      barrierQueries
}

// NewBarrier checks cfg and returns a Barrier. The table must exist (Migrate, or BarrierSchema in
// your own migrations).
func NewBarrier(cfg BarrierConfig) (*Barrier, error) {
	if cfg.DB == nil {
		return nil, errors.New("saga barrier: BarrierConfig.DB is nil")
	}
	table, err := barrierTable(cfg.Dialect, cfg.Table)
	if err != nil {
		return nil, err
	}
	if cfg.CleanupBatch < 0 {
		return nil, fmt.Errorf("saga barrier: BarrierConfig.CleanupBatch is %d, want ≥ 0 (0 means %d)", cfg.CleanupBatch, DefaultBarrierCleanupBatch)
	}
	if cfg.CleanupBatch == 0 {
		cfg.CleanupBatch = DefaultBarrierCleanupBatch
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.Real()
	}
	return &Barrier{
		db: cfg.DB, d: cfg.Dialect, table: table, clk: cfg.Clock, txOpts: cfg.TxOptions,
		batch: cfg.CleanupBatch, q: buildBarrierQueries(cfg.Dialect, table),
	}, nil
}

// barrierTable checks the dialect and the table name ("" means DefaultBarrierTable).
func barrierTable(d Dialect, table string) (string, error) {
	if d != SQLite && d != Postgres {
		return "", fmt.Errorf("saga barrier: Dialect is %v, want saga.SQLite or saga.Postgres", d)
	}
	if table == "" {
		return DefaultBarrierTable, nil
	}
	parts := strings.Split(table, ".")
	if len(parts) > 2 || len(parts) == 2 && d == SQLite {
		return "", fmt.Errorf("saga barrier: table %q: want an identifier (schema.name on PostgreSQL)", table)
	}
	for _, p := range parts {
		if !barrierIdent(p) {
			return "", fmt.Errorf("saga barrier: table %q: want letters, digits and underscores, not starting with a digit, at most 48 characters a part", table)
		}
	}
	return table, nil
}

// barrierIdent accepts identifiers that need no quoting, short enough that the index name
// (name + "_created_idx") stays within PostgreSQL's 63 bytes.
func barrierIdent(s string) bool {
	if s == "" || len(s) > 48 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		ok := c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || i > 0 && c >= '0' && c <= '9'
		if !ok {
			return false
		}
	}
	return true
}

// BarrierSchema returns the statements that create the barrier table (table "" means
// DefaultBarrierTable) and its cleanup index for d, for teams that run their own migrations.
// They are idempotent.
func BarrierSchema(d Dialect, table string) ([]string, error) {
	table, err := barrierTable(d, table)
	if err != nil {
		return nil, err
	}
	base := table[strings.LastIndexByte(table, '.')+1:]
	if d == SQLite {
		return []string{
			`CREATE TABLE IF NOT EXISTS ` + table + ` (
	saga_id    TEXT    NOT NULL,
	step       TEXT    NOT NULL,
	op         TEXT    NOT NULL,
	status     TEXT    NOT NULL,
	error      TEXT    NOT NULL DEFAULT '',
	output     BLOB,
	created_at INTEGER NOT NULL,
	PRIMARY KEY (saga_id, step, op)
) WITHOUT ROWID`,
			`CREATE INDEX IF NOT EXISTS ` + base + `_created_idx ON ` + table + ` (created_at)`,
		}, nil
	}
	return []string{
		`CREATE TABLE IF NOT EXISTS ` + table + ` (
	saga_id    text        NOT NULL,
	step       text        NOT NULL,
	op         text        NOT NULL,
	status     text        NOT NULL,
	error      text        NOT NULL DEFAULT '',
	output     bytea,
	created_at timestamptz NOT NULL,
	PRIMARY KEY (saga_id, step, op)
)`,
		`CREATE INDEX IF NOT EXISTS ` + base + `_created_idx ON ` + table + ` (created_at)`,
	}, nil
}

// Migrate creates the barrier table (BarrierSchema) if it does not exist. On PostgreSQL it runs
// under an advisory lock, so concurrent migrations of the same table do not collide.
func (b *Barrier) Migrate(ctx context.Context) error {
	stmts, err := BarrierSchema(b.d, b.table)
	if err != nil {
		return err
	}
	if err := sqlmigrate.Apply(ctx, b.db, b.d == Postgres, "faultline_saga_barrier_migrate:"+b.table, stmts); err != nil {
		return fmt.Errorf("saga barrier: migrate %s: %w", b.table, err)
	}
	return nil
}

// Table returns the barrier table's name.
func (b *Barrier) Table() string { return b.table }

// barrierQueries holds the SQL a barrier runs, built once for its dialect and table.
type barrierQueries struct {
	insert  string // saga_id, step, op, status, error, output, created_at
	get     string // saga_id, step, op → status, error, output, created_at
	finish  string // saga_id, step, op, status, error, output
	revive  string // saga_id, step, op, new status, old status
	cleanup string // cutoff, batch
}

func buildBarrierQueries(d Dialect, table string) barrierQueries {
	p := func(i int) string {
		if d == SQLite {
			return fmt.Sprintf("?%d", i)
		}
		return fmt.Sprintf("$%d", i)
	}
	key := fmt.Sprintf("saga_id = %s AND step = %s AND op = %s", p(1), p(2), p(3))
	return barrierQueries{
		insert: fmt.Sprintf(`INSERT INTO %s (saga_id, step, op, status, error, output, created_at) VALUES (%s, %s, %s, %s, %s, %s, %s)
	ON CONFLICT (saga_id, step, op) DO NOTHING`, table, p(1), p(2), p(3), p(4), p(5), p(6), p(7)),
		get:    fmt.Sprintf(`SELECT status, error, output, created_at FROM %s WHERE %s`, table, key),
		finish: fmt.Sprintf(`UPDATE %s SET status = %s, error = %s, output = %s WHERE %s`, table, p(4), p(5), p(6), key),
		// Under READ COMMITTED, PostgreSQL's UPDATE waits for a concurrent writer of the row and
		// re-checks the condition on the version it committed: one reviver wins.
		revive: fmt.Sprintf(`UPDATE %s SET status = %s, error = '' WHERE %s AND status = %s`, table, p(4), key, p(5)),
		// Batched, so cleaning a large backlog never holds locks on many rows for long.
		cleanup: fmt.Sprintf(`DELETE FROM %[1]s WHERE (saga_id, step, op) IN (SELECT saga_id, step, op FROM %[1]s WHERE created_at < %[2]s LIMIT %[3]s)`,
			table, p(1), p(2)),
	}
}

// timeArg is the value stored in created_at for t.
func (b *Barrier) timeArg(t time.Time) any {
	if b.d == SQLite {
		return t.UnixMicro()
	}
	return t.UTC()
}

// outcome is what a barrier row records.
type outcome struct {
	status BarrierStatus
	errMsg string
	output json.RawMessage
	// fresh: this transaction inserted the key's row, so no other transaction has answered the
	// key yet (nothing about it is committed; a concurrent duplicate waits on the row).
	fresh bool
}

// reply turns a recorded outcome into the answer to req.
func (o outcome) reply(req *Request) *Reply {
	r := &Reply{SagaID: req.SagaID, Step: req.Step, Op: req.Op, Attempt: req.Attempt, Status: ReplySucceeded, Output: o.output}
	if o.status == BarrierFailed || o.status == BarrierSkipped {
		r.Status, r.Error, r.Output = ReplyFailed, o.errMsg, nil
		if r.Error == "" {
			r.Error = "refused"
		}
	}
	return r
}

// Do runs fn at most once per req.Key(), inside tx, and returns the reply to report: fn's outcome
// the first time, the stored outcome for every duplicate (with the duplicate's Attempt).
//
// For an action:
//   - first delivery: fn runs; on success its output is recorded (ReplySucceeded);
//   - an action whose compensation ran first is not applied: ReplyFailed, fn does not run.
//
// For a compensation:
//   - its action never ran (or has not committed and then rolls back): fn does not run, the
//     compensation is recorded as null and succeeds, and the action, should it still arrive, is
//     skipped;
//   - its action was refused or skipped: nothing to undo; it succeeds without running fn;
//   - its action succeeded: fn runs.
//
// fn must make its writes through tx. When fn returns an error made with Fail, its writes are
// rolled back to a savepoint taken before it ran, the refusal is recorded with its message, and
// Do returns a ReplyFailed reply and a nil error: commit tx. A refused compensation is recorded
// too but not final: its next delivery runs fn again (the orchestrator retries compensations).
//
// Any other error from fn (and any database error) is returned, wrapped, with a nil reply: the
// caller must roll tx back, which leaves nothing recorded, so a redelivery tries again. The same
// holds when fn returns output that is not valid JSON.
//
// A concurrent Do for the same step in another transaction waits on the row's key until this
// transaction ends, so the caller should commit or roll back promptly.
func (b *Barrier) Do(ctx context.Context, tx *sql.Tx, req *Request, fn func(ctx context.Context, tx *sql.Tx) (json.RawMessage, error)) (*Reply, error) {
	rep, _, err := b.do(ctx, tx, req, fn)
	return rep, err
}

// do is Do, also reporting whether tx is the first to answer the key (see outcome.fresh).
func (b *Barrier) do(ctx context.Context, tx *sql.Tx, req *Request, fn func(ctx context.Context, tx *sql.Tx) (json.RawMessage, error)) (*Reply, bool, error) {
	switch {
	case tx == nil:
		return nil, false, errors.New("saga barrier: Do: nil transaction")
	case req == nil:
		return nil, false, errors.New("saga barrier: Do: nil request")
	case fn == nil:
		return nil, false, errors.New("saga barrier: Do: nil function")
	}
	if err := req.Validate(); err != nil {
		return nil, false, fmt.Errorf("saga barrier: %w", err)
	}
	k := req.Key()
	var (
		o   outcome
		err error
	)
	if k.Op == OpAction {
		o, err = b.action(ctx, tx, k, fn)
	} else {
		o, err = b.compensate(ctx, tx, k, fn)
	}
	if err != nil {
		return nil, false, err
	}
	return o.reply(req), o.fresh, nil
}

// Run is Do in a transaction of its own (begun with BarrierConfig.TxOptions): it commits when Do
// returns a reply, and rolls back when Do returns an error.
func (b *Barrier) Run(ctx context.Context, req *Request, fn func(ctx context.Context, tx *sql.Tx) (json.RawMessage, error)) (*Reply, error) {
	tx, err := b.db.BeginTx(ctx, b.txOpts)
	if err != nil {
		return nil, fmt.Errorf("saga barrier: begin: %w", err)
	}
	done := false
	defer func() {
		if !done {
			_ = tx.Rollback() // also when fn panics
		}
	}()
	rep, err := b.Do(ctx, tx, req, fn)
	if err != nil {
		return nil, err
	}
	done = true
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("saga barrier: %s: commit: %w", req.Key(), err)
	}
	return rep, nil
}

func (b *Barrier) action(ctx context.Context, tx *sql.Tx, k Key, fn func(context.Context, *sql.Tx) (json.RawMessage, error)) (outcome, error) {
	claimed, err := b.insert(ctx, tx, k, barrierPending, "")
	if err != nil {
		return outcome{}, err
	}
	if !claimed {
		// A duplicate, or the compensation came first (the row says skipped): the stored
		// outcome either way.
		return b.stored(ctx, tx, k)
	}
	o, err := b.run(ctx, tx, k, fn)
	o.fresh = true
	return o, err
}

func (b *Barrier) compensate(ctx context.Context, tx *sql.Tx, k Key, fn func(context.Context, *sql.Tx) (json.RawMessage, error)) (outcome, error) {
	claimed, err := b.insert(ctx, tx, k, barrierPending, "")
	if err != nil {
		return outcome{}, err
	}
	if claimed {
		o, err := b.compensateClaimed(ctx, tx, k, fn)
		o.fresh = true
		return o, err
	}
	// A refusal left nothing behind, so a refused compensation may run again: take it over.
	revived, err := b.exec(ctx, tx, k, "revive", b.q.revive, k.SagaID, k.Step, string(k.Op), string(barrierPending), string(BarrierFailed))
	if err != nil {
		return outcome{}, err
	}
	if !revived {
		return b.stored(ctx, tx, k)
	}
	// Not fresh: an earlier, refused attempt of this compensation has answered already.
	return b.compensateClaimed(ctx, tx, k, fn)
}

// compensateClaimed runs a compensation whose row tx holds (claimed or revived).
func (b *Barrier) compensateClaimed(ctx context.Context, tx *sql.Tx, k Key, fn func(context.Context, *sql.Tx) (json.RawMessage, error)) (outcome, error) {
	// Did the action run? Claim its key on its behalf: if that succeeds, it never did (and now
	// never will); if it conflicts (after waiting for an action in progress), it did.
	ak := Key{SagaID: k.SagaID, Step: k.Step, Op: OpAction}
	first, err := b.insert(ctx, tx, ak, BarrierSkipped, skippedReason)
	if err != nil {
		return outcome{}, err
	}
	if first {
		return b.finish(ctx, tx, k, outcome{status: BarrierNullCompensated})
	}
	a, err := b.get(ctx, tx, ak)
	if err != nil {
		return outcome{}, err
	}
	switch a.status {
	case BarrierSucceeded:
		return b.run(ctx, tx, k, fn)
	case BarrierFailed, BarrierSkipped:
		return b.finish(ctx, tx, k, outcome{status: BarrierNullCompensated})
	default:
		return outcome{}, fmt.Errorf("saga barrier: %s: the action's row has status %q (a transaction committed without finishing Do)", k, a.status)
	}
}

// run runs fn under a savepoint and records its outcome on k's row, which tx has claimed.
func (b *Barrier) run(ctx context.Context, tx *sql.Tx, k Key, fn func(context.Context, *sql.Tx) (json.RawMessage, error)) (outcome, error) {
	if _, err := tx.ExecContext(ctx, "SAVEPOINT "+barrierSavepoint); err != nil {
		return outcome{}, fmt.Errorf("saga barrier: %s: savepoint: %w", k, err)
	}
	out, ferr := fn(ctx, tx)
	o := outcome{status: BarrierSucceeded, output: out}
	switch {
	case ferr == nil:
		if len(out) > 0 && !json.Valid(out) {
			return outcome{}, fmt.Errorf("saga barrier: %s: the handler's output is not valid JSON (%d bytes)", k, len(out))
		}
	case IsFailure(ferr):
		if _, err := tx.ExecContext(ctx, "ROLLBACK TO SAVEPOINT "+barrierSavepoint); err != nil {
			return outcome{}, fmt.Errorf("saga barrier: %s: rollback to savepoint after refusal %q: %w", k, ferr, err)
		}
		o = outcome{status: BarrierFailed, errMsg: ferr.Error()}
	default:
		return outcome{}, fmt.Errorf("saga barrier: %s: %w", k, ferr)
	}
	if _, err := tx.ExecContext(ctx, "RELEASE SAVEPOINT "+barrierSavepoint); err != nil {
		return outcome{}, fmt.Errorf("saga barrier: %s: release savepoint: %w", k, err)
	}
	return b.finish(ctx, tx, k, o)
}

// insert inserts k's row unless it exists, and reports whether it did.
func (b *Barrier) insert(ctx context.Context, tx *sql.Tx, k Key, st BarrierStatus, errMsg string) (bool, error) {
	return b.exec(ctx, tx, k, "claim", b.q.insert, k.SagaID, k.Step, string(k.Op), string(st), errMsg, nil, b.timeArg(b.clk.Now()))
}

// exec runs a statement on k's row and reports whether it changed a row.
func (b *Barrier) exec(ctx context.Context, tx *sql.Tx, k Key, what, q string, args ...any) (bool, error) {
	res, err := tx.ExecContext(ctx, q, args...)
	if err != nil {
		return false, fmt.Errorf("saga barrier: %s: %s: %w", k, what, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("saga barrier: %s: %s: %w", k, what, err)
	}
	return n > 0, nil
}

// finish records o on k's row, which tx has claimed.
func (b *Barrier) finish(ctx context.Context, tx *sql.Tx, k Key, o outcome) (outcome, error) {
	var output any // NULL for no output
	if len(o.output) > 0 {
		output = []byte(o.output)
	}
	ok, err := b.exec(ctx, tx, k, "record outcome", b.q.finish, k.SagaID, k.Step, string(k.Op), string(o.status), o.errMsg, output)
	if err != nil {
		return outcome{}, err
	}
	if !ok {
		return outcome{}, fmt.Errorf("saga barrier: %s: record outcome: the row is gone", k)
	}
	return o, nil
}

// stored returns the outcome recorded on k's row by a committed transaction.
func (b *Barrier) stored(ctx context.Context, tx *sql.Tx, k Key) (outcome, error) {
	o, err := b.get(ctx, tx, k)
	if err != nil {
		return outcome{}, err
	}
	if o.status == barrierPending {
		return outcome{}, fmt.Errorf("saga barrier: %s: the row has status %q (a transaction committed without finishing Do)", k, o.status)
	}
	return o, nil
}

func (b *Barrier) get(ctx context.Context, tx *sql.Tx, k Key) (outcome, error) {
	rec, ok, err := b.scan(tx.QueryRowContext(ctx, b.q.get, k.SagaID, k.Step, string(k.Op)), k)
	if err != nil {
		return outcome{}, err
	}
	if !ok {
		// The insert conflicted with a row that is gone: deleted by Cleanup in between.
		return outcome{}, fmt.Errorf("saga barrier: %s: the row vanished (Cleanup running on recent rows?)", k)
	}
	return outcome{status: rec.Status, errMsg: rec.Error, output: rec.Output}, nil
}

// BarrierRecord is one row of the barrier table.
type BarrierRecord struct {
	Key       Key
	Status    BarrierStatus
	Error     string
	Output    json.RawMessage
	CreatedAt time.Time
}

// Lookup returns the committed record of k, and false when there is none.
func (b *Barrier) Lookup(ctx context.Context, k Key) (BarrierRecord, bool, error) {
	return b.scan(b.db.QueryRowContext(ctx, b.q.get, k.SagaID, k.Step, string(k.Op)), k)
}

func (b *Barrier) scan(row *sql.Row, k Key) (BarrierRecord, bool, error) {
	rec := BarrierRecord{Key: k}
	var (
		status string
		output []byte
		err    error
	)
	if b.d == SQLite {
		var micros int64
		err = row.Scan(&status, &rec.Error, &output, &micros)
		rec.CreatedAt = time.UnixMicro(micros).UTC()
	} else {
		err = row.Scan(&status, &rec.Error, &output, &rec.CreatedAt)
	}
	if errors.Is(err, sql.ErrNoRows) {
		return BarrierRecord{}, false, nil
	}
	if err != nil {
		return BarrierRecord{}, false, fmt.Errorf("saga barrier: %s: read: %w", k, err)
	}
	rec.Status = BarrierStatus(status)
	if len(output) > 0 {
		rec.Output = json.RawMessage(output)
	}
	return rec, true, nil
}

// Cleanup deletes the rows created before before, in batches of BarrierConfig.CleanupBatch, and
// returns how many it deleted.
//
// Keep rows longer than any of their sagas' steps can still be delivered, retried (including an
// operator's retry of a parked saga) or redelivered by a broker: once a step's rows are gone, a
// late duplicate of its action is applied again, and a late compensation of an applied action
// is taken for a null compensation and undoes nothing. Days or weeks are typical.
func (b *Barrier) Cleanup(ctx context.Context, before time.Time) (int64, error) {
	var total int64
	for {
		res, err := b.db.ExecContext(ctx, b.q.cleanup, b.timeArg(before), b.batch)
		if err != nil {
			return total, fmt.Errorf("saga barrier: cleanup %s: %w", b.table, err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return total, fmt.Errorf("saga barrier: cleanup %s: %w", b.table, err)
		}
		total += n
		if n < int64(b.batch) {
			return total, nil
		}
	}
}

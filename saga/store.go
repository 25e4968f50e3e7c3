package saga

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/faultline-dev/faultline/internal/sqlmigrate"
	"github.com/faultline-dev/faultline/outbox"
)

// Dialect is the SQL flavour of a saga store, a barrier or an outbox.
type Dialect = outbox.Dialect

// The supported dialects.
const (
	SQLite   = outbox.SQLite
	Postgres = outbox.Postgres
)

// DefaultTable is the saga table's name; its history goes to DefaultTable + "_log".
const DefaultTable = "faultline_saga"

// ErrNotFound: no saga with that ID.
var ErrNotFound = errors.New("saga: not found")

var tableName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$`)

// Store reads and writes saga instances in a database (SQLite or PostgreSQL through
// database/sql). The orchestrator writes through it; operators read it (faultline saga list,
// show) and file requests (retry, abort) that the running orchestrator carries out.
type Store struct {
	db    *sql.DB
	d     Dialect
	table string
	log   string
	cache stmtCache
}

// NewStore returns the store of the saga table named table (empty: DefaultTable) in db.
func NewStore(db *sql.DB, d Dialect, table string) (*Store, error) {
	if db == nil {
		return nil, errors.New("saga store: DB is nil")
	}
	if d != SQLite && d != Postgres {
		return nil, fmt.Errorf("saga store: Dialect is %v, want saga.SQLite or saga.Postgres", d)
	}
	if table == "" {
		table = DefaultTable
	}
	if !tableName.MatchString(table) {
		return nil, fmt.Errorf("saga store: table name %q: want letters, digits and underscores, optionally schema-qualified", table)
	}
	return &Store{db: db, d: d, table: table, log: table + "_log"}, nil
}

// Schema returns the statements that create the saga tables; they are idempotent.
func (s *Store) Schema() []string {
	idx := strings.ReplaceAll(s.table, ".", "_")
	const text = "TEXT"
	return []string{
		fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %s (
	id %s PRIMARY KEY,
	saga %s NOT NULL,
	status %s NOT NULL,
	state %s NOT NULL,
	wake_at_ns BIGINT,
	request %s,
	version BIGINT NOT NULL,
	log_seq BIGINT NOT NULL,
	created_at_ns BIGINT NOT NULL,
	updated_at_ns BIGINT NOT NULL
)`, s.table, text, text, text, text, text),
		fmt.Sprintf(`CREATE INDEX IF NOT EXISTS %s_wake ON %s (wake_at_ns)`, idx, s.table),
		fmt.Sprintf(`CREATE INDEX IF NOT EXISTS %s_status ON %s (status, updated_at_ns)`, idx, s.table),
		fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %s (
	saga_id %s NOT NULL,
	seq BIGINT NOT NULL,
	at_ns BIGINT NOT NULL,
	step %s NOT NULL,
	op %s NOT NULL,
	attempt INTEGER NOT NULL,
	event %s NOT NULL,
	detail %s NOT NULL,
	PRIMARY KEY (saga_id, seq)
)`, s.log, text, text, text, text, text),
	}
}

// Migrate creates the saga tables (in one transaction; on PostgreSQL under an advisory lock, so
// concurrent migrations do not collide).
func (s *Store) Migrate(ctx context.Context) error {
	if err := sqlmigrate.Apply(ctx, s.db, s.d == Postgres, "faultline_saga_migrate:"+s.table, s.Schema()); err != nil {
		return fmt.Errorf("saga store: migrate %s: %w", s.table, err)
	}
	return nil
}

// ph returns the n-th placeholder (1-based).
func (s *Store) ph(n int) string {
	if s.d == Postgres {
		return fmt.Sprintf("$%d", n)
	}
	return "?"
}

func (s *Store) q(format string, n int) string {
	args := make([]any, n)
	for i := range args {
		args[i] = s.ph(i + 1)
	}
	return fmt.Sprintf(format, args...)
}

func ns(t time.Time) int64 { return t.UnixNano() }

func nullNS(t time.Time) sql.NullInt64 {
	if t.IsZero() {
		return sql.NullInt64{}
	}
	return sql.NullInt64{Int64: t.UnixNano(), Valid: true}
}

type querier interface {
	QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row
	ExecContext(ctx context.Context, q string, args ...any) (sql.Result, error)
}

// insert writes a new saga instance with its first history entries.
func (s *Store) insert(ctx context.Context, tx querier, st *State, wakeAt time.Time, log []LogEntry) error {
	data, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("saga %s: encode state: %w", st.ID, err)
	}
	q := fmt.Sprintf("INSERT INTO %s (id, saga, status, state, wake_at_ns, version, log_seq, created_at_ns, updated_at_ns) VALUES ", s.table) +
		s.q("(%s, %s, %s, %s, %s, %s, %s, %s, %s)", 9)
	args := []any{st.ID, st.Saga, string(st.Status), string(data), nullNS(wakeAt), st.Version, len(log), ns(st.CreatedAt), ns(st.UpdatedAt)}
	if err := s.withLog(ctx, tx, q, args, st.ID, 0, log); err != nil {
		return fmt.Errorf("saga %s: insert: %w", st.ID, err)
	}
	return nil
}

// lockedRow is a saga row read for update.
type lockedRow struct {
	st      *State
	request string
	// consumed: the operator request was applied (or rejected) in this change, so save clears it.
	consumed bool
	wakeAt   sql.NullInt64
	logSeq   int64
}

// load reads a saga inside tx, locking its row on PostgreSQL.
func (s *Store) load(ctx context.Context, tx querier, id string) (*lockedRow, error) {
	q := fmt.Sprintf("SELECT state, request, wake_at_ns, log_seq FROM %s WHERE id = %s", s.table, s.ph(1))
	if s.d == Postgres {
		q += " FOR UPDATE"
	}
	var data string
	var req sql.NullString
	row := &lockedRow{}
	if err := tx.QueryRowContext(ctx, q, id).Scan(&data, &req, &row.wakeAt, &row.logSeq); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return nil, fmt.Errorf("saga %s: %w", id, ErrNotFound)
		}
		return nil, fmt.Errorf("saga %s: load: %w", id, err)
	}
	st := &State{}
	if err := json.Unmarshal([]byte(data), st); err != nil {
		return nil, fmt.Errorf("saga %s: decode state: %w", id, err)
	}
	row.st, row.request = st, req.String
	return row, nil
}

// save writes a changed saga and appends its history; it clears the operator request if the
// change consumed it.
func (s *Store) save(ctx context.Context, tx querier, row *lockedRow, wakeAt time.Time, log []LogEntry) error {
	st := row.st
	data, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("saga %s: encode state: %w", st.ID, err)
	}
	q := fmt.Sprintf("UPDATE %s SET status = %s, state = %s, wake_at_ns = %s,%s version = %s, log_seq = %s, updated_at_ns = %s WHERE id = %s",
		s.table, s.ph(1), s.ph(2), s.ph(3), clearRequest(row), s.ph(4), s.ph(5), s.ph(6), s.ph(7))
	args := []any{string(st.Status), string(data), nullNS(wakeAt), st.Version, row.logSeq + int64(len(log)), ns(st.UpdatedAt), st.ID}
	if err := s.withLog(ctx, tx, q, args, st.ID, row.logSeq, log); err != nil {
		return fmt.Errorf("saga %s: save: %w", st.ID, err)
	}
	return nil
}

// setWake changes only a saga's wake time (and clears a consumed request).
func (s *Store) setWake(ctx context.Context, tx querier, row *lockedRow, wakeAt time.Time) error {
	q := fmt.Sprintf("UPDATE %s SET%s wake_at_ns = %s WHERE id = %s", s.table, clearRequest(row), s.ph(1), s.ph(2))
	if _, err := tx.ExecContext(ctx, q, nullNS(wakeAt), row.st.ID); err != nil {
		return fmt.Errorf("saga %s: set wake time: %w", row.st.ID, err)
	}
	return nil
}

func clearRequest(row *lockedRow) string {
	if row != nil && row.consumed {
		return " request = NULL,"
	}
	return ""
}

// PendingRequest returns the operator request filed for a saga and not yet carried out
// ("retry", "abort: reason"), or "".
func (s *Store) PendingRequest(ctx context.Context, id string) (string, error) {
	var req sql.NullString
	q := fmt.Sprintf("SELECT request FROM %s WHERE id = %s", s.table, s.ph(1))
	if err := s.db.QueryRowContext(ctx, q, id).Scan(&req); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return "", fmt.Errorf("saga %s: %w", id, ErrNotFound)
		}
		return "", fmt.Errorf("saga %s: pending request: %w", id, err)
	}
	if strings.HasPrefix(req.String, requestAbort) {
		return "abort: " + strings.TrimPrefix(req.String, requestAbort), nil
	}
	return req.String, nil
}

func (s *Store) appendLog(ctx context.Context, tx querier, id string, seq int64, log []LogEntry) error {
	if len(log) == 0 {
		return nil
	}
	q, args := s.logInsert(id, seq, log, nil)
	if _, err := tx.ExecContext(ctx, q, args...); err != nil {
		return fmt.Errorf("saga %s: append history: %w", id, err)
	}
	return nil
}

// logInsert returns the INSERT of history entries, its placeholders numbered after args, and
// args with the entries' values appended.
func (s *Store) logInsert(id string, seq int64, log []LogEntry, args []any) (string, []any) {
	var b strings.Builder
	fmt.Fprintf(&b, "INSERT INTO %s (saga_id, seq, at_ns, step, op, attempt, event, detail) VALUES ", s.log)
	for i, e := range log {
		if i > 0 {
			b.WriteString(", ")
		}
		n := len(args)
		fmt.Fprintf(&b, "(%s, %s, %s, %s, %s, %s, %s, %s)", s.ph(n+1), s.ph(n+2), s.ph(n+3), s.ph(n+4), s.ph(n+5), s.ph(n+6), s.ph(n+7), s.ph(n+8))
		args = append(args, id, seq+int64(i), ns(e.At), e.Step, string(e.Op), e.Attempt, e.Event, e.Detail)
	}
	return b.String(), args
}

// withLog runs write (a statement and its arguments) and the insert of the history entries: on
// PostgreSQL as one statement (a data-modifying WITH), saving a round trip per change; on
// SQLite, which has no round trips to save, as two.
func (s *Store) withLog(ctx context.Context, tx querier, q string, args []any, id string, seq int64, log []LogEntry) error {
	if s.d == Postgres && len(log) > 0 {
		lq, all := s.logInsert(id, seq, log, args)
		_, err := tx.ExecContext(ctx, "WITH w AS ("+q+") "+lq, all...)
		return err
	}
	if _, err := tx.ExecContext(ctx, q, args...); err != nil {
		return err
	}
	return s.appendLog(ctx, tx, id, seq, log)
}

// Get returns a saga's state.
func (s *Store) Get(ctx context.Context, id string) (*State, error) {
	row, err := s.load(ctx, readOnly{s.db}, id)
	if err != nil {
		return nil, err
	}
	return row.st, nil
}

// readOnly runs load outside a transaction (no FOR UPDATE effect needed on a plain query, but
// PostgreSQL rejects FOR UPDATE only in read-only transactions, so a plain connection is fine).
type readOnly struct{ db *sql.DB }

func (r readOnly) QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row {
	return r.db.QueryRowContext(ctx, strings.TrimSuffix(q, " FOR UPDATE"), args...)
}

func (r readOnly) ExecContext(ctx context.Context, q string, args ...any) (sql.Result, error) {
	return nil, errors.New("saga store: write through a read-only handle")
}

// History returns a saga's history, oldest first.
func (s *Store) History(ctx context.Context, id string) ([]LogEntry, error) {
	q := fmt.Sprintf("SELECT at_ns, step, op, attempt, event, detail FROM %s WHERE saga_id = %s ORDER BY seq", s.log, s.ph(1))
	rows, err := s.db.QueryContext(ctx, q, id)
	if err != nil {
		return nil, fmt.Errorf("saga %s: history: %w", id, err)
	}
	defer rows.Close()
	var out []LogEntry
	for rows.Next() {
		var e LogEntry
		var at int64
		var op string
		if err := rows.Scan(&at, &e.Step, &op, &e.Attempt, &e.Event, &e.Detail); err != nil {
			return nil, fmt.Errorf("saga %s: history: %w", id, err)
		}
		e.At, e.Op = time.Unix(0, at).UTC(), Op(op)
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("saga %s: history: %w", id, err)
	}
	return out, nil
}

// Filter selects sagas for List.
type Filter struct {
	// Status keeps sagas in one of these statuses; empty keeps all.
	Status []Status
	// Saga keeps instances of this definition; empty keeps all.
	Saga string
	// Limit caps the result, newest first; zero means 100.
	Limit int
}

// List returns sagas matching f, most recently updated first.
func (s *Store) List(ctx context.Context, f Filter) ([]*State, error) {
	var where []string
	var args []any
	for _, st := range f.Status {
		args = append(args, string(st))
	}
	if len(f.Status) > 0 {
		ph := make([]string, len(f.Status))
		for i := range ph {
			ph[i] = s.ph(i + 1)
		}
		where = append(where, "status IN ("+strings.Join(ph, ", ")+")")
	}
	if f.Saga != "" {
		args = append(args, f.Saga)
		where = append(where, "saga = "+s.ph(len(args)))
	}
	limit := f.Limit
	if limit <= 0 {
		limit = 100
	}
	q := fmt.Sprintf("SELECT state FROM %s", s.table)
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += fmt.Sprintf(" ORDER BY updated_at_ns DESC, id LIMIT %d", limit)
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("saga store: list: %w", err)
	}
	defer rows.Close()
	var out []*State
	for rows.Next() {
		var data string
		if err := rows.Scan(&data); err != nil {
			return nil, fmt.Errorf("saga store: list: %w", err)
		}
		st := &State{}
		if err := json.Unmarshal([]byte(data), st); err != nil {
			return nil, fmt.Errorf("saga store: list: decode state: %w", err)
		}
		out = append(out, st)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("saga store: list: %w", err)
	}
	return out, nil
}

// Counts returns how many sagas are in each status.
func (s *Store) Counts(ctx context.Context) (map[Status]int, error) {
	rows, err := s.db.QueryContext(ctx, fmt.Sprintf("SELECT status, COUNT(*) FROM %s GROUP BY status", s.table))
	if err != nil {
		return nil, fmt.Errorf("saga store: count: %w", err)
	}
	defer rows.Close()
	out := map[Status]int{}
	for rows.Next() {
		var st string
		var n int
		if err := rows.Scan(&st, &n); err != nil {
			return nil, fmt.Errorf("saga store: count: %w", err)
		}
		out[Status(st)] = n
	}
	return out, rows.Err()
}

// Operator requests, carried out by the running orchestrator.
const (
	requestRetry = "retry"
	requestAbort = "abort:"
)

// RequestRetry asks the orchestrator to resume a needs-attention saga with a fresh attempt
// budget. It returns at once; the orchestrator applies it at its next poll (see History).
func (s *Store) RequestRetry(ctx context.Context, id string) error {
	return s.request(ctx, id, requestRetry, func(st *State) error {
		if st.Status != StatusNeedsAttention {
			if st.Status.Terminal() {
				return ErrTerminal
			}
			return ErrNotParked
		}
		return nil
	})
}

// RequestAbort asks the orchestrator to compensate a running saga, or to end a parked one as
// aborted (the operator takes over). A saga past its pivot cannot be aborted.
func (s *Store) RequestAbort(ctx context.Context, id, reason string) error {
	return s.request(ctx, id, requestAbort+reason, func(st *State) error {
		switch {
		case st.Status.Terminal():
			return ErrTerminal
		case st.Status == StatusCompensating:
			return ErrCompensating
		case st.Status == StatusRunning && (st.PivotPassed || st.PivotReached):
			return ErrPastPivot
		}
		return nil
	})
}

func (s *Store) request(ctx context.Context, id, req string, check func(*State) error) error {
	st, err := s.Get(ctx, id)
	if err != nil {
		return err
	}
	if err := check(st); err != nil {
		return fmt.Errorf("saga %s is %s: %w", id, st.Status, err)
	}
	q := fmt.Sprintf("UPDATE %s SET request = %s, wake_at_ns = 0 WHERE id = %s AND version = %s", s.table, s.ph(1), s.ph(2), s.ph(3))
	res, err := s.db.ExecContext(ctx, q, req, id, st.Version)
	if err != nil {
		return fmt.Errorf("saga %s: request %s: %w", id, req, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("saga %s changed while the request was filed; look again and retry", id)
	}
	return nil
}

// due returns up to limit IDs of sagas whose wake time is at or before now.
// Only sagas of the named definitions count: orchestrators with different definitions can share
// a store.
func (s *Store) due(ctx context.Context, now time.Time, limit int, sagas []string) ([]string, error) {
	in, args := s.sagaIn(sagas, 2)
	q := fmt.Sprintf("SELECT id FROM %s WHERE wake_at_ns IS NOT NULL AND wake_at_ns <= %s AND saga IN (%s) ORDER BY wake_at_ns LIMIT %d", s.table, s.ph(1), in, limit)
	return s.ids(ctx, q, append([]any{ns(now)}, args...)...)
}

// sagaIn returns placeholders from the first-th on for an IN list of names, and the arguments.
func (s *Store) sagaIn(names []string, first int) (string, []any) {
	ph := make([]string, len(names))
	args := make([]any, len(names))
	for i, n := range names {
		ph[i], args[i] = s.ph(first+i), n
	}
	return strings.Join(ph, ", "), args
}

// active returns up to limit IDs of running or compensating sagas of the named definitions with
// IDs after the given one.
func (s *Store) active(ctx context.Context, after string, limit int, sagas []string) ([]string, error) {
	in, args := s.sagaIn(sagas, 2)
	q := fmt.Sprintf("SELECT id FROM %s WHERE status IN ('running', 'compensating') AND id > %s AND saga IN (%s) ORDER BY id LIMIT %d", s.table, s.ph(1), in, limit)
	return s.ids(ctx, q, append([]any{after}, args...)...)
}

// nextWake returns the earliest wake time of the named definitions' sagas, or the zero time.
func (s *Store) nextWake(ctx context.Context, sagas []string) (time.Time, error) {
	var w sql.NullInt64
	in, args := s.sagaIn(sagas, 1)
	if err := s.db.QueryRowContext(ctx, fmt.Sprintf("SELECT MIN(wake_at_ns) FROM %s WHERE saga IN (%s)", s.table, in), args...).Scan(&w); err != nil {
		return time.Time{}, fmt.Errorf("saga store: next wake: %w", err)
	}
	if !w.Valid {
		return time.Time{}, nil
	}
	return time.Unix(0, w.Int64), nil
}

func (s *Store) ids(ctx context.Context, q string, args ...any) ([]string, error) {
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("saga store: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("saga store: %w", err)
		}
		out = append(out, id)
	}
	return out, rows.Err()
}

// stmtCache keeps the store's statements prepared on the database, so that a transaction reuses
// the statement already prepared on its connection (tx.StmtContext) instead of parsing the SQL
// again: SQLite spends a fifth of a saga's CPU time parsing otherwise. Statements are prepared
// outside any transaction (warm, after a commit), because a database limited to one connection
// would deadlock preparing inside one.
type stmtCache struct {
	m      sync.Map // query → *sql.Stmt
	n      atomic.Int32
	missMu sync.Mutex
	miss   map[string]struct{}
}

// maxCachedStmts bounds the cache; the store issues a handful of distinct statements.
const maxCachedStmts = 64

// cachedTx runs the store's statements in tx through the cache.
type cachedTx struct {
	tx *sql.Tx
	s  *Store
}

func (s *Store) in(tx *sql.Tx) querier { return cachedTx{tx: tx, s: s} }

func (c cachedTx) stmt(ctx context.Context, q string) *sql.Stmt {
	if st, ok := c.s.cache.m.Load(q); ok {
		return c.tx.StmtContext(ctx, st.(*sql.Stmt))
	}
	c.s.cache.missMu.Lock()
	if c.s.cache.miss == nil {
		c.s.cache.miss = map[string]struct{}{}
	}
	c.s.cache.miss[q] = struct{}{}
	c.s.cache.missMu.Unlock()
	return nil
}

func (c cachedTx) ExecContext(ctx context.Context, q string, args ...any) (sql.Result, error) {
	if st := c.stmt(ctx, q); st != nil {
		return st.ExecContext(ctx, args...)
	}
	return c.tx.ExecContext(ctx, q, args...)
}

func (c cachedTx) QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row {
	if st := c.stmt(ctx, q); st != nil {
		return st.QueryRowContext(ctx, args...)
	}
	return c.tx.QueryRowContext(ctx, q, args...)
}

// warm prepares the statements that missed the cache. Call it outside any transaction.
func (s *Store) warm(ctx context.Context) {
	s.cache.missMu.Lock()
	miss := s.cache.miss
	s.cache.miss = nil
	s.cache.missMu.Unlock()
	for q := range miss {
		if s.cache.n.Load() >= maxCachedStmts {
			return
		}
		st, err := s.db.PrepareContext(ctx, q)
		if err != nil {
			continue // it runs unprepared; the next miss tries again
		}
		if _, loaded := s.cache.m.LoadOrStore(q, st); loaded {
			st.Close()
		} else {
			s.cache.n.Add(1)
		}
	}
}

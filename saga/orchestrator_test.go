package saga

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/faultline-dev/faultline/clock"
	"github.com/faultline-dev/faultline/internal/testkit"
)

// orchDB is a database for orchestrator tests: a SQLite file, or PostgreSQL with a fresh table
// prefix.
type orchDB struct {
	name    string
	db      *sql.DB
	dialect Dialect
	table   string
}

func orchSQLite(t testing.TB) *orchDB {
	t.Helper()
	db := testkit.SQLite(t, filepath.Join(t.TempDir(), "saga.db"), 0)
	return &orchDB{name: "sqlite", db: db, dialect: SQLite, table: DefaultTable}
}

var orchTableSeq atomic.Int64

// orchPostgres returns the test PostgreSQL with a fresh table prefix, or skips when it is
// unreachable (fails instead under FAULTLINE_REQUIRE_SERVICES=1).
func orchPostgres(t testing.TB) *orchDB {
	t.Helper()
	db := testkit.Postgres(t, 0)
	table := fmt.Sprintf("saga_t%d_%d", time.Now().UnixNano()%1e9, orchTableSeq.Add(1))
	t.Cleanup(func() {
		for _, s := range []string{table, table + "_log", table + "_outbox"} {
			db.Exec("DROP TABLE IF EXISTS " + s + " CASCADE")
		}
	})
	return &orchDB{name: "postgres", db: db, dialect: Postgres, table: table}
}

func eachOrchDB(t *testing.T, f func(t *testing.T, d *orchDB)) {
	t.Run("sqlite", func(t *testing.T) { f(t, orchSQLite(t)) })
	t.Run("postgres", func(t *testing.T) { f(t, orchPostgres(t)) })
}

func (d *orchDB) config(defs ...*Definition) Config {
	cfg := Config{DB: d.db, Dialect: d.dialect, Table: d.table, Definitions: defs, Seed: 1}
	if d.dialect == Postgres {
		cfg.Outbox.Name = d.table + "_outbox"
		cfg.Outbox.Channel = d.table + "_ch"
	}
	return cfg
}

func newOrch(t testing.TB, cfg Config) *Orchestrator {
	t.Helper()
	o, err := NewOrchestrator(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := o.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	return o
}

func (d *orchDB) exec(t testing.TB, q string) {
	t.Helper()
	if _, err := d.db.Exec(q); err != nil {
		t.Fatal(err)
	}
}

func (d *orchDB) count(t testing.TB, q string) int {
	t.Helper()
	var n int
	if err := d.db.QueryRow(q).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// localOrder is a saga of Local steps writing to a journal table: create (compensation:
// reject), reserve (compensation: release), charge (refused when the input says so).
func localOrder(d *orchDB, journal string) *Definition {
	write := func(what string) LocalHandler {
		return func(ctx context.Context, tx *sql.Tx, req *Request) (json.RawMessage, error) {
			q := fmt.Sprintf("INSERT INTO %s (saga_id, what) VALUES (%s, %s)", journal, ph(d.dialect, 1), ph(d.dialect, 2))
			_, err := tx.ExecContext(ctx, q, req.SagaID, what)
			return json.RawMessage(`"` + what + `"`), err
		}
	}
	charge := func(ctx context.Context, tx *sql.Tx, req *Request) (json.RawMessage, error) {
		if _, err := write("charged")(ctx, tx, req); err != nil {
			return nil, err
		}
		var in struct{ Decline bool }
		_ = json.Unmarshal(req.Input, &in)
		if in.Decline {
			return nil, Fail(errors.New("card declined"))
		}
		return json.RawMessage(`{"payment":"p-1"}`), nil
	}
	return New("order").
		Step(Step{Name: "create", Action: Local(write("created")), Compensate: Local(write("rejected"))}).
		Step(Step{Name: "reserve", Action: Local(write("reserved")), Compensate: Local(write("released"))}).
		Step(Step{Name: "charge", Action: Local(charge)})
}

func ph(d Dialect, n int) string {
	if d == Postgres {
		return fmt.Sprintf("$%d", n)
	}
	return "?"
}

func (d *orchDB) journal(t testing.TB) string {
	name := d.table + "_journal"
	d.exec(t, "CREATE TABLE "+name+" (saga_id TEXT NOT NULL, what TEXT NOT NULL)")
	if d.dialect == Postgres {
		t.Cleanup(func() { d.db.Exec("DROP TABLE IF EXISTS " + name) })
	}
	return name
}

func (d *orchDB) journalOf(t testing.TB, journal, id string) string {
	t.Helper()
	rows, err := d.db.Query(fmt.Sprintf("SELECT what FROM %s WHERE saga_id = %s", journal, ph(d.dialect, 1)), id)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var w string
		rows.Scan(&w)
		out = append(out, w)
	}
	return strings.Join(out, ",")
}

func TestLocalSagaCompletesInStart(t *testing.T) {
	eachOrchDB(t, func(t *testing.T, d *orchDB) {
		j := d.journal(t)
		o := newOrch(t, d.config(localOrder(d, j)))
		ctx := context.Background()
		if err := o.Start(ctx, "order", "o-1", map[string]any{"decline": false}); err != nil {
			t.Fatal(err)
		}
		st, err := o.Get(ctx, "o-1")
		if err != nil {
			t.Fatal(err)
		}
		if st.Status != StatusCompleted {
			t.Fatalf("status %s (%s)", st.Status, st.Reason)
		}
		if got := d.journalOf(t, j, "o-1"); got != "created,reserved,charged" {
			t.Fatalf("journal %q", got)
		}
		if string(st.Step("charge").Output) != `{"payment":"p-1"}` {
			t.Fatalf("output %s", st.Step("charge").Output)
		}
		hist, err := o.Store().History(ctx, "o-1")
		if err != nil || len(hist) == 0 || hist[len(hist)-1].Event != "completed" {
			t.Fatalf("history %+v %v", hist, err)
		}
		if err := o.Start(ctx, "order", "o-1", nil); !errors.Is(err, ErrExists) {
			t.Fatalf("second start: %v", err)
		}
	})
}

func TestLocalRefusalRollsBackAndCompensates(t *testing.T) {
	eachOrchDB(t, func(t *testing.T, d *orchDB) {
		j := d.journal(t)
		o := newOrch(t, d.config(localOrder(d, j)))
		ctx := context.Background()
		if err := o.Start(ctx, "order", "o-2", map[string]any{"decline": true}); err != nil {
			t.Fatal(err)
		}
		st, _ := o.Get(ctx, "o-2")
		if st.Status != StatusCompensated || !strings.Contains(st.Reason, "card declined") {
			t.Fatalf("status %s reason %q", st.Status, st.Reason)
		}
		// "charged" was written by the refused step and rolled back with it.
		if got := d.journalOf(t, j, "o-2"); got != "created,reserved,released,rejected" {
			t.Fatalf("journal %q", got)
		}
	})
}

func TestStartTxIsAtomicWithCallerWrites(t *testing.T) {
	d := orchSQLite(t)
	j := d.journal(t)
	o := newOrch(t, d.config(localOrder(d, j)))
	ctx := context.Background()
	tx, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := o.StartTx(ctx, tx, "order", "o-3", nil); err != nil {
		t.Fatal(err)
	}
	tx.Rollback()
	if _, err := o.Get(ctx, "o-3"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("saga survived a rolled-back StartTx: %v", err)
	}
	if got := d.journalOf(t, j, "o-3"); got != "" {
		t.Fatalf("journal %q after rollback", got)
	}
}

// funcParticipant is an in-process participant that applies each key once (as a barrier
// would) and can be told to fail or hang.
type funcParticipant struct {
	mu      sync.Mutex
	applied map[Key]int
	calls   map[Key]int
	fail    map[Key]int // transient failures left, by key
	refuse  map[string]bool
	hang    map[Key]int // hangs left (until ctx ends), by key
}

func newFuncParticipant() *funcParticipant {
	return &funcParticipant{applied: map[Key]int{}, calls: map[Key]int{}, fail: map[Key]int{}, refuse: map[string]bool{}, hang: map[Key]int{}}
}

func (p *funcParticipant) handler(ctx context.Context, req *Request) (json.RawMessage, error) {
	k := req.Key()
	p.mu.Lock()
	p.calls[k]++
	if p.hang[k] > 0 {
		p.hang[k]--
		p.mu.Unlock()
		<-ctx.Done()
		return nil, ctx.Err()
	}
	if p.fail[k] > 0 {
		p.fail[k]--
		p.mu.Unlock()
		return nil, errors.New("connection reset")
	}
	if p.refuse[req.Step] && req.Op == OpAction {
		p.mu.Unlock()
		return nil, Fail(errors.New("refused"))
	}
	if p.applied[k] == 0 {
		p.applied[k] = 1
	}
	p.mu.Unlock()
	return json.RawMessage(`"ok"`), nil
}

func (p *funcParticipant) count(m map[Key]int, id, step string, op Op) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return m[Key{SagaID: id, Step: step, Op: op}]
}

func funcOrder(p *funcParticipant) *Definition {
	f := Func(p.handler)
	return New("order").
		Step(Step{Name: "reserve", Action: f, Compensate: f, Timeout: 10 * time.Second, MaxAttempts: 3}).
		Step(Step{Name: "charge", Action: f, Compensate: f, Timeout: 10 * time.Second, MaxAttempts: 3}).
		Step(Step{Name: "ship", Action: f, Timeout: 10 * time.Second, MaxAttempts: 3})
}

// runner runs an orchestrator on a manual clock and reports transitions.
type runner struct {
	o      *Orchestrator
	clk    *clock.Manual
	cancel context.CancelFunc
	done   chan error
	events chan *State
}

func startRunner(t *testing.T, cfg Config, clk *clock.Manual) *runner {
	t.Helper()
	r := &runner{clk: clk, done: make(chan error, 1), events: make(chan *State, 1024)}
	cfg.Clock = clk
	cfg.OnTransition = func(st *State, _ []LogEntry) {
		cp := *st
		select {
		case r.events <- &cp:
		default:
		}
	}
	r.o = newOrch(t, cfg)
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go func() { r.done <- r.o.Run(ctx) }()
	t.Cleanup(r.stop)
	return r
}

func (r *runner) stop() {
	if r.cancel == nil {
		return
	}
	r.cancel()
	<-r.done
	r.cancel = nil
}

// await waits (in real time, bounded) until saga id reaches a status.
func (r *runner) await(t *testing.T, id string, want Status) *State {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		st, err := r.o.Get(context.Background(), id)
		if err == nil && st.Status == want {
			return st
		}
		select {
		case <-r.events:
		case <-deadline:
			t.Fatalf("saga %s: status %v, want %s (err %v)", id, st, want, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func TestFuncStepsRetryTimeoutsOnTheInjectedClock(t *testing.T) {
	d := orchSQLite(t)
	p := newFuncParticipant()
	p.fail[Key{"o-1", "reserve", OpAction}] = 1
	p.hang[Key{"o-1", "charge", OpAction}] = 1
	clk := clock.NewManual(t0)
	r := startRunner(t, d.config(funcOrder(p)), clk)
	ctx := context.Background()
	if err := r.o.Start(ctx, "order", "o-1", nil); err != nil {
		t.Fatal(err)
	}
	// reserve attempt 1 fails: a retry is scheduled after the backoff on the manual clock.
	waitFor(t, func() bool {
		st, _ := r.o.Get(ctx, "o-1")
		return st != nil && !st.Step("reserve").RetryAt.IsZero()
	})
	clk.Advance(time.Second)
	r.o.Wake()
	// reserve succeeds; charge hangs until its 10 s attempt timeout on the manual clock.
	waitFor(t, func() bool { return p.count(p.calls, "o-1", "charge", OpAction) == 1 })
	clk.Advance(10 * time.Second)
	r.o.Wake()
	waitFor(t, func() bool {
		st, _ := r.o.Get(ctx, "o-1")
		return st != nil && st.Step("charge").Attempt == 1 && !st.Step("charge").InFlight
	})
	clk.Advance(time.Second)
	r.o.Wake()
	st := r.await(t, "o-1", StatusCompleted)
	if st.Step("reserve").ActionAttempts != 2 || st.Step("charge").ActionAttempts != 2 {
		t.Fatalf("attempts: reserve %d charge %d", st.Step("reserve").ActionAttempts, st.Step("charge").ActionAttempts)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached in 20 s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestFuncRefusalCompensates(t *testing.T) {
	d := orchSQLite(t)
	p := newFuncParticipant()
	p.refuse["ship"] = true
	r := startRunner(t, d.config(funcOrder(p)), clock.NewManual(t0))
	if err := r.o.Start(context.Background(), "order", "o-9", nil); err != nil {
		t.Fatal(err)
	}
	r.await(t, "o-9", StatusCompensated)
	for _, s := range []string{"reserve", "charge"} {
		if p.count(p.applied, "o-9", s, OpAction) != 1 || p.count(p.applied, "o-9", s, OpCompensate) != 1 {
			t.Fatalf("%s: action %d compensation %d", s, p.count(p.applied, "o-9", s, OpAction), p.count(p.applied, "o-9", s, OpCompensate))
		}
	}
}

func TestRestartResumesInFlightFuncSteps(t *testing.T) {
	d := orchSQLite(t)
	p := newFuncParticipant()
	p.hang[Key{"o-5", "charge", OpAction}] = 1
	clk := clock.NewManual(t0)
	cfg := d.config(funcOrder(p))
	r := startRunner(t, cfg, clk)
	if err := r.o.Start(context.Background(), "order", "o-5", nil); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return p.count(p.calls, "o-5", "charge", OpAction) == 1 })
	r.stop() // the process dies with charge in flight
	st, _ := r.o.Get(context.Background(), "o-5")
	if !st.Step("charge").InFlight {
		t.Fatalf("charge not in flight: %+v", st.Step("charge"))
	}
	r2 := startRunner(t, cfg, clk) // the restarted process invokes it again, same attempt
	r2.await(t, "o-5", StatusCompleted)
	if n := p.count(p.calls, "o-5", "charge", OpAction); n != 2 {
		t.Fatalf("charge called %d times, want 2 (once before, once after the restart)", n)
	}
}

func TestDeadlineCompensatesOnTheInjectedClock(t *testing.T) {
	d := orchSQLite(t)
	p := newFuncParticipant()
	p.hang[Key{"o-7", "charge", OpAction}] = 1
	def := funcOrder(p)
	def.Timeout = 5 * time.Second
	clk := clock.NewManual(t0)
	r := startRunner(t, d.config(def), clk)
	if err := r.o.Start(context.Background(), "order", "o-7", nil); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return p.count(p.calls, "o-7", "charge", OpAction) == 1 })
	clk.Advance(5 * time.Second)
	r.o.Wake()
	st := r.await(t, "o-7", StatusCompensated)
	if !strings.Contains(st.Reason, "deadline") {
		t.Fatalf("reason %q", st.Reason)
	}
	if p.count(p.applied, "o-7", "charge", OpCompensate) != 1 || p.count(p.applied, "o-7", "reserve", OpCompensate) != 1 {
		t.Fatal("compensations missing")
	}
}

func TestOperatorRequestsThroughTheStore(t *testing.T) {
	d := orchSQLite(t)
	var failing atomic.Bool
	failing.Store(true)
	comp := Local(func(ctx context.Context, tx *sql.Tx, req *Request) (json.RawMessage, error) {
		if failing.Load() {
			return nil, errors.New("ledger unavailable")
		}
		return nil, nil
	})
	ok := Local(func(ctx context.Context, tx *sql.Tx, req *Request) (json.RawMessage, error) { return nil, nil })
	no := Local(func(ctx context.Context, tx *sql.Tx, req *Request) (json.RawMessage, error) {
		return nil, Fail(errors.New("no"))
	})
	def := New("refund").Step(Step{Name: "a", Action: ok, Compensate: comp}).Step(Step{Name: "b", Action: no})
	def.CompensationMaxAttempts = 2
	clk := clock.NewManual(t0)
	cfg := d.config(def)
	cfg.Clock = clk
	o := newOrch(t, cfg)
	ctx := context.Background()
	if err := o.Start(ctx, "refund", "r-1", nil); err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Minute)
	if _, err := o.Tick(ctx); err != nil {
		t.Fatal(err)
	}
	st, _ := o.Get(ctx, "r-1")
	if st.Status != StatusNeedsAttention || !strings.Contains(st.Reason, "ledger unavailable") {
		t.Fatalf("status %s reason %q", st.Status, st.Reason)
	}
	failing.Store(false)
	if err := o.Store().RequestRetry(ctx, "r-1"); err != nil {
		t.Fatal(err)
	}
	if _, err := o.Tick(ctx); err != nil {
		t.Fatal(err)
	}
	st, _ = o.Get(ctx, "r-1")
	if st.Status != StatusCompensated {
		t.Fatalf("after retry: %s (%s)", st.Status, st.Reason)
	}
	if err := o.Store().RequestRetry(ctx, "r-1"); !errors.Is(err, ErrTerminal) {
		t.Fatalf("retry of an ended saga: %v", err)
	}
}

// Orchestrators with different definitions can share a store: each looks only at its own
// sagas' timers and requests.
func TestOrchestratorsShareAStore(t *testing.T) {
	d := orchSQLite(t)
	ok := Local(func(ctx context.Context, tx *sql.Tx, req *Request) (json.RawMessage, error) { return nil, nil })
	slow := Func(func(ctx context.Context, req *Request) (json.RawMessage, error) { <-ctx.Done(); return nil, ctx.Err() })
	clk := clock.NewManual(t0)
	cfgA := d.config(New("a").Step(Step{Name: "one", Action: ok}).Step(Step{Name: "two", Action: slow, Timeout: time.Second}))
	cfgA.Clock = clk
	cfgB := d.config(New("b").Step(Step{Name: "one", Action: slow, Timeout: time.Second}))
	cfgB.Clock = clk
	a, b := newOrch(t, cfgA), newOrch(t, cfgB)
	ctx := context.Background()
	if err := a.Start(ctx, "a", "a-1", nil); err != nil {
		t.Fatal(err)
	}
	if err := b.Start(ctx, "b", "b-1", nil); err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Minute)
	n, err := a.Tick(ctx)
	if err != nil || n != 1 {
		t.Fatalf("a.Tick = %d, %v; want its one saga and no error about b's", n, err)
	}
	if st, _ := a.Get(ctx, "b-1"); st.Step("one").ActionAttempts != 1 {
		t.Fatalf("a touched b's saga: %+v", st.Step("one"))
	}
	if n, err := b.Tick(ctx); err != nil || n != 1 {
		t.Fatalf("b.Tick = %d, %v", n, err)
	}
	if st, _ := b.Get(ctx, "b-1"); st.Step("one").ActionAttempts != 1 || st.Step("one").RetryAt.IsZero() {
		t.Fatalf("b's timed-out attempt not scheduled for a retry: %+v", st.Step("one"))
	}
}

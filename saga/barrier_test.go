package saga

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/faultline-dev/faultline/clock"
	"github.com/faultline-dev/faultline/internal/testkit"
)

// Test helpers shared by barrier_test.go, participant_test.go and httpstep_test.go (prefixed
// "bar" to stay clear of the orchestrator's tests in the same package).

var barT0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// barDB is one database under test: a fresh SQLite file, or a fresh schema of the machine's
// PostgreSQL.
type barDB struct {
	name   string
	db     *sql.DB
	d      Dialect
	schema string // PostgreSQL: the test's schema
}

// table qualifies a table name with the test's schema (PostgreSQL).
func (b *barDB) table(name string) string {
	if b.schema != "" {
		return b.schema + "." + name
	}
	return name
}

var barDollar = regexp.MustCompile(`\$(\d+)`)

// sql rewrites $N placeholders for SQLite (?N).
func (b *barDB) sql(q string) string {
	if b.d == SQLite {
		return barDollar.ReplaceAllString(q, "?$1")
	}
	return q
}

func (b *barDB) exec(t testing.TB, q string, args ...any) {
	t.Helper()
	if _, err := b.db.Exec(b.sql(q), args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

func (b *barDB) count(t testing.TB, q string, args ...any) int {
	t.Helper()
	var n int
	if err := b.db.QueryRow(b.sql(q), args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}

func openBarSQLite(t testing.TB) *barDB {
	t.Helper()
	db := testkit.SQLite(t, filepath.Join(t.TempDir(), "participant.db"), 8)
	return &barDB{name: "sqlite", db: db, d: SQLite}
}

// openBarPostgres returns a database in a schema of its own, or skips when PostgreSQL is
// unreachable (fails instead under FAULTLINE_REQUIRE_SERVICES=1).
func openBarPostgres(t testing.TB) *barDB {
	t.Helper()
	db := testkit.Postgres(t, 32)
	return &barDB{name: "postgres", db: db, d: Postgres, schema: testkit.Schema(t, db, "saga_bar_")}
}

// eachBarDB runs f on SQLite and on PostgreSQL.
func eachBarDB(t *testing.T, f func(t *testing.T, db *barDB)) {
	t.Run("sqlite", func(t *testing.T) { f(t, openBarSQLite(t)) })
	t.Run("postgres", func(t *testing.T) { f(t, openBarPostgres(t)) })
}

// barFixture is a barrier plus a business table, events (saga_id, kind), where handlers record
// what they did: a row per application, so a double application shows.
type barFixture struct {
	*barDB
	b      *Barrier
	clk    *clock.Manual
	events string
}

func newBarFixture(t testing.TB, db *barDB) *barFixture {
	t.Helper()
	clk := clock.NewManual(barT0)
	b, err := NewBarrier(BarrierConfig{DB: db.db, Dialect: db.d, Table: db.table("barrier"), Clock: clk, CleanupBatch: 2})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	f := &barFixture{barDB: db, b: b, clk: clk, events: db.table("events")}
	f.exec(t, `CREATE TABLE IF NOT EXISTS `+f.events+` (saga_id text NOT NULL, kind text NOT NULL)`)
	return f
}

// record writes an event in tx.
func (f *barFixture) record(ctx context.Context, tx *sql.Tx, sagaID, kind string) error {
	_, err := tx.ExecContext(ctx, f.sql(`INSERT INTO `+f.events+` (saga_id, kind) VALUES ($1, $2)`), sagaID, kind)
	return err
}

// eventCounts returns how many events of each kind sagaID has.
func (f *barFixture) eventCounts(t testing.TB, sagaID string) map[string]int {
	t.Helper()
	rows, err := f.db.Query(f.sql(`SELECT kind, count(*) FROM `+f.events+` WHERE saga_id = $1 GROUP BY kind`), sagaID)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	m := map[string]int{}
	for rows.Next() {
		var k string
		var n int
		if err := rows.Scan(&k, &n); err != nil {
			t.Fatal(err)
		}
		m[k] = n
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return m
}

// recordingFn returns a barrier function that records kind for sagaID, counting its calls,
// and returns out.
func (f *barFixture) recordingFn(sagaID, kind string, out json.RawMessage, calls *int) func(context.Context, *sql.Tx) (json.RawMessage, error) {
	return func(ctx context.Context, tx *sql.Tx) (json.RawMessage, error) {
		*calls++
		return out, f.record(ctx, tx, sagaID, kind)
	}
}

func (f *barFixture) run(t testing.TB, req *Request, fn func(context.Context, *sql.Tx) (json.RawMessage, error)) *Reply {
	t.Helper()
	rep, err := f.b.Run(context.Background(), req, fn)
	if err != nil {
		t.Fatalf("Run %s attempt %d: %v", req.Key(), req.Attempt, err)
	}
	return rep
}

func (f *barFixture) lookup(t testing.TB, k Key) (BarrierRecord, bool) {
	t.Helper()
	rec, ok, err := f.b.Lookup(context.Background(), k)
	if err != nil {
		t.Fatal(err)
	}
	return rec, ok
}

func (f *barFixture) wantStatus(t testing.TB, k Key, want BarrierStatus) BarrierRecord {
	t.Helper()
	rec, ok := f.lookup(t, k)
	switch {
	case !ok && want != "":
		t.Fatalf("barrier row %s: missing, want %s", k, want)
	case ok && want == "":
		t.Fatalf("barrier row %s: %s, want no row", k, rec.Status)
	case ok && rec.Status != want:
		t.Fatalf("barrier row %s: %s, want %s", k, rec.Status, want)
	}
	return rec
}

func barReq(sagaID, step string, op Op, attempt int) *Request {
	return &Request{SagaID: sagaID, Saga: "order", Step: step, Op: op, Attempt: attempt, Input: json.RawMessage(`{"sku":"A-1","qty":2}`)}
}

func wantReply(t testing.TB, got *Reply, req *Request, status ReplyStatus, errSub string, output string) {
	t.Helper()
	if got.SagaID != req.SagaID || got.Step != req.Step || got.Op != req.Op || got.Attempt != req.Attempt {
		t.Errorf("reply %+v does not answer %s attempt %d", got, req.Key(), req.Attempt)
	}
	if got.Status != status {
		t.Errorf("reply status %s (error %q), want %s", got.Status, got.Error, status)
	}
	if !strings.Contains(got.Error, errSub) || (errSub == "" && got.Error != "") {
		t.Errorf("reply error %q, want it to contain %q", got.Error, errSub)
	}
	if string(got.Output) != output {
		t.Errorf("reply output %s, want %s", got.Output, output)
	}
	if err := got.Validate(); err != nil {
		t.Errorf("reply does not validate: %v", err)
	}
}

func TestBarrierConfigAndSchema(t *testing.T) {
	db := &sql.DB{} // never used: every case fails validation before
	cases := []struct {
		name string
		cfg  BarrierConfig
		want string
	}{
		{"no DB", BarrierConfig{Dialect: SQLite}, "BarrierConfig.DB is nil"},
		{"no dialect", BarrierConfig{DB: db}, "Dialect is"},
		{"leading digit", BarrierConfig{DB: db, Dialect: Postgres, Table: "1barrier"}, `table "1barrier"`},
		{"injection", BarrierConfig{DB: db, Dialect: Postgres, Table: "b; DROP TABLE x"}, "letters, digits and underscores"},
		{"schema on sqlite", BarrierConfig{DB: db, Dialect: SQLite, Table: "main.barrier"}, "schema.name on PostgreSQL"},
		{"three parts", BarrierConfig{DB: db, Dialect: Postgres, Table: "a.b.c"}, "want an identifier"},
		{"too long", BarrierConfig{DB: db, Dialect: Postgres, Table: strings.Repeat("x", 49)}, "at most 48"},
		{"negative batch", BarrierConfig{DB: db, Dialect: SQLite, CleanupBatch: -1}, "CleanupBatch is -1"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := NewBarrier(c.cfg)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("NewBarrier: %v, want an error containing %q", err, c.want)
			}
		})
	}
	for _, d := range []Dialect{SQLite, Postgres} {
		stmts, err := BarrierSchema(d, "")
		if err != nil {
			t.Fatal(err)
		}
		if len(stmts) != 2 || !strings.Contains(stmts[0], DefaultBarrierTable) || !strings.Contains(stmts[0], "PRIMARY KEY (saga_id, step, op)") {
			t.Errorf("%v: BarrierSchema: %q", d, stmts)
		}
	}
	stmts, err := BarrierSchema(Postgres, "app.barrier")
	if err != nil || !strings.Contains(stmts[1], "barrier_created_idx ON app.barrier") {
		t.Errorf("schema-qualified index: %q, %v", stmts, err)
	}
}

func TestBarrierMigrateIsIdempotent(t *testing.T) {
	eachBarDB(t, func(t *testing.T, db *barDB) {
		f := newBarFixture(t, db)
		if err := f.b.Migrate(context.Background()); err != nil {
			t.Fatalf("second Migrate: %v", err)
		}
	})
}

// Idempotency: the same (saga, step, op) is applied once; every duplicate, whatever its
// attempt, gets the stored outcome under its own attempt.
func TestBarrierActionAppliedOnceDuplicatesGetStoredReply(t *testing.T) {
	eachBarDB(t, func(t *testing.T, db *barDB) {
		f := newBarFixture(t, db)
		calls := 0
		fn := f.recordingFn("s1", "reserved", json.RawMessage(`{"reservation":"r-1"}`), &calls)
		first := f.run(t, barReq("s1", "reserve", OpAction, 1), fn)
		wantReply(t, first, barReq("s1", "reserve", OpAction, 1), ReplySucceeded, "", `{"reservation":"r-1"}`)
		for _, attempt := range []int{1, 2, 7} {
			req := barReq("s1", "reserve", OpAction, attempt)
			wantReply(t, f.run(t, req, fn), req, ReplySucceeded, "", `{"reservation":"r-1"}`)
		}
		if calls != 1 {
			t.Errorf("action ran %d times, want 1", calls)
		}
		if got := f.eventCounts(t, "s1"); got["reserved"] != 1 || len(got) != 1 {
			t.Errorf("events %v, want reserved once", got)
		}
		rec := f.wantStatus(t, Key{"s1", "reserve", OpAction}, BarrierSucceeded)
		if string(rec.Output) != `{"reservation":"r-1"}` || !rec.CreatedAt.Equal(barT0) {
			t.Errorf("record %+v: want the output and created_at %v", rec, barT0)
		}
		// Another step, and another saga, are keys of their own.
		other := 0
		f.run(t, barReq("s1", "charge", OpAction, 1), f.recordingFn("s1", "charged", nil, &other))
		f.run(t, barReq("s2", "reserve", OpAction, 1), f.recordingFn("s2", "reserved", nil, &other))
		if other != 2 {
			t.Errorf("other keys ran %d times, want 2", other)
		}
	})
}

// Null compensation and anti-hanging: a compensation that arrives before its action succeeds
// without running, and the late action is skipped.
func TestBarrierNullCompensationThenLateActionSkipped(t *testing.T) {
	eachBarDB(t, func(t *testing.T, db *barDB) {
		f := newBarFixture(t, db)
		var actions, comps int
		comp := f.recordingFn("s1", "released", nil, &comps)
		creq := barReq("s1", "reserve", OpCompensate, 1)
		wantReply(t, f.run(t, creq, comp), creq, ReplySucceeded, "", "")
		if comps != 0 {
			t.Fatalf("compensation ran %d times before its action, want 0", comps)
		}
		f.wantStatus(t, Key{"s1", "reserve", OpCompensate}, BarrierNullCompensated)
		f.wantStatus(t, Key{"s1", "reserve", OpAction}, BarrierSkipped)

		for _, attempt := range []int{1, 2} {
			areq := barReq("s1", "reserve", OpAction, attempt)
			wantReply(t, f.run(t, areq, f.recordingFn("s1", "reserved", nil, &actions)), areq, ReplyFailed, "compensated before the action arrived", "")
		}
		creq2 := barReq("s1", "reserve", OpCompensate, 2)
		wantReply(t, f.run(t, creq2, comp), creq2, ReplySucceeded, "", "")
		if actions != 0 || comps != 0 {
			t.Errorf("action ran %d times, compensation %d times; want neither", actions, comps)
		}
		if got := f.eventCounts(t, "s1"); len(got) != 0 {
			t.Errorf("events %v, want none", got)
		}
	})
}

// An action followed by its compensation is compensated, once.
func TestBarrierActionThenCompensationCompensatesOnce(t *testing.T) {
	eachBarDB(t, func(t *testing.T, db *barDB) {
		f := newBarFixture(t, db)
		var actions, comps int
		f.run(t, barReq("s1", "reserve", OpAction, 1), f.recordingFn("s1", "reserved", json.RawMessage(`1`), &actions))
		comp := f.recordingFn("s1", "released", json.RawMessage(`{"released":true}`), &comps)
		for _, attempt := range []int{1, 1, 2} {
			req := barReq("s1", "reserve", OpCompensate, attempt)
			wantReply(t, f.run(t, req, comp), req, ReplySucceeded, "", `{"released":true}`)
		}
		if actions != 1 || comps != 1 {
			t.Errorf("action ran %d times, compensation %d; want 1 and 1", actions, comps)
		}
		if got := f.eventCounts(t, "s1"); got["reserved"] != 1 || got["released"] != 1 {
			t.Errorf("events %v, want reserved and released once", got)
		}
		f.wantStatus(t, Key{"s1", "reserve", OpCompensate}, BarrierSucceeded)
		// A late duplicate of the action still gets its stored outcome.
		req := barReq("s1", "reserve", OpAction, 3)
		wantReply(t, f.run(t, req, f.recordingFn("s1", "reserved", nil, &actions)), req, ReplySucceeded, "", `1`)
		if actions != 1 {
			t.Errorf("late duplicate action ran")
		}
	})
}

// A refused action's writes are rolled back but the refusal is recorded and repeated; its
// compensation has nothing to undo.
func TestBarrierRefusedActionRolledBackRecordedAndNotCompensated(t *testing.T) {
	eachBarDB(t, func(t *testing.T, db *barDB) {
		f := newBarFixture(t, db)
		calls := 0
		refuse := func(ctx context.Context, tx *sql.Tx) (json.RawMessage, error) {
			calls++
			if err := f.record(ctx, tx, "s1", "charged"); err != nil {
				return nil, err
			}
			return json.RawMessage(`"ignored"`), Fail(errors.New("card declined"))
		}
		for _, attempt := range []int{1, 2} {
			req := barReq("s1", "charge", OpAction, attempt)
			wantReply(t, f.run(t, req, refuse), req, ReplyFailed, "card declined", "")
		}
		if calls != 1 {
			t.Errorf("refused action ran %d times, want 1", calls)
		}
		if got := f.eventCounts(t, "s1"); len(got) != 0 {
			t.Errorf("events %v: the refused action's write was not rolled back", got)
		}
		rec := f.wantStatus(t, Key{"s1", "charge", OpAction}, BarrierFailed)
		if rec.Error != "card declined" || rec.Output != nil {
			t.Errorf("record %+v: want error %q and no output", rec, "card declined")
		}
		comps := 0
		creq := barReq("s1", "charge", OpCompensate, 1)
		wantReply(t, f.run(t, creq, f.recordingFn("s1", "refunded", nil, &comps)), creq, ReplySucceeded, "", "")
		if comps != 0 {
			t.Errorf("compensation of a refused action ran %d times, want 0", comps)
		}
		f.wantStatus(t, Key{"s1", "charge", OpCompensate}, BarrierNullCompensated)
	})
}

// A refused compensation is reported as failed and undone; the orchestrator's next attempt runs
// it again.
func TestBarrierRefusedCompensationRunsAgainOnRetry(t *testing.T) {
	eachBarDB(t, func(t *testing.T, db *barDB) {
		f := newBarFixture(t, db)
		actions := 0
		f.run(t, barReq("s1", "ship", OpAction, 1), f.recordingFn("s1", "shipped", nil, &actions))
		calls, refuse := 0, true
		comp := func(ctx context.Context, tx *sql.Tx) (json.RawMessage, error) {
			calls++
			if err := f.record(ctx, tx, "s1", "recalled"); err != nil {
				return nil, err
			}
			if refuse {
				return nil, Fail(errors.New("parcel already delivered"))
			}
			return nil, nil
		}
		req1 := barReq("s1", "ship", OpCompensate, 1)
		wantReply(t, f.run(t, req1, comp), req1, ReplyFailed, "parcel already delivered", "")
		f.wantStatus(t, Key{"s1", "ship", OpCompensate}, BarrierFailed)
		if got := f.eventCounts(t, "s1"); got["recalled"] != 0 {
			t.Errorf("refused compensation's write kept: %v", got)
		}
		refuse = false
		req2 := barReq("s1", "ship", OpCompensate, 2)
		wantReply(t, f.run(t, req2, comp), req2, ReplySucceeded, "", "")
		req3 := barReq("s1", "ship", OpCompensate, 3)
		wantReply(t, f.run(t, req3, comp), req3, ReplySucceeded, "", "")
		if calls != 2 {
			t.Errorf("compensation ran %d times, want 2 (refused, then applied)", calls)
		}
		if got := f.eventCounts(t, "s1"); got["recalled"] != 1 || got["shipped"] != 1 {
			t.Errorf("events %v, want shipped and recalled once", got)
		}
		f.wantStatus(t, Key{"s1", "ship", OpCompensate}, BarrierSucceeded)
	})
}

// A transient error leaves nothing behind, so the retry applies the operation.
func TestBarrierTransientErrorRecordsNothing(t *testing.T) {
	errDown := errors.New("inventory service down")
	eachBarDB(t, func(t *testing.T, db *barDB) {
		f := newBarFixture(t, db)
		for _, op := range []Op{OpAction, OpCompensate} {
			sagaID := "s-" + string(op)
			if op == OpCompensate {
				n := 0
				f.run(t, barReq(sagaID, "reserve", OpAction, 1), f.recordingFn(sagaID, "reserved", nil, &n))
			}
			fail := func(ctx context.Context, tx *sql.Tx) (json.RawMessage, error) {
				if err := f.record(ctx, tx, sagaID, "attempted"); err != nil {
					return nil, err
				}
				return nil, errDown
			}
			req := barReq(sagaID, "reserve", op, 1)
			rep, err := f.b.Run(context.Background(), req, fail)
			if !errors.Is(err, errDown) || rep != nil || IsFailure(err) {
				t.Fatalf("%s: Run = %v, %v; want the transient error and no reply", op, rep, err)
			}
			if !strings.Contains(err.Error(), req.Key().String()) {
				t.Errorf("error %q does not name the key", err)
			}
			if op == OpAction {
				f.wantStatus(t, req.Key(), "")
			} else {
				f.wantStatus(t, req.Key(), "")
				f.wantStatus(t, Key{sagaID, "reserve", OpAction}, BarrierSucceeded)
			}
			if got := f.eventCounts(t, sagaID); got["attempted"] != 0 {
				t.Errorf("%s: transient attempt's write kept: %v", op, got)
			}
			calls := 0
			wantReply(t, f.run(t, barReq(sagaID, "reserve", op, 2), f.recordingFn(sagaID, "applied", nil, &calls)), barReq(sagaID, "reserve", op, 2), ReplySucceeded, "", "")
			if calls != 1 {
				t.Errorf("%s: retry ran %d times, want 1", op, calls)
			}
		}
	})
}

// Output that is not JSON is a bug in the handler, not a business outcome: nothing is recorded.
func TestBarrierInvalidOutputRecordsNothing(t *testing.T) {
	f := newBarFixture(t, openBarSQLite(t))
	req := barReq("s1", "reserve", OpAction, 1)
	_, err := f.b.Run(context.Background(), req, func(context.Context, *sql.Tx) (json.RawMessage, error) {
		return json.RawMessage(`{not json`), nil
	})
	if err == nil || !strings.Contains(err.Error(), "not valid JSON") {
		t.Fatalf("Run: %v, want an invalid-JSON error", err)
	}
	f.wantStatus(t, req.Key(), "")
	if _, err := f.b.Run(context.Background(), &Request{SagaID: "s1", Step: "reserve", Op: "undo", Attempt: 1}, nil); err == nil {
		t.Errorf("Run accepted an invalid request")
	}
}

// Do in the caller's transaction: rolled back with it, committed with it.
func TestBarrierDoFollowsTheCallersTransaction(t *testing.T) {
	eachBarDB(t, func(t *testing.T, db *barDB) {
		f := newBarFixture(t, db)
		ctx := context.Background()
		calls := 0
		fn := f.recordingFn("s1", "reserved", nil, &calls)
		for _, commit := range []bool{false, true} {
			tx, err := f.db.BeginTx(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.b.Do(ctx, tx, barReq("s1", "reserve", OpAction, 1), fn); err != nil {
				t.Fatal(err)
			}
			if commit {
				err = tx.Commit()
			} else {
				err = tx.Rollback()
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		if calls != 2 || f.eventCounts(t, "s1")["reserved"] != 1 {
			t.Errorf("calls %d, events %v: want the rolled-back run forgotten and the committed one kept", calls, f.eventCounts(t, "s1"))
		}
	})
}

// The race the barrier exists for: an action and its compensation (and duplicates of each)
// arrive at once, in separate transactions. Whatever the interleaving, the action is either
// applied and compensated, or neither; never applied without compensation, never twice.
func TestBarrierActionCompensationRace(t *testing.T) {
	eachBarDB(t, func(t *testing.T, db *barDB) {
		f := newBarFixture(t, db)
		rounds := 150
		if db.d == SQLite || testing.Short() {
			rounds = 60
		}
		ctx := context.Background()
		var applied, nulls int
		for i := range rounds {
			sagaID := fmt.Sprintf("race-%d", i)
			start := make(chan struct{})
			var wg sync.WaitGroup
			replies := make([]*Reply, 4)
			for g := range 4 {
				op, kind := OpAction, "applied"
				if g%2 == 1 {
					op, kind = OpCompensate, "compensated"
				}
				req := barReq(sagaID, "reserve", op, g/2+1)
				wg.Go(func() {
					<-start
					rep, err := f.b.Run(ctx, req, func(ctx context.Context, tx *sql.Tx) (json.RawMessage, error) {
						return nil, f.record(ctx, tx, sagaID, kind)
					})
					if err != nil {
						t.Errorf("%s attempt %d: %v", req.Key(), req.Attempt, err)
						return
					}
					replies[g] = rep
				})
			}
			close(start)
			wg.Wait()
			if t.Failed() {
				t.FailNow()
			}
			ev := f.eventCounts(t, sagaID)
			a, c := ev["applied"], ev["compensated"]
			switch {
			case a == 1 && c == 1:
				applied++
				for g, rep := range replies {
					if rep.Status != ReplySucceeded {
						t.Errorf("%s: applied and compensated, but reply %d is %s %q", sagaID, g, rep.Status, rep.Error)
					}
				}
				f.wantStatus(t, Key{sagaID, "reserve", OpCompensate}, BarrierSucceeded)
			case a == 0 && c == 0:
				nulls++
				for g, rep := range replies {
					want := ReplySucceeded
					if g%2 == 0 {
						want = ReplyFailed // the actions were skipped
					}
					if rep.Status != want {
						t.Errorf("%s: neither applied, but reply %d is %s, want %s", sagaID, g, rep.Status, want)
					}
				}
				f.wantStatus(t, Key{sagaID, "reserve", OpAction}, BarrierSkipped)
				f.wantStatus(t, Key{sagaID, "reserve", OpCompensate}, BarrierNullCompensated)
			default:
				t.Fatalf("%s: action applied %d times, compensation %d times; want 1/1 or 0/0", sagaID, a, c)
			}
		}
		t.Logf("%d rounds: %d applied then compensated, %d compensated first", rounds, applied, nulls)
	})
}

func TestBarrierCleanupDeletesOldRowsInBatches(t *testing.T) {
	eachBarDB(t, func(t *testing.T, db *barDB) {
		f := newBarFixture(t, db) // CleanupBatch 2
		calls := 0
		for i := range 5 {
			f.run(t, barReq(fmt.Sprintf("old-%d", i), "reserve", OpAction, 1), f.recordingFn("x", "r", nil, &calls))
		}
		f.clk.Advance(48 * time.Hour)
		f.run(t, barReq("new", "reserve", OpAction, 1), f.recordingFn("x", "r", nil, &calls))
		n, err := f.b.Cleanup(context.Background(), f.clk.Now().Add(-24*time.Hour))
		if err != nil || n != 5 {
			t.Fatalf("Cleanup = %d, %v; want 5 rows", n, err)
		}
		f.wantStatus(t, Key{"old-0", "reserve", OpAction}, "")
		f.wantStatus(t, Key{"new", "reserve", OpAction}, BarrierSucceeded)
		if n, err := f.b.Cleanup(context.Background(), f.clk.Now().Add(-24*time.Hour)); err != nil || n != 0 {
			t.Fatalf("second Cleanup = %d, %v; want 0", n, err)
		}
	})
}

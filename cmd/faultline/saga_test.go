package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/faultline-dev/faultline/clock"
	"github.com/faultline-dev/faultline/saga"
)

// sagaT0 is when the fixture's first saga starts; the tests look at the store an hour later.
var sagaT0 = time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)

// sagaFixture is a saga store populated by the real orchestrator.
type sagaFixture struct {
	db    *sql.DB
	store string // --store
	table string
	cfg   saga.Config
	clk   *clock.Manual
}

// sagaDefinitions are the fixture's sagas, all driven by Local steps (which run inside Start)
// except where a step must stay in flight (Func steps, which only Run would invoke).
//
//	order:    create, reserve, charge — charge refuses when the input says decline; reserve's
//	          compensation fails when the input says stuck (CompensationMaxAttempts 1: parked)
//	shipment: pivot charge (Local), then ship (Func, stays in flight): running past its pivot
//	payout:   hold (Local), then pivot transfer (Func, in flight): running at its pivot
//	refund:   debit (Local, compensation Func), then notify (refuses): compensating
func sagaDefinitions() []*saga.Definition {
	ok := func(out string) saga.Invoker {
		return saga.Local(func(ctx context.Context, tx *sql.Tx, req *saga.Request) (json.RawMessage, error) {
			return json.RawMessage(`"` + out + `"`), nil
		})
	}
	var input = func(req *saga.Request) (in struct{ Decline, Stuck bool }) {
		_ = json.Unmarshal(req.Input, &in)
		return in
	}
	// Func steps stay in flight: nothing invokes them without Run, and their long timeouts keep
	// a Tick from retrying them.
	pending := saga.Func(func(ctx context.Context, req *saga.Request) (json.RawMessage, error) {
		<-ctx.Done()
		return nil, ctx.Err()
	})
	order := saga.New("order").
		Step(saga.Step{Name: "create", Action: ok("created"), Compensate: ok("rejected")}).
		Step(saga.Step{Name: "reserve", Action: ok("reserved"), Compensate: saga.Local(func(ctx context.Context, tx *sql.Tx, req *saga.Request) (json.RawMessage, error) {
			if input(req).Stuck {
				return nil, errors.New("warehouse unreachable")
			}
			return nil, nil
		})}).
		Step(saga.Step{Name: "charge", Action: saga.Local(func(ctx context.Context, tx *sql.Tx, req *saga.Request) (json.RawMessage, error) {
			if input(req).Decline {
				return nil, saga.Fail(errors.New("card declined"))
			}
			return json.RawMessage(`{"payment":"p-1"}`), nil
		})})
	order.CompensationMaxAttempts = 1
	shipment := saga.New("shipment").
		Pivot(saga.Step{Name: "charge", Action: ok("charged")}).
		Step(saga.Step{Name: "ship", Action: pending, Timeout: 24 * time.Hour})
	payout := saga.New("payout").
		Step(saga.Step{Name: "hold", Action: ok("held"), Compensate: ok("released")}).
		Pivot(saga.Step{Name: "transfer", Action: pending, Timeout: 24 * time.Hour})
	payout.Timeout = 2 * time.Hour
	refund := saga.New("refund").
		Step(saga.Step{Name: "debit", Action: ok("debited"), Compensate: pending, Timeout: 24 * time.Hour}).
		Step(saga.Step{Name: "notify", Action: saga.Local(func(ctx context.Context, tx *sql.Tx, req *saga.Request) (json.RawMessage, error) {
			return nil, saga.Fail(errors.New("mailbox closed"))
		})})
	return []*saga.Definition{order, shipment, payout, refund}
}

// openFixtureDB opens the fixture's SQLite file as the orchestrator would.
func openFixtureDB(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(30000)&_pragma=journal_mode(WAL)&_txlock=immediate")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// newSagaFixture starts, a minute apart from sagaT0:
//
//	order-1001     completed
//	order-1002     compensated (card declined)
//	order-1003     needs-attention (declined, then reserve's compensation failed)
//	shipment-2001  running past its pivot (ship in flight)
//	payout-3001    running at its pivot (transfer in flight)
//	refund-4001    compensating (debit's compensation in flight)
//
// and pins the CLI's clock at sagaT0 + 1h.
func newSagaFixture(t *testing.T, db *sql.DB, dialect saga.Dialect, store, table string) *sagaFixture {
	t.Helper()
	clk := clock.NewManual(sagaT0)
	cfg := saga.Config{DB: db, Dialect: dialect, Table: table, Definitions: sagaDefinitions(), Clock: clk, Seed: 1}
	if dialect == saga.Postgres {
		cfg.Outbox.Name, cfg.Outbox.Channel = table+"_outbox", table+"_ch"
	}
	o, err := saga.NewOrchestrator(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := o.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	for _, s := range []struct {
		name, id string
		input    any
	}{
		{"order", "order-1001", map[string]any{}},
		{"order", "order-1002", map[string]any{"decline": true}},
		{"order", "order-1003", map[string]any{"decline": true, "stuck": true}},
		{"shipment", "shipment-2001", nil},
		{"payout", "payout-3001", nil},
		{"refund", "refund-4001", nil},
	} {
		if err := o.Start(ctx, s.name, s.id, s.input); err != nil {
			t.Fatal(err)
		}
		clk.Advance(time.Minute)
	}
	old := sagaNow
	sagaNow = func() time.Time { return sagaT0.Add(time.Hour) }
	t.Cleanup(func() { sagaNow = old })
	return &sagaFixture{db: db, store: store, table: table, cfg: cfg, clk: clk}
}

// sqliteSagaFixture builds the fixture in a SQLite file in a temporary directory.
func sqliteSagaFixture(t *testing.T) *sagaFixture {
	t.Helper()
	path := filepath.Join(t.TempDir(), "orders.db")
	return newSagaFixture(t, openFixtureDB(t, path), saga.SQLite, path, saga.DefaultTable)
}

// orchestrator returns a second orchestrator on the fixture's store, as the running one would
// be: its Tick applies operator requests.
func (f *sagaFixture) orchestrator(t *testing.T) *saga.Orchestrator {
	t.Helper()
	o, err := saga.NewOrchestrator(f.cfg)
	if err != nil {
		t.Fatal(err)
	}
	return o
}

func (f *sagaFixture) args(args ...string) []string {
	out := append(args, "--store", f.store)
	if f.table != saga.DefaultTable {
		out = append(out, "--table", f.table)
	}
	return out
}

func (f *sagaFixture) state(t *testing.T, id string) *saga.State {
	t.Helper()
	st, err := f.orchestrator(t).Get(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// request reads the operator request filed in a saga's row.
func (f *sagaFixture) request(t *testing.T, id string) string {
	t.Helper()
	q := "SELECT request FROM " + f.table + " WHERE id = ?"
	if f.cfg.Dialect == saga.Postgres {
		q = "SELECT request FROM " + f.table + " WHERE id = $1"
	}
	var req sql.NullString
	if err := f.db.QueryRow(q, id).Scan(&req); err != nil {
		t.Fatal(err)
	}
	return req.String
}

func wantContains(t *testing.T, what, got string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(got, w) {
			t.Errorf("%s lacks %q:\n%s", what, w, got)
		}
	}
}

// lineWith returns the first line of s that contains sub.
func lineWith(s, sub string) string {
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			return l
		}
	}
	return ""
}

// fields splits a table row on runs of two or more spaces (cells may hold single spaces).
func fields(row string) []string {
	var out []string
	for _, c := range strings.Split(strings.TrimSpace(row), "  ") {
		if c = strings.TrimSpace(c); c != "" {
			out = append(out, c)
		}
	}
	return out
}

func TestSagaListText(t *testing.T) {
	f := sqliteSagaFixture(t)
	code, out, errOut := cli(t, f.args("saga", "list")...)
	if code != 0 || errOut != "" {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	lines := strings.Split(out, "\n")
	if got := fields(lines[0]); strings.Join(got, "|") != "ID|SAGA|STATUS|STEP|AGE|UPDATED|REASON" {
		t.Errorf("header %q", lines[0])
	}
	// Most recently updated first.
	var ids []string
	for _, l := range lines[1:7] {
		ids = append(ids, fields(l)[0])
	}
	if got := strings.Join(ids, " "); got != "refund-4001 payout-3001 shipment-2001 order-1003 order-1002 order-1001" {
		t.Errorf("order %s:\n%s", got, out)
	}
	rows := map[string]string{
		"refund-4001":   `refund|compensating|debit|55m|55m ago|step "notify" refused: mailbox closed`,
		"payout-3001":   "payout|running|transfer|56m|56m ago|-",
		"shipment-2001": "shipment|running|ship|57m|57m ago|-",
		"order-1003":    `order|needs-attention|reserve|58m|58m ago|compensation of step "reserve" failed once: warehouse unreachable`,
		"order-1002":    `order|compensated|charge|59m|59m ago|step "charge" refused: card declined`,
		"order-1001":    "order|completed|-|1h0m|1h0m ago|-",
	}
	for id, want := range rows {
		if got := strings.Join(fields(lineWith(out, id))[1:], "|"); got != want {
			t.Errorf("%s:\n got %s\nwant %s", id, got, want)
		}
	}
	wantContains(t, "list", out, "\n\n6 sagas in the store: 2 running, 1 compensating, 1 needs-attention, 1 completed, 1 compensated\n")
	if strings.Contains(out, "--limit shows more") {
		t.Errorf("limit note without a limit:\n%s", out)
	}

	// Filters, the limit note, long reasons cut.
	code, out, _ = cli(t, f.args("saga", "list", "--status", "needs-attention,compensated", "--saga", "order", "--limit", "1")...)
	if code != 0 || !strings.Contains(out, "order-1003") || strings.Contains(out, "order-1002") ||
		!strings.Contains(out, "showing the 1 most recently updated that match; --limit shows more") {
		t.Errorf("filtered: exit %d\n%s", code, out)
	}
	code, out, _ = cli(t, f.args("saga", "list", "--saga", "nope")...)
	if code != 0 || !strings.HasPrefix(out, "no sagas match\n\n6 sagas in the store:") {
		t.Errorf("no match: exit %d\n%s", code, out)
	}
}

func TestSagaListJSON(t *testing.T) {
	f := sqliteSagaFixture(t)
	code, out, errOut := cli(t, f.args("-o", "json", "saga", "list", "--status", "needs-attention,running")...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var items []sagaListItem
	if err := json.Unmarshal([]byte(out), &items); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if len(items) != 3 || items[0].ID != "payout-3001" || items[2].ID != "order-1003" {
		t.Fatalf("items %+v", items)
	}
	it := items[2]
	if it.Saga != "order" || it.Status != saga.StatusNeedsAttention || strings.Join(it.Steps, ",") != "reserve" ||
		!it.CreatedAt.Equal(sagaT0.Add(2*time.Minute)) || !strings.Contains(it.Reason, "warehouse unreachable") || it.Version != 1 {
		t.Errorf("order-1003: %+v", it)
	}
	if !items[0].Deadline.Equal(sagaT0.Add(4*time.Minute + 2*time.Hour)) {
		t.Errorf("payout deadline %v", items[0].Deadline)
	}
	// The documented field names, present even when empty.
	var raw []map[string]any
	json.Unmarshal([]byte(out), &raw)
	for _, k := range []string{"id", "saga", "status", "steps", "createdAt", "updatedAt", "reason", "version"} {
		if _, ok := raw[1][k]; !ok {
			t.Errorf("item lacks %q: %v", k, raw[1])
		}
	}
	// An empty result is an empty array, not null.
	if code, out, _ := cli(t, f.args("-o", "json", "saga", "list", "--status", "aborted")...); code != 0 || strings.TrimSpace(out) != "[]" {
		t.Errorf("empty: exit %d %q", code, out)
	}
}

func TestSagaShowText(t *testing.T) {
	f := sqliteSagaFixture(t)
	code, out, errOut := cli(t, f.args("saga", "show", "order-1003")...)
	if code != 0 || errOut != "" {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	wantContains(t, "show", out,
		"saga      order-1003 (order)\n",
		"status    needs-attention (parked while compensating; retry or abort it)\n",
		"created   2026-03-02 09:02:00Z (58m ago)\n",
		"ended     -\n",
		"duration  58m so far\n",
		"deadline  -\n",
		`reason    compensation of step "reserve" failed once: warehouse unreachable`,
		`input     {"decline":true,"stuck":true}`,
		"updated   2026-03-02 09:02:00Z (version 1)\n",
		"\nHISTORY\n",
	)
	head := fields(lineWith(out, "STEP"))
	if strings.Join(head, "|") != "STEP|STATUS|ACTION|COMPENSATION|STARTED|TOOK|COMP TOOK|ERROR" {
		t.Errorf("steps header %q", head)
	}
	for step, want := range map[string]string{
		"create":  "succeeded|1|-|+0s|0s|-|-",
		"reserve": "compensating|1|1|+0s|0s|58m so far|warehouse unreachable",
		"charge":  "failed (refused)|1|-|+0s|0s|-|card declined",
	} {
		row := fields(lineWith(out, step+"  "))
		if got := strings.Join(row[1:], "|"); got != want {
			t.Errorf("step %s:\n got %s\nwant %s", step, got, want)
		}
	}
	for _, l := range strings.Split(out, "\n") {
		if strings.HasSuffix(l, " ") {
			t.Errorf("trailing blanks: %q", l)
		}
	}
	hist := out[strings.Index(out, "HISTORY"):]
	for _, want := range []string{
		"+0s  -        -           -  started",
		"+0s  charge   action      1  refused          card declined",
		"+0s  -        -           -  compensating     step \"charge\" refused: card declined",
		"+0s  reserve  compensate  1  failed           warehouse unreachable",
		"+0s  -        -           -  needs-attention  compensation of step \"reserve\" failed once",
	} {
		if !strings.Contains(hist, want) {
			t.Errorf("history lacks %q:\n%s", want, hist)
		}
	}

	// A finished saga: its end, duration and the compensations' times.
	_, out, _ = cli(t, f.args("saga", "show", "order-1002")...)
	wantContains(t, "show order-1002", out, "ended     2026-03-02 09:01:00Z (59m ago)\n", "duration  0s\n", "status    compensated\n")
	// A running saga past its pivot, and one with a deadline.
	_, out, _ = cli(t, f.args("saga", "show", "shipment-2001")...)
	wantContains(t, "show shipment-2001", out, "status    running (past its pivot: it can only go forward)", "running (action attempt 1 in flight)")
	_, out, _ = cli(t, f.args("saga", "show", "payout-3001")...)
	wantContains(t, "show payout-3001", out, "deadline  2026-03-02 11:04:00Z (in 1h4m)", "  +0s  transfer  action  -  pivot")
}

func TestSagaShowJSON(t *testing.T) {
	f := sqliteSagaFixture(t)
	code, out, errOut := cli(t, f.args("-o", "json", "saga", "show", "order-1002")...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var doc struct {
		Saga    *saga.State     `json:"saga"`
		History []saga.LogEntry `json:"history"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if doc.Saga == nil || doc.Saga.ID != "order-1002" || doc.Saga.Status != saga.StatusCompensated || len(doc.Saga.Steps) != 3 ||
		doc.Saga.Step("create").Status != saga.StepCompensated || len(doc.History) == 0 ||
		doc.History[0].Event != "started" || doc.History[len(doc.History)-1].Event != "compensated" {
		t.Errorf("json: %s", out)
	}
}

func TestSagaRetryAndAbortFileRequests(t *testing.T) {
	f := sqliteSagaFixture(t)
	ctx := context.Background()

	code, out, errOut := cli(t, f.args("saga", "retry", "order-1003")...)
	if code != 0 || errOut != "" {
		t.Fatalf("retry: exit %d, stderr %q", code, errOut)
	}
	wantContains(t, "retry", out,
		"filed a retry request for saga order-1003 (order, needs-attention): the running orchestrator carries it out at its next poll\n",
		"see the outcome with: faultline saga show order-1003 --store "+f.store+"\n")
	if got := f.request(t, "order-1003"); got != "retry" {
		t.Fatalf("request column %q", got)
	}
	// The running orchestrator applies it: a fresh compensation attempt, which fails again.
	if _, err := f.orchestrator(t).Tick(ctx); err != nil {
		t.Fatal(err)
	}
	st := f.state(t, "order-1003")
	if st.Version != 2 || st.Status != saga.StatusNeedsAttention || st.Step("reserve").CompensationAttempts != 2 || f.request(t, "order-1003") != "" {
		t.Fatalf("after retry: version %d, %s, %+v", st.Version, st.Status, st.Step("reserve"))
	}

	code, out, _ = cli(t, f.args("saga", "abort", "order-1003", "--reason", "stock fixed by hand, OPS-42")...)
	if code != 0 || !strings.Contains(out, `filed an abort request (reason: "stock fixed by hand, OPS-42") for saga order-1003 (order, needs-attention)`) {
		t.Fatalf("abort: exit %d\n%s", code, out)
	}
	if got := f.request(t, "order-1003"); got != "abort:stock fixed by hand, OPS-42" {
		t.Fatalf("request column %q", got)
	}
	f.orchestrator(t).Tick(ctx)
	if st := f.state(t, "order-1003"); st.Status != saga.StatusAborted || !strings.Contains(st.Reason, "stock fixed by hand, OPS-42") {
		t.Fatalf("after abort: %s %q", st.Status, st.Reason)
	}

	// Abort of a running saga (filed; JSON result).
	code, out, _ = cli(t, "-o", "json", "saga", "abort", "refund-4001x", "--store", "sqlite:"+f.store)
	if code != 2 {
		t.Fatalf("abort of an unknown saga: exit %d %s", code, out)
	}
	code, out, _ = cli(t, "-o", "json", "saga", "retry", "order-1002", "--store", "sqlite:"+f.store)
	if code != 2 {
		t.Fatalf("retry of a compensated saga: exit %d %s", code, out)
	}
}

// tickUntil runs the orchestrator's Tick every few milliseconds until stop is closed, as Run
// would.
func tickUntil(t *testing.T, o *saga.Orchestrator) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-done:
				return
			case <-time.After(20 * time.Millisecond):
				if _, err := o.Tick(context.Background()); err != nil {
					t.Error(err)
					return
				}
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}

// fastPoll makes --wait look at the store often.
func fastPoll(t *testing.T) {
	old := sagaPollInterval
	sagaPollInterval = 10 * time.Millisecond
	t.Cleanup(func() { sagaPollInterval = old })
}

func TestSagaRequestWaitUnchanged(t *testing.T) {
	f := sqliteSagaFixture(t)
	fastPoll(t)
	// No orchestrator runs: the wait ends, exit 1, the request stays filed.
	code, out, errOut := cli(t, f.args("saga", "retry", "order-1003", "--wait", "150ms")...)
	if code != 1 || !strings.HasPrefix(out, "filed a retry request for saga order-1003") ||
		errOut != "waiting up to 150ms for the orchestrator...\n"+
			"faultline: saga order-1003 unchanged after 150ms: is the orchestrator running? The request stays filed and is carried out at its next poll\n" {
		t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
	}
	if f.request(t, "order-1003") != "retry" {
		t.Fatal("request not filed")
	}
	code, out, _ = cli(t, f.args("-o", "json", "-q", "saga", "abort", "order-1003", "--wait", "50ms")...)
	var res sagaRequestResult
	if err := json.Unmarshal([]byte(out), &res); err != nil || code != 1 || res.Outcome != "unchanged" || res.Version != 1 {
		t.Errorf("json: exit %d %v\n%s", code, err, out)
	}
}

func TestSagaRequestWaitApplied(t *testing.T) {
	f := sqliteSagaFixture(t)
	fastPoll(t)
	stop := tickUntil(t, f.orchestrator(t))
	defer stop()
	code, out, errOut := cli(t, f.args("saga", "abort", "order-1003", "--reason", "refunded by hand", "--wait", "10s")...)
	if code != 0 || errOut != "waiting up to 10s for the orchestrator...\n" {
		t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
	}
	wantContains(t, "abort --wait", out,
		"saga order-1003 is now aborted (version 1 → 2): aborted by operator: refunded by hand (was: compensation of step \"reserve\" failed once: warehouse unreachable)\n",
		"history since the request:\n",
		"aborted  refunded by hand\n")
	if st := f.state(t, "order-1003"); st.Status != saga.StatusAborted {
		t.Errorf("status %s", st.Status)
	}

	// payout-3001 is at its pivot: the store refuses to file the abort.
	code, _, errOut = cli(t, f.args("saga", "abort", "payout-3001", "--reason", "customer cancelled", "--wait", "10s")...)
	if code != 2 || !strings.Contains(errOut, "saga payout-3001 is running: saga: the saga has reached its pivot and can only go forward") {
		t.Errorf("abort at the pivot: exit %d, stderr %q", code, errOut)
	}
}

func TestSagaRequestErrors(t *testing.T) {
	f := sqliteSagaFixture(t)
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"saga", "retry", "order-1001"}, "faultline: cannot retry: saga order-1001 is completed: saga: the saga has ended\n"},
		{[]string{"saga", "retry", "shipment-2001"}, "faultline: cannot retry: saga shipment-2001 is running: saga: only a needs-attention saga can be retried\n"},
		{[]string{"saga", "abort", "order-1002"}, "faultline: cannot abort: saga order-1002 is compensated: saga: the saga has ended\n"},
		{[]string{"saga", "abort", "shipment-2001"}, "faultline: cannot abort: saga shipment-2001 is running: saga: the saga has reached its pivot and can only go forward"},
		{[]string{"saga", "abort", "refund-4001"}, "faultline: cannot abort: saga refund-4001 is compensating: saga: the saga is already compensating\n"},
		{[]string{"saga", "retry", "order-9999"}, `faultline: no saga "order-9999" in ` + f.store + " (table faultline_saga)\n"},
		{[]string{"saga", "abort", "order-9999"}, `faultline: no saga "order-9999" in `},
		{[]string{"saga", "show", "order-9999"}, `faultline: no saga "order-9999" in `},
		{[]string{"saga", "show"}, "faultline: faultline saga show wants a saga ID, got 0 arguments\nRun 'faultline saga show --help' for usage.\n"},
		{[]string{"saga", "retry", "a", "b"}, "faultline: faultline saga retry wants a saga ID, got 2 arguments"},
		{[]string{"saga", "retry", "order-1003", "--wait", "-1s"}, "faultline: --wait -1s: want a positive duration"},
		{[]string{"saga", "list", "--status", "stuck"}, `faultline: --status "stuck": unknown status; expected running, compensating, needs-attention, completed, compensated, aborted`},
		{[]string{"saga", "list", "--limit", "-1"}, "faultline: --limit -1: want a positive number"},
		{[]string{"-o", "yaml", "saga", "list"}, "faultline: -o yaml: faultline saga prints text or json"},
		{[]string{"saga", "list", "--table", "bad-name"}, `faultline: --table: saga store: table name "bad-name"`},
		{[]string{"saga", "list", "--table", "checkout_saga"}, `faultline: no saga table "checkout_saga" in ` + f.store + ": is this the orchestrator's database? see --table\n"},
		{[]string{"saga", "bogus"}, `faultline: unknown command "bogus" for "faultline saga"`},
	}
	for _, c := range cases {
		args := c.args
		if len(args) < 2 || args[1] != "bogus" {
			args = f.args(c.args...)
		}
		code, out, errOut := cli(t, args...)
		if code != 2 || !strings.HasPrefix(errOut, c.want) {
			t.Errorf("%v: exit %d, stderr %q; want exit 2 and %q", c.args, code, errOut, c.want)
		}
		if strings.Contains(out, "filed") {
			t.Errorf("%v: filed anyway: %s", c.args, out)
		}
	}
	// Nothing was filed by the refused requests.
	for _, id := range []string{"order-1001", "order-1002", "shipment-2001", "refund-4001"} {
		if r := f.request(t, id); r != "" {
			t.Errorf("%s: request %q filed", id, r)
		}
	}
}

func TestParseStoreDSN(t *testing.T) {
	cases := []struct {
		in                   string
		driver, path, source string
		err                  string
	}{
		{in: "sqlite:/var/lib/orders.db", driver: "sqlite", path: "/var/lib/orders.db", source: "file:/var/lib/orders.db?mode=rw&_pragma=busy_timeout(5000)"},
		{in: "sqlite:///var/lib/orders.db", driver: "sqlite", path: "/var/lib/orders.db"},
		{in: "file:data/orders", driver: "sqlite", path: "data/orders"},
		{in: "file:///tmp/a b?c#d%.db", driver: "sqlite", path: "/tmp/a b?c#d%.db", source: "file:/tmp/a b%3fc%23d%25.db?mode=rw&_pragma=busy_timeout(5000)"},
		{in: "orders.db", driver: "sqlite", path: "orders.db"},
		{in: "./x/Orders.SQLite", driver: "sqlite", path: "./x/Orders.SQLite"},
		{in: "/x/orders.sqlite3", driver: "sqlite", path: "/x/orders.sqlite3"},
		{in: "postgres://ops:s3cret@db:5432/orders?sslmode=disable", driver: "pgx", source: "postgres://ops:s3cret@db:5432/orders?sslmode=disable"},
		{in: "postgresql://db/orders", driver: "pgx", source: "postgresql://db/orders"},
		{in: "", err: "--store is required: the orchestrator's database, sqlite:PATH, file:PATH,"},
		{in: "mysql://db/orders", err: `--store "mysql://db/orders": unknown kind of store; expected sqlite:PATH, file:PATH, a path ending in .db, .sqlite or .sqlite3, or postgres://`},
		{in: "orders", err: `--store "orders": not a store this command knows; expected sqlite:PATH`},
		{in: "sqlite:", err: `--store "sqlite:": no file`},
	}
	for _, c := range cases {
		d, err := parseStoreDSN(c.in)
		if c.err != "" {
			if err == nil || !strings.HasPrefix(err.Error(), c.err) {
				t.Errorf("%q: err %v, want %q", c.in, err, c.err)
			}
			continue
		}
		if err != nil || d.driver != c.driver || d.path != c.path || (c.source != "" && d.source != c.source) {
			t.Errorf("%q: %+v %v", c.in, d, err)
		}
	}
	if d, _ := parseStoreDSN("postgres://ops:s3cret@db:5432/orders"); strings.Contains(d.display, "s3cret") {
		t.Errorf("password shown: %s", d.display)
	}
}

func TestSagaStoreForms(t *testing.T) {
	f := sqliteSagaFixture(t)
	dir := filepath.Dir(f.store)
	// Every SQLite form reaches the same store.
	copyTo := filepath.Join(dir, "orders.sqlite")
	for _, store := range []string{f.store, "sqlite:" + f.store, "file:" + f.store, "file://" + f.store} {
		code, out, errOut := cli(t, "saga", "list", "--store", store)
		if code != 0 || !strings.Contains(out, "6 sagas in the store") {
			t.Errorf("--store %s: exit %d %s %s", store, code, out, errOut)
		}
	}

	missing := filepath.Join(dir, "none.db")
	other := filepath.Join(dir, "other.db")
	odb := openFixtureDB(t, other)
	if _, err := odb.Exec("CREATE TABLE orders (id TEXT)"); err != nil {
		t.Fatal(err)
	}
	notDB := filepath.Join(dir, "notes.db")
	os.WriteFile(notDB, []byte(strings.Repeat("not a database\n", 100)), 0o644)
	cases := []struct {
		store, want string
	}{
		{missing, "faultline: no SQLite database at " + missing + " (--store " + missing + "): the file does not exist\n"},
		{"sqlite:" + missing, "faultline: no SQLite database at " + missing},
		{copyTo, "faultline: no SQLite database at " + copyTo},
		{"sqlite:" + dir, "faultline: --store sqlite:" + dir + ": " + dir + " is a directory, not a SQLite database\n"},
		{other, `faultline: no saga table "faultline_saga" in ` + other + ": is this the orchestrator's database? see --table\n"},
		{notDB, "faultline: cannot "},
		{"mongodb://db/orders", `faultline: --store "mongodb://db/orders": unknown kind of store; expected sqlite:PATH, file:PATH`},
		{"orders", `faultline: --store "orders": not a store this command knows`},
		{"postgres://nobody:pw@127.0.0.1:1/none?sslmode=disable&connect_timeout=2", "faultline: cannot open store postgres://nobody:xxxxx@127.0.0.1:1/none"},
	}
	for _, c := range cases {
		code, _, errOut := cli(t, "saga", "list", "--store", c.store)
		if code != 2 || !strings.HasPrefix(errOut, c.want) {
			t.Errorf("--store %s: exit %d, stderr %q; want %q", c.store, code, errOut, c.want)
		}
	}
	// A missing file is not created.
	if _, err := os.Stat(missing); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s was created: %v", missing, err)
	}
	if code, _, errOut := cli(t, "saga", "list"); code != 2 || !strings.HasPrefix(errOut, "faultline: --store is required") {
		t.Errorf("no --store: exit %d %q", code, errOut)
	}
}

func TestSagaHelp(t *testing.T) {
	for _, args := range [][]string{{"saga", "--help"}, {"saga"}} {
		code, out, _ := cli(t, args...)
		if code != 0 {
			t.Fatalf("%v: exit %d", args, code)
		}
		wantContains(t, "saga help", out,
			"faultline saga list --store orders.db --status needs-attention",
			"faultline saga retry order-1003 --store orders.db --wait 10s",
			"Available Commands:", "abort", "list", "retry", "show", "--store", "--table")
	}
	for sub, want := range map[string]string{
		"list":  "faultline saga list --store orders.db --status needs-attention -o json | jq -r '.[].id'",
		"show":  "faultline saga show order-1003 --store orders.db",
		"retry": "faultline saga retry order-1003 --store postgres://ops@db:5432/orders --wait 10s",
		"abort": `--reason "stock fixed by hand, ticket OPS-42"`,
	} {
		code, out, _ := cli(t, "saga", sub, "--help")
		if code != 0 || !strings.Contains(out, want) || !strings.Contains(out, "--store string") {
			t.Errorf("saga %s --help: exit %d\n%s", sub, code, out)
		}
	}
}

// TestSagaPostgres runs the commands against PostgreSQL with a table of its own.
func TestSagaPostgres(t *testing.T) {
	url := os.Getenv("FAULTLINE_POSTGRES_URL")
	if url == "" {
		url = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
	}
	db, err := sql.Open("pgx", url)
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		err = db.PingContext(ctx)
		cancel()
	}
	if err != nil {
		if os.Getenv("FAULTLINE_REQUIRE_SERVICES") == "1" {
			t.Fatalf("PostgreSQL at %s unreachable: %v", url, err)
		}
		t.Skipf("PostgreSQL at %s unreachable (set FAULTLINE_REQUIRE_SERVICES=1 to fail): %v", url, err)
	}
	table := fmt.Sprintf("cli_saga_%d", time.Now().UnixNano()%1e12)
	t.Cleanup(func() {
		for _, s := range []string{table, table + "_log", table + "_outbox"} {
			db.Exec("DROP TABLE IF EXISTS " + s + " CASCADE")
		}
		db.Close()
	})
	f := newSagaFixture(t, db, saga.Postgres, url, table)

	code, out, errOut := cli(t, f.args("saga", "list")...)
	if code != 0 || !strings.Contains(out, "6 sagas in the store: 2 running, 1 compensating, 1 needs-attention, 1 completed, 1 compensated") {
		t.Fatalf("list: exit %d\n%s\n%s", code, out, errOut)
	}
	if got := strings.Join(fields(lineWith(out, "order-1003"))[1:4], "|"); got != "order|needs-attention|reserve" {
		t.Errorf("order-1003 row %q", got)
	}
	code, out, _ = cli(t, f.args("-o", "json", "saga", "list", "--status", "compensated")...)
	var items []sagaListItem
	if json.Unmarshal([]byte(out), &items); code != 0 || len(items) != 1 || items[0].ID != "order-1002" {
		t.Errorf("list json: exit %d %s", code, out)
	}
	code, out, _ = cli(t, f.args("saga", "show", "order-1003")...)
	wantContains(t, "show", out, "status    needs-attention (parked while compensating; retry or abort it)", "reserve  compensating")
	if code != 0 {
		t.Errorf("show: exit %d", code)
	}
	code, out, errOut = cli(t, f.args("saga", "abort", "order-1003", "--reason", "pg")...)
	if code != 0 || f.request(t, "order-1003") != "abort:pg" {
		t.Fatalf("abort: exit %d %s %s", code, out, errOut)
	}
	f.orchestrator(t).Tick(context.Background())
	if st := f.state(t, "order-1003"); st.Status != saga.StatusAborted {
		t.Errorf("after abort: %s", st.Status)
	}
	if code, _, errOut := cli(t, "saga", "retry", "order-1001", "--store", url, "--table", table); code != 2 || !strings.Contains(errOut, "the saga has ended") {
		t.Errorf("retry completed: exit %d %s", code, errOut)
	}
	if code, _, errOut := cli(t, "saga", "list", "--store", url, "--table", table+"_none"); code != 2 ||
		!strings.Contains(errOut, `no saga table "`+table+`_none" in postgres://postgres@127.0.0.1:5432/test?sslmode=disable: is this the orchestrator's database? see --table`) {
		t.Errorf("missing table: exit %d %s", code, errOut)
	}
}

func TestShortDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0: "0s", 350 * time.Millisecond: "350ms", 4240 * time.Millisecond: "4.2s", 185 * time.Second: "3m5s",
		55 * time.Minute: "55m", 59*time.Minute + 40*time.Second: "1h0m", 130 * time.Minute: "2h10m",
		76 * time.Hour: "3d4h", -90 * time.Second: "-1m30s",
	} {
		if got := shortDuration(d); got != want {
			t.Errorf("%v: %s, want %s", d, got, want)
		}
	}
}

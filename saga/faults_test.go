package saga

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/faultline-dev/faultline/clock"
	"github.com/faultline-dev/faultline/internal/testkit"
	"github.com/faultline-dev/faultline/messaging"
	"github.com/faultline-dev/faultline/outbox"
)

// The randomized fault-schedule test: an order saga (create order → reserve stock → charge
// payment → approve) across three services, each with its own SQLite database, talking only
// through messages (outbox out, barrier in), under a schedule drawn from a seed that crashes the
// orchestrator at its crash points and the participants mid-transaction or after commit,
// restarts them, duplicates, delays and reorders messages, and fails publishes half-way. After a
// quiet phase every saga must have ended, and money and stock must be conserved.
//
//	go test ./saga -run TestFaultSchedules                         # 200 schedules
//	FAULTLINE_SAGA_SCHEDULES=10000 go test ./saga -run TestFaultSchedules -timeout 2h
//	FAULTLINE_SAGA_SEED=1234 go test ./saga -run TestFaultSchedules -v  # replay one schedule

// simNet is the broker of the simulation: published messages wait in a pool, the schedule picks
// which one is delivered next (reordering), may deliver it again (duplicates) or hold it back
// (delays).
type simNet struct {
	rnd      *rand.Rand
	clk      *clock.Manual
	pool     []*simMsg
	handlers map[string]messaging.Handler
	faults   bool
	trace    *[]string
}

type simMsg struct {
	msg       *messaging.Message
	notBefore time.Time
	attempt   int
}

func (n *simNet) Publish(ctx context.Context, msgs ...*messaging.Message) error {
	for i, m := range msgs {
		if n.faults && n.rnd.IntN(20) == 0 {
			// The broker accepted part of the batch and the connection dropped: the relay
			// publishes the batch again, duplicating the first i messages.
			*n.trace = append(*n.trace, fmt.Sprintf("publish fails after %d of %d", i, len(msgs)))
			return errors.New("simulated publish failure")
		}
		cp := *m
		sm := &simMsg{msg: &cp, notBefore: n.clk.Now()}
		if n.faults && n.rnd.IntN(15) == 0 {
			sm.notBefore = sm.notBefore.Add(time.Duration(n.rnd.IntN(40)) * time.Second)
		}
		n.pool = append(n.pool, sm)
	}
	return nil
}

func (n *simNet) Subscribe(ctx context.Context, cfg messaging.SubscribeConfig, h messaging.Handler) (messaging.Subscription, error) {
	return nil, errors.New("simNet: the schedule delivers messages itself")
}
func (n *simNet) Capabilities() messaging.Capabilities { return messaging.Capabilities{} }
func (n *simNet) Close(ctx context.Context) error      { return nil }

// deliverOne delivers a random deliverable message; it reports whether there was one.
func (n *simNet) deliverOne(ctx context.Context) bool {
	now := n.clk.Now()
	var ready []int
	for i, m := range n.pool {
		if !m.notBefore.After(now) {
			ready = append(ready, i)
		}
	}
	if len(ready) == 0 {
		return false
	}
	i := ready[n.rnd.IntN(len(ready))]
	m := n.pool[i]
	h := n.handlers[m.msg.Topic]
	if h == nil {
		panic("no handler for " + m.msg.Topic)
	}
	m.attempt++
	cp := *m.msg
	cp.Attempt = m.attempt
	err := h(ctx, &cp)
	*n.trace = append(*n.trace, fmt.Sprintf("deliver %s #%d → %v", m.msg.ID, m.attempt, err))
	if err == nil && !(n.faults && n.rnd.IntN(6) == 0) { // else: lost ack, redelivered
		n.pool = append(n.pool[:i], n.pool[i+1:]...)
	} else if n.faults && n.rnd.IntN(3) == 0 {
		m.notBefore = now.Add(time.Duration(n.rnd.IntN(15)) * time.Second)
	}
	return true
}

// simShop is one schedule's three services.
type simShop struct {
	t      testing.TB
	dir    string
	rnd    *rand.Rand
	clk    *clock.Manual
	net    *simNet
	trace  []string
	faults bool

	orderDB, invDB, payDB *sql.DB
	orch                  *Orchestrator
	inv, pay              *Participant
	invRelay, payRelay    *outbox.Relay

	orders   []simOrder
	started  int
	stock0   map[string]int
	balance0 int
}

type simOrder struct {
	ID       string `json:"id"`
	SKU      string `json:"sku"`
	Qty      int    `json:"qty"`
	Customer string `json:"customer"`
	Amount   int    `json:"amount"`
}

func openSimDB(t testing.TB, path string) *sql.DB {
	return testkit.SQLite(t, path, 1)
}

func mustExec(t testing.TB, db *sql.DB, qs ...string) {
	t.Helper()
	for _, q := range qs {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}

func orderDefinition() *Definition {
	create := func(ctx context.Context, tx *sql.Tx, req *Request) (json.RawMessage, error) {
		var o simOrder
		if err := json.Unmarshal(req.Input, &o); err != nil {
			return nil, Fail(err)
		}
		_, err := tx.ExecContext(ctx, "INSERT INTO orders (id, status) VALUES (?, 'PENDING')", o.ID)
		return nil, err
	}
	setStatus := func(status string) LocalHandler {
		return func(ctx context.Context, tx *sql.Tx, req *Request) (json.RawMessage, error) {
			_, err := tx.ExecContext(ctx, "UPDATE orders SET status = ? WHERE id = ?", status, req.SagaID)
			return nil, err
		}
	}
	d := New("order").
		Step(Step{Name: "create", Action: Local(create), Compensate: Local(setStatus("REJECTED"))}).
		Step(Step{Name: "reserve", Action: Command("inventory.commands"), Compensate: Command("inventory.commands"), Timeout: 10 * time.Second, MaxAttempts: 3}).
		Step(Step{Name: "charge", Action: Command("payment.commands"), Compensate: Command("payment.commands"), Timeout: 10 * time.Second, MaxAttempts: 3}).
		Step(Step{Name: "approve", Action: Local(setStatus("APPROVED"))})
	d.Timeout = 60 * time.Second
	d.CompensationMaxAttempts = 1_000_000 // the test wants every saga to end, never parked
	return d
}

func newSimShop(t testing.TB, seed uint64) *simShop {
	dir, err := os.MkdirTemp("", "saga-sched-")
	if err != nil {
		t.Fatal(err)
	}
	s := &simShop{t: t, dir: dir, rnd: rand.New(rand.NewPCG(seed, seed+1)), clk: clock.NewManual(t0)}
	s.net = &simNet{rnd: s.rnd, clk: s.clk, handlers: map[string]messaging.Handler{}, trace: &s.trace}
	s.orderDB = openSimDB(t, filepath.Join(dir, "order.db"))
	s.invDB = openSimDB(t, filepath.Join(dir, "inventory.db"))
	s.payDB = openSimDB(t, filepath.Join(dir, "payment.db"))
	mustExec(t, s.orderDB, "CREATE TABLE orders (id TEXT PRIMARY KEY, status TEXT NOT NULL)")
	mustExec(t, s.invDB,
		"CREATE TABLE stock (sku TEXT PRIMARY KEY, available INTEGER NOT NULL CHECK (available >= 0))",
		"CREATE TABLE reservations (order_id TEXT PRIMARY KEY, sku TEXT NOT NULL, qty INTEGER NOT NULL)")
	mustExec(t, s.payDB,
		"CREATE TABLE accounts (id TEXT PRIMARY KEY, balance INTEGER NOT NULL CHECK (balance >= 0))",
		"CREATE TABLE charges (order_id TEXT PRIMARY KEY, customer TEXT NOT NULL, amount INTEGER NOT NULL)")
	s.stock0 = map[string]int{"apple": 3 + s.rnd.IntN(6), "pear": 3 + s.rnd.IntN(6)}
	for sku, n := range s.stock0 {
		mustExec(t, s.invDB, fmt.Sprintf("INSERT INTO stock VALUES ('%s', %d)", sku, n))
	}
	for _, c := range []string{"ann", "bob"} {
		b := 20 + s.rnd.IntN(60)
		s.balance0 += b
		mustExec(t, s.payDB, fmt.Sprintf("INSERT INTO accounts VALUES ('%s', %d)", c, b))
	}
	mustExec(t, s.payDB, "INSERT INTO accounts VALUES ('merchant', 0)")
	n := 3 + s.rnd.IntN(6)
	for i := 0; i < n; i++ {
		s.orders = append(s.orders, simOrder{
			ID: "o" + strconv.Itoa(i), SKU: []string{"apple", "pear"}[s.rnd.IntN(2)], Qty: 1 + s.rnd.IntN(3),
			Customer: []string{"ann", "bob"}[s.rnd.IntN(2)], Amount: 5 + s.rnd.IntN(30),
		})
	}
	s.restartOrchestrator(true)
	s.restartInventory(true)
	s.restartPayment(true)
	return s
}

func (s *simShop) close() {
	for _, db := range []*sql.DB{s.orderDB, s.invDB, s.payDB} {
		db.Close() // now: 10,000 schedules must not keep 30,000 files open until the test ends
	}
	os.RemoveAll(s.dir)
}

var simCrashPoints = []string{"start-before-commit", "update-before-save", "update-before-commit", "reply-before-update", "reply-after-update"}

func (s *simShop) restartOrchestrator(migrate bool) {
	cfg := Config{DB: s.orderDB, Dialect: SQLite, Definitions: []*Definition{orderDefinition()}, Broker: s.net, Clock: s.clk, Seed: s.rnd.Uint64() | 1, Name: "orders"}
	cfg.crash = func(point string) error {
		if s.faults && s.rnd.IntN(12) == 0 {
			s.trace = append(s.trace, "orchestrator crashes at "+point)
			return errors.New("simulated crash at " + point)
		}
		return nil
	}
	o, err := NewOrchestrator(cfg)
	if err != nil {
		s.t.Fatal(err)
	}
	if migrate {
		if err := o.Migrate(context.Background()); err != nil {
			s.t.Fatal(err)
		}
	}
	s.orch = o
	s.net.handlers[o.ReplyTopic()] = o.HandleReply
}

// flaky wraps a participant handler: with faults on, the service crashes mid-transaction
// (the handler fails with a transient error, so the transaction rolls back).
func (s *simShop) flaky(name string, h TxHandler) TxHandler {
	return func(ctx context.Context, tx *sql.Tx, req *Request) (json.RawMessage, error) {
		if s.faults && s.rnd.IntN(10) == 0 {
			s.trace = append(s.trace, name+" crashes mid-transaction on "+req.Key().String())
			return nil, errors.New("simulated crash of " + name)
		}
		return h(ctx, tx, req)
	}
}

func (s *simShop) newParticipant(db *sql.DB, migrate bool) (*Participant, *outbox.Relay) {
	p, err := NewParticipant(ParticipantConfig{DB: db, Dialect: SQLite})
	if err != nil {
		s.t.Fatal(err)
	}
	if migrate {
		if err := p.Migrate(context.Background()); err != nil {
			s.t.Fatal(err)
		}
	}
	store, err := outbox.NewSQLiteStore(outbox.SQLiteConfig{DB: db})
	if err != nil {
		s.t.Fatal(err)
	}
	relay, err := outbox.NewRelay(outbox.RelayConfig{Store: store, Publisher: s.net, Clock: s.clk})
	if err != nil {
		s.t.Fatal(err)
	}
	return p, relay
}

func orderOf(req *Request) (simOrder, error) {
	var o simOrder
	if err := json.Unmarshal(req.Input, &o); err != nil {
		return o, Fail(fmt.Errorf("bad order input: %w", err))
	}
	return o, nil
}

func (s *simShop) restartInventory(migrate bool) {
	p, relay := s.newParticipant(s.invDB, migrate)
	reserve := func(ctx context.Context, tx *sql.Tx, req *Request) (json.RawMessage, error) {
		o, err := orderOf(req)
		if err != nil {
			return nil, err
		}
		var avail int
		if err := tx.QueryRowContext(ctx, "SELECT available FROM stock WHERE sku = ?", o.SKU).Scan(&avail); err != nil {
			return nil, err
		}
		if avail < o.Qty {
			return nil, Fail(fmt.Errorf("out of stock: %d %s left, %d wanted", avail, o.SKU, o.Qty))
		}
		if _, err := tx.ExecContext(ctx, "UPDATE stock SET available = available - ? WHERE sku = ?", o.Qty, o.SKU); err != nil {
			return nil, err
		}
		_, err = tx.ExecContext(ctx, "INSERT INTO reservations VALUES (?, ?, ?)", o.ID, o.SKU, o.Qty)
		return nil, err
	}
	release := func(ctx context.Context, tx *sql.Tx, req *Request) (json.RawMessage, error) {
		o, err := orderOf(req)
		if err != nil {
			return nil, err
		}
		res, err := tx.ExecContext(ctx, "DELETE FROM reservations WHERE order_id = ?", o.ID)
		if err != nil {
			return nil, err
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return nil, fmt.Errorf("release %s: %d reservations (the barrier should make this impossible)", o.ID, n)
		}
		_, err = tx.ExecContext(ctx, "UPDATE stock SET available = available + ? WHERE sku = ?", o.Qty, o.SKU)
		return nil, err
	}
	p.Handle("reserve", s.flaky("inventory", reserve), s.flaky("inventory", release))
	s.inv, s.invRelay = p, relay
	s.net.handlers["inventory.commands"] = p.Handler()
}

func (s *simShop) restartPayment(migrate bool) {
	p, relay := s.newParticipant(s.payDB, migrate)
	charge := func(ctx context.Context, tx *sql.Tx, req *Request) (json.RawMessage, error) {
		o, err := orderOf(req)
		if err != nil {
			return nil, err
		}
		var bal int
		if err := tx.QueryRowContext(ctx, "SELECT balance FROM accounts WHERE id = ?", o.Customer).Scan(&bal); err != nil {
			return nil, err
		}
		if bal < o.Amount {
			return nil, Fail(fmt.Errorf("payment declined: balance %d, amount %d", bal, o.Amount))
		}
		for _, q := range []struct {
			sql  string
			args []any
		}{
			{"UPDATE accounts SET balance = balance - ? WHERE id = ?", []any{o.Amount, o.Customer}},
			{"UPDATE accounts SET balance = balance + ? WHERE id = 'merchant'", []any{o.Amount}},
			{"INSERT INTO charges VALUES (?, ?, ?)", []any{o.ID, o.Customer, o.Amount}},
		} {
			if _, err := tx.ExecContext(ctx, q.sql, q.args...); err != nil {
				return nil, err
			}
		}
		return json.RawMessage(`{"charge":"` + o.ID + `"}`), nil
	}
	refund := func(ctx context.Context, tx *sql.Tx, req *Request) (json.RawMessage, error) {
		o, err := orderOf(req)
		if err != nil {
			return nil, err
		}
		res, err := tx.ExecContext(ctx, "DELETE FROM charges WHERE order_id = ?", o.ID)
		if err != nil {
			return nil, err
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return nil, fmt.Errorf("refund %s: %d charges (the barrier should make this impossible)", o.ID, n)
		}
		if _, err := tx.ExecContext(ctx, "UPDATE accounts SET balance = balance - ? WHERE id = 'merchant'", o.Amount); err != nil {
			return nil, err
		}
		_, err = tx.ExecContext(ctx, "UPDATE accounts SET balance = balance + ? WHERE id = ?", o.Amount, o.Customer)
		return nil, err
	}
	p.Handle("charge", s.flaky("payment", charge), s.flaky("payment", refund))
	s.pay, s.payRelay = p, relay
	s.net.handlers["payment.commands"] = p.Handler()
}

// step performs one random action of the schedule.
func (s *simShop) step(ctx context.Context) {
	switch k := s.rnd.IntN(100); {
	case k < 45:
		s.net.deliverOne(ctx)
	case k < 60:
		relays := []*outbox.Relay{s.orch.relay, s.invRelay, s.payRelay}
		if _, err := relays[s.rnd.IntN(3)].RunOnce(ctx); err != nil {
			s.trace = append(s.trace, "relay: "+err.Error())
		}
	case k < 70:
		if _, err := s.orch.Tick(ctx); err != nil {
			s.trace = append(s.trace, "tick: "+err.Error())
		}
	case k < 82:
		d := time.Duration(s.rnd.IntN(6000)) * time.Millisecond
		s.clk.Advance(d)
		s.trace = append(s.trace, "clock +"+d.String())
	case k < 90:
		if s.started < len(s.orders) {
			o := s.orders[s.started]
			if err := s.orch.Start(ctx, "order", o.ID, o); err != nil {
				s.trace = append(s.trace, "start "+o.ID+": "+err.Error())
			} else {
				s.trace = append(s.trace, "start "+o.ID)
				s.started++
			}
		}
	case !s.faults:
	case k < 94:
		s.trace = append(s.trace, "restart orchestrator")
		s.restartOrchestrator(false)
	case k < 97:
		s.trace = append(s.trace, "restart inventory")
		s.restartInventory(false)
	default:
		s.trace = append(s.trace, "restart payment")
		s.restartPayment(false)
	}
}

// settle runs without faults until every saga has ended and nothing is in flight.
func (s *simShop) settle(ctx context.Context) error {
	s.faults, s.net.faults = false, false
	for s.started < len(s.orders) {
		o := s.orders[s.started]
		if err := s.orch.Start(ctx, "order", o.ID, o); err != nil && !errors.Is(err, ErrExists) {
			return err
		}
		s.started++
	}
	for round := 0; round < 500; round++ {
		for _, r := range []*outbox.Relay{s.orch.relay, s.invRelay, s.payRelay} {
			if _, err := r.RunOnce(ctx); err != nil {
				return err
			}
		}
		for i := 0; i < 1000 && s.net.deliverOne(ctx); i++ {
		}
		if _, err := s.orch.Tick(ctx); err != nil {
			return err
		}
		counts, err := s.orch.Store().Counts(ctx)
		if err != nil {
			return err
		}
		if counts[StatusCompleted]+counts[StatusCompensated] == len(s.orders) && len(s.net.pool) == 0 {
			return nil
		}
		s.clk.Advance(2 * time.Second)
	}
	counts, _ := s.orch.Store().Counts(ctx)
	return fmt.Errorf("not settled after 500 rounds: %v, %d messages in flight", counts, len(s.net.pool))
}

// check verifies the invariants.
func (s *simShop) check(ctx context.Context) error {
	var errs []error
	stock := map[string]int{}
	rows, err := s.invDB.Query("SELECT sku, available FROM stock")
	if err != nil {
		return err
	}
	for rows.Next() {
		var sku string
		var n int
		rows.Scan(&sku, &n)
		stock[sku] = n
	}
	rows.Close()
	reserved := map[string]int{}
	resOf := map[string]bool{}
	rows, _ = s.invDB.Query("SELECT order_id, sku, qty FROM reservations")
	for rows.Next() {
		var id, sku string
		var q int
		rows.Scan(&id, &sku, &q)
		reserved[sku] += q
		resOf[id] = true
	}
	rows.Close()
	for sku, n0 := range s.stock0 {
		if stock[sku]+reserved[sku] != n0 {
			errs = append(errs, fmt.Errorf("stock of %s not conserved: %d available + %d reserved ≠ %d", sku, stock[sku], reserved[sku], n0))
		}
	}
	var total, merchant, charged int
	s.payDB.QueryRow("SELECT SUM(balance) FROM accounts").Scan(&total)
	s.payDB.QueryRow("SELECT balance FROM accounts WHERE id = 'merchant'").Scan(&merchant)
	s.payDB.QueryRow("SELECT COALESCE(SUM(amount), 0) FROM charges").Scan(&charged)
	if total != s.balance0 {
		errs = append(errs, fmt.Errorf("money not conserved: %d ≠ %d", total, s.balance0))
	}
	if merchant != charged {
		errs = append(errs, fmt.Errorf("merchant holds %d but charges total %d", merchant, charged))
	}
	chargeOf := map[string]bool{}
	rows, _ = s.payDB.Query("SELECT order_id FROM charges")
	for rows.Next() {
		var id string
		rows.Scan(&id)
		chargeOf[id] = true
	}
	rows.Close()
	for _, o := range s.orders {
		st, err := s.orch.Get(ctx, o.ID)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		var status string
		s.orderDB.QueryRow("SELECT status FROM orders WHERE id = ?", o.ID).Scan(&status)
		switch st.Status {
		case StatusCompleted:
			if status != "APPROVED" || !resOf[o.ID] || !chargeOf[o.ID] {
				errs = append(errs, fmt.Errorf("order %s completed but status %q, reserved %v, charged %v", o.ID, status, resOf[o.ID], chargeOf[o.ID]))
			}
		case StatusCompensated:
			if status != "REJECTED" || resOf[o.ID] || chargeOf[o.ID] {
				errs = append(errs, fmt.Errorf("order %s compensated but status %q, reserved %v, charged %v", o.ID, status, resOf[o.ID], chargeOf[o.ID]))
			}
		default:
			errs = append(errs, fmt.Errorf("order %s saga %s (%s)", o.ID, st.Status, st.Reason))
		}
	}
	return errors.Join(errs...)
}

// scheduleStats counts what a schedule did, to show the faults really happened.
type scheduleStats map[string]int

func (st scheduleStats) add(o scheduleStats) {
	for k, v := range o {
		st[k] += v
	}
}

func (s *simShop) stats(ctx context.Context) scheduleStats {
	st := scheduleStats{}
	for _, line := range s.trace {
		switch {
		case strings.HasPrefix(line, "orchestrator crashes"):
			st["orchestrator crashes"]++
		case strings.Contains(line, "crashes mid-transaction"):
			st["participant crashes"]++
		case strings.HasPrefix(line, "restart"):
			st["restarts"]++
		case strings.HasPrefix(line, "publish fails"):
			st["failed publishes"]++
		case strings.HasPrefix(line, "deliver"):
			st["deliveries"]++
		}
	}
	for _, db := range []*sql.DB{s.invDB, s.payDB} {
		rows, err := db.QueryContext(ctx, "SELECT status, COUNT(*) FROM "+DefaultBarrierTable+" GROUP BY status")
		if err != nil {
			continue
		}
		for rows.Next() {
			var k string
			var n int
			rows.Scan(&k, &n)
			st["barrier "+k] += n
		}
		rows.Close()
	}
	var timeouts, deadlines int
	s.orderDB.QueryRow("SELECT COUNT(*) FROM faultline_saga_log WHERE detail LIKE '%timed out%'").Scan(&timeouts)
	s.orderDB.QueryRow("SELECT COUNT(*) FROM faultline_saga_log WHERE event = 'compensating' AND detail LIKE '%deadline%'").Scan(&deadlines)
	st["attempt timeouts"], st["deadline compensations"] = timeouts, deadlines
	return st
}

// runSchedule runs one schedule and returns the outcome counts, or an error with its trace.
func runSchedule(t testing.TB, seed uint64, steps int, stats scheduleStats) (completed, compensated int, err error) {
	s := newSimShop(t, seed)
	defer s.close()
	ctx := context.Background()
	s.faults, s.net.faults = true, true
	for i := 0; i < steps; i++ {
		s.step(ctx)
	}
	if err := s.settle(ctx); err != nil {
		return 0, 0, s.failure(err)
	}
	if err := s.check(ctx); err != nil {
		return 0, 0, s.failure(err)
	}
	stats.add(s.stats(ctx))
	counts, _ := s.orch.Store().Counts(ctx)
	return counts[StatusCompleted], counts[StatusCompensated], nil
}

func (s *simShop) failure(err error) error {
	tail := s.trace
	if len(tail) > 300 {
		tail = tail[len(tail)-300:]
	}
	return fmt.Errorf("%w\nlast schedule steps:\n  %s", err, strings.Join(tail, "\n  "))
}

func TestFaultSchedules(t *testing.T) {
	n := 200
	if v := os.Getenv("FAULTLINE_SAGA_SCHEDULES"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil {
			t.Fatalf("FAULTLINE_SAGA_SCHEDULES=%q: %v", v, err)
		}
	}
	base := uint64(time.Now().UnixNano())
	if v := os.Getenv("FAULTLINE_SAGA_SEED"); v != "" {
		s, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("FAULTLINE_SAGA_SEED=%q: %v", v, err)
		}
		base, n = s, 1
	}
	t.Logf("base seed %d (replay one schedule with FAULTLINE_SAGA_SEED=<seed>)", base)
	var completed, compensated int
	stats := scheduleStats{}
	for i := 0; i < n; i++ {
		seed := base + uint64(i)
		c, r, err := runSchedule(t, seed, 250, stats)
		if err != nil {
			t.Fatalf("schedule seed %d: %v", seed, err)
		}
		completed += c
		compensated += r
	}
	t.Logf("%d schedules: %d sagas completed, %d compensated, 0 invariant violations", n, completed, compensated)
	t.Logf("faults and defences exercised: %v", stats)
	for _, k := range []string{"orchestrator crashes", "participant crashes", "restarts", "failed publishes", "attempt timeouts", "deadline compensations", "barrier null-compensated", "barrier skipped"} {
		if n >= 50 && stats[k] == 0 {
			t.Errorf("no %s in %d schedules: the schedule no longer exercises them", k, n)
		}
	}
	if completed == 0 || compensated == 0 {
		t.Fatalf("the schedules should produce both outcomes: %d completed, %d compensated", completed, compensated)
	}
}

package shop

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/stdlib"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/faultline-dev/faultline/messaging"
	"github.com/faultline-dev/faultline/messaging/natsbus"
	"github.com/faultline-dev/faultline/saga"
)

// Every test here runs the real services on a real broker and real databases, with real time:
// nothing waits for a timeout by sleeping; a test polls for the outcome with a deadline.

// testTrouble is DefaultTrouble scaled down for a test's budget: more of it, shorter.
func testTrouble() Trouble {
	return Trouble{
		Broker: TroubleConfig{DuplicateDelivery: 0.1, DuplicatePublish: 0.1, Delay: 0.1, MaxDelay: 1500 * time.Millisecond},
		Kills: []Kill{
			{Service: Inventory, After: 0.25, Down: 300 * time.Millisecond},
			{Service: Payment, After: 0.5, Down: 300 * time.Millisecond},
			{Service: Orders, After: 0.75, Down: 300 * time.Millisecond},
		},
	}
}

// testTiming gives the saga a deadline the delays above sometimes miss, and a step timeout
// above them.
var testTiming = Timing{StepTimeout: 4 * time.Second, Deadline: 2 * time.Second}

// checkNoLeak fails the test when goroutines it started are still running at its end.
func checkNoLeak(t *testing.T) {
	t.Helper()
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(10 * time.Second)
		for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		if n := runtime.NumGoroutine(); n > before {
			buf := make([]byte, 1<<20)
			t.Errorf("goroutine leak: %d before, %d after\n%s", before, n, buf[:runtime.Stack(buf, true)])
		}
	})
}

// embeddedNATS is an in-process NATS JetStream server, closed with the test.
func embeddedNATS(t *testing.T) *natsbus.Bus {
	t.Helper()
	b, err := natsbus.Open(context.Background(), natsbus.Config{StoreDir: t.TempDir(), NoListen: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		b.Close(ctx)
	})
	return b
}

func required(t *testing.T, what string, err error) {
	t.Helper()
	if os.Getenv("FAULTLINE_REQUIRE_SERVICES") == "1" {
		t.Fatalf("%s unreachable and FAULTLINE_REQUIRE_SERVICES=1: %v", what, err)
	}
	t.Skipf("%s unreachable (set FAULTLINE_REQUIRE_SERVICES=1 to fail): %v", what, err)
}

func natsURL() string {
	if u := os.Getenv("FAULTLINE_NATS_URL"); u != "" {
		return u
	}
	return "nats://127.0.0.1:4222"
}

func postgresURL() string {
	if u := os.Getenv("FAULTLINE_POSTGRES_URL"); u != "" {
		return u
	}
	return "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
}

// externalNATS connects to the machine's NATS and deletes the namespace's streams with the test.
func externalNATS(t *testing.T, ns string) *natsbus.Bus {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	b, err := natsbus.Open(ctx, natsbus.Config{URL: natsURL(), NATSOptions: nil})
	if err != nil {
		required(t, "NATS at "+natsURL(), err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if js, err := jetstream.New(b.Conn()); err == nil {
			for _, topic := range TopicsOf(ns).All() {
				if err := js.DeleteStream(ctx, natsbus.StreamName(topic)); err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
					t.Logf("delete stream of %s: %v", topic, err)
				}
			}
		}
		b.Close(ctx)
	})
	return b
}

// postgresStore returns a store in schemas of the test's own, dropped with it.
func postgresStore(t *testing.T, prefix string) Store {
	t.Helper()
	st := Store{Postgres: postgresURL(), Prefix: prefix}
	db, err := sql.Open("pgx", postgresURL())
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		err = db.PingContext(ctx)
		cancel()
		db.Close()
	}
	if err != nil {
		required(t, "PostgreSQL at "+postgresURL(), err)
	}
	t.Cleanup(func() {
		if err := st.Reset(context.Background()); err != nil {
			t.Logf("drop schemas: %v", err)
		}
	})
	return st
}

var _ = stdlib.GetDefaultDriver // registers "pgx" for postgresStore's ping

// uniq is a fresh name part.
func uniq() string { return messaging.NewID()[:8] }

// simulate runs a scenario of n orders under the test trouble and checks what a user of the
// example relies on: every invariant holds, both outcomes occur, and the trouble happened.
func simulate(t *testing.T, st Store, broker messaging.Broker, ns string, seed uint64, n int) *SimResult {
	t.Helper()
	var progress bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Second)
	defer cancel()
	res, err := Simulate(ctx, SimConfig{
		Store: st, Broker: broker, Namespace: ns, Scenario: NewScenario(seed, n),
		Trouble: testTrouble(), Timing: testTiming, Timeout: 40 * time.Second, Progress: &lockedWriter{w: &progress},
	})
	if err != nil {
		t.Fatalf("seed %d: %v\n%s", seed, err, progress.String())
	}
	rep := res.Report
	t.Logf("seed %d: %d approved, %d rejected in %.1fs; trouble %+v\n%s", seed, rep.Approved, rep.Rejected, res.Elapsed.Seconds(), res.Trouble, rep)
	if res.TimedOut || !rep.OK() {
		t.Fatalf("seed %d: timed out %v, invariants:\n%s\nprogress:\n%s", seed, res.TimedOut, rep, progress.String())
	}
	if rep.Orders != n || rep.Approved+rep.Rejected != n {
		t.Errorf("seed %d: %d orders, %d approved + %d rejected; want %d ended", seed, rep.Orders, rep.Approved, rep.Rejected, n)
	}
	if rep.Approved == 0 || rep.Rejected == 0 {
		t.Errorf("seed %d: %d approved, %d rejected: want both outcomes", seed, rep.Approved, rep.Rejected)
	}
	if rep.Reserved == 0 || rep.Takings == 0 {
		t.Errorf("seed %d: nothing sold (%d reserved, %s taken)", seed, rep.Reserved, money(rep.Takings))
	}
	tr := res.Trouble
	if tr.Delayed == 0 || tr.DeliveredTwice == 0 || tr.PublishedTwice == 0 || len(res.Kills) != 3 {
		t.Errorf("seed %d: trouble %+v, %d kills: want every kind", seed, tr, len(res.Kills))
	}
	for _, want := range []string{"killed inventory", "inventory restarted", "killed payment", "killed orders", "orders restarted"} {
		if !strings.Contains(progress.String(), want) {
			t.Errorf("seed %d: progress lacks %q:\n%s", seed, want, progress.String())
		}
	}
	return res
}

// lockedWriter serializes writes (the progress lines come from several goroutines; the test
// reads the buffer after Simulate returned).
type lockedWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// TestTroubleEmbeddedSQLite: 100 orders on embedded NATS and SQLite files, with delays,
// duplicates and each service killed once: the invariants hold and both outcomes occur.
func TestTroubleEmbeddedSQLite(t *testing.T) {
	checkNoLeak(t)
	simulate(t, Store{Dir: t.TempDir()}, embeddedNATS(t), "shoptest."+uniq(), 11, 100)
}

// TestTroubleNATSPostgres: the same on the machine's NATS server and PostgreSQL, each service in
// a schema of its own.
func TestTroubleNATSPostgres(t *testing.T) {
	checkNoLeak(t)
	ns := "shoptest." + uniq()
	st := postgresStore(t, "shoptest_"+uniq())
	simulate(t, st, externalNATS(t, ns), ns, 12, 100)
}

// service is a service instance running in the test.
type service struct {
	name   string
	cancel context.CancelFunc
	done   chan error
	close  func() error
}

// startService runs an instance and returns once it serves.
func startService(t *testing.T, name string, run func(context.Context) error, ready <-chan struct{}, closeFn func() error) *service {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s := &service{name: name, cancel: cancel, done: make(chan error, 1), close: closeFn}
	go func() { s.done <- run(ctx) }()
	select {
	case <-ready:
	case err := <-s.done:
		t.Fatalf("%s: %v", name, err)
	case <-time.After(20 * time.Second):
		t.Fatalf("%s not ready", name)
	}
	return s
}

// kill stops the instance as a crash would, and closes its database.
func (s *service) kill(t *testing.T) {
	t.Helper()
	s.cancel()
	if err := <-s.done; !errors.Is(err, context.Canceled) {
		t.Errorf("%s: Run returned %v, want context.Canceled", s.name, err)
	}
	if err := s.close(); err != nil {
		t.Errorf("%s: close: %v", s.name, err)
	}
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestKillRestart kills the inventory service while every reserve-stock command is in its
// handlers, and the order service while every reply is in its handlers, and starts fresh
// instances over the same databases: the work lost with the dead instances is delivered again
// and done once, and every order is approved.
func TestKillRestart(t *testing.T) {
	checkNoLeak(t)
	ctx := context.Background()
	bus := embeddedNATS(t)
	st := Store{Dir: t.TempDir()}
	ns := "shoptest." + uniq()
	const n = 30
	// Every delivery to the first inventory and order instances waits up to a second in the
	// handler before it starts: a kill always finds work in flight.
	slow := TroubleConfig{Delay: 1, MaxDelay: time.Second, Seed: 1}
	invBroker, err := NewTroubledBroker(bus, slow)
	if err != nil {
		t.Fatal(err)
	}
	ordBroker, err := NewTroubledBroker(bus, slow)
	if err != nil {
		t.Fatal(err)
	}
	// Timeouts this long never fire during the test: what brings the lost work back is the
	// broker's redelivery to the fresh instance, not a saga retry.
	timing := Timing{StepTimeout: time.Minute, Deadline: 2 * time.Minute}
	var mu sync.Mutex
	ended := map[string]Outcome{}
	onEnd := func(o Outcome) {
		mu.Lock()
		ended[o.OrderID] = o
		mu.Unlock()
	}
	endedCount := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(ended)
	}
	newInv := func(b messaging.Broker) *InventoryService {
		s, err := NewInventoryService(Config{Store: st, Broker: b, Namespace: ns})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	newOrd := func(b messaging.Broker) *OrderService {
		s, err := NewOrderService(OrderConfig{Config: Config{Store: st, Broker: b, Namespace: ns}, Timing: timing, OnEnd: onEnd})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}

	inv := newInv(invBroker)
	pay, err := NewPaymentService(Config{Store: st, Broker: bus, Namespace: ns})
	if err != nil {
		t.Fatal(err)
	}
	ord := newOrd(ordBroker)
	for _, err := range []error{inv.Migrate(ctx), pay.Migrate(ctx), ord.Migrate(ctx),
		inv.Restock(ctx, "kettle", 1000), pay.Deposit(ctx, MerchantAccount, 0), pay.Deposit(ctx, "c01", 1_000_000)} {
		if err != nil {
			t.Fatal(err)
		}
	}
	invRun := startService(t, "inventory", inv.Run, inv.Ready(), inv.Close)
	payRun := startService(t, "payment", pay.Run, pay.Ready(), pay.Close)
	ordRun := startService(t, "orders", ord.Run, ord.Ready(), ord.Close)
	for i := range n {
		o := Order{ID: fmt.Sprintf("order-%02d", i), Customer: "c01", SKU: "kettle", Qty: 2, Amount: 5000}
		if err := ord.PlaceOrder(ctx, o); err != nil {
			t.Fatal(err)
		}
	}

	// Every reserve-stock command is waiting in the first inventory's handlers: kill it.
	waitFor(t, "the reserve-stock commands in the inventory's handlers", 20*time.Second, func() bool { return invBroker.Stats().Delayed >= n })
	invRun.kill(t)
	waitFor(t, "the inventory's lost deliveries", 5*time.Second, func() bool { return invBroker.Stats().DelayCut > 0 })
	inv2 := newInv(bus)
	invRun = startService(t, "inventory (restarted)", inv2.Run, inv2.Ready(), inv2.Close)

	// The restarted inventory reserves; the replies wait in the first order service's handlers:
	// kill it.
	waitFor(t, "the replies in the order service's handlers", 20*time.Second, func() bool { return ordBroker.Stats().Delayed >= n })
	ordRun.kill(t)
	waitFor(t, "the order service's lost deliveries", 5*time.Second, func() bool { return ordBroker.Stats().DelayCut > 0 })
	ord2 := newOrd(bus)
	ordRun = startService(t, "orders (restarted)", ord2.Run, ord2.Ready(), ord2.Close)

	waitFor(t, "every order to end", 30*time.Second, func() bool { return endedCount() == n })
	applied, err := inv2.BarrierCounts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []*service{ordRun, invRun, payRun} {
		s.kill(t)
	}
	for _, b := range []*TroubledBroker{invBroker, ordBroker} {
		b.Close(ctx)
	}

	rep, err := Check(ctx, st, n)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() || rep.Approved != n {
		t.Fatalf("want %d approved and every invariant:\n%s", n, rep)
	}
	if applied[string(saga.BarrierSucceeded)] != n {
		t.Errorf("inventory barrier: %v, want %d reservations applied, each once", applied, n)
	}
	t.Logf("inventory lost %d deliveries, orders %d; all %d orders approved\n%s", invBroker.Stats().DelayCut, ordBroker.Stats().DelayCut, n, rep)
}

// TestCheckCatchesViolations: Check is the example's oracle, so it must fail when the data is
// wrong. A clean run's databases are copied and broken in one way per case; the invariant that
// covers that way must fail, and the clean copy must pass.
func TestCheckCatchesViolations(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	res, err := Simulate(ctx, SimConfig{
		Store: Store{Dir: dir}, Broker: embeddedNATS(t), Namespace: "shoptest." + uniq(),
		Scenario: NewScenario(5, 40), Timeout: 30 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Report.OK() || res.Report.Approved == 0 || res.Report.Rejected == 0 {
		t.Fatalf("the clean run should pass with both outcomes:\n%s", res.Report)
	}
	// An approved and a rejected order to break.
	var approved, rejected string
	func() {
		d, err := Store{Dir: dir}.open(Orders)
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		for _, q := range []struct {
			status string
			id     *string
		}{{StatusApproved, &approved}, {StatusRejected, &rejected}} {
			if err := d.QueryRow("SELECT id FROM orders WHERE status = ? ORDER BY id LIMIT 1", q.status).Scan(q.id); err != nil {
				t.Fatal(err)
			}
		}
	}()

	for _, tc := range []struct {
		name    string
		svc     Service
		tamper  []string
		violate []string // substrings of the invariants that must fail
	}{
		{"clean", Orders, nil, nil},
		{"a unit appears from nowhere", Inventory,
			[]string{"UPDATE stock SET available = available + 1 WHERE sku = (SELECT MIN(sku) FROM stock)"},
			[]string{"stock conserved"}},
		{"an approved order's reservation vanishes", Inventory,
			[]string{"DELETE FROM reservations WHERE order_id = '" + approved + "'"},
			[]string{"approved ⇒", "stock conserved"}},
		{"a customer is charged twice", Payment,
			[]string{"UPDATE accounts SET balance = balance - 100 WHERE id = (SELECT customer FROM charges ORDER BY order_id LIMIT 1)"},
			[]string{"money conserved", "every account"}},
		{"a rejected order keeps a charge", Payment,
			[]string{"INSERT INTO charges (order_id, customer, amount) VALUES ('" + rejected + "', 'c01', 0)"},
			[]string{"rejected ⇒"}},
		{"a charge for an order that does not exist", Payment,
			[]string{"INSERT INTO charges (order_id, customer, amount) VALUES ('ghost', 'c01', 0)"},
			[]string{"without an order"}},
		{"an approved order is shown pending", Orders,
			[]string{"UPDATE orders SET status = 'PENDING' WHERE id = '" + approved + "'"},
			[]string{"agrees with its saga"}},
		{"a saga never ends", Orders,
			[]string{"UPDATE faultline_saga SET state = replace(state, '\"status\":\"completed\"', '\"status\":\"running\"') WHERE id = '" + approved + "'"},
			[]string{"every order ended"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cp := t.TempDir()
			if err := os.CopyFS(cp, os.DirFS(dir)); err != nil {
				t.Fatal(err)
			}
			st := Store{Dir: cp}
			if len(tc.tamper) > 0 {
				d, err := st.open(tc.svc)
				if err != nil {
					t.Fatal(err)
				}
				for _, q := range tc.tamper {
					if _, err := d.Exec(q); err != nil {
						t.Fatalf("%s: %v", q, err)
					}
				}
				d.Close()
			}
			rep, err := Check(ctx, st, 40)
			if err != nil {
				t.Fatal(err)
			}
			var failed []string
			for _, inv := range rep.Invariants {
				if !inv.OK() {
					failed = append(failed, inv.Name)
				}
			}
			for _, want := range tc.violate {
				found := false
				for _, f := range failed {
					found = found || strings.Contains(f, want)
				}
				if !found {
					t.Errorf("invariant %q holds, want it violated; failed: %q", want, failed)
				}
			}
			if len(tc.violate) == 0 && len(failed) > 0 {
				t.Errorf("clean copy fails %q", failed)
			}
			if rep.OK() != (len(tc.violate) == 0) || strings.Contains(rep.String(), "all invariants hold") != rep.OK() {
				t.Errorf("OK() = %v with failures %q; report:\n%s", rep.OK(), failed, rep)
			}
		})
	}
}

// TestTroubledBroker: the decorator duplicates and delays what its configuration says, and its
// Close ends the copies still waiting (no goroutine outlives it).
func TestTroubledBroker(t *testing.T) {
	checkNoLeak(t)
	ctx := context.Background()
	bus := embeddedNATS(t)
	topic := "shoptest." + uniq()
	tb, err := NewTroubledBroker(bus, TroubleConfig{Seed: 3, DuplicateDelivery: 1, Delay: 1, MaxDelay: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	got := map[string]int{}
	sub, err := tb.Subscribe(ctx, messaging.SubscribeConfig{Topic: topic, Group: "g", Concurrency: 8}, func(_ context.Context, m *messaging.Message) error {
		mu.Lock()
		got[m.ID]++
		mu.Unlock()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	pub, err := NewTroubledBroker(bus, TroubleConfig{Seed: 4, DuplicatePublish: 0.5})
	if err != nil {
		t.Fatal(err)
	}
	const n = 40
	for i := range n {
		if err := pub.Publish(ctx, &messaging.Message{ID: fmt.Sprint("m", i), Topic: topic, Payload: []byte("x")}); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "every message handled twice", 10*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		for i := range n {
			if got[fmt.Sprint("m", i)] < 2 {
				return false
			}
		}
		return true
	})
	st := tb.Stats()
	if st.Delivered != n || st.Delayed != n || st.DeliveredTwice != n {
		t.Errorf("subscriber stats %+v: want %d delivered, delayed and delivered twice (JetStream drops the duplicate publishes)", st, n)
	}
	if ps := pub.Stats(); ps.Published != n || ps.PublishedTwice == 0 || ps.PublishedTwice == n {
		t.Errorf("publisher stats %+v: want %d published, about half of them twice", ps, n)
	}
	if err := sub.Close(ctx); err != nil {
		t.Fatal(err)
	}

	// Copies waiting an hour are dropped by Close, at once.
	lazy, err := NewTroubledBroker(bus, TroubleConfig{DuplicateDelivery: 1, MaxDelay: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	var handled sync.WaitGroup
	handled.Add(1)
	var once sync.Once
	if _, err := lazy.Subscribe(ctx, messaging.SubscribeConfig{Topic: topic, Group: "lazy"}, func(context.Context, *messaging.Message) error {
		once.Do(handled.Done)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := pub.Publish(ctx, &messaging.Message{ID: "last", Topic: topic}); err != nil {
		t.Fatal(err)
	}
	handled.Wait()
	start := time.Now()
	if err := lazy.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Close took %v with a copy waiting", d)
	}
	if st := lazy.Stats(); st.DeliveredTwice != 0 {
		t.Errorf("a copy was delivered after Close: %+v", st)
	}
	if _, err := lazy.Subscribe(ctx, messaging.SubscribeConfig{Topic: topic, Group: "late"}, func(context.Context, *messaging.Message) error { return nil }); err == nil {
		t.Error("Subscribe after Close succeeded")
	}
}

func TestReasonClass(t *testing.T) {
	for reason, want := range map[string]string{
		`step "reserve-stock" refused: out of stock: 0 mug left, 2 wanted`:                    "reserve-stock refused: out of stock",
		`step "charge-payment" refused: payment declined: balance 3.00, amount 25.00`:         "charge-payment refused: payment declined",
		`saga deadline 2026-01-02T03:04:05Z passed`:                                           "saga deadline passed (too slow)",
		`step "charge-payment" gave up after 3 attempts: attempt 3 timed out after 5s`:        "charge-payment gave up after 3 attempts (no reply)",
		`compensation of step "reserve-stock" failed 50 times: attempt 50 timed out after 5s`: `compensation of step "reserve-stock" failed 50 times: attempt 50 timed out after 5s`,
		``: "no reason recorded",
	} {
		if got := ReasonClass(reason); got != want {
			t.Errorf("ReasonClass(%q) = %q, want %q", reason, got, want)
		}
	}
}

// TestConfigErrors: New reports every bad field at once, naming it.
func TestConfigErrors(t *testing.T) {
	_, err := NewInventoryService(Config{Namespace: "bad topic", Concurrency: -1})
	for _, want := range []string{"Store", "Broker", "Namespace", "Concurrency"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not name %s", err, want)
		}
	}
	if err := (Store{Postgres: "postgres://x/y", Prefix: "Bad-Prefix"}).Validate(); err == nil || !strings.Contains(err.Error(), "Prefix") {
		t.Errorf("Store.Validate: %v, want the Prefix named", err)
	}
	if _, err := NewTroubledBroker(embeddedNATS(t), TroubleConfig{Delay: 2}); err == nil || !strings.Contains(err.Error(), "Delay") {
		t.Errorf("NewTroubledBroker: %v, want Delay named", err)
	}
	_, err = Simulate(context.Background(), SimConfig{Concurrency: -1, Trouble: Trouble{Kills: []Kill{{Service: "billing", After: 2}}}})
	for _, want := range []string{"Store", "Broker", "Scenario", "Concurrency", "Kills"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Simulate: error %v does not name %s", err, want)
		}
	}
}

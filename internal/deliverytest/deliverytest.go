// Package deliverytest is the end-to-end crash test of faultline's delivery chain: a producer
// writes business rows and outbox rows in one transaction, relays publish them through a broker,
// and consumers apply them through the inbox — while a seeded chaos schedule kills and restarts
// relays and consumers at random points, loses publish acknowledgements, fails handlers after
// their writes and drops broker connections. At the end every message must have been applied
// exactly once.
package deliverytest

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/faultline-dev/faultline/inbox"
	"github.com/faultline-dev/faultline/messaging"
	"github.com/faultline-dev/faultline/outbox"

	_ "modernc.org/sqlite" // the "sqlite" database/sql driver
)

// Config describes one crash run.
type Config struct {
	// Open returns a new client of the broker (a separate process's connection).
	Open func(t testing.TB) messaging.Broker
	// Drop breaks b's connections (it must reconnect by itself); nil: no connection drops.
	Drop func(b messaging.Broker)
	// N is how many messages are produced.
	N int
	// Seed drives every random choice.
	Seed int64
	// AckWait for the consumers' subscriptions (short: a killed consumer's messages come back).
	AckWait time.Duration
	// ChaosScale stretches the time between kills and drops (1 when zero): brokers whose
	// consumers take seconds to rejoin (Kafka's group rebalance) need slower chaos to make
	// progress between kills.
	ChaosScale float64
	// Pace is a pause after each produced order, so the chaos has time to strike while messages
	// are in flight (zero: produce as fast as possible).
	Pace time.Duration
	// Deadline bounds the whole run (a hang guard). Zero means 3 minutes plus 10 ms per message.
	Deadline time.Duration
}

// Stats is what a run did.
type Stats struct {
	Produced, Applied, Duplicates int64
	RelayKills, ConsumerKills     int
	LostAcks, HandlerFailures     int64
	Drops                         int
	SubscribeRetries              int
}

// Run performs the crash run and fails t unless every produced message was applied exactly once.
func Run(t testing.TB, cfg Config) Stats {
	t.Helper()
	if cfg.Deadline == 0 {
		cfg.Deadline = 3*time.Minute + time.Duration(cfg.N)*10*time.Millisecond
	}
	if cfg.AckWait == 0 {
		cfg.AckWait = time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), cfg.Deadline)
	defer cancel()
	if cfg.ChaosScale == 0 {
		cfg.ChaosScale = 1
	}
	rng := rand.New(rand.NewSource(cfg.Seed))
	var rngMu sync.Mutex
	chance := func(p float64) bool {
		rngMu.Lock()
		defer rngMu.Unlock()
		return rng.Float64() < p
	}
	intn := func(n int) int {
		rngMu.Lock()
		defer rngMu.Unlock()
		return rng.Intn(n)
	}
	// between is a random pause of lo to lo+spread milliseconds, stretched by ChaosScale.
	between := func(lo, spread int) time.Duration {
		return time.Duration(cfg.ChaosScale * float64(time.Duration(lo+intn(spread))*time.Millisecond))
	}

	dir := t.TempDir()
	producerDB := openSQLite(t, filepath.Join(dir, "producer.db"))
	consumerDB := openSQLite(t, filepath.Join(dir, "consumer.db"))
	mustExec(t, producerDB, `CREATE TABLE orders (id INTEGER PRIMARY KEY, amount INTEGER NOT NULL)`)
	mustExec(t, consumerDB, `CREATE TABLE applied (order_id INTEGER PRIMARY KEY, times INTEGER NOT NULL, amount INTEGER NOT NULL)`)
	if err := outbox.Migrate(ctx, producerDB, outbox.SQLite); err != nil {
		t.Fatalf("outbox migrate: %v", err)
	}
	if err := inbox.Migrate(ctx, consumerDB, inbox.SQLite, ""); err != nil {
		t.Fatalf("inbox migrate: %v", err)
	}
	store, err := outbox.NewSQLiteStore(outbox.SQLiteConfig{DB: producerDB, LeaseTTL: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	topic := "crash.orders." + messaging.NewID()[:8]
	group := "billing"

	var st Stats
	var statsMu sync.Mutex

	// The consumer: the inbox around a handler that records the order; it sometimes fails after
	// its write (the transaction rolls back and the broker redelivers).
	in, err := inbox.New(inbox.Config{DB: consumerDB, Dialect: inbox.SQLite, Consumer: group,
		OnDuplicate: func(context.Context, *messaging.Message) { atomic.AddInt64(&st.Duplicates, 1) }})
	if err != nil {
		t.Fatal(err)
	}
	handler := in.Handler(func(ctx context.Context, tx *sql.Tx, msg *messaging.Message) error {
		id, err := strconv.ParseInt(msg.Key, 10, 64)
		if err != nil {
			return messaging.DeadLetter(fmt.Errorf("order key %q: %w", msg.Key, err))
		}
		amount, _ := strconv.ParseInt(string(msg.Payload), 10, 64)
		if _, err := tx.ExecContext(ctx, `INSERT INTO applied (order_id, times, amount) VALUES (?, 1, ?)
			ON CONFLICT (order_id) DO UPDATE SET times = times + 1`, id, amount); err != nil {
			return err
		}
		if chance(0.03) {
			atomic.AddInt64(&st.HandlerFailures, 1)
			return messaging.Nack(errors.New("chaos: handler failed after its write"), 0)
		}
		return nil
	})

	brokers := []messaging.Broker{}
	var brokersMu sync.Mutex
	open := func() messaging.Broker {
		b := cfg.Open(t)
		brokersMu.Lock()
		brokers = append(brokers, b)
		brokersMu.Unlock()
		return b
	}
	defer func() {
		cctx, ccancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer ccancel()
		brokersMu.Lock()
		defer brokersMu.Unlock()
		for _, b := range brokers {
			_ = b.Close(cctx)
		}
	}()

	// Two consumer "processes", each killed and restarted at random.
	var wg sync.WaitGroup
	done := make(chan struct{})
	subCfg := messaging.SubscribeConfig{Topic: topic, Group: group, Concurrency: 4, MaxDeliveries: 1000, AckWait: cfg.AckWait,
		RedeliveryDelay: func(int) time.Duration { return 10 * time.Millisecond }}
	consumerBroker := open()
	// The group starts with the messages published after its first subscription (the Broker
	// contract), so nothing is published before a consumer has subscribed once.
	subscribed := make(chan struct{})
	var subscribedOnce sync.Once
	for c := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b := consumerBroker
			if c == 1 {
				b = open()
			}
			for {
				// A join that does not complete in time (a Kafka group rebalancing under the
				// other consumer's restarts) is abandoned and tried again, as a process with a
				// start-up timeout would.
				sctx, scancel := context.WithTimeout(ctx, 20*time.Second)
				sub, err := b.Subscribe(sctx, subCfg, handler)
				scancel()
				if err != nil {
					// A restarting consumer can meet a connection that is being re-established
					// (a drop): like a real process, it tries again.
					statsMu.Lock()
					st.SubscribeRetries++
					statsMu.Unlock()
					select {
					case <-done:
						return
					case <-ctx.Done():
						t.Errorf("consumer %d: subscribe: %v", c, err)
						return
					case <-time.After(50 * time.Millisecond):
					}
					continue
				}
				subscribedOnce.Do(func() { close(subscribed) })
				select {
				case <-done:
					cctx, ccancel := context.WithTimeout(context.Background(), 10*time.Second)
					_ = sub.Close(cctx)
					ccancel()
					return
				case <-time.After(between(50, 400)):
				}
				// Kill: close with an already-ended context, so running handlers are cancelled
				// mid-transaction and their messages come back.
				killed, kcancel := context.WithCancel(context.Background())
				kcancel()
				_ = sub.Close(killed)
				statsMu.Lock()
				st.ConsumerKills++
				statsMu.Unlock()
			}
		}()
	}

	// Relays: killed and restarted at random; their publisher sometimes loses the broker's ack
	// (the messages were published, the relay is told they were not, so it publishes them again).
	publisher := open()
	lossy := publishFunc(func(ctx context.Context, msgs ...*messaging.Message) error {
		if err := publisher.Publish(ctx, msgs...); err != nil {
			return err
		}
		if chance(0.05) {
			atomic.AddInt64(&st.LostAcks, 1)
			return errors.New("chaos: publish acknowledgement lost")
		}
		return nil
	})
	select {
	case <-subscribed:
	case <-ctx.Done():
		close(done)
		wg.Wait()
		t.Fatalf("no consumer subscribed before the deadline (seed %d)", cfg.Seed)
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			relay, err := outbox.NewRelay(outbox.RelayConfig{Store: store, Publisher: lossy, BatchSize: 1 + intn(200),
				PollInterval: 5 * time.Millisecond})
			if err != nil {
				t.Errorf("relay: %v", err)
				return
			}
			rctx, rcancel := context.WithCancel(ctx)
			stopped := make(chan struct{})
			go func() { defer close(stopped); _ = relay.Run(rctx) }()
			select {
			case <-done:
				rcancel()
				<-stopped
				return
			case <-time.After(between(20, 300)):
			}
			rcancel() // kill it wherever it is: mid-claim, mid-publish, before the mark
			<-stopped
			statsMu.Lock()
			st.RelayKills++
			statsMu.Unlock()
		}
	}()

	// Connection drops.
	if cfg.Drop != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-done:
					return
				case <-time.After(between(100, 500)):
				}
				brokersMu.Lock()
				b := brokers[intn(len(brokers))]
				brokersMu.Unlock()
				cfg.Drop(b)
				statsMu.Lock()
				st.Drops++
				statsMu.Unlock()
			}
		}()
	}

	// The producer: each order and its event in one transaction; some transactions roll back
	// (neither the order nor the event may appear).
	var want int64
	for i := 1; i <= cfg.N; i++ {
		amount := 1 + intn(1000)
		tx, err := producerDB.BeginTx(ctx, nil)
		if err != nil {
			t.Fatalf("producer: %v", err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO orders (id, amount) VALUES (?, ?)`, i, amount); err != nil {
			t.Fatalf("producer: %v", err)
		}
		msg := &messaging.Message{Topic: topic, Key: strconv.Itoa(i), Payload: []byte(strconv.Itoa(amount))}
		if err := outbox.Add(ctx, tx, outbox.SQLite, msg); err != nil {
			t.Fatalf("producer: %v", err)
		}
		if chance(0.05) {
			_ = tx.Rollback()
			continue
		}
		if err := tx.Commit(); err != nil {
			t.Fatalf("producer: %v", err)
		}
		want++
		if cfg.Pace > 0 {
			time.Sleep(cfg.Pace) // pacing the load, not waiting for an outcome
		}
	}
	st.Produced = want

	// Wait until the consumer side has applied every committed order.
	for {
		var n int64
		if err := consumerDB.QueryRowContext(ctx, `SELECT COUNT(*) FROM applied`).Scan(&n); err != nil {
			t.Fatalf("waiting: %v (seed %d)", err, cfg.Seed)
		}
		if n >= want {
			break
		}
		select {
		case <-ctx.Done():
			close(done)
			wg.Wait()
			t.Fatalf("only %d of %d orders applied before the deadline (seed %d, stats %+v); missing: %s",
				n, want, cfg.Seed, st, missingOrders(producerDB, consumerDB))
		case <-time.After(20 * time.Millisecond):
		}
	}
	close(done)
	wg.Wait()

	// Exactly once: every committed order applied once with its amount, nothing else applied.
	var applied, wrongTimes, wrongAmount, strays int64
	mustScan(t, consumerDB, `SELECT COUNT(*) FROM applied`, &applied)
	mustScan(t, consumerDB, `SELECT COUNT(*) FROM applied WHERE times <> 1`, &wrongTimes)
	rows, err := consumerDB.QueryContext(context.Background(), `SELECT order_id, amount FROM applied`)
	if err != nil {
		t.Fatal(err)
	}
	got := map[int64]int64{}
	for rows.Next() {
		var id, amount int64
		if err := rows.Scan(&id, &amount); err != nil {
			t.Fatal(err)
		}
		got[id] = amount
	}
	rows.Close()
	orders, err := producerDB.QueryContext(context.Background(), `SELECT id, amount FROM orders`)
	if err != nil {
		t.Fatal(err)
	}
	produced := map[int64]bool{}
	for orders.Next() {
		var id, amount int64
		if err := orders.Scan(&id, &amount); err != nil {
			t.Fatal(err)
		}
		produced[id] = true
		if a, ok := got[id]; !ok || a != amount {
			wrongAmount++
		}
	}
	orders.Close()
	for id := range got {
		if !produced[id] {
			strays++
		}
	}
	st.Applied = applied
	if applied != want || wrongTimes != 0 || wrongAmount != 0 || strays != 0 {
		t.Fatalf("seed %d: %d orders committed, %d applied; %d applied more than once, %d missing or with a wrong amount, %d never committed (stats %+v)",
			cfg.Seed, want, applied, wrongTimes, wrongAmount, strays, st)
	}
	return st
}

type publishFunc func(ctx context.Context, msgs ...*messaging.Message) error

func (f publishFunc) Publish(ctx context.Context, msgs ...*messaging.Message) error {
	return f(ctx, msgs...)
}

func openSQLite(t testing.TB, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(30000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_txlock=immediate")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func mustExec(t testing.TB, db *sql.DB, q string) {
	t.Helper()
	if _, err := db.Exec(q); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

func mustScan(t testing.TB, db *sql.DB, q string, dst *int64) {
	t.Helper()
	if err := db.QueryRow(q).Scan(dst); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

// missingOrders describes the committed orders the consumer has not applied and where their
// messages stand in the outbox, for a failure message.
func missingOrders(producerDB, consumerDB *sql.DB) string {
	ctx := context.Background()
	applied := map[string]bool{}
	if rows, err := consumerDB.QueryContext(ctx, `SELECT order_id FROM applied`); err == nil {
		for rows.Next() {
			var id string
			_ = rows.Scan(&id)
			applied[id] = true
		}
		rows.Close()
	}
	var out []string
	rows, err := producerDB.QueryContext(ctx, `SELECT o.id, b.message_id, b.sent_at IS NOT NULL FROM orders o LEFT JOIN faultline_outbox b ON b.msg_key = CAST(o.id AS TEXT)`)
	if err != nil {
		return err.Error()
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		var msgID sql.NullString
		var sent sql.NullBool
		if err := rows.Scan(&id, &msgID, &sent); err != nil {
			return err.Error()
		}
		if !applied[id] {
			out = append(out, fmt.Sprintf("order %s (message %s, marked sent %v)", id, msgID.String, sent.Bool))
		}
	}
	return strings.Join(out, "; ")
}

package outbox

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/faultline-dev/faultline/clock"
	"github.com/faultline-dev/faultline/messaging"
)

// The business row and the outbox row commit together or not at all.
func TestAddCommitsWithBusinessRow(t *testing.T) {
	eachBackend(t, func(t *testing.T, b *backend) {
		ctx := context.Background()
		biz := "orders"
		if b.table.Dialect == Postgres {
			biz = b.table.schemaPrefix() + "orders"
		}
		if _, err := b.db.Exec(`CREATE TABLE ` + biz + ` (id text PRIMARY KEY)`); err != nil {
			t.Fatal(err)
		}
		write := func(order string, commit bool) *messaging.Message {
			tx, err := b.db.BeginTx(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := tx.Exec(`INSERT INTO `+biz+` (id) VALUES (`+b.ph(1)+`)`, order); err != nil {
				t.Fatal(err)
			}
			m := msg("orders.created", order, order)
			if err := b.table.Add(ctx, tx, m); err != nil {
				t.Fatal(err)
			}
			if m.ID == "" {
				t.Fatal("Add left the message ID empty")
			}
			if commit {
				err = tx.Commit()
			} else {
				err = tx.Rollback()
			}
			if err != nil {
				t.Fatal(err)
			}
			return m
		}
		write("rolled-back", false)
		kept := write("committed", true)

		pub := &fakePub{}
		r := newRelay(t, RelayConfig{Store: b.store(t, false), Publisher: pub})
		n, err := r.RunOnce(ctx)
		if err != nil || n != 1 {
			t.Fatalf("RunOnce = %d, %v; want 1 row", n, err)
		}
		got := pub.published()
		if len(got) != 1 || got[0].ID != kept.ID || string(got[0].Payload) != "committed" {
			t.Fatalf("published %+v; want only the committed order's message %s", got, kept.ID)
		}
		var orders int
		if err := b.db.QueryRow(`SELECT count(*) FROM ` + biz).Scan(&orders); err != nil {
			t.Fatal(err)
		}
		if orders != 1 {
			t.Fatalf("%d business rows; want 1 (the rolled-back one gone with its message)", orders)
		}
	})
}

// Add rejects a bad message and leaves the caller to roll back.
func TestAddRejectsBadTopic(t *testing.T) {
	eachBackend(t, func(t *testing.T, b *backend) {
		tx, err := b.db.Begin()
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback()
		err = b.table.Add(context.Background(), tx, msg("bad topic!", "", ""))
		if err == nil || !strings.Contains(err.Error(), "topic") {
			t.Fatalf("Add(bad topic) = %v; want a topic error", err)
		}
	})
}

// The relay publishes in id order, in batches, round-trips every field, and marks rows sent.
func TestRelayPublishesInIDOrderAndMarksSent(t *testing.T) {
	eachBackend(t, func(t *testing.T, b *backend) {
		ctx := context.Background()
		var want []*messaging.Message
		for tx := 0; tx < 3; tx++ {
			var ms []*messaging.Message
			for i := 0; i < 9; i++ {
				m := msg("t.orders", fmt.Sprint("k", i%3), fmt.Sprint(len(want)+len(ms)))
				if i%2 == 0 {
					m.Headers = map[string]string{"traceparent": "00-abc", "n": fmt.Sprint(i)}
				}
				if i == 4 {
					m.ID = "fixed-id-" + fmt.Sprint(tx)
				}
				ms = append(ms, m)
			}
			b.add(t, ms...)
			want = append(want, ms...)
		}
		pub := &fakePub{}
		r := newRelay(t, RelayConfig{Store: b.store(t, false), Publisher: pub, BatchSize: 10})
		for i, wantN := range []int{10, 10, 7, 0} {
			n, err := r.RunOnce(ctx)
			if err != nil || n != wantN {
				t.Fatalf("RunOnce #%d = %d, %v; want %d", i, n, err, wantN)
			}
		}
		got := pub.published()
		if len(got) != len(want) {
			t.Fatalf("published %d; want %d", len(got), len(want))
		}
		for i := range want {
			g, w := got[i], want[i]
			if g.ID != w.ID || g.Topic != w.Topic || g.Key != w.Key || string(g.Payload) != string(w.Payload) || fmt.Sprint(g.Headers) != fmt.Sprint(w.Headers) {
				t.Fatalf("message %d: got %+v; want %+v", i, g, w)
			}
		}
		if pub.calls != 3 {
			t.Fatalf("%d Publish calls; want one per batch (3)", pub.calls)
		}
		if n := unsent(t, b); n != 0 {
			t.Fatalf("%d rows unsent after the relay drained the table", n)
		}
	})
}

// A transaction that took a smaller id but commits later is published later, never skipped.
func TestOutOfOrderCommitIsNotSkipped(t *testing.T) {
	b := newPostgres(t)
	ctx := context.Background()
	txA, err := b.db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer txA.Rollback()
	a := msg("t.gap", "", "A")
	if err := b.table.Add(ctx, txA, a); err != nil {
		t.Fatal(err)
	}
	txB, err := b.db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	bm := msg("t.gap", "", "B")
	if err := b.table.Add(ctx, txB, bm); err != nil {
		t.Fatal(err)
	}
	if err := txB.Commit(); err != nil {
		t.Fatal(err)
	}
	pub := &fakePub{}
	r := newRelay(t, RelayConfig{Store: b.store(t, false), Publisher: pub})
	if n, err := r.RunOnce(ctx); err != nil || n != 1 {
		t.Fatalf("first RunOnce = %d, %v; want B only", n, err)
	}
	if err := txA.Commit(); err != nil {
		t.Fatal(err)
	}
	if n, err := r.RunOnce(ctx); err != nil || n != 1 {
		t.Fatalf("second RunOnce = %d, %v; want A, committed late", n, err)
	}
	var idA, idB int64
	b.db.QueryRow(`SELECT id FROM `+b.table.Name+` WHERE message_id = $1`, a.ID).Scan(&idA)
	b.db.QueryRow(`SELECT id FROM `+b.table.Name+` WHERE message_id = $1`, bm.ID).Scan(&idB)
	if !(idA < idB) {
		t.Fatalf("ids A=%d B=%d: the test needs A to hold the smaller id", idA, idB)
	}
	got := pub.published()
	if len(got) != 2 || got[0].ID != bm.ID || got[1].ID != a.ID {
		t.Fatalf("published %v; want B then A", got)
	}
}

// Many writers commit (or roll back) in random order while relays run: every committed row is
// published exactly once, no rolled-back row is.
func TestConcurrentWritersRandomCommitOrder(t *testing.T) {
	run := func(t *testing.T, b *backend, relays int, parallel bool) {
		seed := uint64(time.Now().UnixNano())
		t.Logf("seed %d", seed)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		pub := &fakePub{}
		var wg sync.WaitGroup
		for i := 0; i < relays; i++ {
			r := newRelay(t, RelayConfig{Store: b.store(t, parallel), Publisher: pub, BatchSize: 7, PollInterval: 3 * time.Millisecond})
			wg.Add(1)
			go func() { defer wg.Done(); r.Run(ctx) }()
		}
		writers, perWriter := 8, 25
		if b.table.Dialect == SQLite {
			writers, perWriter = 4, 20
		}
		var mu sync.Mutex
		committed := map[string]bool{}
		var rolledBack []string
		var ww sync.WaitGroup
		for w := 0; w < writers; w++ {
			ww.Add(1)
			go func() {
				defer ww.Done()
				rng := rand.New(rand.NewPCG(seed, uint64(w)))
				for i := 0; i < perWriter; i++ {
					tx, err := b.db.BeginTx(ctx, nil)
					if err != nil {
						t.Error(err)
						return
					}
					var ms []*messaging.Message
					for j := 0; j <= rng.IntN(3); j++ {
						ms = append(ms, msg("t.many", fmt.Sprint(w), fmt.Sprint(w, "/", i, "/", j)))
					}
					if err := b.table.Add(ctx, tx, ms...); err != nil {
						t.Error(err)
						tx.Rollback()
						return
					}
					time.Sleep(time.Duration(rng.IntN(2000)) * time.Microsecond)
					commit := rng.IntN(10) != 0
					if commit {
						err = tx.Commit()
					} else {
						err = tx.Rollback()
					}
					if err != nil {
						t.Error(err)
						return
					}
					mu.Lock()
					for _, m := range ms {
						if commit {
							committed[m.ID] = true
						} else {
							rolledBack = append(rolledBack, m.ID)
						}
					}
					mu.Unlock()
				}
			}()
		}
		ww.Wait()
		waitFor(t, 20*time.Second, "every committed row published", func() bool { return pub.count() >= len(committed) })
		time.Sleep(20 * time.Millisecond) // a duplicate would show up now
		cancel()
		wg.Wait()
		seen := map[string]int{}
		for _, m := range pub.published() {
			seen[m.ID]++
		}
		for id := range committed {
			if seen[id] != 1 {
				t.Errorf("message %s published %d times; want exactly once (seed %d)", id, seen[id], seed)
			}
		}
		for _, id := range rolledBack {
			if seen[id] != 0 {
				t.Errorf("rolled-back message %s published (seed %d)", id, seed)
			}
		}
		if len(seen) != len(committed) {
			t.Errorf("published %d distinct IDs; want %d (seed %d)", len(seen), len(committed), seed)
		}
		if n := unsent(t, b); n != 0 {
			t.Errorf("%d rows left unsent", n)
		}
	}
	t.Run("sqlite/one-relay", func(t *testing.T) { run(t, newSQLite(t), 1, false) })
	t.Run("sqlite/two-relays", func(t *testing.T) { run(t, newSQLite(t), 2, false) })
	t.Run("postgres/one-relay", func(t *testing.T) { run(t, newPostgres(t), 1, false) })
	t.Run("postgres/two-relays", func(t *testing.T) { run(t, newPostgres(t), 2, false) })
	t.Run("postgres/three-relays-parallel", func(t *testing.T) { run(t, newPostgres(t), 3, true) })
}

// A crash between publish and mark (the store fails to mark, or the broker accepted the batch
// but its ack was lost) publishes the batch again with the same IDs: a duplicate, never a loss.
func TestCrashBetweenPublishAndMarkDuplicates(t *testing.T) {
	eachBackend(t, func(t *testing.T, b *backend) {
		ctx := context.Background()
		for _, tc := range []struct {
			name  string
			crash func(s Store, pub *fakePub)
		}{
			{"mark fails", func(s Store, pub *fakePub) {
				first := true
				setBeforeMark(s, func() error {
					if first {
						first = false
						return errors.New("injected crash before mark")
					}
					return nil
				})
			}},
			{"ack lost", func(s Store, pub *fakePub) {
				pub.fail = func(call int, _ []*messaging.Message) (bool, error) {
					if call == 1 {
						return true, errors.New("injected: accepted, ack lost")
					}
					return true, nil
				}
			}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				var ms []*messaging.Message
				for i := 0; i < 5; i++ {
					ms = append(ms, msg("t.crash", "", fmt.Sprint(i)))
				}
				b.add(t, ms...)
				s := b.store(t, false)
				pub := &fakePub{}
				tc.crash(s, pub)
				// One relay ID throughout: the SQLite lease outlives a subtest.
				r := newRelay(t, RelayConfig{Store: s, Publisher: pub, ID: "relay-1"})
				if n, err := r.RunOnce(ctx); err == nil || n != 0 {
					t.Fatalf("RunOnce with a crash = %d, %v; want an error", n, err)
				}
				if n := unsent(t, b); n != 5 {
					t.Fatalf("%d rows unsent after the crash; want 5", n)
				}
				if n, err := r.RunOnce(ctx); err != nil || n != 5 {
					t.Fatalf("RunOnce after the crash = %d, %v; want 5", n, err)
				}
				if n, err := r.RunOnce(ctx); err != nil || n != 0 {
					t.Fatalf("third RunOnce = %d, %v; want 0", n, err)
				}
				got := pub.published()
				if len(got) != 10 {
					t.Fatalf("published %d messages; want each of 5 twice", len(got))
				}
				for i, m := range ms {
					if got[i].ID != m.ID || got[i+5].ID != m.ID {
						t.Fatalf("message %d: published as %s and %s; want %s both times", i, got[i].ID, got[i+5].ID, m.ID)
					}
				}
			})
		}
	})
}

// A publish that fails outright leaves the rows for the next batch.
func TestPublishFailureRetries(t *testing.T) {
	eachBackend(t, func(t *testing.T, b *backend) {
		b.add(t, msg("t.retry", "", "x"))
		pub := &fakePub{fail: func(call int, _ []*messaging.Message) (bool, error) {
			if call == 1 {
				return false, errors.New("broker down")
			}
			return true, nil
		}}
		r := newRelay(t, RelayConfig{Store: b.store(t, false), Publisher: pub})
		if _, err := r.RunOnce(context.Background()); err == nil || !strings.Contains(err.Error(), "broker down") {
			t.Fatalf("RunOnce = %v; want the publish error", err)
		}
		if n, err := r.RunOnce(context.Background()); err != nil || n != 1 || pub.count() != 1 {
			t.Fatalf("retry = %d, %v (published %d); want 1", n, err, pub.count())
		}
	})
}

// claimCounter counts a store's batches; it keeps the store's Notifier.
type claimCounter struct {
	*PostgresStore
	claims atomic.Int64
}

func (c *claimCounter) Claim(ctx context.Context, cl Claim, publish func(context.Context, []*messaging.Message) error) (int, error) {
	c.claims.Add(1)
	return c.PostgresStore.Claim(ctx, cl, publish)
}

// LISTEN/NOTIFY wakes the relay long before its poll interval.
func TestListenNotifyWakesRelay(t *testing.T) {
	b := newPostgres(t)
	s := &claimCounter{PostgresStore: b.store(t, false).(*PostgresStore)}
	pub := &fakePub{}
	r := newRelay(t, RelayConfig{Store: s, Publisher: pub, PollInterval: time.Hour})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	defer func() { cancel(); <-done }()
	// The first poll runs at once; the second only on a wake, the first of which Listen sends once
	// it is listening.
	waitFor(t, 5*time.Second, "the relay to listen", func() bool { return s.claims.Load() >= 2 })
	for i := 0; i < 3; i++ {
		start := time.Now()
		b.add(t, msg("t.notify", "", fmt.Sprint(i)))
		waitFor(t, 3*time.Second, "the notified relay to publish", func() bool { return pub.count() == i+1 })
		t.Logf("published %v after commit", time.Since(start))
	}
}

// Cancelling Run's context stops it promptly and leaves no goroutine behind.
func TestRunStopsOnCancel(t *testing.T) {
	eachBackend(t, func(t *testing.T, b *backend) {
		before := runtime.NumGoroutine()
		pub := &fakePub{}
		r := newRelay(t, RelayConfig{Store: b.store(t, false), Publisher: pub, PollInterval: time.Hour, Retention: time.Hour})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- r.Run(ctx) }()
		b.add(t, msg("t.stop", "", ""))
		r.Wake()
		waitFor(t, 5*time.Second, "a publish", func() bool { return pub.count() == 1 })
		cancel()
		select {
		case err := <-done:
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("Run = %v; want context.Canceled", err)
			}
		case <-time.After(2 * time.Second):
			t.Fatal("Run did not return within 2s of cancel")
		}
		waitFor(t, 3*time.Second, "goroutines to return to their count before Run", func() bool {
			return runtime.NumGoroutine() <= before
		})
	})
}

// Cleanup deletes sent rows older than the retention, and nothing else.
func TestCleanupRetention(t *testing.T) {
	eachBackend(t, func(t *testing.T, b *backend) {
		ctx := context.Background()
		clk := clock.NewManual(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
		pub := &fakePub{}
		r := newRelay(t, RelayConfig{Store: b.store(t, false), Publisher: pub, Clock: clk, Retention: time.Hour})
		b.add(t, msg("t.old", "", "1"), msg("t.old", "", "2"), msg("t.old", "", "3"))
		if n, err := r.RunOnce(ctx); err != nil || n != 3 {
			t.Fatalf("RunOnce = %d, %v", n, err)
		}
		clk.Advance(30 * time.Minute)
		b.add(t, msg("t.new", "", "4"))
		if n, err := r.RunOnce(ctx); err != nil || n != 1 {
			t.Fatalf("RunOnce = %d, %v", n, err)
		}
		b.add(t, msg("t.unsent", "", "5"))
		clk.Advance(31 * time.Minute)
		if n, err := r.Cleanup(ctx); err != nil || n != 3 {
			t.Fatalf("Cleanup = %d, %v; want the 3 rows sent over an hour ago", n, err)
		}
		var left int
		b.db.QueryRow(`SELECT count(*) FROM ` + b.table.Name).Scan(&left)
		if left != 2 {
			t.Fatalf("%d rows left; want the recent sent row and the unsent one", left)
		}
	})
}

// Relays on SQLite take turns through the lease; a standby takes over once it lapses.
func TestSQLiteLeaseTakeover(t *testing.T) {
	b := newSQLite(t)
	ctx := context.Background()
	clk := clock.NewManual(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	s, err := NewSQLiteStore(SQLiteConfig{DB: b.db, Table: b.table.Name, LeaseTTL: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	pubA, pubB := &fakePub{}, &fakePub{}
	a := newRelay(t, RelayConfig{Store: s, Publisher: pubA, Clock: clk, ID: "a"})
	bb := newRelay(t, RelayConfig{Store: s, Publisher: pubB, Clock: clk, ID: "b"})
	b.add(t, msg("t.lease", "", "1"))
	if n, _ := a.RunOnce(ctx); n != 1 {
		t.Fatalf("relay a published %d; want 1", n)
	}
	b.add(t, msg("t.lease", "", "2"))
	clk.Advance(5 * time.Second)
	if n, err := bb.RunOnce(ctx); n != 0 || err != nil {
		t.Fatalf("relay b published %d, %v while a holds the lease; want 0", n, err)
	}
	clk.Advance(6 * time.Second)
	if n, err := bb.RunOnce(ctx); n != 1 || err != nil {
		t.Fatalf("relay b published %d, %v after a's lease lapsed; want 1", n, err)
	}
	if n, _ := a.RunOnce(ctx); n != 0 {
		t.Fatalf("relay a published %d after b took the lease; want 0", n)
	}
}

// PostgreSQL relays in the default mode take turns: a second relay gets nothing while the first
// holds a batch open.
func TestPostgresRelaysTakeTurns(t *testing.T) {
	b := newPostgres(t)
	ctx := context.Background()
	b.add(t, msg("t.turns", "", "1"), msg("t.turns", "", "2"))
	inPublish, release := make(chan struct{}), make(chan struct{})
	slow := &fakePub{fail: func(int, []*messaging.Message) (bool, error) {
		close(inPublish)
		<-release
		return true, nil
	}}
	r1 := newRelay(t, RelayConfig{Store: b.store(t, false), Publisher: slow, BatchSize: 1})
	r2 := newRelay(t, RelayConfig{Store: b.store(t, false), Publisher: &fakePub{}, BatchSize: 1})
	done := make(chan int)
	go func() { n, _ := r1.RunOnce(ctx); done <- n }()
	<-inPublish
	if n, err := r2.RunOnce(ctx); n != 0 || err != nil {
		t.Fatalf("second relay published %d, %v during the first's batch; want 0", n, err)
	}
	close(release)
	if n := <-done; n != 1 {
		t.Fatalf("first relay published %d; want 1", n)
	}
	// In Parallel mode the second relay takes the next row instead.
	b.add(t, msg("t.turns", "", "3"))
	inPublish, release = make(chan struct{}), make(chan struct{})
	p1 := newRelay(t, RelayConfig{Store: b.store(t, true), Publisher: slow, BatchSize: 1})
	p2 := newRelay(t, RelayConfig{Store: b.store(t, true), Publisher: &fakePub{}, BatchSize: 1})
	go func() { n, _ := p1.RunOnce(ctx); done <- n }()
	<-inPublish
	if n, err := p2.RunOnce(ctx); n != 1 || err != nil {
		t.Fatalf("parallel relay published %d, %v; want the next unlocked row", n, err)
	}
	close(release)
	<-done
}

func TestConfigErrorsNameTheField(t *testing.T) {
	db, _ := sql.Open("sqlite", ":memory:")
	defer db.Close()
	store, err := NewSQLiteStore(SQLiteConfig{DB: db})
	if err != nil {
		t.Fatal(err)
	}
	pub := &fakePub{}
	for _, tc := range []struct {
		field string
		err   error
	}{
		{"RelayConfig.Store", second(NewRelay(RelayConfig{Publisher: pub}))},
		{"RelayConfig.Publisher", second(NewRelay(RelayConfig{Store: store}))},
		{"RelayConfig.BatchSize", second(NewRelay(RelayConfig{Store: store, Publisher: pub, BatchSize: -1}))},
		{"RelayConfig.PollInterval", second(NewRelay(RelayConfig{Store: store, Publisher: pub, PollInterval: -1}))},
		{"RelayConfig.Retention", second(NewRelay(RelayConfig{Store: store, Publisher: pub, Retention: -1}))},
		{"RelayConfig.CleanupInterval", second(NewRelay(RelayConfig{Store: store, Publisher: pub, CleanupInterval: -1}))},
		{"SQLiteConfig.DB", second(NewSQLiteStore(SQLiteConfig{}))},
		{"SQLiteConfig.LeaseTTL", second(NewSQLiteStore(SQLiteConfig{DB: db, LeaseTTL: -1}))},
		{"Table.Name", second(NewSQLiteStore(SQLiteConfig{DB: db, Table: "x; DROP TABLE y"}))},
		{"Table.Name", second(NewSQLiteStore(SQLiteConfig{DB: db, Table: "s.x"}))},
		{"PostgresConfig.DB", second(NewPostgresStore(PostgresConfig{}))},
		{"Table.Channel", second(NewPostgresStore(PostgresConfig{DB: db, Channel: "a-b"}))},
		{"Table.Dialect", Add(context.Background(), &sql.Tx{}, Dialect(9))},
		{"Table.Dialect", Table{Dialect: SQLite}.AddPgx(context.Background(), nil)},
	} {
		if tc.err == nil || !strings.Contains(tc.err.Error(), tc.field) {
			t.Errorf("error %v; want one naming %s", tc.err, tc.field)
		}
	}
}

func second[T any](_ T, err error) error { return err }

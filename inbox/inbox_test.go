package inbox_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/faultline-dev/faultline/clock"
	"github.com/faultline-dev/faultline/inbox"
	"github.com/faultline-dev/faultline/messaging"
)

func msg(id string) *messaging.Message {
	return &messaging.Message{ID: id, Topic: "payments", Attempt: 1}
}

// counting returns an apply func that marks the message applied and counts its successful runs.
func counting(s *store, consumer string, runs *atomic.Int64) applyFunc {
	return func(ctx context.Context, tx execer, m *messaging.Message) error {
		if err := s.markApplied(ctx, tx, consumer, m.ID); err != nil {
			return err
		}
		runs.Add(1)
		return nil
	}
}

func TestDuplicateAppliedOnce(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *store) {
		ctx := context.Background()
		var dups atomic.Int64
		c := s.inbox(t, consumerConf{Consumer: "billing", OnDuplicate: func(context.Context, *messaging.Message) { dups.Add(1) }})
		var runs atomic.Int64
		h := c.handle(counting(s, "billing", &runs))

		for i := range 3 {
			m := msg("m-1")
			m.Attempt = i + 1
			if err := h(ctx, m); err != nil {
				t.Fatalf("delivery %d: %v", i+1, err)
			}
		}
		if err := h(ctx, msg("m-2")); err != nil {
			t.Fatal(err)
		}
		if got := runs.Load(); got != 2 {
			t.Errorf("handler ran %d times, want 2 (m-1 once, m-2 once)", got)
		}
		if got, want := s.applied(t, "billing"), map[string]int64{"m-1": 1, "m-2": 1}; !equalCounts(got, want) {
			t.Errorf("applied = %v, want %v", got, want)
		}
		if got := dups.Load(); got != 2 {
			t.Errorf("OnDuplicate called %d times, want 2", got)
		}
		for id, want := range map[string]bool{"m-1": true, "m-2": true, "m-3": false} {
			if got, err := c.seen(ctx, id); err != nil || got != want {
				t.Errorf("Seen(%s) = %v, %v; want %v", id, got, err, want)
			}
		}
	})
}

func TestHandlerErrorRollsBackAndRedeliveryApplies(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *store) {
		ctx := context.Background()
		c := s.inbox(t, consumerConf{Consumer: "billing"})
		fail := true
		var runs atomic.Int64
		h := c.handle(func(ctx context.Context, tx execer, m *messaging.Message) error {
			// The write happens before the failure: it must be rolled back with the inbox row.
			if err := s.markApplied(ctx, tx, "billing", m.ID); err != nil {
				return err
			}
			if fail {
				return errInjected
			}
			runs.Add(1)
			return nil
		})

		err := h(ctx, msg("m-1"))
		if !errors.Is(err, errInjected) {
			t.Fatalf("first delivery: err = %v, want the handler's error", err)
		}
		if d := messaging.Decide(mustDefaults(t), 1, err); d.Ack || d.DeadLetter {
			t.Fatalf("decision for a handler error = %+v, want a redelivery", d)
		}
		if got := s.applied(t, "billing"); len(got) != 0 {
			t.Fatalf("after a failed handler, applied = %v: its writes were not rolled back", got)
		}
		if seen, err := c.seen(ctx, "m-1"); err != nil || seen {
			t.Fatalf("after a failed handler, Seen = %v, %v: the ID must not be recorded", seen, err)
		}

		// A handler's DeadLetter passes through as it is.
		dl := messaging.DeadLetter(errInjected)
		hdl := c.handle(func(context.Context, execer, *messaging.Message) error { return dl })
		if err := hdl(ctx, msg("m-poison")); err != dl {
			t.Fatalf("dead-letter result = %v, want the handler's own error value", err)
		}

		fail = false
		if err := h(ctx, msg("m-1")); err != nil {
			t.Fatalf("redelivery: %v", err)
		}
		if err := h(ctx, msg("m-1")); err != nil {
			t.Fatalf("duplicate after redelivery: %v", err)
		}
		if runs.Load() != 1 {
			t.Errorf("successful runs = %d, want 1", runs.Load())
		}
		if got, want := s.applied(t, "billing"), map[string]int64{"m-1": 1}; !equalCounts(got, want) {
			t.Errorf("applied = %v, want %v", got, want)
		}
	})
}

func TestHandlerPanicRollsBack(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *store) {
		ctx := context.Background()
		c := s.inbox(t, consumerConf{Consumer: "billing"})
		h := c.handle(func(ctx context.Context, tx execer, m *messaging.Message) error {
			if err := s.markApplied(ctx, tx, "billing", m.ID); err != nil {
				return err
			}
			panic("boom")
		})
		func() {
			defer func() {
				if r := recover(); r != "boom" {
					t.Fatalf("recovered %v, want the handler's panic", r)
				}
			}()
			_ = h(ctx, msg("m-1"))
		}()
		if seen, err := c.seen(ctx, "m-1"); err != nil || seen {
			t.Fatalf("after a panic, Seen = %v, %v; want false", seen, err)
		}
		var runs atomic.Int64
		if err := c.handle(counting(s, "billing", &runs))(ctx, msg("m-1")); err != nil {
			t.Fatal(err)
		}
		if got, want := s.applied(t, "billing"), map[string]int64{"m-1": 1}; !equalCounts(got, want) {
			t.Errorf("applied = %v, want %v", got, want)
		}
	})
}

func TestMissingIDDeadLettered(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *store) {
		ctx := context.Background()
		c := s.inbox(t, consumerConf{Consumer: "billing"})
		var runs atomic.Int64
		h := c.handle(counting(s, "billing", &runs))
		for _, m := range []*messaging.Message{{Topic: "payments", Attempt: 1}, nil} {
			err := h(ctx, m)
			if !errors.Is(err, inbox.ErrNoID) {
				t.Fatalf("err = %v, want ErrNoID", err)
			}
			if d := messaging.Decide(mustDefaults(t), 1, err); !d.DeadLetter {
				t.Fatalf("decision = %+v, want dead-letter at the first attempt", d)
			}
		}
		if runs.Load() != 0 {
			t.Errorf("handler ran %d times for messages without ID", runs.Load())
		}
		if n := s.recorded(t, "billing"); n != 0 {
			t.Errorf("%d inbox rows, want 0", n)
		}
	})
}

func TestConsumerGroupsAreIndependent(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *store) {
		ctx := context.Background()
		var runs atomic.Int64
		for _, group := range []string{"billing", "audit", "billing", "audit"} {
			c := s.inbox(t, consumerConf{Consumer: group})
			if err := c.handle(counting(s, group, &runs))(ctx, msg("m-1")); err != nil {
				t.Fatal(err)
			}
		}
		if runs.Load() != 2 {
			t.Errorf("handler ran %d times, want once per group (2)", runs.Load())
		}
		for _, group := range []string{"billing", "audit"} {
			if got, want := s.applied(t, group), map[string]int64{"m-1": 1}; !equalCounts(got, want) {
				t.Errorf("%s: applied = %v, want %v", group, got, want)
			}
		}
	})
}

// TestConcurrentDuplicates delivers the same IDs from many goroutines at once, each with its own
// Inbox (as separate consumer processes would), retrying every failed delivery as a broker would.
func TestConcurrentDuplicates(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *store) {
		const (
			workers = 8
			ids     = 25
		)
		ctx := context.Background()
		var runs, failures, dups atomic.Int64
		start := make(chan struct{})
		var wg sync.WaitGroup
		errs := make(chan error, workers)
		for w := range workers {
			c := s.inbox(t, consumerConf{Consumer: "billing", OnDuplicate: func(context.Context, *messaging.Message) { dups.Add(1) }})
			apply := counting(s, "billing", &runs)
			h := c.handle(func(ctx context.Context, tx execer, m *messaging.Message) error {
				if err := apply(ctx, tx, m); err != nil {
					return err
				}
				time.Sleep(time.Millisecond) // hold the transaction open, so duplicates collide
				return nil
			})
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				order := rand.Perm(ids)
				for _, i := range order {
					m := msg(fmt.Sprintf("m-%d", i))
					for attempt := 1; ; attempt++ {
						m.Attempt = attempt
						err := h(ctx, m)
						if err == nil {
							break
						}
						failures.Add(1)
						if attempt == 50 {
							errs <- fmt.Errorf("worker %d: %s still failing after %d deliveries: %w", w, m.ID, attempt, err)
							return
						}
					}
				}
			}()
		}
		close(start)
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		t.Logf("%d deliveries, %d applied, %d duplicates, %d failed (redelivered)", workers*ids, runs.Load(), dups.Load(), failures.Load())
		got := s.applied(t, "billing")
		if len(got) != ids {
			t.Errorf("%d messages applied, want %d", len(got), ids)
		}
		for id, n := range got {
			if n != 1 {
				t.Errorf("%s applied %d times", id, n)
			}
		}
		if n := s.recorded(t, "billing"); n != ids {
			t.Errorf("%d inbox rows, want %d", n, ids)
		}
	})
}

// transfer is a money-like message: it moves amount from one account to another.
type transfer struct {
	from, to string
	amount   int64
	fails    int  // how many deliveries that reach the handler fail first
	midway   bool // fail between the two updates (a partial write to roll back)
}

func parseTransfer(p []byte) (from, to string, amount int64, err error) {
	f := strings.Split(string(p), ",")
	if len(f) != 3 {
		return "", "", 0, fmt.Errorf("bad payload %q", p)
	}
	amount, err = strconv.ParseInt(f[2], 10, 64)
	return f[0], f[1], amount, err
}

// deliveryQueue is a toy broker: at-least-once, random order, redelivery of failed deliveries.
type deliveryQueue struct {
	mu       sync.Mutex
	cond     *sync.Cond
	rng      *rand.Rand
	items    []*messaging.Message
	inflight int
	attempts map[string]int
}

func (q *deliveryQueue) pop() *messaging.Message {
	q.mu.Lock()
	defer q.mu.Unlock()
	for len(q.items) == 0 && q.inflight > 0 {
		q.cond.Wait()
	}
	if len(q.items) == 0 {
		return nil
	}
	i := q.rng.IntN(len(q.items))
	m := q.items[i]
	q.items[i] = q.items[len(q.items)-1]
	q.items = q.items[:len(q.items)-1]
	q.inflight++
	q.attempts[m.ID]++
	c := *m
	c.Attempt = q.attempts[m.ID]
	return &c
}

// done finishes a delivery; m is redelivered when redeliver is set.
func (q *deliveryQueue) done(m *messaging.Message, redeliver bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.inflight--
	if redeliver {
		q.items = append(q.items, m)
	}
	q.cond.Broadcast()
}

// TestRandomizedStream pushes a stream of transfers through the inbox with random duplicates,
// random handler failures (some after a partial write), lost acknowledgements and concurrent
// consumers. Whatever the interleaving, every transfer is applied exactly once, money is
// conserved and every balance is what applying each transfer once gives.
func TestRandomizedStream(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *store) {
		seed := testSeed(t)
		rng := rand.New(rand.NewPCG(seed, 0x1b0c))
		ctx := context.Background()
		const (
			accounts = 5
			initial  = 1000
			workers  = 4
		)
		nMsgs := 150 + rng.IntN(100)
		for a := range accounts {
			if err := s.exec(ctx, fmt.Sprintf("INSERT INTO %s_accounts (id, balance) VALUES ($1, $2)", s.table), fmt.Sprint("acct-", a), initial); err != nil {
				t.Fatal(err)
			}
		}
		transfers := map[string]*transfer{}
		want := map[string]int64{}
		for a := range accounts {
			want[fmt.Sprint("acct-", a)] = initial
		}
		q := &deliveryQueue{rng: rand.New(rand.NewPCG(seed, 0x9e37)), attempts: map[string]int{}}
		q.cond = sync.NewCond(&q.mu)
		for range nMsgs {
			from := rng.IntN(accounts)
			to := (from + 1 + rng.IntN(accounts-1)) % accounts
			tr := &transfer{from: fmt.Sprint("acct-", from), to: fmt.Sprint("acct-", to), amount: 1 + rng.Int64N(100)}
			if rng.IntN(10) < 3 {
				tr.fails = 1 + rng.IntN(2)
				tr.midway = rng.IntN(2) == 0
			}
			id := messaging.NewID()
			transfers[id] = tr
			want[tr.from] -= tr.amount
			want[tr.to] += tr.amount
			m := &messaging.Message{ID: id, Topic: "payments", Payload: fmt.Appendf(nil, "%s,%s,%d", tr.from, tr.to, tr.amount)}
			for range 1 + rng.IntN(3) { // the producer's duplicates
				q.items = append(q.items, m)
			}
		}

		var mu sync.Mutex
		runs := map[string]int{} // handler runs per ID (including failed ones)
		var deliveries, failures, dups, lostAcks atomic.Int64
		apply := func(ctx context.Context, tx execer, m *messaging.Message) error {
			from, to, amount, err := parseTransfer(m.Payload)
			if err != nil {
				return messaging.DeadLetter(err)
			}
			tr := transfers[m.ID]
			mu.Lock()
			runs[m.ID]++
			fail := runs[m.ID] <= tr.fails
			mu.Unlock()
			if fail && !tr.midway {
				return errInjected
			}
			// Update the two accounts in id order, so concurrent transfers never deadlock.
			first, second := []any{-amount, from}, []any{amount, to}
			if to < from {
				first, second = second, first
			}
			update := fmt.Sprintf("UPDATE %s_accounts SET balance = balance + $1 WHERE id = $2", s.table)
			if err := tx.Exec(ctx, update, first...); err != nil {
				return err
			}
			if fail {
				return fmt.Errorf("after the first update: %w", errInjected)
			}
			if err := tx.Exec(ctx, update, second...); err != nil {
				return err
			}
			return s.markApplied(ctx, tx, "billing", m.ID)
		}

		var wg sync.WaitGroup
		errs := make(chan error, workers)
		for w := range workers {
			c := s.inbox(t, consumerConf{Consumer: "billing", OnDuplicate: func(context.Context, *messaging.Message) { dups.Add(1) }})
			h := c.handle(apply)
			wrng := rand.New(rand.NewPCG(seed, uint64(w)))
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					m := q.pop()
					if m == nil {
						return
					}
					deliveries.Add(1)
					err := h(ctx, m)
					redeliver := err != nil
					if err != nil {
						failures.Add(1)
						if m.Attempt >= 100 {
							errs <- fmt.Errorf("%s still failing after %d deliveries: %w", m.ID, m.Attempt, err)
							q.done(m, false)
							return
						}
					} else if wrng.IntN(10) == 0 {
						lostAcks.Add(1) // the ack was lost: the broker delivers it again
						redeliver = true
					}
					q.done(m, redeliver)
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		t.Logf("%d transfers, %d deliveries, %d duplicates acknowledged, %d failed deliveries, %d lost acks",
			nMsgs, deliveries.Load(), dups.Load(), failures.Load(), lostAcks.Load())

		got := s.applied(t, "billing")
		if len(got) != nMsgs {
			t.Errorf("%d transfers applied, want %d", len(got), nMsgs)
		}
		for id, n := range got {
			if n != 1 {
				t.Errorf("transfer %s applied %d times", id, n)
			}
		}
		if n := s.recorded(t, "billing"); n != int64(nMsgs) {
			t.Errorf("%d inbox rows, want %d", n, nMsgs)
		}
		balances, err := s.query(ctx, fmt.Sprintf("SELECT id, balance FROM %s_accounts", s.table))
		if err != nil {
			t.Fatal(err)
		}
		var sum int64
		for _, b := range balances {
			sum += b
		}
		if sum != accounts*initial {
			t.Errorf("money not conserved: total %d, want %d", sum, accounts*initial)
		}
		if !equalCounts(balances, want) {
			t.Errorf("balances = %v, want %v", balances, want)
		}
	})
}

func TestCleanup(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *store) {
		ctx := context.Background()
		clk := clock.NewManual(time.Time{})
		var runs atomic.Int64
		billing := s.inbox(t, consumerConf{Consumer: "billing", Clock: clk, Retention: time.Hour, CleanupBatch: 2})
		audit := s.inbox(t, consumerConf{Consumer: "audit", Clock: clk, Retention: time.Hour})
		hb := billing.handle(counting(s, "billing", &runs))
		ha := audit.handle(counting(s, "audit", &runs))
		deliver := func(h messaging.Handler, ids ...string) {
			t.Helper()
			for _, id := range ids {
				if err := h(ctx, msg(id)); err != nil {
					t.Fatal(err)
				}
			}
		}

		deliver(hb, "old-1", "old-2", "old-3", "old-4", "old-5") // at t0
		deliver(ha, "old-1")
		clk.Advance(30 * time.Minute)
		deliver(hb, "new-1") // at t0+30m
		clk.Advance(45 * time.Minute)
		deliver(hb, "new-2") // at t0+75m; the cutoff is now t0+15m

		n, err := billing.cleanup(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if n != 5 {
			t.Errorf("Cleanup deleted %d rows, want the 5 older than the retention (batches of 2)", n)
		}
		if n, err := billing.cleanup(ctx); err != nil || n != 0 {
			t.Errorf("second Cleanup = %d, %v; want 0", n, err)
		}
		for id, want := range map[string]bool{"old-1": false, "old-5": false, "new-1": true, "new-2": true} {
			if got, err := billing.seen(ctx, id); err != nil || got != want {
				t.Errorf("billing Seen(%s) = %v, %v; want %v", id, got, err, want)
			}
		}
		if got, err := audit.seen(ctx, "old-1"); err != nil || !got {
			t.Errorf("billing's Cleanup touched audit's record: Seen = %v, %v", got, err)
		}

		// Records still kept deduplicate; a duplicate past the retention is applied again (the
		// documented trade-off).
		deliver(hb, "new-1", "new-2", "old-1")
		want := map[string]int64{"old-1": 2, "old-2": 1, "old-3": 1, "old-4": 1, "old-5": 1, "new-1": 1, "new-2": 1}
		if got := s.applied(t, "billing"); !equalCounts(got, want) {
			t.Errorf("applied = %v, want %v", got, want)
		}

		noRetention := s.inbox(t, consumerConf{Consumer: "billing", Clock: clk})
		if _, err := noRetention.cleanup(ctx); !errors.Is(err, inbox.ErrNoRetention) {
			t.Errorf("Cleanup without retention: err = %v, want ErrNoRetention", err)
		}
	})
}

func TestConfigValidation(t *testing.T) {
	db, err := sql.Open("sqlite", "file::memory:")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	good := inbox.Config{DB: db, Dialect: inbox.SQLite, Consumer: "c"}
	if _, err := inbox.New(good); err != nil {
		t.Fatalf("valid config: %v", err)
	}
	for name, mod := range map[string]func(*inbox.Config){
		"no DB":          func(c *inbox.Config) { c.DB = nil },
		"no dialect":     func(c *inbox.Config) { c.Dialect = 0 },
		"no consumer":    func(c *inbox.Config) { c.Consumer = "" },
		"bad table":      func(c *inbox.Config) { c.Table = "inbox; DROP TABLE users" },
		"quoted table":   func(c *inbox.Config) { c.Table = `"inbox"` },
		"three parts":    func(c *inbox.Config) { c.Table = "a.b.c" },
		"leading digit":  func(c *inbox.Config) { c.Table = "1inbox" },
		"long table":     func(c *inbox.Config) { c.Table = strings.Repeat("x", 49) },
		"neg. retention": func(c *inbox.Config) { c.Retention = -time.Second },
		"neg. batch":     func(c *inbox.Config) { c.CleanupBatch = -1 },
	} {
		cfg := good
		mod(&cfg)
		if _, err := inbox.New(cfg); err == nil {
			t.Errorf("%s: New accepted %+v", name, cfg)
		}
	}
	for _, table := range []string{"inbox", "app.inbox", "_x9"} {
		if _, err := inbox.Schema(inbox.Postgres, table); err != nil {
			t.Errorf("Schema(%q): %v", table, err)
		}
	}
	if _, err := inbox.NewPgx(inbox.PgxConfig{Consumer: "c"}); err == nil {
		t.Error("NewPgx accepted a nil DB")
	}
}

// TestSchemaQualifiedTable checks that a schema.table name works end to end on SQLite (the
// "main" schema) and on PostgreSQL ("public").
func TestSchemaQualifiedTable(t *testing.T) {
	for _, b := range []struct {
		name, driver, schema string
		d                    inbox.Dialect
	}{{"sqlite", "sqlite", "main", inbox.SQLite}, {"postgres", "pgx", "public", inbox.Postgres}} {
		t.Run(b.name, func(t *testing.T) {
			ctx := context.Background()
			dsn := "file:" + t.TempDir() + "/q.db"
			if b.d == inbox.Postgres {
				dsn = postgresURL()
			}
			db, err := sql.Open(b.driver, dsn)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
			defer cancel()
			if err := db.PingContext(pctx); err != nil {
				unavailable(t, b.name, err)
			}
			table := b.schema + "." + uniqueTable()
			if err := inbox.Migrate(ctx, db, b.d, table); err != nil {
				t.Fatal(err)
			}
			defer db.Exec("DROP TABLE IF EXISTS " + table)
			if err := inbox.Migrate(ctx, db, b.d, table); err != nil {
				t.Fatalf("Migrate is not idempotent: %v", err)
			}
			in, err := inbox.New(inbox.Config{DB: db, Dialect: b.d, Consumer: "c", Table: table})
			if err != nil {
				t.Fatal(err)
			}
			var runs int
			h := in.Handler(func(context.Context, *sql.Tx, *messaging.Message) error { runs++; return nil })
			for range 2 {
				if err := h(ctx, msg("m-1")); err != nil {
					t.Fatal(err)
				}
			}
			if runs != 1 {
				t.Errorf("handler ran %d times, want 1", runs)
			}
		})
	}
}

func mustDefaults(t testing.TB) messaging.SubscribeConfig {
	t.Helper()
	cfg, err := messaging.SubscribeConfig{Topic: "payments", Group: "billing"}.WithDefaults()
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func equalCounts(a, b map[string]int64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

package outbox

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/faultline-dev/faultline/internal/testkit"
	"github.com/faultline-dev/faultline/messaging"
)

// fakePub records what it publishes. fail, when set, is asked before each call: record says
// whether the messages count as accepted by the broker, err is what Publish returns.
type fakePub struct {
	mu    sync.Mutex
	msgs  []*messaging.Message
	calls int
	fail  func(call int, msgs []*messaging.Message) (record bool, err error)
}

func (p *fakePub) Publish(ctx context.Context, msgs ...*messaging.Message) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls++
	record, err := true, error(nil)
	if p.fail != nil {
		record, err = p.fail(p.calls, msgs)
	}
	if record {
		for _, m := range msgs {
			c := *m
			p.msgs = append(p.msgs, &c)
		}
	}
	return err
}

func (p *fakePub) published() []*messaging.Message {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]*messaging.Message(nil), p.msgs...)
}

func (p *fakePub) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.msgs)
}

// backend is one database under test, with a fresh outbox table.
type backend struct {
	name  string
	db    *sql.DB
	table Table
	// store returns a new store on the table (parallel: PostgreSQL's Parallel mode).
	store func(t *testing.T, parallel bool) Store
}

func (b *backend) add(t *testing.T, msgs ...*messaging.Message) {
	t.Helper()
	tx, err := b.db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	if err := b.table.Add(context.Background(), tx, msgs...); err != nil {
		tx.Rollback()
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
}

// ph is the dialect's n-th placeholder.
func (b *backend) ph(n int) string {
	if b.table.Dialect == SQLite {
		return "?"
	}
	return fmt.Sprintf("$%d", n)
}

func newSQLite(t testing.TB) *backend {
	t.Helper()
	db := testkit.SQLite(t, filepath.Join(t.TempDir(), "outbox.db"), 0)
	tbl := Table{Dialect: SQLite, Name: "outbox"}
	if err := tbl.Migrate(context.Background(), db); err != nil {
		t.Fatal(err)
	}
	if err := tbl.Migrate(context.Background(), db); err != nil { // idempotent
		t.Fatal(err)
	}
	return &backend{name: "sqlite", db: db, table: tbl, store: func(t *testing.T, _ bool) Store {
		s, err := NewSQLiteStore(SQLiteConfig{DB: db, Table: tbl.Name})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}}
}

// newPostgres returns a backend in a schema of its own, or skips when PostgreSQL is unreachable
// (fails instead under FAULTLINE_REQUIRE_SERVICES=1).
func newPostgres(t testing.TB) *backend {
	t.Helper()
	db := testkit.Postgres(t, 40)
	schema := testkit.Schema(t, db, "outbox_test_")
	tbl := Table{Dialect: Postgres, Name: schema + ".outbox", Channel: schema}
	if err := tbl.Migrate(context.Background(), db); err != nil {
		t.Fatal(err)
	}
	if err := tbl.Migrate(context.Background(), db); err != nil { // idempotent
		t.Fatal(err)
	}
	return &backend{name: "postgres", db: db, table: tbl, store: func(t *testing.T, parallel bool) Store {
		s, err := NewPostgresStore(PostgresConfig{DB: db, Table: tbl.Name, Channel: tbl.Channel, Parallel: parallel})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}}
}

// eachBackend runs f on SQLite and on PostgreSQL.
func eachBackend(t *testing.T, f func(t *testing.T, b *backend)) {
	t.Run("sqlite", func(t *testing.T) { f(t, newSQLite(t)) })
	t.Run("postgres", func(t *testing.T) { f(t, newPostgres(t)) })
}

func newRelay(t *testing.T, cfg RelayConfig) *Relay {
	t.Helper()
	r, err := NewRelay(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// waitFor polls cond until it holds or d passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func setBeforeMark(s Store, f func() error) {
	switch s := s.(type) {
	case *SQLiteStore:
		s.beforeMark = f
	case *PostgresStore:
		s.beforeMark = f
	}
}

func msg(topic, key string, payload string) *messaging.Message {
	return &messaging.Message{Topic: topic, Key: key, Payload: []byte(payload)}
}

func unsent(t *testing.T, b *backend) int {
	t.Helper()
	var n int
	if err := b.db.QueryRow(`SELECT count(*) FROM ` + b.table.Name + ` WHERE sent_at IS NULL`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

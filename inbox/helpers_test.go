package inbox_test

// Test helpers: replayable seeds, the databases (SQLite in a temp file, the machine's PostgreSQL
// through database/sql and through a pgx pool) behind one small interface, and business tables
// whose rows show whether a message was applied once.

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"
	_ "modernc.org/sqlite"             // database/sql driver "sqlite"

	"github.com/faultline-dev/faultline/clock"
	"github.com/faultline-dev/faultline/inbox"
	"github.com/faultline-dev/faultline/messaging"
)

// testSeed returns the seed for a randomized test: FAULTLINE_SEED when set, else a fresh one.
// It is logged so a failure can be replayed.
func testSeed(t testing.TB) uint64 {
	t.Helper()
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("FAULTLINE_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("FAULTLINE_SEED=%q: %v", s, err)
		}
		seed = v
	}
	t.Logf("seed %d (replay with FAULTLINE_SEED=%d)", seed, seed)
	return seed
}

const defaultPostgresURL = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

func postgresURL() string {
	if u := os.Getenv("FAULTLINE_POSTGRES_URL"); u != "" {
		return u
	}
	return defaultPostgresURL
}

// unavailable skips the test, or fails it when FAULTLINE_REQUIRE_SERVICES=1.
func unavailable(t testing.TB, what string, err error) {
	t.Helper()
	if os.Getenv("FAULTLINE_REQUIRE_SERVICES") == "1" {
		t.Fatalf("%s unreachable and FAULTLINE_REQUIRE_SERVICES=1: %v", what, err)
	}
	t.Skipf("%s unreachable (set FAULTLINE_POSTGRES_URL; FAULTLINE_REQUIRE_SERVICES=1 makes this fail): %v", what, err)
}

// uniqueTable returns a fresh table name, so tests never share rows.
func uniqueTable() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return "inbox_t_" + hex.EncodeToString(b[:])
}

// execer is the one thing the business logic needs from a transaction, on every backend.
type execer interface {
	Exec(ctx context.Context, query string, args ...any) error
}

type sqlExecer struct{ tx *sql.Tx }

func (e sqlExecer) Exec(ctx context.Context, q string, args ...any) error {
	_, err := e.tx.ExecContext(ctx, q, args...)
	return err
}

type pgxExecer struct{ tx pgx.Tx }

func (e pgxExecer) Exec(ctx context.Context, q string, args ...any) error {
	_, err := e.tx.Exec(ctx, q, args...)
	return err
}

// applyFunc is business logic written once for every backend.
type applyFunc func(ctx context.Context, tx execer, msg *messaging.Message) error

// consumerConf is what a test varies per inbox.
type consumerConf struct {
	Consumer     string
	Clock        clock.Clock
	Retention    time.Duration
	CleanupBatch int
	OnDuplicate  func(context.Context, *messaging.Message)
}

// consumer is an inbox on some backend, seen through what the tests use.
type consumer struct {
	handle  func(apply applyFunc) messaging.Handler
	cleanup func(ctx context.Context) (int64, error)
	seen    func(ctx context.Context, id string) (bool, error)
}

// store is one database with the inbox table (named table) and the business tables
// table_applied (consumer, message_id, n: how many times the message was applied) and
// table_accounts (id, balance). Queries use $N placeholders, which SQLite accepts too.
type store struct {
	table    string
	exec     func(ctx context.Context, q string, args ...any) error
	queryInt func(ctx context.Context, q string, args ...any) (int64, error)
	query    func(ctx context.Context, q string, args ...any) (map[string]int64, error) // two columns: text, bigint
	inbox    func(t testing.TB, c consumerConf) consumer
}

type backend struct {
	name string
	open func(t testing.TB) *store
}

var backends = []backend{
	{"sqlite", openSQLiteStore},
	{"postgres", openPostgresStore},
	{"pgx", openPgxStore},
}

// forEachBackend runs f as a subtest per backend.
func forEachBackend(t *testing.T, f func(t *testing.T, s *store)) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) { f(t, b.open(t)) })
	}
}

func businessSchema(table string) []string {
	return []string{
		fmt.Sprintf("CREATE TABLE %s_applied (consumer text NOT NULL, message_id text NOT NULL, n bigint NOT NULL, PRIMARY KEY (consumer, message_id))", table),
		fmt.Sprintf("CREATE TABLE %s_accounts (id text PRIMARY KEY, balance bigint NOT NULL)", table),
	}
}

// markApplied is the business write every test handler makes: it counts applications per message.
func (s *store) markApplied(ctx context.Context, tx execer, consumer, id string) error {
	return tx.Exec(ctx, fmt.Sprintf(
		"INSERT INTO %[1]s_applied (consumer, message_id, n) VALUES ($1, $2, 1) ON CONFLICT (consumer, message_id) DO UPDATE SET n = %[1]s_applied.n + 1",
		s.table), consumer, id)
}

// applied returns how many times each message was applied for consumer.
func (s *store) applied(t testing.TB, consumer string) map[string]int64 {
	t.Helper()
	m, err := s.query(context.Background(), fmt.Sprintf("SELECT message_id, n FROM %s_applied WHERE consumer = $1", s.table), consumer)
	if err != nil {
		t.Fatalf("read applied: %v", err)
	}
	return m
}

// recorded returns how many inbox rows consumer has.
func (s *store) recorded(t testing.TB, consumer string) int64 {
	t.Helper()
	n, err := s.queryInt(context.Background(), fmt.Sprintf("SELECT count(*) FROM %s WHERE consumer = $1", s.table), consumer)
	if err != nil {
		t.Fatalf("count inbox rows: %v", err)
	}
	return n
}

func sqlStore(t testing.TB, db *sql.DB, d inbox.Dialect) *store {
	t.Helper()
	ctx := context.Background()
	table := uniqueTable()
	if err := inbox.Migrate(ctx, db, d, table); err != nil {
		t.Fatal(err)
	}
	for _, q := range businessSchema(table) {
		if _, err := db.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	s := &store{table: table}
	s.exec = func(ctx context.Context, q string, args ...any) error {
		_, err := db.ExecContext(ctx, q, args...)
		return err
	}
	s.queryInt = func(ctx context.Context, q string, args ...any) (int64, error) {
		var n int64
		err := db.QueryRowContext(ctx, q, args...).Scan(&n)
		return n, err
	}
	s.query = func(ctx context.Context, q string, args ...any) (map[string]int64, error) {
		rows, err := db.QueryContext(ctx, q, args...)
		if err != nil {
			return nil, err
		}
		defer rows.Close()
		m := map[string]int64{}
		for rows.Next() {
			var k string
			var v int64
			if err := rows.Scan(&k, &v); err != nil {
				return nil, err
			}
			m[k] = v
		}
		return m, rows.Err()
	}
	s.inbox = func(t testing.TB, c consumerConf) consumer {
		t.Helper()
		in, err := inbox.New(inbox.Config{
			DB: db, Dialect: d, Consumer: c.Consumer, Table: table, Clock: c.Clock,
			Retention: c.Retention, CleanupBatch: c.CleanupBatch, OnDuplicate: c.OnDuplicate,
		})
		if err != nil {
			t.Fatal(err)
		}
		return consumer{
			handle: func(apply applyFunc) messaging.Handler {
				return in.Handler(func(ctx context.Context, tx *sql.Tx, msg *messaging.Message) error {
					return apply(ctx, sqlExecer{tx}, msg)
				})
			},
			cleanup: in.Cleanup,
			seen:    in.Seen,
		}
	}
	return s
}

func openSQLiteStore(t testing.TB) *store {
	t.Helper()
	path := filepath.Join(t.TempDir(), "inbox.db")
	dsn := "file:" + path + "?_pragma=journal_mode(WAL)&_pragma=busy_timeout(30000)&_pragma=synchronous(NORMAL)&_txlock=immediate"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(8)
	t.Cleanup(func() { db.Close() })
	return sqlStore(t, db, inbox.SQLite)
}

func dropTables(t testing.TB, exec func(ctx context.Context, q string, args ...any) error, table string) {
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		for _, suffix := range []string{"", "_applied", "_accounts"} {
			if err := exec(ctx, "DROP TABLE IF EXISTS "+table+suffix); err != nil {
				t.Logf("drop %s%s: %v", table, suffix, err)
			}
		}
	})
}

func openPostgresStore(t testing.TB) *store {
	t.Helper()
	db, err := sql.Open("pgx", postgresURL())
	if err != nil {
		unavailable(t, "PostgreSQL", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		unavailable(t, "PostgreSQL", err)
	}
	db.SetMaxOpenConns(16)
	t.Cleanup(func() { db.Close() })
	s := sqlStore(t, db, inbox.Postgres)
	dropTables(t, s.exec, s.table) // registered after db.Close, so it runs before it
	return s
}

func openPgxStore(t testing.TB) *store {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(postgresURL())
	if err != nil {
		t.Fatalf("FAULTLINE_POSTGRES_URL: %v", err)
	}
	cfg.MaxConns = 16
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err == nil {
		err = pool.Ping(ctx)
	}
	if err != nil {
		if pool != nil {
			pool.Close()
		}
		unavailable(t, "PostgreSQL", err)
	}
	t.Cleanup(pool.Close)
	table := uniqueTable()
	if err := inbox.MigratePgx(ctx, pool, table); err != nil {
		t.Fatal(err)
	}
	s := &store{table: table}
	s.exec = func(ctx context.Context, q string, args ...any) error {
		_, err := pool.Exec(ctx, q, args...)
		return err
	}
	dropTables(t, s.exec, table)
	for _, q := range businessSchema(table) {
		if err := s.exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	s.queryInt = func(ctx context.Context, q string, args ...any) (int64, error) {
		var n int64
		err := pool.QueryRow(ctx, q, args...).Scan(&n)
		return n, err
	}
	s.query = func(ctx context.Context, q string, args ...any) (map[string]int64, error) {
		rows, err := pool.Query(ctx, q, args...)
		if err != nil {
			return nil, err
		}
		defer rows.Close()
		m := map[string]int64{}
		for rows.Next() {
			var k string
			var v int64
			if err := rows.Scan(&k, &v); err != nil {
				return nil, err
			}
			m[k] = v
		}
		return m, rows.Err()
	}
	s.inbox = func(t testing.TB, c consumerConf) consumer {
		t.Helper()
		in, err := inbox.NewPgx(inbox.PgxConfig{
			DB: pool, Consumer: c.Consumer, Table: table, Clock: c.Clock,
			Retention: c.Retention, CleanupBatch: c.CleanupBatch, OnDuplicate: c.OnDuplicate,
		})
		if err != nil {
			t.Fatal(err)
		}
		return consumer{
			handle: func(apply applyFunc) messaging.Handler {
				return in.Handler(func(ctx context.Context, tx pgx.Tx, msg *messaging.Message) error {
					return apply(ctx, pgxExecer{tx}, msg)
				})
			},
			cleanup: in.Cleanup,
			seen:    in.Seen,
		}
	}
	return s
}

// errInjected is the failure tests make handlers return.
var errInjected = errors.New("injected handler failure")

package testkit

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"os"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver
	_ "modernc.org/sqlite"             // the "sqlite" database/sql driver
)

// PostgresURL is the PostgreSQL that tests use: FAULTLINE_POSTGRES_URL, or the machine's local
// server.
func PostgresURL() string {
	if u := os.Getenv("FAULTLINE_POSTGRES_URL"); u != "" {
		return u
	}
	return "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
}

// Postgres opens the test PostgreSQL (pgx's database/sql driver) with at most maxOpen
// connections (0: no limit) and closes it when the test ends. When the server is unreachable the
// test is skipped, or fails under FAULTLINE_REQUIRE_SERVICES=1.
func Postgres(t testing.TB, maxOpen int) *sql.DB {
	t.Helper()
	db, err := sql.Open("pgx", PostgresURL())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		if os.Getenv("FAULTLINE_REQUIRE_SERVICES") == "1" {
			t.Fatalf("PostgreSQL at %s unreachable and FAULTLINE_REQUIRE_SERVICES=1: %v", PostgresURL(), err)
		}
		t.Skipf("PostgreSQL at %s unreachable (set FAULTLINE_REQUIRE_SERVICES=1 to fail): %v", PostgresURL(), err)
	}
	db.SetMaxOpenConns(maxOpen)
	db.SetMaxIdleConns(max(maxOpen, 2))
	t.Cleanup(func() { db.Close() })
	return db
}

// Schema creates a schema named prefix + a random suffix in db and drops it (with everything in
// it) when the test ends, before db is closed.
func Schema(t testing.TB, db *sql.DB, prefix string) string {
	t.Helper()
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	name := prefix + hex.EncodeToString(b)
	if _, err := db.Exec("CREATE SCHEMA " + name); err != nil {
		t.Fatalf("create schema %s: %v", name, err)
	}
	t.Cleanup(func() {
		if _, err := db.Exec("DROP SCHEMA " + name + " CASCADE"); err != nil {
			t.Errorf("drop schema %s: %v", name, err)
		}
	})
	return name
}

// SQLiteDSN is the data source name faultline's tests and examples open SQLite files with:
// WAL, a 30 s busy timeout, synchronous=NORMAL and immediate transactions (so writers queue on
// the busy timeout instead of failing to upgrade a read lock).
func SQLiteDSN(path string) string {
	return "file:" + path + "?_pragma=busy_timeout(30000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_txlock=immediate"
}

// SQLite opens the SQLite file at path (modernc's driver, SQLiteDSN) with at most maxOpen
// connections (0: no limit) and closes it when the test ends.
func SQLite(t testing.TB, path string, maxOpen int) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", SQLiteDSN(path))
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(maxOpen)
	t.Cleanup(func() { db.Close() })
	return db
}

package shop

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	_ "modernc.org/sqlite" // the "sqlite" database/sql driver

	"github.com/faultline-dev/faultline/outbox"
	"github.com/faultline-dev/faultline/saga"
)

// Service names a service of the shop. Each owns one database: a SQLite file Dir/<name>.db, or the
// PostgreSQL schema Prefix_<name>.
type Service string

// The three services.
const (
	Orders    Service = "orders"
	Inventory Service = "inventory"
	Payment   Service = "payment"
)

// Services lists the services in the order a run starts them.
var Services = []Service{Orders, Inventory, Payment}

// Valid reports whether s is one of Services.
func (s Service) Valid() bool { return s == Orders || s == Inventory || s == Payment }

// DefaultSchemaPrefix is Store.Prefix's default.
const DefaultSchemaPrefix = "shop"

// Store says where the services keep their databases. Each service owns its own database and no
// service reads another's: with Dir, a SQLite file per service (orders.db, inventory.db,
// payment.db); with Postgres, a schema per service in one PostgreSQL database (Prefix_orders,
// Prefix_inventory, Prefix_payment), reached through a connection whose search_path is that
// schema, so a service's SQL names its tables without a schema, exactly as on SQLite. Only Check,
// the auditor, opens all three.
type Store struct {
	// Dir is the directory of the SQLite files. Used when Postgres is empty; required then.
	Dir string
	// Postgres is a pgx connection string (URL or key=value form). When set, the services use
	// PostgreSQL.
	Postgres string
	// Prefix names the PostgreSQL schemas: Prefix + "_" + service. Letters, digits and
	// underscores, at most 30 characters. Empty means DefaultSchemaPrefix.
	Prefix string
}

var schemaPrefix = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,29}$`)

// Validate reports the first problem with s.
func (s Store) Validate() error {
	if s.Postgres == "" {
		if s.Dir == "" {
			return errors.New("shop: Store: Dir is empty and Postgres is not set: say where the databases go")
		}
		return nil
	}
	if s.Prefix != "" && !schemaPrefix.MatchString(s.Prefix) {
		return fmt.Errorf("shop: Store.Prefix %q: want lower-case letters, digits and underscores, at most 30, not starting with a digit", s.Prefix)
	}
	if _, err := pgx.ParseConfig(s.Postgres); err != nil {
		return fmt.Errorf("shop: Store.Postgres: %w", err)
	}
	return nil
}

// Dialect is the SQL flavour of the store.
func (s Store) Dialect() saga.Dialect {
	if s.Postgres != "" {
		return saga.Postgres
	}
	return saga.SQLite
}

// Schema is the PostgreSQL schema of svc ("" on SQLite).
func (s Store) Schema(svc Service) string {
	if s.Postgres == "" {
		return ""
	}
	p := s.Prefix
	if p == "" {
		p = DefaultSchemaPrefix
	}
	return p + "_" + string(svc)
}

// Where describes the database of svc for people: a file path or "postgres schema x".
func (s Store) Where(svc Service) string {
	if s.Postgres == "" {
		return filepath.Join(s.Dir, string(svc)+".db")
	}
	return "PostgreSQL schema " + s.Schema(svc)
}

// table returns the name of a framework table (saga store, outbox, barrier) of svc. On
// PostgreSQL it is schema-qualified although the connection's search_path would find it: the
// outbox relay's lock and the migrations' advisory locks are keyed on the name, and the services
// must not share them.
func (s Store) table(svc Service, name string) string {
	if sc := s.Schema(svc); sc != "" {
		return sc + "." + name
	}
	return name
}

// outboxTable is the outbox of svc, with a NOTIFY channel of its own on PostgreSQL.
func (s Store) outboxTable(svc Service) outbox.Table {
	t := outbox.Table{Dialect: s.Dialect(), Name: s.table(svc, outbox.DefaultTable)}
	if sc := s.Schema(svc); sc != "" {
		t.Channel = sc + "_outbox"
	}
	return t
}

// sagaTable is the orchestrator's saga table.
func (s Store) sagaTable() string { return s.table(Orders, saga.DefaultTable) }

// barrierTable is a participant's barrier table.
func (s Store) barrierTable(svc Service) string { return s.table(svc, saga.DefaultBarrierTable) }

// db is an open service database.
type db struct {
	*sql.DB
	dialect saga.Dialect
	schema  string // PostgreSQL only
}

// q rewrites a statement written with ? placeholders for the dialect ($1, $2, … on PostgreSQL).
func (d *db) q(query string) string { return rebind(d.dialect, query) }

func rebind(d saga.Dialect, query string) string {
	if d != saga.Postgres {
		return query
	}
	var b strings.Builder
	n := 0
	for i := 0; i < len(query); i++ {
		if query[i] == '?' {
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteByte(query[i])
	}
	return b.String()
}

// open opens the database of svc (lazily: nothing is dialled until it is used), creating the
// SQLite file's directory. On PostgreSQL the connection's search_path is the service's schema,
// which migrate creates.
func (s Store) open(svc Service) (*db, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	if s.Postgres == "" {
		if err := os.MkdirAll(s.Dir, 0o755); err != nil {
			return nil, fmt.Errorf("shop: %s database: %w", svc, err)
		}
		path := s.Where(svc)
		// _txlock=immediate: a transaction takes the write lock when it begins, so two writers
		// never deadlock upgrading read locks. One connection: writers queue in database/sql
		// (fair, no busy-wait) rather than in SQLite's busy handler; no code path holds a
		// transaction while it needs a second connection.
		sdb, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(30000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_txlock=immediate")
		if err != nil {
			return nil, fmt.Errorf("shop: %s database %s: %w", svc, path, err)
		}
		sdb.SetMaxOpenConns(1)
		return &db{DB: sdb, dialect: saga.SQLite}, nil
	}
	cfg, err := pgx.ParseConfig(s.Postgres)
	if err != nil {
		return nil, fmt.Errorf("shop: Store.Postgres: %w", err)
	}
	schema := s.Schema(svc)
	cfg.RuntimeParams["search_path"] = schema
	pdb := stdlib.OpenDB(*cfg)
	pdb.SetMaxOpenConns(16)
	return &db{DB: pdb, dialect: saga.Postgres, schema: schema}, nil
}

// migrate creates the schema (PostgreSQL) and runs the statements, written with SQLite's and
// PostgreSQL's common syntax.
func (d *db) migrate(ctx context.Context, stmts ...string) error {
	if d.schema != "" {
		if _, err := d.ExecContext(ctx, "CREATE SCHEMA IF NOT EXISTS "+d.schema); err != nil {
			return fmt.Errorf("create schema %s: %w", d.schema, err)
		}
	}
	for _, q := range stmts {
		if _, err := d.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("%s: %w", strings.TrimSpace(strings.SplitN(q, "(", 2)[0]), err)
		}
	}
	return nil
}

// Reset deletes every service's data, so that a run starts from empty databases: the SQLite
// files (and their -wal and -shm companions) in Dir, or the PostgreSQL schemas with everything in
// them.
func (s Store) Reset(ctx context.Context) error {
	if err := s.Validate(); err != nil {
		return err
	}
	if s.Postgres == "" {
		for _, svc := range Services {
			for _, suffix := range []string{"", "-wal", "-shm", "-journal"} {
				if err := os.Remove(s.Where(svc) + suffix); err != nil && !errors.Is(err, os.ErrNotExist) {
					return fmt.Errorf("shop: reset: %w", err)
				}
			}
		}
		return nil
	}
	cfg, err := pgx.ParseConfig(s.Postgres)
	if err != nil {
		return fmt.Errorf("shop: Store.Postgres: %w", err)
	}
	pdb := stdlib.OpenDB(*cfg)
	defer pdb.Close()
	for _, svc := range Services {
		if _, err := pdb.ExecContext(ctx, "DROP SCHEMA IF EXISTS "+s.Schema(svc)+" CASCADE"); err != nil {
			return fmt.Errorf("shop: reset: drop schema %s: %w", s.Schema(svc), err)
		}
	}
	return nil
}

// Package outbox is the transactional outbox: an application writes its business rows and the
// messages it means to publish in one database transaction (Add, AddPgx), so that either both
// happen or neither does; a Relay then reads the unsent rows, publishes them through a
// messaging.Publisher and marks them sent.
//
// Delivery is at least once: a relay that publishes a batch and dies before marking it sent
// publishes it again, with the same message IDs (consumers deduplicate with package inbox). A
// committed row is never skipped: the relay selects every unsent row in id order (WHERE sent_at IS
// NULL ORDER BY id) instead of remembering a high-water mark, so a transaction that took a smaller
// id but committed after a larger one is published by the next poll rather than lost.
//
// Two stores are provided: SQLiteStore (modernc.org/sqlite, or any database/sql SQLite driver)
// and PostgresStore (pgx through its database/sql driver, waking on LISTEN/NOTIFY). See
// docs/messaging/outbox.md for the ordering guarantees, failure modes and throughput.
package outbox

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/faultline-dev/faultline/internal/sqlmigrate"
	"github.com/faultline-dev/faultline/messaging"
)

// Dialect is the SQL dialect of an outbox table.
type Dialect int

// Dialects.
const (
	// SQLite: the table has an INTEGER PRIMARY KEY AUTOINCREMENT id and a lease table for the
	// relay; times are stored as Unix microseconds.
	SQLite Dialect = iota + 1
	// Postgres: PostgreSQL 14 or later; the id is an identity column (CACHE 1) and an AFTER INSERT
	// trigger notifies the relay's channel.
	Postgres
)

func (d Dialect) String() string {
	switch d {
	case SQLite:
		return "sqlite"
	case Postgres:
		return "postgres"
	}
	return fmt.Sprintf("Dialect(%d)", int(d))
}

// Defaults for Table's zero fields.
const (
	DefaultTable   = "faultline_outbox"
	DefaultChannel = "faultline_outbox"
)

// Table names an outbox table. The zero Name and Channel mean DefaultTable and DefaultChannel.
type Table struct {
	Dialect Dialect
	// Name of the table: an identifier of letters, digits and underscores, which on PostgreSQL may
	// be qualified by a schema ("app.outbox"). The SQLite store also uses Name+"_lease".
	Name string
	// Channel is the PostgreSQL NOTIFY channel the insert trigger signals and the relay listens
	// on (letters, digits and underscores, at most 63). Ignored on SQLite.
	Channel string
}

func (t Table) withDefaults() (Table, error) {
	if t.Name == "" {
		t.Name = DefaultTable
	}
	if t.Channel == "" {
		t.Channel = DefaultChannel
	}
	switch t.Dialect {
	case SQLite, Postgres:
	default:
		return t, fmt.Errorf("outbox: Table.Dialect %v: want SQLite or Postgres", t.Dialect)
	}
	parts := strings.Split(t.Name, ".")
	if len(parts) > 2 || (len(parts) == 2 && t.Dialect == SQLite) {
		return t, fmt.Errorf("outbox: Table.Name %q: want an identifier (schema.name on PostgreSQL)", t.Name)
	}
	for _, p := range parts {
		if !validIdent(p) {
			return t, fmt.Errorf("outbox: Table.Name %q: want letters, digits and underscores, not starting with a digit, at most 50 characters", t.Name)
		}
	}
	if !validIdent(t.Channel) {
		return t, fmt.Errorf("outbox: Table.Channel %q: want letters, digits and underscores, not starting with a digit, at most 50 characters", t.Channel)
	}
	return t, nil
}

// validIdent accepts identifiers that need no quoting and leave room for suffixes within
// PostgreSQL's 63-byte limit.
func validIdent(s string) bool {
	if s == "" || len(s) > 50 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c == '_':
		case c >= '0' && c <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}

// base is the unqualified table name.
func (t Table) base() string {
	if i := strings.LastIndexByte(t.Name, '.'); i >= 0 {
		return t.Name[i+1:]
	}
	return t.Name
}

// schemaPrefix is "schema." or "".
func (t Table) schemaPrefix() string {
	if i := strings.LastIndexByte(t.Name, '.'); i >= 0 {
		return t.Name[:i+1]
	}
	return ""
}

// Schema returns the statements that create the table, its indexes and (SQLite) its lease table
// or (PostgreSQL) its notify trigger. They are idempotent.
func (t Table) Schema() ([]string, error) {
	t, err := t.withDefaults()
	if err != nil {
		return nil, err
	}
	b := t.base()
	switch t.Dialect {
	case SQLite:
		return []string{
			`CREATE TABLE IF NOT EXISTS ` + t.Name + ` (
	id         INTEGER PRIMARY KEY AUTOINCREMENT,
	message_id TEXT    NOT NULL UNIQUE,
	topic      TEXT    NOT NULL,
	msg_key    TEXT    NOT NULL DEFAULT '',
	headers    TEXT,
	payload    BLOB,
	created_at INTEGER NOT NULL,
	sent_at    INTEGER
)`,
			`CREATE INDEX IF NOT EXISTS ` + b + `_unsent ON ` + t.Name + ` (id) WHERE sent_at IS NULL`,
			`CREATE INDEX IF NOT EXISTS ` + b + `_sent_at ON ` + t.Name + ` (sent_at) WHERE sent_at IS NOT NULL`,
			`CREATE TABLE IF NOT EXISTS ` + t.Name + `_lease (
	name       TEXT    PRIMARY KEY,
	owner      TEXT    NOT NULL,
	expires_at INTEGER NOT NULL
)`,
			`INSERT OR IGNORE INTO ` + t.Name + `_lease (name, owner, expires_at) VALUES ('relay', '', 0)`,
		}, nil
	default:
		fn := t.schemaPrefix() + b + `_notify`
		return []string{
			`CREATE TABLE IF NOT EXISTS ` + t.Name + ` (
	id         bigint      GENERATED ALWAYS AS IDENTITY (CACHE 1) PRIMARY KEY,
	message_id text        NOT NULL UNIQUE,
	topic      text        NOT NULL,
	msg_key    text        NOT NULL DEFAULT '',
	headers    jsonb,
	payload    bytea,
	created_at timestamptz NOT NULL DEFAULT now(),
	sent_at    timestamptz
)`,
			`CREATE INDEX IF NOT EXISTS ` + b + `_unsent ON ` + t.Name + ` (id) WHERE sent_at IS NULL`,
			`CREATE INDEX IF NOT EXISTS ` + b + `_sent_at ON ` + t.Name + ` (sent_at) WHERE sent_at IS NOT NULL`,
			`CREATE OR REPLACE FUNCTION ` + fn + `() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	PERFORM pg_notify(TG_ARGV[0], '');
	RETURN NULL;
END
$$`,
			`CREATE OR REPLACE TRIGGER ` + b + `_notify AFTER INSERT ON ` + t.Name +
				` FOR EACH STATEMENT EXECUTE FUNCTION ` + fn + `('` + t.Channel + `')`,
		}, nil
	}
}

// Migrate creates the table (Schema) in db. On PostgreSQL it runs in one transaction under an
// advisory lock, so concurrent migrations of the same table do not collide.
func (t Table) Migrate(ctx context.Context, db *sql.DB) error {
	t, err := t.withDefaults()
	if err != nil {
		return err
	}
	stmts, err := t.Schema()
	if err != nil {
		return err
	}
	if err := sqlmigrate.Apply(ctx, db, t.Dialect == Postgres, "faultline_outbox_migrate:"+t.Name, stmts); err != nil {
		return fmt.Errorf("outbox: migrate %s: %w", t.Name, err)
	}
	return nil
}

// Schema returns the statements creating the default table (DefaultTable) for d.
func Schema(d Dialect) ([]string, error) { return Table{Dialect: d}.Schema() }

// Migrate creates the default table (DefaultTable) for d in db.
func Migrate(ctx context.Context, db *sql.DB, d Dialect) error {
	return Table{Dialect: d}.Migrate(ctx, db)
}

// Add writes msgs to the default outbox table in tx, the application's transaction; they are
// published after tx commits, and never if it rolls back. See Table.Add.
func Add(ctx context.Context, tx *sql.Tx, d Dialect, msgs ...*messaging.Message) error {
	return Table{Dialect: d}.Add(ctx, tx, msgs...)
}

// AddPgx writes msgs to the default PostgreSQL outbox table in tx. See Table.AddPgx.
func AddPgx(ctx context.Context, tx pgx.Tx, msgs ...*messaging.Message) error {
	return Table{Dialect: Postgres}.AddPgx(ctx, tx, msgs...)
}

// maxRowsPerInsert keeps an insert's parameters well under SQLite's and PostgreSQL's limits.
const maxRowsPerInsert = 500

// Add writes msgs to the outbox table in tx (database/sql: SQLite, or PostgreSQL through pgx's
// stdlib driver). Each message is checked with messaging.Prepare, which fills an empty ID with
// messaging.NewID, so the caller sees the ID that every publication of the message will carry.
// A message ID already in the table is a unique-constraint error. On error the caller must roll
// tx back.
func (t Table) Add(ctx context.Context, tx *sql.Tx, msgs ...*messaging.Message) error {
	t, err := t.withDefaults()
	if err != nil {
		return err
	}
	if tx == nil {
		return errors.New("outbox: Add: nil transaction")
	}
	return t.add(ctx, msgs, func(q string, args []any) error {
		_, err := tx.ExecContext(ctx, q, args...)
		return err
	})
}

// AddPgx writes msgs to the PostgreSQL outbox table in tx, a pgx transaction (from a pgx.Conn or
// a pgxpool.Pool). Otherwise as Add.
func (t Table) AddPgx(ctx context.Context, tx pgx.Tx, msgs ...*messaging.Message) error {
	t, err := t.withDefaults()
	if err != nil {
		return err
	}
	if t.Dialect != Postgres {
		return fmt.Errorf("outbox: AddPgx: Table.Dialect %v: want Postgres", t.Dialect)
	}
	if tx == nil {
		return errors.New("outbox: AddPgx: nil transaction")
	}
	return t.add(ctx, msgs, func(q string, args []any) error {
		_, err := tx.Exec(ctx, q, args...)
		return err
	})
}

func (t Table) add(ctx context.Context, msgs []*messaging.Message, exec func(q string, args []any) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	for _, m := range msgs {
		if err := messaging.Prepare(m); err != nil {
			return fmt.Errorf("outbox: Add: %w", err)
		}
	}
	now := time.Now().UnixMicro()
	for len(msgs) > 0 {
		chunk := msgs[:min(len(msgs), maxRowsPerInsert)]
		msgs = msgs[len(chunk):]
		var q strings.Builder
		args := make([]any, 0, 6*len(chunk))
		q.WriteString(`INSERT INTO ` + t.Name + ` (message_id, topic, msg_key, headers, payload`)
		if t.Dialect == SQLite {
			q.WriteString(`, created_at`)
		}
		q.WriteString(`) VALUES `)
		for i, m := range chunk {
			var headers any // NULL for no headers
			if len(m.Headers) > 0 {
				b, err := json.Marshal(m.Headers)
				if err != nil {
					return fmt.Errorf("outbox: Add: message %q headers: %w", m.ID, err)
				}
				headers = string(b)
			}
			payload := m.Payload
			if payload == nil {
				payload = []byte{}
			}
			if i > 0 {
				q.WriteString(`, `)
			}
			if t.Dialect == SQLite {
				q.WriteString(`(?, ?, ?, ?, ?, ?)`)
				args = append(args, m.ID, m.Topic, m.Key, headers, payload, now)
			} else {
				n := len(args)
				fmt.Fprintf(&q, `($%d, $%d, $%d, $%d::text::jsonb, $%d)`, n+1, n+2, n+3, n+4, n+5)
				args = append(args, m.ID, m.Topic, m.Key, headers, payload)
			}
		}
		if err := exec(q.String(), args); err != nil {
			return fmt.Errorf("outbox: Add to %s: %w", t.Name, err)
		}
	}
	return nil
}

// row scanning shared by the stores.
func scanMessage(rows *sql.Rows) (int64, *messaging.Message, error) {
	var (
		id      int64
		m       messaging.Message
		headers sql.NullString
		payload []byte
	)
	if err := rows.Scan(&id, &m.ID, &m.Topic, &m.Key, &headers, &payload); err != nil {
		return 0, nil, err
	}
	if headers.Valid && headers.String != "" {
		if err := json.Unmarshal([]byte(headers.String), &m.Headers); err != nil {
			return 0, nil, fmt.Errorf("row %d headers: %w", id, err)
		}
	}
	m.Payload = payload
	return id, &m, nil
}

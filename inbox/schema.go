package inbox

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"
)

// Dialect is the SQL flavour of the consumer's database.
type Dialect int

const (
	// SQLite (3.24 or later, for ON CONFLICT DO NOTHING): processed_at is stored as Unix
	// microseconds in an INTEGER column.
	SQLite Dialect = iota + 1
	// Postgres (9.5 or later): processed_at is a timestamptz.
	Postgres
)

// String returns the dialect's name.
func (d Dialect) String() string {
	switch d {
	case SQLite:
		return "sqlite"
	case Postgres:
		return "postgres"
	}
	return fmt.Sprintf("Dialect(%d)", int(d))
}

// DefaultTable is the inbox table's name when Config.Table is empty.
const DefaultTable = "faultline_inbox"

// maxTableName keeps the derived index name within PostgreSQL's 63-byte identifier limit.
const maxTableName = 48

// checkTable accepts an unquoted identifier, optionally qualified by a schema: "name" or
// "schema.name", each part [A-Za-z_][A-Za-z0-9_]*. The name is pasted into SQL, so nothing else
// is allowed.
func checkTable(table string) error {
	parts := strings.Split(table, ".")
	if len(parts) > 2 {
		return fmt.Errorf("inbox: table %q: want name or schema.name", table)
	}
	for _, p := range parts {
		if p == "" || len(p) > maxTableName {
			return fmt.Errorf("inbox: table %q: each part must be 1 to %d characters", table, maxTableName)
		}
		for i := 0; i < len(p); i++ {
			c := p[i]
			ok := c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || i > 0 && c >= '0' && c <= '9'
			if !ok {
				return fmt.Errorf("inbox: table %q: character %q: want letters, digits and '_' (not leading digits)", table, c)
			}
		}
	}
	return nil
}

func (d Dialect) check() error {
	if d != SQLite && d != Postgres {
		return fmt.Errorf("inbox: unknown dialect %v: want inbox.SQLite or inbox.Postgres", d)
	}
	return nil
}

// Schema returns the statements that create the inbox table and its cleanup index, for d and
// table ("" means DefaultTable), for teams that run their own migration tool. Every statement
// is idempotent (IF NOT EXISTS).
func Schema(d Dialect, table string) ([]string, error) {
	if err := d.check(); err != nil {
		return nil, err
	}
	if table == "" {
		table = DefaultTable
	}
	if err := checkTable(table); err != nil {
		return nil, err
	}
	schema, name := "", table
	if i := strings.IndexByte(table, '.'); i >= 0 {
		schema, name = table[:i], table[i+1:]
	}
	index := name + "_processed_idx"
	timeType := "timestamptz"
	createIndex := fmt.Sprintf("CREATE INDEX IF NOT EXISTS %s ON %s (consumer, processed_at)", index, table)
	tableSuffix := ""
	if d == SQLite {
		timeType = "INTEGER" // Unix microseconds
		tableSuffix = " WITHOUT ROWID"
		// SQLite qualifies the index name, not the table name, with the schema.
		if schema != "" {
			index = schema + "." + index
		}
		createIndex = fmt.Sprintf("CREATE INDEX IF NOT EXISTS %s ON %s (consumer, processed_at)", index, name)
	}
	return []string{
		fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %s (
	consumer     text NOT NULL,
	message_id   text NOT NULL,
	processed_at %s NOT NULL,
	PRIMARY KEY (consumer, message_id)
)%s`, table, timeType, tableSuffix),
		createIndex,
	}, nil
}

// Migrate creates the inbox table (table "" means DefaultTable) and its index in db if they do
// not exist. Run it once at start-up, or put the statements of Schema in your own migrations.
func Migrate(ctx context.Context, db *sql.DB, d Dialect, table string) error {
	stmts, err := Schema(d, table)
	if err != nil {
		return err
	}
	for _, s := range stmts {
		if _, err := db.ExecContext(ctx, s); err != nil {
			return fmt.Errorf("inbox: migrate: %w", err)
		}
	}
	return nil
}

// queries holds the SQL an inbox runs, built once for its dialect and table.
type queries struct {
	insert  string // args: consumer, message_id, processed_at
	seen    string // args: consumer, message_id
	cleanup string // args: consumer, cutoff, batch
}

func buildQueries(d Dialect, table string) queries {
	p := func(i int) string {
		if d == SQLite {
			return fmt.Sprintf("?%d", i) // numbered, so the cleanup query can reuse ?1
		}
		return fmt.Sprintf("$%d", i)
	}
	return queries{
		insert: fmt.Sprintf("INSERT INTO %s (consumer, message_id, processed_at) VALUES (%s, %s, %s) ON CONFLICT (consumer, message_id) DO NOTHING",
			table, p(1), p(2), p(3)),
		seen: fmt.Sprintf("SELECT 1 FROM %s WHERE consumer = %s AND message_id = %s", table, p(1), p(2)),
		// Batched, so a large backlog never holds locks on the whole table for long. The inner
		// select uses the (consumer, processed_at) index.
		cleanup: fmt.Sprintf("DELETE FROM %[1]s WHERE consumer = %[2]s AND message_id IN (SELECT message_id FROM %[1]s WHERE consumer = %[2]s AND processed_at < %[3]s LIMIT %[4]s)",
			table, p(1), p(2), p(3)),
	}
}

// timeArg is the value stored in processed_at for t.
func (d Dialect) timeArg(t time.Time) any {
	if d == SQLite {
		return t.UnixMicro()
	}
	return t.UTC()
}

package twophase

import (
	"fmt"
	"strconv"
	"strings"
)

// Dialect is the SQL dialect of a coordinator's log or a participant's tables.
type Dialect int

// Dialects.
const (
	// SQLite through modernc.org/sqlite (driver "sqlite") or any database/sql SQLite driver. Open
	// the database with a busy timeout and WAL mode
	// ("file:x.db?_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)&_txlock=immediate").
	SQLite Dialect = iota + 1
	// Postgres: PostgreSQL through pgx's database/sql driver (driver "pgx").
	Postgres
)

// String returns "sqlite" or "postgres".
func (d Dialect) String() string {
	switch d {
	case SQLite:
		return "sqlite"
	case Postgres:
		return "postgres"
	}
	return fmt.Sprintf("Dialect(%d)", int(d))
}

func (d Dialect) valid() bool { return d == SQLite || d == Postgres }

// rebind turns the ? placeholders of q into PostgreSQL's $n. The statements in this package have
// no ? inside literals.
func (d Dialect) rebind(q string) string {
	if d != Postgres {
		return q
	}
	var b strings.Builder
	n := 0
	for i := 0; i < len(q); i++ {
		if q[i] == '?' {
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteByte(q[i])
	}
	return b.String()
}

// checkTableName accepts an identifier that needs no quoting, optionally schema-qualified on
// PostgreSQL, short enough for the suffixes this package appends.
func checkTableName(d Dialect, name string) error {
	parts := strings.Split(name, ".")
	if len(parts) > 2 || (len(parts) == 2 && d == SQLite) {
		return fmt.Errorf("table name %q: want an identifier (schema.name on PostgreSQL)", name)
	}
	for _, p := range parts {
		if !validIdent(p) {
			return fmt.Errorf("table name %q: want letters, digits and underscores, not starting with a digit, at most 40 characters", name)
		}
	}
	return nil
}

func validIdent(s string) bool {
	if s == "" || len(s) > 40 {
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

package outbox

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/faultline-dev/faultline/messaging"
)

// DefaultLeaseTTL is SQLiteConfig.LeaseTTL's default.
const DefaultLeaseTTL = 30 * time.Second

// SQLiteConfig configures a SQLiteStore.
type SQLiteConfig struct {
	// DB is the database, opened with a SQLite driver (modernc.org/sqlite registers "sqlite").
	// Set a busy timeout (modernc: "?_pragma=busy_timeout(5000)") and preferably WAL mode, so the
	// relay's short writes wait for the application's transactions instead of failing. Required.
	DB *sql.DB
	// Table is the outbox table's name. Empty means DefaultTable.
	Table string
	// LeaseTTL is how long a relay's lease lasts: one relay at a time publishes; another takes
	// over once the holder has not renewed the lease (at every batch) for LeaseTTL. A batch that
	// takes longer than LeaseTTL to publish may be published twice. Zero means DefaultLeaseTTL.
	LeaseTTL time.Duration
}

// SQLiteStore is a Store on a SQLite outbox table.
//
// SQLite serialises writers, so ids are assigned in commit order and the relay publishes rows in
// commit order. Relays coordinate through the lease row in Table+"_lease": a relay claims a batch
// only while it holds the lease; the lease is renewed by every batch, so a standby relay takes
// over LeaseTTL after the active one stops. The relay does not hold a write transaction while it
// publishes, so the application's writers are never blocked by a slow broker.
type SQLiteStore struct {
	db  *sql.DB
	t   Table
	ttl time.Duration

	// beforeMark, when set (tests), runs after a successful publish and before marking; an error
	// stands for a crash between the two.
	beforeMark func() error
}

// NewSQLiteStore checks cfg and returns the store. The table must exist (Migrate).
func NewSQLiteStore(cfg SQLiteConfig) (*SQLiteStore, error) {
	if cfg.DB == nil {
		return nil, errors.New("outbox: SQLiteConfig.DB is required")
	}
	if cfg.LeaseTTL < 0 {
		return nil, fmt.Errorf("outbox: SQLiteConfig.LeaseTTL %v: must not be negative", cfg.LeaseTTL)
	}
	if cfg.LeaseTTL == 0 {
		cfg.LeaseTTL = DefaultLeaseTTL
	}
	t, err := Table{Dialect: SQLite, Name: cfg.Table}.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("outbox: SQLiteConfig.Table: %w", err)
	}
	return &SQLiteStore{db: cfg.DB, t: t, ttl: cfg.LeaseTTL}, nil
}

// Claim implements Store.
func (s *SQLiteStore) Claim(ctx context.Context, c Claim, publish func(context.Context, []*messaging.Message) error) (int, error) {
	if c.Limit <= 0 {
		return 0, nil
	}
	now := c.Now.UnixMicro()
	res, err := s.db.ExecContext(ctx, `UPDATE `+s.t.Name+`_lease SET owner = ?, expires_at = ?
		WHERE name = 'relay' AND (owner = ? OR expires_at <= ?)`,
		c.Owner, c.Now.Add(s.ttl).UnixMicro(), c.Owner, now)
	if err != nil {
		return 0, fmt.Errorf("lease: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return 0, fmt.Errorf("lease: %w", err)
	} else if n == 0 {
		return 0, nil // another relay holds the lease
	}

	rows, err := s.db.QueryContext(ctx, `SELECT id, message_id, topic, msg_key, headers, payload FROM `+s.t.Name+`
		WHERE sent_at IS NULL ORDER BY id LIMIT ?`, c.Limit)
	if err != nil {
		return 0, fmt.Errorf("select: %w", err)
	}
	ids, msgs, err := scanAll(rows, c.Limit)
	if err != nil {
		return 0, fmt.Errorf("select: %w", err)
	}
	if len(msgs) == 0 {
		return 0, nil
	}
	if err := publish(ctx, msgs); err != nil {
		return 0, fmt.Errorf("publish %d messages: %w", len(msgs), err)
	}
	if s.beforeMark != nil {
		if err := s.beforeMark(); err != nil {
			return 0, fmt.Errorf("mark sent: %w", err)
		}
	}
	// Marking must not be abandoned because the caller's ctx ended after the publish succeeded:
	// that would only cause a duplicate, but it is cheap to avoid.
	mctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	for rest := ids; len(rest) > 0; {
		chunk := rest[:min(len(rest), 1000)]
		rest = rest[len(chunk):]
		var q strings.Builder
		args := make([]any, 0, len(chunk)+1)
		args = append(args, now)
		q.WriteString(`UPDATE ` + s.t.Name + ` SET sent_at = ? WHERE id IN (`)
		for i, id := range chunk {
			if i > 0 {
				q.WriteByte(',')
			}
			q.WriteByte('?')
			args = append(args, id)
		}
		q.WriteString(`)`)
		if _, err := s.db.ExecContext(mctx, q.String(), args...); err != nil {
			return 0, fmt.Errorf("mark sent: %w", err)
		}
	}
	return len(ids), nil
}

// DeleteSent implements Store, deleting in chunks so no statement holds the write lock long.
func (s *SQLiteStore) DeleteSent(ctx context.Context, before time.Time) (int64, error) {
	var total int64
	for {
		res, err := s.db.ExecContext(ctx, `DELETE FROM `+s.t.Name+` WHERE id IN (SELECT id FROM `+s.t.Name+`
			WHERE sent_at IS NOT NULL AND sent_at < ? LIMIT 5000)`, before.UnixMicro())
		if err != nil {
			return total, err
		}
		n, err := res.RowsAffected()
		if err != nil {
			return total, err
		}
		total += n
		if n < 5000 {
			return total, nil
		}
	}
}

func scanAll(rows *sql.Rows, limit int) ([]int64, []*messaging.Message, error) {
	defer rows.Close()
	ids := make([]int64, 0, min(limit, 1024))
	msgs := make([]*messaging.Message, 0, min(limit, 1024))
	for rows.Next() {
		id, m, err := scanMessage(rows)
		if err != nil {
			return nil, nil, err
		}
		ids = append(ids, id)
		msgs = append(msgs, m)
	}
	return ids, msgs, rows.Err()
}

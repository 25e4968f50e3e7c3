package outbox

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/stdlib"

	"github.com/faultline-dev/faultline/messaging"
)

// PostgresConfig configures a PostgresStore.
type PostgresConfig struct {
	// DB is the database, opened with pgx's database/sql driver (github.com/jackc/pgx/v5/stdlib,
	// driver name "pgx", or stdlib.OpenDBFromPool). LISTEN needs pgx underneath. Required.
	DB *sql.DB
	// Table is the outbox table's name, optionally schema-qualified. Empty means DefaultTable.
	Table string
	// Channel is the NOTIFY channel the table's trigger signals (as given to Migrate). Empty means
	// DefaultChannel.
	Channel string
	// Parallel lets several relays publish different batches at the same time (rows are claimed
	// with FOR UPDATE SKIP LOCKED). It raises throughput but gives up ordering across batches: two
	// relays may publish neighbouring rows in either order. Without it (the default) relays take
	// turns under a transaction-scoped advisory lock, one batch at a time, and the table is
	// published in id order among the rows visible at each poll (see docs/messaging/outbox.md).
	Parallel bool
}

// PostgresStore is a Store on a PostgreSQL outbox table. It wakes the relay through
// LISTEN/NOTIFY (Notifier).
//
// A batch is one transaction: select the lowest unsent ids FOR UPDATE SKIP LOCKED, publish them,
// mark them sent, commit. A relay that dies before the commit releases the row locks with its
// connection, and the rows are published again: a duplicate with the same ID, never a loss.
type PostgresStore struct {
	db       *sql.DB
	t        Table
	parallel bool
	lockKey  string

	qSelect, qMark string

	// beforeMark, when set (tests), runs after a successful publish and before marking; an error
	// stands for a crash between the two.
	beforeMark func() error
}

// NewPostgresStore checks cfg and returns the store. The table must exist (Migrate).
func NewPostgresStore(cfg PostgresConfig) (*PostgresStore, error) {
	if cfg.DB == nil {
		return nil, errors.New("outbox: PostgresConfig.DB is required")
	}
	t, err := Table{Dialect: Postgres, Name: cfg.Table, Channel: cfg.Channel}.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("outbox: PostgresConfig: %w", err)
	}
	return &PostgresStore{
		db: cfg.DB, t: t, parallel: cfg.Parallel,
		lockKey: "faultline_outbox_relay:" + t.Name,
		qSelect: `SELECT id, message_id, topic, msg_key, headers::text, payload FROM ` + t.Name +
			` WHERE sent_at IS NULL ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED`,
		qMark: `UPDATE ` + t.Name + ` SET sent_at = $1 WHERE id = ANY($2)`,
	}, nil
}

// Claim implements Store.
func (s *PostgresStore) Claim(ctx context.Context, c Claim, publish func(context.Context, []*messaging.Message) error) (int, error) {
	if c.Limit <= 0 {
		return 0, nil
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // after Commit it is a no-op
	if !s.parallel {
		var got bool
		if err := tx.QueryRowContext(ctx, `SELECT pg_try_advisory_xact_lock(hashtext($1))`, s.lockKey).Scan(&got); err != nil {
			return 0, fmt.Errorf("relay lock: %w", err)
		}
		if !got {
			return 0, nil // another relay is publishing a batch
		}
	}
	rows, err := tx.QueryContext(ctx, s.qSelect, c.Limit)
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
	if _, err := tx.ExecContext(ctx, s.qMark, c.Now, ids); err != nil {
		return 0, fmt.Errorf("mark sent: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("mark sent: commit: %w", err)
	}
	return len(ids), nil
}

// DeleteSent implements Store, deleting in chunks.
func (s *PostgresStore) DeleteSent(ctx context.Context, before time.Time) (int64, error) {
	var total int64
	for {
		res, err := s.db.ExecContext(ctx, `DELETE FROM `+s.t.Name+` WHERE id IN (SELECT id FROM `+s.t.Name+`
			WHERE sent_at < $1 LIMIT 5000)`, before)
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

// Listen implements Notifier: it holds one connection of DB for LISTEN and calls wake for every
// notification on the channel (and once when it starts listening, for rows added meanwhile).
func (s *PostgresStore) Listen(ctx context.Context, wake func()) error {
	conn, err := s.db.Conn(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("outbox: listen: %w", err)
	}
	defer conn.Close()
	var lerr error
	_ = conn.Raw(func(dc any) error {
		sc, ok := dc.(*stdlib.Conn)
		if !ok {
			lerr = fmt.Errorf("outbox: listen: connection is a %T, not pgx's stdlib driver", dc)
			return nil
		}
		pc := sc.Conn()
		if _, err := pc.Exec(ctx, `LISTEN "`+s.t.Channel+`"`); err != nil {
			lerr = fmt.Errorf("outbox: listen: %w", err)
			return driver.ErrBadConn
		}
		wake()
		for {
			if _, err := pc.WaitForNotification(ctx); err != nil {
				if ctx.Err() == nil {
					lerr = fmt.Errorf("outbox: listen: %w", err)
				}
				// The connection is LISTENing (or broken by the cancelled wait): never hand it
				// back to the pool.
				return driver.ErrBadConn
			}
			wake()
		}
	})
	return lerr
}

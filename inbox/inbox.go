// Package inbox is the idempotent consumer: it makes a messaging.Handler apply each message once
// although the broker delivers it at least once.
//
// The inbox records the ID of every message a consumer group has processed in the consumer's own
// database, in a table keyed by (consumer, message_id), inside the same transaction as the
// handler's writes. Either both commit (the message is applied and recorded) or neither does (the
// broker redelivers it and it is applied then). A delivery whose ID is already recorded is
// acknowledged without running the handler. At-least-once delivery plus the inbox gives
// effectively-once processing of the database writes; see docs/messaging/inbox.md.
//
//	in, err := inbox.New(inbox.Config{DB: db, Dialect: inbox.Postgres, Consumer: "billing"})
//	h := in.Handler(func(ctx context.Context, tx *sql.Tx, msg *messaging.Message) error {
//		_, err := tx.ExecContext(ctx, "UPDATE accounts SET balance = balance + $1 WHERE id = $2", ...)
//		return err
//	})
//	sub, err := broker.Subscribe(ctx, messaging.SubscribeConfig{Topic: "payments", Group: "billing"}, h)
//
// Inbox works with database/sql (SQLite or PostgreSQL); PgxInbox with a pgx pool.
package inbox

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/faultline-dev/faultline/clock"
	"github.com/faultline-dev/faultline/messaging"
)

// ErrNoID is the cause of the dead-letter result for a message without an ID: it can never be
// deduplicated, so no retry would make it safe to apply.
var ErrNoID = errors.New("inbox: message has no ID, so it cannot be deduplicated")

// ErrNoRetention is returned by Cleanup when the inbox keeps its records forever (Retention 0).
var ErrNoRetention = errors.New("inbox: Cleanup needs Config.Retention > 0")

// DefaultCleanupBatch is how many rows one Cleanup statement deletes when Config.CleanupBatch is 0.
const DefaultCleanupBatch = 1000

// Config configures an Inbox.
type Config struct {
	// DB is the consumer's own database: the one the handler writes to. Required.
	DB *sql.DB
	// Dialect is DB's SQL flavour. Required.
	Dialect Dialect
	// Consumer names the consumer group (messaging.SubscribeConfig.Group). Each group has its own
	// records, so groups sharing a database each apply every message once. Required.
	Consumer string
	// Table is the inbox table, created by Migrate with the same name. Empty means DefaultTable.
	Table string
	// Clock stamps processed_at and tells Cleanup the time. Nil means clock.Real().
	Clock clock.Clock
	// Retention is how long a record is kept; Cleanup deletes older ones. A duplicate that arrives
	// after its record is deleted is applied again, so set it above the broker's redelivery horizon
	// (how long a message can still be redelivered, or replayed, after it was first processed).
	// Zero keeps records forever (Cleanup returns ErrNoRetention).
	Retention time.Duration
	// CleanupBatch is how many rows each Cleanup statement deletes. Zero means DefaultCleanupBatch.
	CleanupBatch int
	// TxOptions are passed to BeginTx (isolation level). Nil means the database's default, which
	// is what the inbox needs: under READ COMMITTED a concurrent duplicate waits on the unique key
	// and then sees the row. Under SERIALIZABLE a duplicate may fail with a serialization error
	// instead; the error is returned, the broker redelivers, and the redelivery is a duplicate.
	TxOptions *sql.TxOptions
	// OnDuplicate, when set, is called (outside any transaction) for each delivery that was
	// acknowledged as a duplicate without running the handler: for metrics or logs.
	OnDuplicate func(ctx context.Context, msg *messaging.Message)
}

// core is what Inbox and PgxInbox share.
type core struct {
	dialect     Dialect
	consumer    string
	table       string
	clock       clock.Clock
	retention   time.Duration
	batch       int
	q           queries
	onDuplicate func(context.Context, *messaging.Message)
}

func newCore(d Dialect, consumer, table string, clk clock.Clock, retention time.Duration, batch int, onDup func(context.Context, *messaging.Message)) (core, error) {
	if err := d.check(); err != nil {
		return core{}, err
	}
	if consumer == "" {
		return core{}, errors.New("inbox: Consumer is required (the consumer group's name)")
	}
	if table == "" {
		table = DefaultTable
	}
	if err := checkTable(table); err != nil {
		return core{}, err
	}
	if retention < 0 {
		return core{}, fmt.Errorf("inbox: Retention %v: must not be negative", retention)
	}
	if batch < 0 {
		return core{}, fmt.Errorf("inbox: CleanupBatch %d: must not be negative", batch)
	}
	if batch == 0 {
		batch = DefaultCleanupBatch
	}
	if clk == nil {
		clk = clock.Real()
	}
	return core{
		dialect: d, consumer: consumer, table: table, clock: clk, retention: retention, batch: batch,
		q: buildQueries(d, table), onDuplicate: onDup,
	}, nil
}

// checkMessage rejects what can never be deduplicated.
func checkMessage(msg *messaging.Message) error {
	if msg == nil || msg.ID == "" {
		return messaging.DeadLetter(ErrNoID)
	}
	return nil
}

func (c *core) duplicate(ctx context.Context, msg *messaging.Message) {
	if c.onDuplicate != nil {
		c.onDuplicate(ctx, msg)
	}
}

// cutoff is the processed_at before which Cleanup deletes records.
func (c *core) cutoff() (any, error) {
	if c.retention == 0 {
		return nil, ErrNoRetention
	}
	return c.dialect.timeArg(c.clock.Now().Add(-c.retention)), nil
}

// Inbox deduplicates deliveries for one consumer group in a database/sql database. It is safe for
// concurrent use, by any number of goroutines and processes sharing the database.
type Inbox struct {
	core
	db     *sql.DB
	txOpts *sql.TxOptions
}

// New returns an Inbox for cfg. The table must exist (Migrate).
func New(cfg Config) (*Inbox, error) {
	if cfg.DB == nil {
		return nil, errors.New("inbox: DB is required")
	}
	c, err := newCore(cfg.Dialect, cfg.Consumer, cfg.Table, cfg.Clock, cfg.Retention, cfg.CleanupBatch, cfg.OnDuplicate)
	if err != nil {
		return nil, err
	}
	return &Inbox{core: c, db: cfg.DB, txOpts: cfg.TxOptions}, nil
}

// TxHandler processes a message inside the inbox's transaction. It must do all its database
// writes through tx (not through the *sql.DB, whose writes would commit on their own) and must
// not commit or roll back tx. Its result is the acknowledgement, as for messaging.Handler.
type TxHandler func(ctx context.Context, tx *sql.Tx, msg *messaging.Message) error

// Handler returns a messaging.Handler that, for each delivery:
//
//   - dead-letters a message without an ID (ErrNoID);
//   - begins a transaction and inserts (consumer, message ID) into the inbox table, doing nothing
//     if the row exists;
//   - if the row existed, the message was already applied: it rolls back and returns nil (the
//     duplicate is acknowledged, h does not run);
//   - otherwise runs h with the transaction and commits; if h fails, it rolls back (the ID is not
//     recorded, h's writes are undone) and returns h's error as it is, so the broker redelivers
//     (or dead-letters, for messaging.DeadLetter) the message.
//
// A concurrent delivery of the same ID waits on the unique key until the first transaction ends,
// then sees a duplicate (first committed) or applies it (first rolled back); or it fails with a
// busy, serialization or unique-violation error, which is returned so the broker redelivers it.
// If Commit fails the error is returned: the redelivery is a duplicate if the commit did happen
// after all, and is applied if it did not.
func (in *Inbox) Handler(h TxHandler) messaging.Handler {
	return func(ctx context.Context, msg *messaging.Message) error {
		if err := checkMessage(msg); err != nil {
			return err
		}
		tx, err := in.db.BeginTx(ctx, in.txOpts)
		if err != nil {
			return fmt.Errorf("inbox: begin: %w", err)
		}
		committed := false
		defer func() {
			if !committed {
				_ = tx.Rollback() // also on a panic in h
			}
		}()
		res, err := tx.ExecContext(ctx, in.q.insert, in.consumer, msg.ID, in.dialect.timeArg(in.clock.Now()))
		if err != nil {
			return fmt.Errorf("inbox: record message %q: %w", msg.ID, err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return fmt.Errorf("inbox: record message %q: %w", msg.ID, err)
		}
		if n == 0 {
			_ = tx.Rollback()
			committed = true // nothing left to roll back
			in.duplicate(ctx, msg)
			return nil
		}
		if err := h(ctx, tx, msg); err != nil {
			return err
		}
		committed = true
		if err := tx.Commit(); err != nil {
			return fmt.Errorf("inbox: commit message %q: %w", msg.ID, err)
		}
		return nil
	}
}

// Seen reports whether the message with id is recorded as processed by this consumer.
func (in *Inbox) Seen(ctx context.Context, id string) (bool, error) {
	var one int
	err := in.db.QueryRowContext(ctx, in.q.seen, in.consumer, id).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("inbox: seen %q: %w", id, err)
	}
	return true, nil
}

// Cleanup deletes this consumer's records older than Retention, in batches of CleanupBatch rows,
// and returns how many it deleted. Run it periodically (say hourly). The trade-off: a duplicate
// delivered after its record is deleted is applied again, so Retention must exceed the broker's
// redelivery horizon. It returns ErrNoRetention when Retention is 0.
func (in *Inbox) Cleanup(ctx context.Context) (int64, error) {
	cutoff, err := in.cutoff()
	if err != nil {
		return 0, err
	}
	return cleanupBatches(in.batch, func() (int64, error) {
		res, err := in.db.ExecContext(ctx, in.q.cleanup, in.consumer, cutoff, in.batch)
		if err != nil {
			return 0, err
		}
		return res.RowsAffected()
	})
}

// cleanupBatches runs deleteBatch (which deletes at most batch rows) until a batch comes back
// short, and returns how many rows were deleted in all. Shared by Inbox and PgxInbox.
func cleanupBatches(batch int, deleteBatch func() (int64, error)) (int64, error) {
	var total int64
	for {
		n, err := deleteBatch()
		if err != nil {
			return total, fmt.Errorf("inbox: cleanup: %w", err)
		}
		total += n
		if n < int64(batch) {
			return total, nil
		}
	}
}

package inbox

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/faultline-dev/faultline/clock"
	"github.com/faultline-dev/faultline/messaging"
)

// PgxDB is what PgxInbox needs from the database: *pgxpool.Pool has it. (A single *pgx.Conn has it
// too, but is not safe for concurrent handlers.)
type PgxDB interface {
	BeginTx(ctx context.Context, opts pgx.TxOptions) (pgx.Tx, error)
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// PgxConfig configures a PgxInbox; the fields mean what they mean in Config.
type PgxConfig struct {
	// DB is the consumer's own PostgreSQL database, usually a *pgxpool.Pool. Required.
	DB           PgxDB
	Consumer     string
	Table        string
	Clock        clock.Clock
	Retention    time.Duration
	CleanupBatch int
	// TxOptions are passed to BeginTx. The zero value is the database's default isolation.
	TxOptions   pgx.TxOptions
	OnDuplicate func(ctx context.Context, msg *messaging.Message)
}

// PgxInbox is Inbox for pgx: the same table and guarantees, on PostgreSQL through pgx.
type PgxInbox struct {
	core
	db     PgxDB
	txOpts pgx.TxOptions
}

// NewPgx returns a PgxInbox for cfg. The table must exist (MigratePgx).
func NewPgx(cfg PgxConfig) (*PgxInbox, error) {
	if cfg.DB == nil {
		return nil, errors.New("inbox: DB is required")
	}
	c, err := newCore(Postgres, cfg.Consumer, cfg.Table, cfg.Clock, cfg.Retention, cfg.CleanupBatch, cfg.OnDuplicate)
	if err != nil {
		return nil, err
	}
	return &PgxInbox{core: c, db: cfg.DB, txOpts: cfg.TxOptions}, nil
}

// MigratePgx is Migrate for pgx.
func MigratePgx(ctx context.Context, db PgxDB, table string) error {
	stmts, err := Schema(Postgres, table)
	if err != nil {
		return err
	}
	for _, s := range stmts {
		if _, err := db.Exec(ctx, s); err != nil {
			return fmt.Errorf("inbox: migrate: %w", err)
		}
	}
	return nil
}

// PgxTxHandler is TxHandler for pgx: it writes through tx and must not commit or roll it back.
type PgxTxHandler func(ctx context.Context, tx pgx.Tx, msg *messaging.Message) error

// Handler is Inbox.Handler for pgx.
func (in *PgxInbox) Handler(h PgxTxHandler) messaging.Handler {
	return func(ctx context.Context, msg *messaging.Message) error {
		if err := checkMessage(msg); err != nil {
			return err
		}
		tx, err := in.db.BeginTx(ctx, in.txOpts)
		if err != nil {
			return fmt.Errorf("inbox: begin: %w", err)
		}
		done := false
		defer func() {
			if !done {
				// A fresh context: ctx may be what ended, and the connection must go back clean.
				rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
				defer cancel()
				_ = tx.Rollback(rctx)
			}
		}()
		tag, err := tx.Exec(ctx, in.q.insert, in.consumer, msg.ID, in.dialect.timeArg(in.clock.Now()))
		if err != nil {
			return fmt.Errorf("inbox: record message %q: %w", msg.ID, err)
		}
		if tag.RowsAffected() == 0 {
			done = true
			_ = tx.Rollback(ctx)
			in.duplicate(ctx, msg)
			return nil
		}
		if err := h(ctx, tx, msg); err != nil {
			return err
		}
		done = true
		if err := tx.Commit(ctx); err != nil {
			return fmt.Errorf("inbox: commit message %q: %w", msg.ID, err)
		}
		return nil
	}
}

// Seen reports whether the message with id is recorded as processed by this consumer.
func (in *PgxInbox) Seen(ctx context.Context, id string) (bool, error) {
	var one int
	err := in.db.QueryRow(ctx, in.q.seen, in.consumer, id).Scan(&one)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("inbox: seen %q: %w", id, err)
	}
	return true, nil
}

// Cleanup is Inbox.Cleanup for pgx.
func (in *PgxInbox) Cleanup(ctx context.Context) (int64, error) {
	cutoff, err := in.cutoff()
	if err != nil {
		return 0, err
	}
	return cleanupBatches(in.batch, func() (int64, error) {
		tag, err := in.db.Exec(ctx, in.q.cleanup, in.consumer, cutoff, in.batch)
		if err != nil {
			return 0, err
		}
		return tag.RowsAffected(), nil
	})
}

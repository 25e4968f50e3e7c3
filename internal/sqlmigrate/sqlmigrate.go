// Package sqlmigrate runs faultline's idempotent schema statements (CREATE ... IF NOT EXISTS) the
// same way for every package that owns tables: in one transaction, and on PostgreSQL under a
// transaction-scoped advisory lock, because two processes creating the same table at once can
// both pass IF NOT EXISTS and one then fails on PostgreSQL's catalog.
package sqlmigrate

import (
	"context"
	"database/sql"
)

// Apply runs stmts in one transaction. With postgres set it first takes the advisory lock named
// lockKey (hashed with hashtext), so concurrent Apply calls with the same key run one after the
// other. The caller wraps the error with what it was migrating.
func Apply(ctx context.Context, db *sql.DB, postgres bool, lockKey string, stmts []string) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback() //nolint:errcheck // after Commit it is a no-op
	if postgres {
		if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(hashtext($1))`, lockKey); err != nil {
			return err
		}
	}
	for _, s := range stmts {
		if _, err := tx.ExecContext(ctx, s); err != nil {
			return err
		}
	}
	return tx.Commit()
}

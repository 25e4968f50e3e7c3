package shop

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/faultline-dev/faultline/saga"
)

// InventoryService keeps the stock. It serves the reserve-stock step: the action takes the
// order's units out of stock into a reservation, or refuses when too few are left; the
// compensation puts a reservation's units back. Each command runs through the saga barrier in
// the transaction that changes the stock and writes the reply to the service's outbox, so a
// duplicate is answered without being applied twice, a release whose reservation never happened
// releases nothing, and a reservation that arrives after its release is skipped.
//
// An InventoryService runs once: Run until its context ends, then Close. To restart after a
// crash, make a new one over the same Store.
type InventoryService struct{ *participant }

// NewInventoryService checks cfg and returns the service; call Migrate, then Run.
func NewInventoryService(cfg Config) (*InventoryService, error) {
	p, err := newParticipant(Inventory, cfg, func(t Topics) string { return t.InventoryCommands })
	if err != nil {
		return nil, err
	}
	s := &InventoryService{p}
	p.p.Handle(StepReserve, s.reserve, s.release)
	return s, nil
}

// Migrate creates the stock and reservations tables, the barrier and the outbox (idempotent).
func (s *InventoryService) Migrate(ctx context.Context) error {
	return s.migrate(ctx,
		// stocked counts every unit ever put in stock: available + reserved must equal it.
		`CREATE TABLE IF NOT EXISTS stock (
	sku       TEXT    PRIMARY KEY,
	available INTEGER NOT NULL CHECK (available >= 0),
	stocked   INTEGER NOT NULL
)`,
		`CREATE TABLE IF NOT EXISTS reservations (
	order_id TEXT    PRIMARY KEY,
	sku      TEXT    NOT NULL,
	qty      INTEGER NOT NULL
)`)
}

// Restock adds qty units of sku to the stock.
func (s *InventoryService) Restock(ctx context.Context, sku string, qty int) error {
	if qty < 0 {
		return fmt.Errorf("inventory: restock %s: qty %d, want ≥ 0", sku, qty)
	}
	_, err := s.db.ExecContext(ctx, s.db.q(`INSERT INTO stock (sku, available, stocked) VALUES (?, ?, ?)
	ON CONFLICT (sku) DO UPDATE SET available = stock.available + excluded.available, stocked = stock.stocked + excluded.stocked`), sku, qty, qty)
	if err != nil {
		return fmt.Errorf("inventory: restock %s: %w", sku, err)
	}
	return nil
}

func (s *InventoryService) reserve(ctx context.Context, tx *sql.Tx, req *saga.Request) (json.RawMessage, error) {
	o, err := orderOf(req)
	if err != nil {
		return nil, err
	}
	// One conditional update: concurrent reservations on PostgreSQL cannot oversell.
	res, err := tx.ExecContext(ctx, s.db.q("UPDATE stock SET available = available - ? WHERE sku = ? AND available >= ?"), o.Qty, o.SKU, o.Qty)
	if err != nil {
		return nil, err
	}
	if n, err := res.RowsAffected(); err != nil {
		return nil, err
	} else if n == 0 {
		var left int
		switch err := tx.QueryRowContext(ctx, s.db.q("SELECT available FROM stock WHERE sku = ?"), o.SKU).Scan(&left); {
		case errors.Is(err, sql.ErrNoRows):
			return nil, saga.Fail(fmt.Errorf("unknown product %q", o.SKU))
		case err != nil:
			return nil, err
		}
		return nil, saga.Fail(fmt.Errorf("out of stock: %d %s left, %d wanted", left, o.SKU, o.Qty))
	}
	if _, err := tx.ExecContext(ctx, s.db.q("INSERT INTO reservations (order_id, sku, qty) VALUES (?, ?, ?)"), o.ID, o.SKU, o.Qty); err != nil {
		return nil, err
	}
	return json.Marshal(map[string]any{"sku": o.SKU, "reserved": o.Qty})
}

func (s *InventoryService) release(ctx context.Context, tx *sql.Tx, req *saga.Request) (json.RawMessage, error) {
	o, err := orderOf(req)
	if err != nil {
		return nil, err
	}
	var sku string
	var qty int
	err = tx.QueryRowContext(ctx, s.db.q("SELECT sku, qty FROM reservations WHERE order_id = ?"), o.ID).Scan(&sku, &qty)
	if errors.Is(err, sql.ErrNoRows) {
		// The barrier runs a compensation only after its action succeeded, so the reservation
		// is there; were it not, retrying is all we can do (and a person would look).
		return nil, fmt.Errorf("release %s: no reservation (the barrier should make this impossible)", o.ID)
	}
	if err != nil {
		return nil, err
	}
	if _, err := tx.ExecContext(ctx, s.db.q("DELETE FROM reservations WHERE order_id = ?"), o.ID); err != nil {
		return nil, err
	}
	_, err = tx.ExecContext(ctx, s.db.q("UPDATE stock SET available = available + ? WHERE sku = ?"), qty, sku)
	return nil, err
}

package shop

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/faultline-dev/faultline/saga"
)

// MerchantAccount is the payment service's account that receives the charges.
const MerchantAccount = "merchant"

// PaymentService keeps the customers' accounts and the merchant's. It serves the charge-payment
// step: the action moves the order's amount from the customer to the merchant and records the
// charge, or declines when the balance is too low; the compensation refunds a charge. Like the
// inventory, it runs every command through the saga barrier in the transaction of its writes
// and its reply.
//
// A PaymentService runs once: Run until its context ends, then Close. To restart after a crash,
// make a new one over the same Store.
type PaymentService struct{ *participant }

// NewPaymentService checks cfg and returns the service; call Migrate, then Run.
func NewPaymentService(cfg Config) (*PaymentService, error) {
	p, err := newParticipant(Payment, cfg, func(t Topics) string { return t.PaymentCommands })
	if err != nil {
		return nil, err
	}
	s := &PaymentService{p}
	p.p.Handle(StepCharge, s.charge, s.refund)
	return s, nil
}

// Migrate creates the accounts and charges tables, the barrier and the outbox (idempotent).
func (s *PaymentService) Migrate(ctx context.Context) error {
	return s.migrate(ctx,
		// opening counts every deposit: the balances must always add up to the openings.
		`CREATE TABLE IF NOT EXISTS accounts (
	id      TEXT   PRIMARY KEY,
	balance BIGINT NOT NULL CHECK (balance >= 0),
	opening BIGINT NOT NULL
)`,
		`CREATE TABLE IF NOT EXISTS charges (
	order_id TEXT   PRIMARY KEY,
	customer TEXT   NOT NULL,
	amount   BIGINT NOT NULL
)`)
}

// Deposit adds amount cents to account, opening it if needed.
func (s *PaymentService) Deposit(ctx context.Context, account string, amount int64) error {
	if amount < 0 {
		return fmt.Errorf("payment: deposit to %s: amount %d, want ≥ 0", account, amount)
	}
	_, err := s.db.ExecContext(ctx, s.db.q(`INSERT INTO accounts (id, balance, opening) VALUES (?, ?, ?)
	ON CONFLICT (id) DO UPDATE SET balance = accounts.balance + excluded.balance, opening = accounts.opening + excluded.opening`), account, amount, amount)
	if err != nil {
		return fmt.Errorf("payment: deposit to %s: %w", account, err)
	}
	return nil
}

// The customer's row is always locked before the merchant's (charge and refund alike), so two
// transactions on PostgreSQL never wait for each other in a cycle.

func (s *PaymentService) charge(ctx context.Context, tx *sql.Tx, req *saga.Request) (json.RawMessage, error) {
	o, err := orderOf(req)
	if err != nil {
		return nil, err
	}
	res, err := tx.ExecContext(ctx, s.db.q("UPDATE accounts SET balance = balance - ? WHERE id = ? AND balance >= ?"), o.Amount, o.Customer, o.Amount)
	if err != nil {
		return nil, err
	}
	if n, err := res.RowsAffected(); err != nil {
		return nil, err
	} else if n == 0 {
		var bal int64
		switch err := tx.QueryRowContext(ctx, s.db.q("SELECT balance FROM accounts WHERE id = ?"), o.Customer).Scan(&bal); {
		case errors.Is(err, sql.ErrNoRows):
			return nil, saga.Fail(fmt.Errorf("payment declined: no account %q", o.Customer))
		case err != nil:
			return nil, err
		}
		return nil, saga.Fail(fmt.Errorf("payment declined: balance %s, amount %s", money(bal), money(o.Amount)))
	}
	if _, err := tx.ExecContext(ctx, s.db.q("UPDATE accounts SET balance = balance + ? WHERE id = ?"), o.Amount, MerchantAccount); err != nil {
		return nil, err
	}
	if _, err := tx.ExecContext(ctx, s.db.q("INSERT INTO charges (order_id, customer, amount) VALUES (?, ?, ?)"), o.ID, o.Customer, o.Amount); err != nil {
		return nil, err
	}
	return json.Marshal(map[string]any{"charge": o.ID, "amount": o.Amount})
}

func (s *PaymentService) refund(ctx context.Context, tx *sql.Tx, req *saga.Request) (json.RawMessage, error) {
	o, err := orderOf(req)
	if err != nil {
		return nil, err
	}
	var customer string
	var amount int64
	err = tx.QueryRowContext(ctx, s.db.q("SELECT customer, amount FROM charges WHERE order_id = ?"), o.ID).Scan(&customer, &amount)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("refund %s: no charge (the barrier should make this impossible)", o.ID)
	}
	if err != nil {
		return nil, err
	}
	if _, err := tx.ExecContext(ctx, s.db.q("DELETE FROM charges WHERE order_id = ?"), o.ID); err != nil {
		return nil, err
	}
	if _, err := tx.ExecContext(ctx, s.db.q("UPDATE accounts SET balance = balance + ? WHERE id = ?"), amount, customer); err != nil {
		return nil, err
	}
	_, err = tx.ExecContext(ctx, s.db.q("UPDATE accounts SET balance = balance - ? WHERE id = ?"), amount, MerchantAccount)
	return nil, err
}

// money formats cents as 1234.56.
func money(cents int64) string {
	sign := ""
	if cents < 0 {
		sign, cents = "-", -cents
	}
	return fmt.Sprintf("%s%d.%02d", sign, cents/100, cents%100)
}

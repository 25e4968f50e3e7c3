package shop

import (
	"context"
	"fmt"
	"math/rand/v2"
)

// Order is what a customer buys: Qty units of SKU for Amount cents. It is the saga's input.
type Order struct {
	ID       string `json:"id"`
	Customer string `json:"customer"`
	SKU      string `json:"sku"`
	Qty      int    `json:"qty"`
	Amount   int64  `json:"amount"`
}

// Validate reports the first missing or impossible field.
func (o Order) Validate() error {
	switch {
	case o.ID == "":
		return fmt.Errorf("order: ID is empty")
	case o.Customer == "":
		return fmt.Errorf("order %s: Customer is empty", o.ID)
	case o.Customer == MerchantAccount:
		return fmt.Errorf("order %s: the merchant cannot buy from itself", o.ID)
	case o.SKU == "":
		return fmt.Errorf("order %s: SKU is empty", o.ID)
	case o.Qty < 1:
		return fmt.Errorf("order %s: Qty %d, want ≥ 1", o.ID, o.Qty)
	case o.Amount < 0:
		return fmt.Errorf("order %s: Amount %d, want ≥ 0", o.ID, o.Amount)
	}
	return nil
}

// Product is a line of the catalog.
type Product struct {
	SKU   string
	Price int64 // cents
	Stock int   // units in stock at the start
}

// Customer is an account holder with an opening balance in cents.
type Customer struct {
	ID      string
	Balance int64
}

// Scenario is the data of one run, drawn from a seed: the catalog with limited stock, the
// customers (some with low balances) and the orders they place.
type Scenario struct {
	Seed      uint64
	Products  []Product
	Customers []Customer
	Orders    []Order
}

// NewScenario draws n orders and the shop they run against from seed. The stock of each product
// covers 40–90% of the units ordered, so some products sell out and later orders for them are
// refused; a fifth of the customers have low balances, so some of their payments are
// declined.
func NewScenario(seed uint64, n int) *Scenario {
	rnd := rand.New(rand.NewPCG(seed, seed^0x2545f4914f6cdd1d))
	sc := &Scenario{Seed: seed}
	catalog := []Product{
		{SKU: "kettle", Price: 2500}, {SKU: "lamp", Price: 4000}, {SKU: "mug", Price: 850},
		{SKU: "teapot", Price: 1990}, {SKU: "toaster", Price: 3400},
	}
	for i := range 20 {
		c := Customer{ID: fmt.Sprintf("c%02d", i+1)}
		if i%5 == 4 {
			c.Balance = 2000 + rnd.Int64N(8000) // low: a few orders at most
		} else {
			c.Balance = 1_000_000 + rnd.Int64N(1_000_000)
		}
		sc.Customers = append(sc.Customers, c)
	}
	wanted := make([]int, len(catalog))
	for i := range n {
		p := rnd.IntN(len(catalog))
		o := Order{
			ID:       fmt.Sprintf("order-%05d", i+1),
			Customer: sc.Customers[rnd.IntN(len(sc.Customers))].ID,
			SKU:      catalog[p].SKU,
			Qty:      1 + rnd.IntN(3),
		}
		o.Amount = int64(o.Qty) * catalog[p].Price
		wanted[p] += o.Qty
		sc.Orders = append(sc.Orders, o)
	}
	for i, p := range catalog {
		p.Stock = wanted[i] * (40 + rnd.IntN(51)) / 100
		sc.Products = append(sc.Products, p)
	}
	return sc
}

// Stock puts the scenario's products in the inventory.
func (sc *Scenario) Stock(ctx context.Context, inv *InventoryService) error {
	for _, p := range sc.Products {
		if err := inv.Restock(ctx, p.SKU, p.Stock); err != nil {
			return err
		}
	}
	return nil
}

// Fund opens the scenario's customer accounts and the merchant's.
func (sc *Scenario) Fund(ctx context.Context, pay *PaymentService) error {
	if err := pay.Deposit(ctx, MerchantAccount, 0); err != nil {
		return err
	}
	for _, c := range sc.Customers {
		if err := pay.Deposit(ctx, c.ID, c.Balance); err != nil {
			return err
		}
	}
	return nil
}

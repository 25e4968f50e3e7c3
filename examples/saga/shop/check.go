package shop

import (
	"context"
	"fmt"
	"regexp"
	"sort"
	"strings"

	"github.com/faultline-dev/faultline/saga"
)

// Report is the outcome of a run and the invariants that must hold after it, computed by Check
// from the three services' databases.
type Report struct {
	// Orders counts the orders (sagas) found; Want is how many were placed (0: unknown).
	Orders, Want int
	// Approved, Rejected and Unfinished count the sagas that completed, compensated, and neither
	// (still running or compensating, parked as needs-attention, or aborted).
	Approved, Rejected, Unfinished int
	// Reasons is the histogram of why orders were rejected (and why unfinished ones are stuck),
	// by class (see ReasonClass).
	Reasons map[string]int
	// Stocked is the units ever put in stock; Available and Reserved where they are now.
	Stocked, Available, Reserved int
	// Opening is the money deposited (cents); Balances what the accounts hold now, of which the
	// merchant's Takings from Charges charges.
	Opening, Balances, Takings int64
	Charges                    int
	// Defences counts what the saga machinery did to get through the trouble: attempts timed out
	// and retried, deadlines that turned sagas back, and each participant's barrier outcomes.
	Defences []Count
	// Invariants are the checks, in order.
	Invariants []Invariant
}

// Count is a named number.
type Count struct {
	Name string
	N    int
}

// Invariant is one check of a Report.
type Invariant struct {
	// Name says what must hold.
	Name string
	// Violations counts the cases that break it; Examples shows the first few.
	Violations int
	Examples   []string
}

// OK reports whether the invariant holds.
func (i Invariant) OK() bool { return i.Violations == 0 }

// OK reports whether every invariant holds.
func (r *Report) OK() bool {
	for _, i := range r.Invariants {
		if !i.OK() {
			return false
		}
	}
	return true
}

const maxExamples = 5

// checker accumulates one invariant's violations.
type checker struct{ inv *Invariant }

func (c checker) fail(format string, args ...any) {
	c.inv.Violations++
	if len(c.inv.Examples) < maxExamples {
		c.inv.Examples = append(c.inv.Examples, fmt.Sprintf(format, args...))
	}
}

func (r *Report) check(name string) checker {
	r.Invariants = append(r.Invariants, Invariant{Name: name})
	return checker{&r.Invariants[len(r.Invariants)-1]}
}

// orderRow is an order as the orders table has it.
type orderRow struct {
	customer, sku, status string
	qty                   int
	amount                int64
}

type reservation struct {
	sku string
	qty int
}

type charge struct {
	customer string
	amount   int64
}

// Check reads the databases of st's three services, as an auditor would, and computes the
// outcome of the run and its invariants. want is the number of orders placed (0 when unknown).
// Run it once every saga has ended: while sagas are in flight, the invariants that compare the
// services with each other do not hold yet.
func Check(ctx context.Context, st Store, want int) (*Report, error) {
	dbs := map[Service]*db{}
	defer func() {
		for _, d := range dbs {
			d.Close()
		}
	}()
	for _, svc := range Services {
		d, err := st.open(svc)
		if err != nil {
			return nil, err
		}
		dbs[svc] = d
	}
	od, id, pd := dbs[Orders], dbs[Inventory], dbs[Payment]
	r := &Report{Want: want, Reasons: map[string]int{}}

	// The orders database: sagas and orders.
	store, err := saga.NewStore(od.DB, od.dialect, st.sagaTable())
	if err != nil {
		return nil, err
	}
	sagas, err := store.List(ctx, saga.Filter{Saga: SagaName, Limit: 1 << 30})
	if err != nil {
		return nil, fmt.Errorf("check: %w", err)
	}
	orders := map[string]orderRow{}
	err = scanRows(ctx, od, "SELECT id, customer, sku, qty, amount, status FROM orders", func(scan func(...any) error) error {
		var id string
		var o orderRow
		if err := scan(&id, &o.customer, &o.sku, &o.qty, &o.amount, &o.status); err != nil {
			return err
		}
		orders[id] = o
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("check: orders: %w", err)
	}

	// The inventory database.
	stock := map[string][2]int{} // sku → available, stocked
	err = scanRows(ctx, id, "SELECT sku, available, stocked FROM stock", func(scan func(...any) error) error {
		var sku string
		var a, s int
		if err := scan(&sku, &a, &s); err != nil {
			return err
		}
		stock[sku] = [2]int{a, s}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("check: stock: %w", err)
	}
	reserved := map[string]reservation{}
	err = scanRows(ctx, id, "SELECT order_id, sku, qty FROM reservations", func(scan func(...any) error) error {
		var oid string
		var x reservation
		if err := scan(&oid, &x.sku, &x.qty); err != nil {
			return err
		}
		reserved[oid] = x
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("check: reservations: %w", err)
	}

	// The payment database.
	accounts := map[string][2]int64{} // id → balance, opening
	err = scanRows(ctx, pd, "SELECT id, balance, opening FROM accounts", func(scan func(...any) error) error {
		var aid string
		var b, o int64
		if err := scan(&aid, &b, &o); err != nil {
			return err
		}
		accounts[aid] = [2]int64{b, o}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("check: accounts: %w", err)
	}
	charges := map[string]charge{}
	err = scanRows(ctx, pd, "SELECT order_id, customer, amount FROM charges", func(scan func(...any) error) error {
		var oid string
		var c charge
		if err := scan(&oid, &c.customer, &c.amount); err != nil {
			return err
		}
		charges[oid] = c
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("check: charges: %w", err)
	}

	// Outcome.
	r.Orders = len(sagas)
	sort.Slice(sagas, func(i, j int) bool { return sagas[i].ID < sagas[j].ID })
	for _, s := range sagas {
		switch s.Status {
		case saga.StatusCompleted:
			r.Approved++
		case saga.StatusCompensated:
			r.Rejected++
			r.Reasons[ReasonClass(s.Reason)]++
		default:
			r.Unfinished++
			r.Reasons["unfinished, "+string(s.Status)+": "+ReasonClass(s.Reason)]++
		}
	}
	for _, x := range stock {
		r.Available += x[0]
		r.Stocked += x[1]
	}
	for _, x := range reserved {
		r.Reserved += x.qty
	}
	for _, a := range accounts {
		r.Balances += a[0]
		r.Opening += a[1]
	}
	r.Takings = accounts[MerchantAccount][0] - accounts[MerchantAccount][1]
	r.Charges = len(charges)

	// Invariants.
	ended := r.check("every order ended: its saga completed or compensated")
	if want > 0 && len(sagas) != want {
		ended.fail("%d sagas found, %d orders placed", len(sagas), want)
	}
	for _, s := range sagas {
		if s.Status != saga.StatusCompleted && s.Status != saga.StatusCompensated {
			ended.fail("order %s: saga %s (%s)", s.ID, s.Status, s.Reason)
		}
	}

	agree := r.check("each order's status agrees with its saga: completed ⇒ APPROVED, compensated ⇒ REJECTED")
	seen := map[string]bool{}
	for _, s := range sagas {
		seen[s.ID] = true
		o, ok := orders[s.ID]
		want := map[saga.Status]string{saga.StatusCompleted: StatusApproved, saga.StatusCompensated: StatusRejected}[s.Status]
		switch {
		case !ok:
			agree.fail("order %s: saga %s but no order row", s.ID, s.Status)
		case want != "" && o.status != want:
			agree.fail("order %s: saga %s but order %s", s.ID, s.Status, o.status)
		}
	}
	for oid := range orders {
		if !seen[oid] {
			agree.fail("order %s: no saga", oid)
		}
	}

	approved := r.check("approved ⇒ its units reserved and its amount charged")
	rejected := r.check("rejected ⇒ nothing reserved, nothing charged")
	for _, s := range sagas {
		o := orders[s.ID]
		res, hasRes := reserved[s.ID]
		ch, hasCh := charges[s.ID]
		switch s.Status {
		case saga.StatusCompleted:
			if !hasRes || res.sku != o.sku || res.qty != o.qty {
				approved.fail("order %s: %d %s ordered, reservation %+v (found %v)", s.ID, o.qty, o.sku, res, hasRes)
			}
			if !hasCh || ch.customer != o.customer || ch.amount != o.amount {
				approved.fail("order %s: %s owes %s, charge %+v (found %v)", s.ID, o.customer, money(o.amount), ch, hasCh)
			}
		case saga.StatusCompensated:
			if hasRes {
				rejected.fail("order %s: rejected but %d %s still reserved", s.ID, res.qty, res.sku)
			}
			if hasCh {
				rejected.fail("order %s: rejected but %s still charged to %s", s.ID, money(ch.amount), ch.customer)
			}
		}
	}

	orphans := r.check("no reservation or charge without an order")
	for oid, x := range reserved {
		if !seen[oid] {
			orphans.fail("reservation of %d %s for unknown order %s", x.qty, x.sku, oid)
		}
	}
	for oid, c := range charges {
		if !seen[oid] {
			orphans.fail("charge of %s to %s for unknown order %s", money(c.amount), c.customer, oid)
		}
	}

	stockOK := r.check("stock conserved: available + reserved = stocked, per product")
	perSKU := map[string]int{}
	for _, x := range reserved {
		perSKU[x.sku] += x.qty
	}
	for _, sku := range sortedKeys(stock) {
		x := stock[sku]
		if x[0]+perSKU[sku] != x[1] {
			stockOK.fail("%s: %d available + %d reserved ≠ %d stocked", sku, x[0], perSKU[sku], x[1])
		}
	}
	for sku := range perSKU {
		if _, ok := stock[sku]; !ok {
			stockOK.fail("%s: reserved but not a product", sku)
		}
	}

	moneyOK := r.check("money conserved: the balances add up to the deposits")
	if r.Balances != r.Opening {
		moneyOK.fail("balances %s ≠ deposits %s", money(r.Balances), money(r.Opening))
	}

	accountsOK := r.check("every account = its deposit − its charges (customers) or + all charges (merchant)")
	spent := map[string]int64{}
	var total int64
	for _, c := range charges {
		spent[c.customer] += c.amount
		total += c.amount
	}
	for _, aid := range sortedKeys(accounts) {
		a := accounts[aid]
		want := a[1] - spent[aid]
		if aid == MerchantAccount {
			want = a[1] + total
		}
		if a[0] != want {
			accountsOK.fail("%s: balance %s, want %s", aid, money(a[0]), money(want))
		}
	}
	for c := range spent {
		if _, ok := accounts[c]; !ok {
			accountsOK.fail("%s: charged but has no account", c)
		}
	}

	// Defences: what the machinery did.
	logTable := st.sagaTable() + "_log"
	for _, q := range []struct{ name, sql string }{
		{"step attempts timed out (no reply in time)", "SELECT COUNT(*) FROM " + logTable + " WHERE event = 'failed' AND detail LIKE '%timed out%'"},
		{"commands sent again (attempt 2 or later)", "SELECT COUNT(*) FROM " + logTable + " WHERE event = 'invoked' AND attempt > 1"},
		{"sagas turned back by their deadline", "SELECT COUNT(*) FROM " + logTable + " WHERE event = 'compensating' AND detail LIKE '%deadline%'"},
	} {
		var n int
		if err := od.QueryRowContext(ctx, q.sql).Scan(&n); err != nil {
			return nil, fmt.Errorf("check: %s: %w", q.name, err)
		}
		r.Defences = append(r.Defences, Count{q.name, n})
	}
	for _, svc := range []Service{Inventory, Payment} {
		counts, err := countBy(ctx, dbs[svc], "SELECT status, COUNT(*) FROM "+st.barrierTable(svc)+" GROUP BY status")
		if err != nil {
			return nil, fmt.Errorf("check: %s barrier: %w", svc, err)
		}
		for _, k := range []string{string(saga.BarrierSucceeded), string(saga.BarrierFailed), string(saga.BarrierNullCompensated), string(saga.BarrierSkipped)} {
			r.Defences = append(r.Defences, Count{fmt.Sprintf("%s barrier: %s", svc, barrierWords[k]), counts[k]})
		}
	}
	return r, nil
}

var barrierWords = map[string]string{
	string(saga.BarrierSucceeded):       "operations applied",
	string(saga.BarrierFailed):          "refused (nothing applied)",
	string(saga.BarrierNullCompensated): "compensations with nothing to undo (action refused or not arrived)",
	string(saga.BarrierSkipped):         "actions fenced off: compensated before they arrived",
}

var (
	refusedRe = regexp.MustCompile(`^step "([^"]+)" refused: ([^:]+)`)
	gaveUpRe  = regexp.MustCompile(`^step "([^"]+)" gave up after (\d+) attempts`)
)

// ReasonClass turns a saga's Reason into its class for the histogram: "reserve-stock refused:
// out of stock", "charge-payment refused: payment declined", "deadline passed", "charge-payment
// gave up after 3 attempts", or the reason itself.
func ReasonClass(reason string) string {
	if m := refusedRe.FindStringSubmatch(reason); m != nil {
		return m[1] + " refused: " + m[2]
	}
	if m := gaveUpRe.FindStringSubmatch(reason); m != nil {
		return m[1] + " gave up after " + m[2] + " attempts (no reply)"
	}
	if strings.Contains(reason, "deadline") {
		return "saga deadline passed (too slow)"
	}
	if reason == "" {
		return "no reason recorded"
	}
	return reason
}

// String renders the report for people.
func (r *Report) String() string {
	var b strings.Builder
	unfinished := fmt.Sprintf("%d unfinished", r.Unfinished)
	fmt.Fprintf(&b, "orders:  %d placed: %d approved, %d rejected, %s\n", r.Orders, r.Approved, r.Rejected, unfinished)
	if len(r.Reasons) > 0 {
		b.WriteString("why rejected:\n")
		type kv struct {
			k string
			n int
		}
		var reasons []kv
		for k, n := range r.Reasons {
			reasons = append(reasons, kv{k, n})
		}
		sort.Slice(reasons, func(i, j int) bool {
			if reasons[i].n != reasons[j].n {
				return reasons[i].n > reasons[j].n
			}
			return reasons[i].k < reasons[j].k
		})
		for _, x := range reasons {
			fmt.Fprintf(&b, "  %5d  %s\n", x.n, x.k)
		}
	}
	fmt.Fprintf(&b, "stock:   before %d units; after %d available + %d reserved by approved orders = %d\n",
		r.Stocked, r.Available, r.Reserved, r.Available+r.Reserved)
	fmt.Fprintf(&b, "money:   before %s; after %s, of which the merchant took %s from %d charges\n",
		money(r.Opening), money(r.Balances), money(r.Takings), r.Charges)
	if len(r.Defences) > 0 {
		b.WriteString("defences at work:\n")
		for _, c := range r.Defences {
			fmt.Fprintf(&b, "  %5d  %s\n", c.N, c.Name)
		}
	}
	b.WriteString("invariants:\n")
	for _, i := range r.Invariants {
		mark := "✓"
		if !i.OK() {
			mark = "✗"
		}
		fmt.Fprintf(&b, "  %s %s", mark, i.Name)
		if !i.OK() {
			fmt.Fprintf(&b, " — %d violations", i.Violations)
		}
		b.WriteByte('\n')
		for _, e := range i.Examples {
			fmt.Fprintf(&b, "      %s\n", e)
		}
	}
	if r.OK() {
		b.WriteString("all invariants hold\n")
	} else {
		b.WriteString("INVARIANTS VIOLATED\n")
	}
	return b.String()
}

// scanRows runs query on d and calls each for every row.
func scanRows(ctx context.Context, d *db, query string, each func(scan func(...any) error) error) error {
	rows, err := d.QueryContext(ctx, query)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		if err := each(rows.Scan); err != nil {
			return err
		}
	}
	return rows.Err()
}

// countBy runs a "SELECT key, COUNT(*) … GROUP BY key" query.
func countBy(ctx context.Context, d *db, query string) (map[string]int, error) {
	out := map[string]int{}
	err := scanRows(ctx, d, query, func(scan func(...any) error) error {
		var k string
		var n int
		if err := scan(&k, &n); err != nil {
			return err
		}
		out[k] = n
		return nil
	})
	return out, err
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

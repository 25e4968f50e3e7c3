package twophase

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/faultline-dev/faultline/clock"
	"github.com/faultline-dev/faultline/internal/testkit"
)

// testTimeout bounds every test's context: a safety net against a hang, never a wait.
const testTimeout = 60 * time.Second

func testContext(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

// backend opens databases for the coordinator and the participants of one test.
type backend struct {
	name    string
	dialect Dialect
	// open returns the database and table (prefix) for node.
	open func(t testing.TB, node string) (*sql.DB, string)
	// fresh returns a new backend of the same kind, with databases of its own.
	fresh func(t testing.TB) *backend
}

// sqliteBackend gives every node its own SQLite file in a temporary directory.
func sqliteBackend(t testing.TB) *backend {
	dir := t.TempDir()
	var mu sync.Mutex
	dbs := map[string]*sql.DB{}
	return &backend{name: "sqlite", dialect: SQLite, fresh: sqliteBackend, open: func(t testing.TB, node string) (*sql.DB, string) {
		mu.Lock()
		defer mu.Unlock()
		if db := dbs[node]; db != nil {
			return db, "tp"
		}
		db := testkit.SQLite(t, filepath.Join(dir, node+".db"), 0)
		dbs[node] = db
		return db, "tp"
	}}
}

// sqliteOneFileBackend keeps every node's tables in one SQLite file (prefixed by the node's
// name): cheaper to set up, for tests that build hundreds of clusters.
func sqliteOneFileBackend(t testing.TB) *backend {
	db := testkit.SQLite(t, filepath.Join(t.TempDir(), "cluster.db"), 0)
	return &backend{name: "sqlite", dialect: SQLite, fresh: sqliteOneFileBackend, open: func(t testing.TB, node string) (*sql.DB, string) {
		return db, strings.ReplaceAll(node, "-", "_")
	}}
}

// postgresBackend puts every node's tables in one schema of their own, or skips when PostgreSQL
// is unreachable (fails instead under FAULTLINE_REQUIRE_SERVICES=1).
func postgresBackend(t testing.TB) *backend {
	t.Helper()
	db := testkit.Postgres(t, 20)
	schema := testkit.Schema(t, db, "twophase_test_")
	return &backend{name: "postgres", dialect: Postgres, fresh: postgresBackend, open: func(t testing.TB, node string) (*sql.DB, string) {
		return db, schema + "." + strings.ReplaceAll(node, "-", "_")
	}}
}

// eachBackend runs f on SQLite and on PostgreSQL.
func eachBackend(t *testing.T, f func(t *testing.T, be *backend)) {
	t.Run("sqlite", func(t *testing.T) { f(t, sqliteBackend(t)) })
	t.Run("postgres", func(t *testing.T) { f(t, postgresBackend(t)) })
}

// cluster is a coordinator and participants on a Network and a manual clock.
type cluster struct {
	t     testing.TB
	ctx   context.Context
	be    *backend
	clk   *clock.Manual // the clock, unless clusterConfig.realClock
	clock clock.Clock
	net   *Network

	lockTimeout, prepareTimeout time.Duration
	names                       []string
	nodes                       map[string]*node
	resources                   map[string]Resource // what the coordinator calls (Network stubs unless replaced)

	coordDB    *sql.DB
	coordTable string
	coord      *Coordinator
}

type node struct {
	db    *sql.DB
	table string
	p     *Participant
}

type clusterConfig struct {
	// accounts per participant: key → opening balance.
	accounts       map[string]map[string]int64
	lockTimeout    time.Duration
	prepareTimeout time.Duration
	// realClock runs on the wall clock instead of the manual one.
	realClock bool
}

func newCluster(t testing.TB, be *backend, cfg clusterConfig) *cluster {
	t.Helper()
	c := &cluster{
		t: t, ctx: testContext(t), be: be, clk: clock.NewManual(time.Time{}), net: NewNetwork(),
		lockTimeout: cfg.lockTimeout, prepareTimeout: cfg.prepareTimeout,
		nodes: map[string]*node{}, resources: map[string]Resource{},
	}
	c.clock = c.clk
	if cfg.realClock {
		c.clock = clock.Real()
	}
	if c.lockTimeout == 0 {
		c.lockTimeout = 30 * time.Second
	}
	if c.prepareTimeout == 0 {
		c.prepareTimeout = time.Minute
	}
	for name := range cfg.accounts {
		c.names = append(c.names, name)
	}
	sort.Strings(c.names)
	for _, name := range c.names {
		db, table := be.open(t, name)
		c.nodes[name] = &node{db: db, table: table}
		c.startParticipant(name, true)
		for key, bal := range cfg.accounts[name] {
			if _, err := c.nodes[name].p.Update(c.ctx, key, bal); err != nil {
				t.Fatal(err)
			}
		}
		c.resources[name] = c.net.Resource(name)
	}
	c.coordDB, c.coordTable = be.open(t, "coord")
	c.startCoordinator(nil)
	return c
}

// startParticipant starts (or restarts, after Close) participant name over its database and
// runs Recover; it returns how many transactions are in doubt.
func (c *cluster) startParticipant(name string, migrate bool) int {
	c.t.Helper()
	n := c.nodes[name]
	p, err := NewParticipant(ParticipantConfig{
		Name: name, DB: n.db, Dialect: c.be.dialect, Table: n.table, Clock: c.clock,
		LockTimeout: c.lockTimeout, Coordinator: c.net.Decider(),
	})
	if err != nil {
		c.t.Fatal(err)
	}
	if migrate {
		if err := p.Migrate(c.ctx); err != nil {
			c.t.Fatal(err)
		}
		if err := p.Migrate(c.ctx); err != nil { // idempotent
			c.t.Fatal(err)
		}
	}
	inDoubt, err := p.Recover(c.ctx)
	if err != nil {
		c.t.Fatal(err)
	}
	n.p = p
	c.net.Register(name, p)
	c.net.Heal(name)
	return inDoubt
}

// crashParticipant stops participant name as a crash would and cuts it off the network.
func (c *cluster) crashParticipant(name string) {
	c.net.Cut(name)
	c.nodes[name].p.Close()
}

// startCoordinator starts a coordinator over the log (a restart when one ran before) and makes
// it the one participants ask. It does not run Recover.
func (c *cluster) startCoordinator(crash func(CrashPoint, string) error) *Coordinator {
	c.t.Helper()
	co, err := NewCoordinator(Config{
		DB: c.coordDB, Dialect: c.be.dialect, Table: c.coordTable + "_log", Participants: c.resources,
		Clock: c.clock, PrepareTimeout: c.prepareTimeout, Crash: crash,
	})
	if err != nil {
		c.t.Fatal(err)
	}
	if err := co.Migrate(c.ctx); err != nil {
		c.t.Fatal(err)
	}
	c.coord = co
	c.net.SetCoordinator(co)
	return co
}

// crashOnce returns a crash hook that crashes at point for txID (any transaction when empty),
// once.
func crashOnce(point CrashPoint, txID string) func(CrashPoint, string) error {
	var mu sync.Mutex
	done := false
	return func(p CrashPoint, id string) error {
		mu.Lock()
		defer mu.Unlock()
		if done || p != point || (txID != "" && id != txID) {
			return nil
		}
		done = true
		return errors.New("injected crash")
	}
}

// transfer moves amount from one account to another, possibly on another participant.
func transfer(fromNode, fromKey, toNode, toKey string, amount int64) map[string][]Op {
	ops := map[string][]Op{}
	ops[fromNode] = append(ops[fromNode], Op{Key: fromKey, Delta: -amount})
	ops[toNode] = append(ops[toNode], Op{Key: toKey, Delta: amount})
	return ops
}

// balances reads every account of every participant straight from the databases (it never
// waits for a lock).
func (c *cluster) balances() map[string]map[string]int64 {
	c.t.Helper()
	out := map[string]map[string]int64{}
	for _, name := range c.names {
		n := c.nodes[name]
		rows, err := n.db.QueryContext(c.ctx, `SELECT acct, balance FROM `+n.table+`_accounts`)
		if err != nil {
			c.t.Fatal(err)
		}
		out[name] = map[string]int64{}
		for rows.Next() {
			var k string
			var b int64
			if err := rows.Scan(&k, &b); err != nil {
				c.t.Fatal(err)
			}
			out[name][k] = b
		}
		rows.Close()
	}
	return out
}

func (c *cluster) balance(name, key string) int64 { return c.balances()[name][key] }

// total is the sum of every account everywhere: transfers conserve it.
func (c *cluster) total() int64 {
	var sum int64
	for _, accts := range c.balances() {
		for _, b := range accts {
			sum += b
		}
	}
	return sum
}

// outcomes returns what each participant recorded about txID: "commit", "abort" or "".
func (c *cluster) outcomes(txID string) map[string]string {
	c.t.Helper()
	out := map[string]string{}
	for _, name := range c.names {
		n := c.nodes[name]
		var s string
		err := n.db.QueryRowContext(c.ctx, c.be.dialect.rebind(`SELECT outcome FROM `+n.table+`_outcomes WHERE tx_id = ?`), txID).Scan(&s)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			c.t.Fatal(err)
		}
		out[name] = s
	}
	return out
}

// count returns the number of rows in table.
func (c *cluster) count(db *sql.DB, table string) int {
	c.t.Helper()
	var n int
	if err := db.QueryRowContext(c.ctx, `SELECT count(*) FROM `+table).Scan(&n); err != nil {
		c.t.Fatal(err)
	}
	return n
}

// checkQuiescent checks that nothing is in doubt, locked or left in a log.
func (c *cluster) checkQuiescent() {
	c.t.Helper()
	for _, name := range c.names {
		n := c.nodes[name]
		s := n.p.Stats()
		if s.InDoubt != 0 || s.LocksHeld != 0 || s.Waiting != 0 {
			c.t.Errorf("%s: %d in doubt, %d locks held, %d waiting", name, s.InDoubt, s.LocksHeld, s.Waiting)
		}
		if k := c.count(n.db, n.table+"_prepared"); k != 0 {
			c.t.Errorf("%s: %d prepared rows left", name, k)
		}
	}
	if k := c.count(c.coordDB, c.coordTable+"_log"); k != 0 {
		c.t.Errorf("coordinator log: %d records left", k)
	}
}

// checkAtomic checks that the participants of txID (the keys of ops) agree: all committed, or
// none.
func (c *cluster) checkAtomic(txID string, ops map[string][]Op) (committed bool) {
	c.t.Helper()
	outs := c.outcomes(txID)
	var commits, others []string
	for name := range ops {
		if outs[name] == "commit" {
			commits = append(commits, name)
		} else {
			others = append(others, name+"="+outs[name])
		}
	}
	slices.Sort(commits)
	slices.Sort(others)
	if len(commits) > 0 && len(others) > 0 {
		c.t.Errorf("%s not atomic: committed at %v, not at %v", txID, commits, others)
	}
	return len(commits) > 0
}

// result of an asynchronous call.
type result[T any] struct {
	v   T
	err error
}

// async runs f in a goroutine that the test waits for at cleanup.
func async[T any](t testing.TB, f func() (T, error)) <-chan result[T] {
	ch := make(chan result[T], 1)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		v, err := f()
		ch <- result[T]{v, err}
	}()
	t.Cleanup(wg.Wait)
	return ch
}

// notYet fails the test if ch has delivered.
func notYet[T any](t testing.TB, ch <-chan result[T], what string) {
	t.Helper()
	select {
	case r := <-ch:
		t.Fatalf("%s returned (%v, %v) while it should be blocked", what, r.v, r.err)
	default:
	}
}

// await waits for ch (bounded by ctx).
func await[T any](t testing.TB, ctx context.Context, ch <-chan result[T], what string) (T, error) {
	t.Helper()
	select {
	case r := <-ch:
		return r.v, r.err
	case <-ctx.Done():
		var zero T
		t.Fatalf("%s: %v", what, ctx.Err())
		return zero, nil
	}
}

func (c *cluster) String() string { return fmt.Sprintf("cluster(%s, %v)", c.be.name, c.names) }

package twophase

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

func bankAccounts() clusterConfig {
	return clusterConfig{accounts: map[string]map[string]int64{
		"bank-a": {"alice": 100, "carol": 50},
		"bank-b": {"bob": 100},
	}}
}

func TestCommit(t *testing.T) {
	eachBackend(t, func(t *testing.T, be *backend) {
		c := newCluster(t, be, bankAccounts())
		ops := transfer("bank-a", "alice", "bank-b", "bob", 30)
		o, err := c.coord.Run(c.ctx, "t1", ops)
		if err != nil || o != Committed {
			t.Fatalf("Run = %v, %v; want committed", o, err)
		}
		if a, b := c.balance("bank-a", "alice"), c.balance("bank-b", "bob"); a != 70 || b != 130 {
			t.Errorf("alice %d, bob %d; want 70, 130", a, b)
		}
		if got, _ := c.nodes["bank-b"].p.Get(c.ctx, "bob"); got != 130 {
			t.Errorf("Get(bob) = %d", got)
		}
		c.checkAtomic("t1", ops)
		c.checkQuiescent()
		if d, err := c.coord.Decision(c.ctx, "t1"); err != nil || d != Aborted {
			// Forgotten once acknowledged: presumed abort answers for it, and nobody asks.
			t.Errorf("Decision after forget = %v, %v", d, err)
		}
		// A second transaction on the same keys goes through: the locks were released.
		if o, err := c.coord.Run(c.ctx, "t2", transfer("bank-b", "bob", "bank-a", "alice", 130)); err != nil || o != Committed {
			t.Fatalf("second Run = %v, %v", o, err)
		}
		if c.total() != 250 {
			t.Errorf("total %d, want 250", c.total())
		}
		// The id is spent while it is in the log; afterwards the participants remember it.
		if o, err := c.coord.Run(c.ctx, "t2", transfer("bank-b", "bob", "bank-a", "alice", 1)); err != nil || o != Committed {
			t.Errorf("rerun of a committed id = %v, %v; want committed without effect", o, err)
		}
		if a := c.balance("bank-a", "alice"); a != 200 {
			t.Errorf("alice %d after the rerun, want 200 (applied once)", a)
		}
	})
}

// TestNoVoteAbortsEveryone: a participant that cannot honour the transaction (bob would go
// negative) votes no, and the participant that voted yes is told to abort and releases its locks.
func TestNoVoteAbortsEveryone(t *testing.T) {
	eachBackend(t, func(t *testing.T, be *backend) {
		c := newCluster(t, be, bankAccounts())
		ops := transfer("bank-b", "bob", "bank-a", "alice", 500)
		o, err := c.coord.Run(c.ctx, "t1", ops)
		if err != nil || o != Aborted {
			t.Fatalf("Run = %v, %v; want aborted", o, err)
		}
		if got := c.outcomes("t1"); got["bank-a"] != "abort" || got["bank-b"] != "abort" {
			t.Errorf("outcomes %v; want abort at both", got)
		}
		if c.total() != 250 {
			t.Errorf("total %d, want 250", c.total())
		}
		s := c.nodes["bank-b"].p.Stats()
		if s.VotedNo != 1 {
			t.Errorf("bank-b voted no %d times", s.VotedNo)
		}
		c.checkQuiescent()
	})
}

// hangingResource never answers prepare until its context ends.
type hangingResource struct {
	Resource
	entered, returned chan struct{}
}

func newHangingResource(r Resource) *hangingResource {
	return &hangingResource{Resource: r, entered: make(chan struct{}), returned: make(chan struct{})}
}

func (h *hangingResource) Prepare(ctx context.Context, txID string, ops []Op) (Vote, error) {
	close(h.entered)
	defer close(h.returned)
	<-ctx.Done()
	return Vote{}, ctx.Err()
}

// TestRunCancelledWhileVoting: when the caller's context ends while votes are awaited, Run
// returns at once with the context's error, after every prepare call it made has returned
// (no goroutine outlives Run). No decision is logged, so Recover aborts the transaction.
func TestRunCancelledWhileVoting(t *testing.T) {
	c := newCluster(t, sqliteBackend(t), bankAccounts())
	hang := newHangingResource(c.resources["bank-b"])
	c.resources["bank-b"] = hang
	co := c.startCoordinator(nil)
	ctx, cancel := context.WithCancel(c.ctx)
	run := async(t, func() (Outcome, error) { return co.Run(ctx, "t1", transfer("bank-a", "alice", "bank-b", "bob", 10)) })
	<-hang.entered
	cancel()
	o, err := await(t, c.ctx, run, "Run")
	if o != Undecided || !errors.Is(err, context.Canceled) {
		t.Fatalf("Run = %v, %v; want undecided, context.Canceled", o, err)
	}
	select {
	case <-hang.returned:
	default:
		t.Fatal("Run returned before its prepare call did")
	}
	// bank-a may have prepared before the cancel reached its prepare call: in doubt or not, the
	// recovery ends the transaction.
	if rep, err := co.Recover(c.ctx); err != nil || rep.PresumedAborted != 1 {
		t.Errorf("Recover = %+v, %v", rep, err)
	}
	c.checkQuiescent()
}

// TestPrepareTimeoutAborts: a participant that does not answer by the deadline is presumed to
// vote no. The test moves the manual clock; nothing sleeps.
func TestPrepareTimeoutAborts(t *testing.T) {
	c := newCluster(t, sqliteBackend(t), bankAccounts())
	hang := newHangingResource(c.resources["bank-b"])
	c.resources["bank-b"] = hang
	co := c.startCoordinator(nil)
	ops := transfer("bank-a", "alice", "bank-b", "bob", 10)
	run := async(t, func() (Outcome, error) { return co.Run(c.ctx, "t1", ops) })
	<-hang.entered
	if err := c.clk.WaitForTimers(c.ctx, 1); err != nil { // the prepare deadline
		t.Fatal(err)
	}
	c.clk.Advance(c.prepareTimeout - time.Millisecond)
	notYet(t, run, "Run before the deadline")
	c.clk.Advance(time.Millisecond)
	o, err := await(t, c.ctx, run, "Run")
	if err != nil || o != Aborted {
		t.Fatalf("Run = %v, %v; want aborted", o, err)
	}
	// bank-b's stub hung, but the abort still reached it (it records the abort, so a late
	// prepare votes no).
	if got := c.outcomes("t1"); got["bank-a"] != "abort" || got["bank-b"] != "abort" {
		t.Errorf("outcomes %v", got)
	}
	if v, err := c.nodes["bank-b"].p.Prepare(c.ctx, "t1", ops["bank-b"]); err != nil || v.Yes {
		t.Errorf("late prepare = %+v, %v; want a no vote", v, err)
	}
	c.checkQuiescent()
}

// TestCoordinatorCrashRecovery crashes the coordinator at each crash point of a transfer, then
// starts a new one over the same log and recovers: every participant ends with the same
// outcome, the total is conserved, and nothing stays locked. Before the decision is logged the
// outcome is abort (presumed abort); after, commit.
func TestCoordinatorCrashRecovery(t *testing.T) {
	want := map[CrashPoint]Outcome{
		CrashAfterBegin:    Aborted,
		CrashAfterPrepare:  Aborted,
		CrashAfterDecision: Committed,
		CrashMidSend:       Committed,
		CrashBeforeForget:  Committed,
	}
	// In doubt right after the crash: participants that voted yes and were not told.
	inDoubt := map[CrashPoint]int{
		CrashAfterBegin: 0, CrashAfterPrepare: 2, CrashAfterDecision: 2, CrashMidSend: 1, CrashBeforeForget: 0,
	}
	eachBackend(t, func(t *testing.T, be *backend) {
		for _, point := range CrashPoints() {
			t.Run(string(point), func(t *testing.T) {
				c := newCluster(t, be.fresh(t), bankAccounts())
				co := c.startCoordinator(crashOnce(point, "t1"))
				ops := transfer("bank-a", "alice", "bank-b", "bob", 40)
				o, err := co.Run(c.ctx, "t1", ops)
				if !errors.Is(err, ErrCrashed) {
					t.Fatalf("Run = %v, %v; want ErrCrashed", o, err)
				}
				if !strings.Contains(err.Error(), string(point)) {
					t.Errorf("error %q does not name the crash point", err)
				}
				if reported := map[bool]Outcome{true: Committed, false: Undecided}[want[point] == Committed]; o != reported {
					t.Errorf("Run reported %v at %s, want %v", o, point, reported)
				}
				if _, err := co.Run(c.ctx, "t2", ops); !errors.Is(err, ErrCrashed) {
					t.Errorf("Run after the crash = %v; want ErrCrashed", err)
				}
				n := 0
				for _, name := range c.names {
					n += c.nodes[name].p.Stats().InDoubt
				}
				if n != inDoubt[point] {
					t.Errorf("%d participants in doubt after the crash, want %d", n, inDoubt[point])
				}
				// Participants that ask the crashed coordinator learn nothing.
				for _, name := range c.names {
					p := c.nodes[name].p
					if _, err := p.Resolve(c.ctx); len(p.InDoubt()) > 0 && !errors.Is(err, ErrCrashed) {
						t.Errorf("%s: Resolve with the coordinator down = %v; want ErrCrashed", name, err)
					}
				}

				co2 := c.startCoordinator(nil)
				rep, err := co2.Recover(c.ctx)
				if err != nil {
					t.Fatal(err)
				}
				t.Logf("recovery: %+v", rep)
				committed := c.checkAtomic("t1", ops)
				if committed != (want[point] == Committed) {
					t.Errorf("committed = %v, want %v", committed, want[point])
				}
				if d, err := co2.Decision(c.ctx, "t1"); err != nil || (want[point] == Aborted && d != Aborted) {
					t.Errorf("Decision = %v, %v", d, err)
				}
				if c.total() != 250 {
					t.Errorf("total %d, want 250", c.total())
				}
				c.checkQuiescent()
				// A second Recover has nothing to do.
				if rep, err := co2.Recover(c.ctx); err != nil || rep != (RecoveryReport{}) {
					t.Errorf("second Recover = %+v, %v", rep, err)
				}
			})
		}
	})
}

// TestDecisionPresumedAbort: a coordinator answers abort for a transaction it does not know, and
// decides abort for one left undecided by a crash when a participant asks first.
func TestDecisionPresumedAbort(t *testing.T) {
	c := newCluster(t, sqliteBackend(t), bankAccounts())
	if d, err := c.coord.Decision(c.ctx, "never-seen"); err != nil || d != Aborted {
		t.Errorf("Decision(unknown) = %v, %v", d, err)
	}
	co := c.startCoordinator(crashOnce(CrashAfterPrepare, ""))
	if _, err := co.Run(c.ctx, "t1", transfer("bank-a", "alice", "bank-b", "bob", 1)); !errors.Is(err, ErrCrashed) {
		t.Fatal(err)
	}
	if _, err := co.Decision(c.ctx, "t1"); !errors.Is(err, ErrCrashed) {
		t.Errorf("Decision from the crashed coordinator = %v", err)
	}
	c.startCoordinator(nil) // restarted, Recover not run yet
	// The participants ask (their Recover resolves through the network).
	for _, name := range c.names {
		if n, err := c.nodes[name].p.Resolve(c.ctx); err != nil || n != 1 {
			t.Errorf("%s: Resolve = %d, %v", name, n, err)
		}
	}
	if got := c.outcomes("t1"); got["bank-a"] != "abort" || got["bank-b"] != "abort" {
		t.Errorf("outcomes %v", got)
	}
	rep, err := c.coord.Recover(c.ctx)
	if err != nil || rep.Aborted != 1 {
		t.Errorf("Recover = %+v, %v; want the logged abort sent again", rep, err)
	}
	c.checkQuiescent()
}

func TestRunValidation(t *testing.T) {
	c := newCluster(t, sqliteBackend(t), bankAccounts())
	_, err := c.coord.Run(c.ctx, "", map[string][]Op{"nowhere": nil, "elsewhere": nil})
	if err == nil || !strings.Contains(err.Error(), "empty transaction id") ||
		!strings.Contains(err.Error(), `unknown participant "nowhere"`) || !strings.Contains(err.Error(), `"elsewhere"`) {
		t.Errorf("Run with bad input = %v; want every problem named", err)
	}
	if _, err := c.coord.Run(c.ctx, "t1", nil); err == nil {
		t.Error("Run with no participants succeeded")
	}
	// An id still in the log (here: a crash left it undecided) cannot be reused.
	co := c.startCoordinator(crashOnce(CrashAfterBegin, ""))
	if _, err := co.Run(c.ctx, "dup", transfer("bank-a", "alice", "bank-b", "bob", 1)); !errors.Is(err, ErrCrashed) {
		t.Fatal(err)
	}
	co = c.startCoordinator(nil)
	if _, err := co.Run(c.ctx, "dup", transfer("bank-a", "alice", "bank-b", "bob", 1)); !errors.Is(err, ErrDuplicate) {
		t.Errorf("Run of an id in the log = %v; want ErrDuplicate", err)
	}
}

// TestConcurrentTransfersEndDeadlocksByLockTimeout: workers transfer in both directions between
// the same two accounts at once. Participants grant locks independently, so two transactions can
// each hold the key the other waits for at the other participant: a distributed deadlock that no
// participant can see. The lock timeout ends it with a no vote. Every transaction ends
// committed or aborted, atomically, and the balances match the committed ones. This test runs
// on the wall clock with a short lock timeout, because deadlocks form whenever the scheduler
// likes.
func TestConcurrentTransfersEndDeadlocksByLockTimeout(t *testing.T) {
	cfg := bankAccounts()
	cfg.realClock, cfg.lockTimeout, cfg.prepareTimeout = true, 20*time.Millisecond, 10*time.Second
	c := newCluster(t, sqliteBackend(t), cfg)
	const workers, each = 6, 8
	var wg sync.WaitGroup
	outcomes := make([]Outcome, workers*each)
	opsOf := make([]map[string][]Op, workers*each)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range each {
				i := w*each + k
				opsOf[i] = transfer("bank-a", "alice", "bank-b", "bob", 1)
				if (w+k)%2 == 1 {
					opsOf[i] = transfer("bank-b", "bob", "bank-a", "alice", 1)
				}
				o, err := c.coord.Run(c.ctx, fmt.Sprintf("c%02d", i), opsOf[i])
				if err != nil {
					t.Errorf("c%02d: %v", i, err)
				}
				outcomes[i] = o
			}
		}()
	}
	wg.Wait()
	alice := int64(100)
	committed := 0
	for i, o := range outcomes {
		id := fmt.Sprintf("c%02d", i)
		if got := c.checkAtomic(id, opsOf[i]); got != (o == Committed) {
			t.Errorf("%s: Run said %v, participants committed=%v", id, o, got)
		}
		if o == Committed {
			committed++
			alice += opsOf[i]["bank-a"][0].Delta
		}
	}
	if got := c.balance("bank-a", "alice"); got != alice || c.total() != 250 {
		t.Errorf("alice %d, want %d; total %d", got, alice, c.total())
	}
	s := c.nodes["bank-a"].p.Stats()
	t.Logf("%d/%d committed; bank-a: %d lock waits, %d lock timeouts", committed, len(outcomes), s.Waited, s.LockTimeouts)
	c.checkQuiescent()
}

func TestConfigErrors(t *testing.T) {
	_, err := NewCoordinator(Config{Dialect: Dialect(9), PrepareTimeout: -1, Participants: map[string]Resource{"x": nil}})
	for _, want := range []string{"DB is required", "Dialect Dialect(9)", "PrepareTimeout", `Participants["x"] is nil`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("NewCoordinator error %v; want it to mention %q", err, want)
		}
	}
	_, err = NewParticipant(ParticipantConfig{Dialect: SQLite, Table: "bad-name", LockTimeout: -1})
	for _, want := range []string{"Name is required", "DB is required", `"bad-name"`, "LockTimeout"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("NewParticipant error %v; want it to mention %q", err, want)
		}
	}
	_, err = NewParticipant(ParticipantConfig{Name: "p", Dialect: SQLite, Table: "s.t", DB: sqliteBackendDB(t)})
	if err == nil || !strings.Contains(err.Error(), "schema.name on PostgreSQL") {
		t.Errorf("schema-qualified SQLite table: %v", err)
	}
}

func sqliteBackendDB(t *testing.T) *sql.DB {
	t.Helper()
	db, _ := sqliteBackend(t).open(t, "x")
	return db
}

// TestRecoverLeavesRunningTransactionsAlone: Recover, called while Run is collecting votes, does
// not presume the running transaction aborted; a participant asking meanwhile hears undecided.
func TestRecoverLeavesRunningTransactionsAlone(t *testing.T) {
	c := newCluster(t, sqliteBackend(t), bankAccounts())
	hang := newHangingResource(c.resources["bank-b"])
	c.resources["bank-b"] = hang
	co := c.startCoordinator(nil)
	run := async(t, func() (Outcome, error) { return co.Run(c.ctx, "t1", transfer("bank-a", "alice", "bank-b", "bob", 10)) })
	<-hang.entered
	if rep, err := co.Recover(c.ctx); err != nil || rep != (RecoveryReport{}) {
		t.Errorf("Recover during Run = %+v, %v; want nothing done", rep, err)
	}
	if d, err := co.Decision(c.ctx, "t1"); err != nil || d != Undecided {
		t.Errorf("Decision during Run = %v, %v; want undecided", d, err)
	}
	if err := c.clk.WaitForTimers(c.ctx, 1); err != nil {
		t.Fatal(err)
	}
	c.clk.Advance(c.prepareTimeout)
	if o, err := await(t, c.ctx, run, "Run"); err != nil || o != Aborted {
		t.Errorf("Run = %v, %v", o, err)
	}
	c.checkQuiescent()
}

package twophase

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

// crashingResource forwards to a participant and crashes it (Close, cut off the network) at a
// chosen moment of prepare.
type crashingResource struct {
	Resource
	c    *cluster
	name string
	// afterVote: crash once the participant has voted (the coordinator gets the vote);
	// otherwise crash after it prepared but before its vote leaves (the vote is lost).
	afterVote bool
}

func (r *crashingResource) Prepare(ctx context.Context, txID string, ops []Op) (Vote, error) {
	v, err := r.Resource.Prepare(ctx, txID, ops)
	r.c.crashParticipant(r.name)
	if r.afterVote {
		return v, err
	}
	return Vote{}, ErrUnreachable
}

// TestParticipantCrashAfterPrepare: a participant crashes right after voting yes. The
// coordinator commits; the participant, restarted, finds the transaction in doubt and keeps its
// key locked (a reader waits through an hour of coordinator unreachability) until it learns the
// decision; then it commits and the balances agree.
func TestParticipantCrashAfterPrepare(t *testing.T) {
	eachBackend(t, func(t *testing.T, be *backend) {
		c := newCluster(t, be, bankAccounts())
		c.resources["bank-b"] = &crashingResource{Resource: c.resources["bank-b"], c: c, name: "bank-b", afterVote: true}
		c.startCoordinator(nil)
		ops := transfer("bank-a", "alice", "bank-b", "bob", 40)
		o, err := c.coord.Run(c.ctx, "t1", ops)
		if err != nil || o != Committed {
			t.Fatalf("Run = %v, %v; want committed (bank-b is told later)", o, err)
		}
		if got := c.outcomes("t1"); got["bank-a"] != "commit" || got["bank-b"] != "" {
			t.Fatalf("outcomes %v; want bank-a committed, bank-b undecided", got)
		}

		c.net.Cut(CoordinatorNode)
		if n := c.startParticipant("bank-b", false); n != 1 {
			t.Fatalf("%d in doubt after restart, want 1", n)
		}
		b := c.nodes["bank-b"].p
		if s := b.Stats(); s.InDoubt != 1 || s.LocksHeld != 1 {
			t.Fatalf("after restart: %+v", s)
		}
		get := async(t, func() (int64, error) { return b.Get(c.ctx, "bob") })
		if err := b.locks.waitForWaiters(c.ctx, 1); err != nil {
			t.Fatal(err)
		}
		c.clk.Advance(time.Hour)
		notYet(t, get, "Get(bob) behind the in-doubt transaction")
		if _, err := b.Resolve(c.ctx); !errors.Is(err, ErrUnreachable) {
			t.Errorf("Resolve with the coordinator unreachable = %v", err)
		}
		notYet(t, get, "Get(bob) after a failed Resolve")
		if got := b.InDoubt(); len(got) != 1 || got[0] != "t1" {
			t.Errorf("InDoubt = %v", got)
		}

		c.net.Heal(CoordinatorNode)
		if n, err := b.Resolve(c.ctx); err != nil || n != 1 {
			t.Fatalf("Resolve = %d, %v", n, err)
		}
		bob, err := await(t, c.ctx, get, "Get(bob)")
		if err != nil || bob != 140 {
			t.Errorf("Get(bob) = %d, %v; want 140", bob, err)
		}
		s := b.Stats()
		if s.HoldMax < time.Hour {
			t.Errorf("longest hold %v; want the hour of doubt counted from the prepare", s.HoldMax)
		}
		if s.WaitMax != time.Hour || s.Waited != 1 {
			t.Errorf("waits: %d, longest %v", s.Waited, s.WaitMax)
		}
		c.checkAtomic("t1", ops)
		// The coordinator still has the commit in its log (bank-b never acknowledged): Recover
		// sends it again, the participant answers that it has it, and the record goes.
		if rep, err := c.coord.Recover(c.ctx); err != nil || rep.Committed != 1 || rep.Unfinished != 0 {
			t.Errorf("Recover = %+v, %v", rep, err)
		}
		if c.total() != 250 {
			t.Errorf("total %d", c.total())
		}
		c.checkQuiescent()
	})
}

// TestParticipantCrashBeforeVoteLeaves: the participant prepares durably but crashes before its
// vote reaches the coordinator, which counts the silence as no and aborts. The participant's
// own Recover asks the coordinator and aborts too.
func TestParticipantCrashBeforeVoteLeaves(t *testing.T) {
	eachBackend(t, func(t *testing.T, be *backend) {
		c := newCluster(t, be, bankAccounts())
		c.resources["bank-b"] = &crashingResource{Resource: c.resources["bank-b"], c: c, name: "bank-b"}
		c.startCoordinator(nil)
		ops := transfer("bank-a", "alice", "bank-b", "bob", 40)
		if o, err := c.coord.Run(c.ctx, "t1", ops); err != nil || o != Aborted {
			t.Fatalf("Run = %v, %v; want aborted", o, err)
		}
		if n := c.startParticipant("bank-b", false); n != 0 {
			t.Errorf("%d in doubt after Recover with the coordinator reachable", n)
		}
		if got := c.outcomes("t1"); got["bank-a"] != "abort" || got["bank-b"] != "abort" {
			t.Errorf("outcomes %v", got)
		}
		if rep, err := c.coord.Recover(c.ctx); err != nil || rep.Aborted != 1 {
			t.Errorf("Recover = %+v, %v", rep, err)
		}
		if c.total() != 250 {
			t.Errorf("total %d", c.total())
		}
		c.checkQuiescent()
	})
}

func newTestParticipant(t *testing.T) (*Participant, context.Context, *cluster) {
	c := newCluster(t, sqliteBackend(t), bankAccounts())
	return c.nodes["bank-a"].p, c.ctx, c
}

// TestParticipantIdempotence: repeated and late messages, as a real network delivers them.
func TestParticipantIdempotence(t *testing.T) {
	p, ctx, c := newTestParticipant(t)
	ops := []Op{{Key: "alice", Delta: -10}}
	for range 2 {
		if v, err := p.Prepare(ctx, "t1", ops); err != nil || !v.Yes {
			t.Fatalf("Prepare = %+v, %v", v, err)
		}
	}
	if err := p.Commit(ctx, "t1"); err != nil {
		t.Fatal(err)
	}
	if err := p.Commit(ctx, "t1"); err != nil {
		t.Errorf("second Commit = %v", err)
	}
	if v, err := p.Prepare(ctx, "t1", ops); err != nil || !v.Yes {
		t.Errorf("Prepare after commit = %+v, %v; want yes without effect", v, err)
	}
	if b := c.balance("bank-a", "alice"); b != 90 {
		t.Errorf("alice %d, want 90 (applied once)", b)
	}
	if err := p.Abort(ctx, "t1"); !errors.Is(err, ErrConflict) {
		t.Errorf("Abort of a committed transaction = %v; want ErrConflict", err)
	}
	// Abort before prepare: the late prepare votes no.
	if err := p.Abort(ctx, "t2"); err != nil {
		t.Fatal(err)
	}
	if err := p.Abort(ctx, "t2"); err != nil {
		t.Errorf("second Abort = %v", err)
	}
	if v, err := p.Prepare(ctx, "t2", ops); err != nil || v.Yes {
		t.Errorf("Prepare after abort = %+v, %v; want no", v, err)
	}
	if err := p.Commit(ctx, "t2"); !errors.Is(err, ErrConflict) {
		t.Errorf("Commit of an aborted transaction = %v; want ErrConflict", err)
	}
	if err := p.Commit(ctx, "t3"); !errors.Is(err, ErrNotPrepared) {
		t.Errorf("Commit of an unknown transaction = %v; want ErrNotPrepared", err)
	}
	if v, err := p.Prepare(ctx, "t4", []Op{{Key: "", Delta: 1}}); err != nil || v.Yes || !strings.Contains(v.Reason, "no key") {
		t.Errorf("Prepare with an empty key = %+v, %v", v, err)
	}
	if v, err := p.Prepare(ctx, "t5", []Op{{Key: "carol", Delta: -51}}); err != nil || v.Yes || !strings.Contains(v.Reason, "insufficient funds") {
		t.Errorf("Prepare overdrawing carol = %+v, %v", v, err)
	}
	if _, err := p.Update(ctx, "carol", -51); !errors.Is(err, ErrInsufficientFunds) {
		t.Errorf("Update overdrawing carol = %v", err)
	}
	if s := p.Stats(); s.Prepared != 1 || s.Committed != 1 || s.VotedNo != 3 || s.LocksHeld != 0 {
		t.Errorf("stats %+v", s)
	}
}

func TestParticipantNotRecovered(t *testing.T) {
	c := newCluster(t, sqliteBackend(t), bankAccounts())
	n := c.nodes["bank-a"]
	p, err := NewParticipant(ParticipantConfig{Name: "late", DB: n.db, Dialect: SQLite, Table: n.table})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Prepare(c.ctx, "t1", nil); !errors.Is(err, ErrNotRecovered) {
		t.Errorf("Prepare before Recover = %v", err)
	}
	if _, err := p.Get(c.ctx, "alice"); !errors.Is(err, ErrNotRecovered) {
		t.Errorf("Get before Recover = %v", err)
	}
}

// TestLockTimeoutVotesNo: a prepare that cannot get its lock within LockTimeout votes no.
func TestLockTimeoutVotesNo(t *testing.T) {
	p, ctx, c := newTestParticipant(t)
	if v, err := p.Prepare(ctx, "t1", []Op{{Key: "alice", Delta: -1}}); err != nil || !v.Yes {
		t.Fatal(v, err)
	}
	second := async(t, func() (Vote, error) {
		return p.Prepare(ctx, "t2", []Op{{Key: "alice", Delta: 1}, {Key: "carol", Delta: 1}})
	})
	if err := c.clk.WaitForTimers(ctx, 1); err != nil {
		t.Fatal(err)
	}
	c.clk.Advance(c.lockTimeout - time.Nanosecond)
	notYet(t, second, "Prepare before its lock timeout")
	c.clk.Advance(time.Nanosecond)
	v, err := await(t, ctx, second, "Prepare")
	if err != nil || v.Yes || !strings.Contains(v.Reason, "lock wait timed out") || !strings.Contains(v.Reason, "tx:t1") {
		t.Errorf("blocked Prepare = %+v, %v; want a no vote naming the holder", v, err)
	}
	s := p.Stats()
	if s.LockTimeouts != 1 || s.Waited != 1 || s.LocksHeld != 1 || s.WaitMax != c.lockTimeout {
		t.Errorf("stats %+v", s)
	}
	if err := p.Abort(ctx, "t1"); err != nil {
		t.Fatal(err)
	}
	if s := p.Stats(); s.LocksHeld != 0 || s.HoldMax != c.lockTimeout {
		t.Errorf("after abort: %d locks held, longest hold %v", s.LocksHeld, s.HoldMax)
	}
}

// TestAbortWhilePreparing: an abort that overtakes a prepare still waiting for its locks makes
// it give up at once and vote no.
func TestAbortWhilePreparing(t *testing.T) {
	p, ctx, _ := newTestParticipant(t)
	if v, err := p.Prepare(ctx, "t1", []Op{{Key: "alice", Delta: -1}}); err != nil || !v.Yes {
		t.Fatal(v, err)
	}
	second := async(t, func() (Vote, error) { return p.Prepare(ctx, "t2", []Op{{Key: "alice", Delta: 1}}) })
	if err := p.locks.waitForWaiters(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if err := p.Abort(ctx, "t2"); err != nil {
		t.Fatal(err)
	}
	if v, err := await(t, ctx, second, "Prepare"); err != nil || v.Yes {
		t.Errorf("overtaken Prepare = %+v, %v; want no", v, err)
	}
	if v, err := p.Prepare(ctx, "t2", []Op{{Key: "alice", Delta: 1}}); err != nil || v.Yes {
		t.Errorf("Prepare again = %+v, %v; want no", v, err)
	}
}

// TestLocalOpsWaitForLocks: Get and Update wait behind a prepared transaction for as long as
// their context allows, and a Close (crash) wakes them with ErrClosed.
func TestLocalOpsWaitForLocks(t *testing.T) {
	p, ctx, _ := newTestParticipant(t)
	if v, err := p.Prepare(ctx, "t1", []Op{{Key: "alice", Delta: -1}}); err != nil || !v.Yes {
		t.Fatal(v, err)
	}
	gctx, cancel := context.WithCancel(ctx)
	get := async(t, func() (int64, error) { return p.Get(gctx, "alice") })
	if err := p.locks.waitForWaiters(ctx, 1); err != nil {
		t.Fatal(err)
	}
	cancel()
	if _, err := await(t, ctx, get, "Get"); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled Get = %v", err)
	}
	// Other keys are not blocked.
	if b, err := p.Update(ctx, "carol", 5); err != nil || b != 55 {
		t.Errorf("Update(carol) = %d, %v", b, err)
	}
	upd := async(t, func() (int64, error) { return p.Update(ctx, "alice", 1) })
	if err := p.locks.waitForWaiters(ctx, 1); err != nil {
		t.Fatal(err)
	}
	p.Close()
	if _, err := await(t, ctx, upd, "Update"); !errors.Is(err, ErrClosed) {
		t.Errorf("Update when the participant closed = %v", err)
	}
	if err := p.Commit(ctx, "t1"); !errors.Is(err, ErrClosed) {
		t.Errorf("Commit after Close = %v", err)
	}
	if err := p.Close(); err != nil {
		t.Errorf("second Close = %v", err)
	}
}

// TestPrepareWithLostWriteResult: the prepared record was written but the participant did not
// learn it (a commit acknowledgement lost with the connection). It keeps the transaction as in
// doubt, locks held, but never votes yes for it; the coordinator's abort cleans up.
func TestPrepareWithLostWriteResult(t *testing.T) {
	p, ctx, c := newTestParticipant(t)
	p.afterPrepareWrite = func() error { return errors.New("connection reset") }
	if v, err := p.Prepare(ctx, "t1", []Op{{Key: "alice", Delta: -1}}); err == nil || v.Yes {
		t.Fatalf("Prepare = %+v, %v; want an error", v, err)
	}
	p.afterPrepareWrite = nil
	if got := p.InDoubt(); len(got) != 1 || p.Stats().LocksHeld != 1 {
		t.Fatalf("in doubt %v, %d locks", got, p.Stats().LocksHeld)
	}
	if v, err := p.Prepare(ctx, "t1", []Op{{Key: "alice", Delta: -1}}); err != nil || v.Yes {
		t.Errorf("repeated Prepare = %+v, %v; want no", v, err)
	}
	if err := p.Abort(ctx, "t1"); err != nil {
		t.Fatal(err)
	}
	if got := c.outcomes("t1"); got["bank-a"] != "abort" {
		t.Errorf("outcome %v", got)
	}
	if k := c.count(c.nodes["bank-a"].db, c.nodes["bank-a"].table+"_prepared"); k != 0 || p.Stats().LocksHeld != 0 {
		t.Errorf("%d prepared rows, %d locks after the abort", k, p.Stats().LocksHeld)
	}
}

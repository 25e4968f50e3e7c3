package twophase

import (
	"errors"
	"testing"
	"time"
)

// TestBlockingWhileCoordinatorDown is the blocking window the literature warns about (Bernstein,
// Hadzilacos and Goodman, "Concurrency Control and Recovery in Database Systems", 1987, §7.4:
// "2PC is blocking"). Both participants vote yes, then the coordinator goes down. A participant
// that voted yes may not decide alone: committing could contradict an abort, aborting could
// contradict a commit the coordinator already logged. So it keeps its locks for the whole
// outage, and everything that touches those keys waits: a reader, a local writer, and another
// coordinator's transfer, which gives up after its lock timeout and aborts. Once a coordinator
// recovers from the log, the decision arrives, the locks go and the waiters finish.
//
// The outage is ten minutes on the manual clock; the test logs what the participants measured:
//
//	go test ./twophase -run TestBlockingWhileCoordinatorDown -v
func TestBlockingWhileCoordinatorDown(t *testing.T) {
	cases := []struct {
		name  string
		point CrashPoint
		want  Outcome
	}{
		// The decision is durable: recovery commits.
		{"commit-logged", CrashAfterDecision, Committed},
		// Every vote was yes but no decision was logged: recovery aborts (presumed abort). The
		// participants could not have known this either: they block all the same.
		{"undecided", CrashAfterPrepare, Aborted},
	}
	const outage = 10 * time.Minute
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := newCluster(t, sqliteBackend(t), clusterConfig{
				accounts:       bankAccounts().accounts,
				lockTimeout:    30 * time.Second,
				prepareTimeout: time.Minute,
			})
			ctx := c.ctx
			bankA, bankB := c.nodes["bank-a"].p, c.nodes["bank-b"].p

			// The coordinator crashes with both participants prepared.
			co := c.startCoordinator(crashOnce(tc.point, "t-blocked"))
			if _, err := co.Run(ctx, "t-blocked", transfer("bank-a", "alice", "bank-b", "bob", 40)); !errors.Is(err, ErrCrashed) {
				t.Fatalf("Run = %v; want a crash", err)
			}
			c.net.Cut(CoordinatorNode)
			down := c.clk.Now()
			for _, p := range []*Participant{bankA, bankB} {
				if s := p.Stats(); s.InDoubt != 1 || s.LocksHeld != 1 {
					t.Fatalf("%s after the crash: %d in doubt, %d locks", p.Name(), s.InDoubt, s.LocksHeld)
				}
			}

			// Work that touches the locked keys piles up behind the in-doubt transaction.
			reader := async(t, func() (int64, error) { return bankA.Get(ctx, "alice") })
			writer := async(t, func() (int64, error) { return bankB.Update(ctx, "bob", 5) })
			other, err := NewCoordinator(Config{
				DB: c.coordDB, Dialect: c.be.dialect, Table: c.coordTable + "_other", Clock: c.clk,
				Participants: c.resources, PrepareTimeout: time.Minute,
			})
			if err != nil {
				t.Fatal(err)
			}
			if err := other.Migrate(ctx); err != nil {
				t.Fatal(err)
			}
			concurrent := async(t, func() (Outcome, error) {
				return other.Run(ctx, "t-other", transfer("bank-a", "alice", "bank-b", "bob", 10))
			})
			for _, p := range []*Participant{bankA, bankB} {
				if err := p.locks.waitForWaiters(ctx, 2); err != nil {
					t.Fatal(err)
				}
			}
			// The other transfer's prepare deadline and its two lock waits.
			if err := c.clk.WaitForTimers(ctx, 3); err != nil {
				t.Fatal(err)
			}
			// Keys no in-doubt transaction holds are not blocked.
			if b, err := bankA.Get(ctx, "carol"); err != nil || b != 50 {
				t.Errorf("Get(carol) = %d, %v", b, err)
			}

			// The outage. The participants ask and get no answer; nothing they wait for moves.
			otherDone := time.Duration(0)
			steps := []time.Duration{c.lockTimeout}
			for m := time.Minute; m <= outage; m += time.Minute {
				steps = append(steps, m)
			}
			for _, at := range steps {
				c.clk.Set(down.Add(at))
				for _, p := range []*Participant{bankA, bankB} {
					if _, err := p.Resolve(ctx); !errors.Is(err, ErrUnreachable) {
						t.Fatalf("%s: Resolve during the outage = %v", p.Name(), err)
					}
				}
				notYet(t, reader, "Get(alice)")
				notYet(t, writer, "Update(bob)")
				if otherDone == 0 {
					// One lock timeout into the outage, the other transfer gives up.
					o, err := await(t, ctx, concurrent, "the other transfer")
					if err != nil || o != Aborted {
						t.Fatalf("other transfer = %v, %v; want aborted by its lock timeout", o, err)
					}
					otherDone = at
				}
			}
			for _, p := range []*Participant{bankA, bankB} {
				if s := p.Stats(); s.InDoubt != 1 || s.LongestHeldNow != outage || s.Waiting != 1 {
					t.Errorf("%s at the end of the outage: %d in doubt, oldest lock %v, %d waiting",
						p.Name(), s.InDoubt, s.LongestHeldNow, s.Waiting)
				}
			}

			// A coordinator comes back and recovers from the log.
			recovered := c.startCoordinator(nil)
			c.net.Heal(CoordinatorNode)
			if _, err := recovered.Recover(ctx); err != nil {
				t.Fatal(err)
			}
			alice, err := await(t, ctx, reader, "Get(alice)")
			if err != nil {
				t.Fatal(err)
			}
			bob, err := await(t, ctx, writer, "Update(bob)")
			if err != nil {
				t.Fatal(err)
			}
			wantAlice, wantBob := int64(100), int64(105)
			if tc.want == Committed {
				wantAlice, wantBob = 60, 145
			}
			if alice != wantAlice || bob != wantBob {
				t.Errorf("after recovery: alice %d, bob %d; want %d, %d", alice, bob, wantAlice, wantBob)
			}
			if c.total() != 255 { // 250 plus the local deposit
				t.Errorf("total %d, want 255", c.total())
			}
			c.checkQuiescent()

			for _, p := range []*Participant{bankA, bankB} {
				s := p.Stats()
				var held time.Duration
				for _, h := range s.RecentHolds {
					if h.Owner == txOwner("t-blocked") {
						held = h.Held
					}
				}
				if held != outage || s.Waited != 2 || s.WaitMax != outage || s.WaitTotal != outage+c.lockTimeout || s.LockTimeouts != 1 {
					t.Errorf("%s: lock held %v, %d waits (longest %v, total %v), %d lock timeouts; want %v, 2, %v, %v, 1",
						p.Name(), held, s.Waited, s.WaitMax, s.WaitTotal, s.LockTimeouts, outage, outage, outage+c.lockTimeout)
				}
				t.Logf("%s: in-doubt lock held %v (outage %v); %d operations blocked, longest wait %v, total wait %v; %d prepare(s) gave up after the %v lock timeout",
					p.Name(), held, outage, s.Waited, s.WaitMax, s.WaitTotal, s.LockTimeouts, c.lockTimeout)
			}
			t.Logf("outcome after recovery: %v; the concurrent transfer aborted %v into the outage; the reader and the writer waited the whole outage", tc.want, otherDone)
		})
	}
}

package twophase

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestRandomCrashes runs random transfers between three participants while crashing the
// coordinator (at any crash point, also during recovery) and the participants (before and after
// prepare, before and after applying the decision), dropping decisions, and recovering in random
// order, sometimes only several transactions later. In the end, with everything restarted and
// recovered, it checks:
//   - atomicity: every transaction committed at all its participants or at none;
//   - what Run reported holds: committed means committed, aborted or undecided means aborted;
//   - conservation: the sum of all balances is unchanged, and every balance is its opening
//     balance plus the committed transfers;
//   - nothing is in doubt, locked, or left in a log.
//
// Each run has its own seed, printed on failure. FAULTLINE_2PC_RUNS sets the number of runs
// (default 200), FAULTLINE_2PC_SEED the first seed; a failed run replays its fault schedule with
// its seed and FAULTLINE_2PC_RUNS=1 (goroutine scheduling may still differ).
func TestRandomCrashes(t *testing.T) {
	randomCrashes(t, 200, sqliteOneFileBackend)
}

// TestRandomCrashesPostgres is TestRandomCrashes with every log and table in PostgreSQL, a tenth
// as many runs (FAULTLINE_2PC_RUNS/10, at least one).
func TestRandomCrashesPostgres(t *testing.T) {
	postgresBackend(t) // skip now when PostgreSQL is unreachable
	randomCrashes(t, 20, postgresBackend)
}

func randomCrashes(t *testing.T, runs int, newBackend func(testing.TB) *backend) {
	if s := os.Getenv("FAULTLINE_2PC_RUNS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			t.Fatalf("FAULTLINE_2PC_RUNS=%q: want a positive number", s)
		}
		runs = max(1, n*runs/200)
	}
	seed := time.Now().UnixNano()
	if s := os.Getenv("FAULTLINE_2PC_SEED"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			t.Fatalf("FAULTLINE_2PC_SEED=%q: want an integer", s)
		}
		seed = n
	}
	t.Logf("seed %d, %d runs", seed, runs)
	var stats chaosStats
	for i := range runs {
		s := seed + int64(i)
		ok := t.Run(fmt.Sprintf("run%03d", i), func(t *testing.T) { randomRun(t, s, newBackend(t), &stats) })
		if !ok {
			t.Fatalf("run %d failed; replay: FAULTLINE_2PC_SEED=%d FAULTLINE_2PC_RUNS=1 go test ./twophase -run '%s$' -v", i, s, t.Name())
		}
	}
	t.Logf("%d transactions: %d committed, %d aborted; %d coordinator crashes, %d participant faults",
		stats.txns, stats.committed, stats.aborted, stats.coordCrashes, stats.partFaults)
}

type chaosStats struct {
	txns, committed, aborted, coordCrashes, partFaults int
}

// partFault is a planned participant fault.
type partFault struct {
	name, txID, kind string
	fired            bool
}

const (
	faultCrashOnPrepare     = "crash-on-prepare"     // dies before the prepare arrives
	faultCrashAfterPrepare  = "crash-after-prepare"  // prepares, dies before the vote leaves
	faultCrashAfterVote     = "crash-after-vote"     // prepares, votes, dies
	faultCrashOnDecision    = "crash-on-decision"    // dies before the decision arrives
	faultCrashAfterDecision = "crash-after-decision" // applies the decision, dies before the ack
	faultDropDecision       = "drop-decision"        // the decision is lost on the way
	faultNone               = ""
)

const errInjectedText = "injected coordinator crash"

var partFaultKinds = []string{faultCrashOnPrepare, faultCrashAfterPrepare, faultCrashAfterVote,
	faultCrashOnDecision, faultCrashAfterDecision, faultDropDecision}

// chaos drives one random run.
type chaos struct {
	t   *testing.T
	c   *cluster
	rng *rand.Rand
	log []string // what happened, printed on failure

	mu           sync.Mutex
	coordPoint   CrashPoint // armed coordinator crash, "" when none
	coordTx      string     // for this transaction only ("" any)
	coordCrashed bool
	part         *partFault
	crashed      map[string]bool
}

func (h *chaos) logf(format string, args ...any) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.log = append(h.log, fmt.Sprintf(format, args...))
}

// hook is the coordinator's crash hook.
func (h *chaos) hook(point CrashPoint, txID string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.coordPoint == "" || point != h.coordPoint || (h.coordTx != "" && txID != h.coordTx) {
		return nil
	}
	h.coordPoint, h.coordCrashed = "", true
	h.log = append(h.log, fmt.Sprintf("  coordinator crashes at %s in %s", point, txID))
	return errors.New(errInjectedText)
}

// fault returns the planned fault of kind for participant name in txID, once.
func (h *chaos) fault(name, txID string, kinds ...string) string {
	h.mu.Lock()
	defer h.mu.Unlock()
	f := h.part
	if f == nil || f.fired || f.name != name || f.txID != txID || !slices.Contains(kinds, f.kind) {
		return faultNone
	}
	f.fired = true
	h.log = append(h.log, fmt.Sprintf("  %s: %s in %s", name, f.kind, txID))
	return f.kind
}

func (h *chaos) crash(name string) {
	h.mu.Lock()
	h.crashed[name] = true
	h.mu.Unlock()
	h.c.crashParticipant(name)
}

// faultyResource is the coordinator's stub for a participant, with the planned faults.
type faultyResource struct {
	Resource
	h    *chaos
	name string
}

func (r *faultyResource) Prepare(ctx context.Context, txID string, ops []Op) (Vote, error) {
	switch r.h.fault(r.name, txID, faultCrashOnPrepare, faultCrashAfterPrepare, faultCrashAfterVote) {
	case faultCrashOnPrepare:
		r.h.crash(r.name)
		return Vote{}, ErrUnreachable
	case faultCrashAfterPrepare:
		r.Resource.Prepare(ctx, txID, ops) //nolint:errcheck // the answer is lost
		r.h.crash(r.name)
		return Vote{}, ErrUnreachable
	case faultCrashAfterVote:
		v, err := r.Resource.Prepare(ctx, txID, ops)
		r.h.crash(r.name)
		return v, err
	}
	return r.Resource.Prepare(ctx, txID, ops)
}

func (r *faultyResource) decide(ctx context.Context, txID string, send func(context.Context, string) error) error {
	switch r.h.fault(r.name, txID, faultCrashOnDecision, faultCrashAfterDecision, faultDropDecision) {
	case faultCrashOnDecision:
		r.h.crash(r.name)
		return ErrUnreachable
	case faultCrashAfterDecision:
		send(ctx, txID) //nolint:errcheck // the ack is lost
		r.h.crash(r.name)
		return ErrUnreachable
	case faultDropDecision:
		return ErrUnreachable
	}
	return send(ctx, txID)
}

func (r *faultyResource) Commit(ctx context.Context, txID string) error {
	return r.decide(ctx, txID, r.Resource.Commit)
}

func (r *faultyResource) Abort(ctx context.Context, txID string) error {
	return r.decide(ctx, txID, r.Resource.Abort)
}

// run runs one transaction, moving the manual clock on whenever a prepare waits for a lock
// (behind an in-doubt transaction) so that its lock timeout ends the wait.
func (h *chaos) run(txID string, ops map[string][]Op) (Outcome, error) {
	c := h.c
	done := make(chan result[Outcome], 1)
	go func() {
		o, err := c.coord.Run(c.ctx, txID, ops)
		done <- result[Outcome]{o, err}
	}()
	for {
		wctx, cancel := context.WithCancel(c.ctx)
		waiting := make(chan error, 1)
		go func() { waiting <- c.clk.WaitForTimers(wctx, 2) }() // the prepare deadline and a lock wait
		select {
		case r := <-done:
			cancel()
			<-waiting
			return r.v, r.err
		case err := <-waiting:
			cancel()
			if err != nil {
				h.t.Fatalf("waiting for %s: %v", txID, err)
			}
			h.logf("  %s waits for a lock: clock +%v", txID, c.lockTimeout)
			c.clk.Advance(c.lockTimeout)
		}
	}
}

// restartCoordinator starts a new coordinator over the log, and recovers it when recover is
// set, crashing it during recovery now and then (and starting again).
func (h *chaos) restartCoordinator(recover bool, mayCrash bool) {
	for attempt := 0; ; attempt++ {
		h.mu.Lock()
		h.coordCrashed = false
		h.coordPoint = ""
		if recover && mayCrash && attempt < 3 && h.rng.IntN(5) == 0 {
			h.coordPoint, h.coordTx = CrashPoints()[h.rng.IntN(len(CrashPoints()))], ""
		}
		h.mu.Unlock()
		h.c.startCoordinator(h.hook)
		h.logf("coordinator restarts (recover=%v)", recover)
		if !recover {
			return
		}
		rep, err := h.c.coord.Recover(h.c.ctx)
		h.logf("  recover: %+v, %v", rep, err)
		h.mu.Lock()
		h.coordPoint = "" // armed for this recovery only
		h.mu.Unlock()
		if err == nil {
			return
		}
		if !errors.Is(err, ErrCrashed) {
			h.fail("Recover: %v", err)
		}
	}
}

func (h *chaos) restartParticipant(name string) {
	h.mu.Lock()
	delete(h.crashed, name)
	h.mu.Unlock()
	n := h.c.startParticipant(name, false)
	h.logf("%s restarts: %d in doubt", name, n)
}

func (h *chaos) fail(format string, args ...any) {
	h.t.Helper()
	h.mu.Lock()
	history := strings.Join(h.log, "\n")
	h.mu.Unlock()
	h.t.Fatalf(format+"\nhistory:\n%s", append(args, history)...)
}

func randomRun(t *testing.T, seed int64, be *backend, stats *chaosStats) {
	rng := rand.New(rand.NewPCG(uint64(seed), uint64(seed>>32)))
	names := []string{"p0", "p1", "p2"}
	keys := []string{"k0", "k1"}
	accounts := map[string]map[string]int64{}
	opening := map[string]int64{} // "p0/k0" → balance
	for _, n := range names {
		accounts[n] = map[string]int64{}
		for _, k := range keys {
			accounts[n][k] = 100
			opening[n+"/"+k] = 100
		}
	}
	c := newCluster(t, be, clusterConfig{accounts: accounts, lockTimeout: 10 * time.Second, prepareTimeout: time.Minute})
	h := &chaos{t: t, c: c, rng: rng, crashed: map[string]bool{}}
	for _, n := range names {
		c.resources[n] = &faultyResource{Resource: c.net.Resource(n), h: h, name: n}
	}
	c.startCoordinator(h.hook)

	type txn struct {
		id       string
		ops      map[string][]Op
		reported Outcome
		err      error
	}
	var txns []txn
	nTx := 3 + rng.IntN(5)
	for k := range nTx {
		// Between transactions: maybe recover some of what crashed, maybe not yet.
		h.mu.Lock()
		crashed := make([]string, 0, len(h.crashed))
		for n := range h.crashed {
			crashed = append(crashed, n)
		}
		coordCrashed := h.coordCrashed
		h.mu.Unlock()
		slices.Sort(crashed)
		if coordCrashed {
			h.restartCoordinator(rng.IntN(2) == 0, true)
		}
		for _, n := range crashed {
			if rng.IntN(2) == 0 {
				h.restartParticipant(n)
			}
		}
		if rng.IntN(4) == 0 {
			n := names[rng.IntN(len(names))]
			h.mu.Lock()
			down := h.crashed[n]
			h.mu.Unlock()
			if !down {
				r, err := c.nodes[n].p.Resolve(c.ctx)
				h.logf("%s resolves: %d, %v", n, r, err)
			}
		}

		// A transfer from one account to one or two others, on two or three participants.
		id := fmt.Sprintf("t%d", k)
		perm := rng.Perm(len(names))
		from := names[perm[0]] + "/" + keys[rng.IntN(len(keys))]
		amount := int64(1 + rng.IntN(150)) // sometimes more than the balance: a no vote
		legs := 1 + rng.IntN(2)
		ops := map[string][]Op{}
		add := func(acct string, delta int64) {
			n, key, _ := strings.Cut(acct, "/")
			ops[n] = append(ops[n], Op{Key: key, Delta: delta})
		}
		add(from, -amount)
		share := amount / int64(legs)
		for l := range legs {
			d := share
			if l == legs-1 {
				d = amount - share*int64(legs-1)
			}
			add(names[perm[1+l]]+"/"+keys[rng.IntN(len(keys))], d)
		}

		// The fault, if any.
		h.mu.Lock()
		h.part = nil
		switch f := rng.IntN(10); {
		case f < 3:
			h.coordPoint, h.coordTx = CrashPoints()[rng.IntN(len(CrashPoints()))], id
			stats.coordCrashes++
		case f < 6:
			parts := slices.Sorted(maps.Keys(ops))
			h.part = &partFault{name: parts[rng.IntN(len(parts))], txID: id, kind: partFaultKinds[rng.IntN(len(partFaultKinds))]}
			stats.partFaults++
		}
		h.mu.Unlock()

		h.logf("%s: %v", id, ops)
		o, err := h.run(id, ops)
		h.logf("  Run = %v, %v", o, err)
		if err != nil && !errors.Is(err, ErrCrashed) {
			h.fail("%s: Run: %v", id, err)
		}
		h.mu.Lock()
		h.coordPoint = "" // a crash planned for a point this run never reached
		h.mu.Unlock()
		txns = append(txns, txn{id: id, ops: ops, reported: o, err: err})
	}

	// The end: everything restarts, the coordinator recovers.
	h.mu.Lock()
	h.part = nil
	coordCrashed := h.coordCrashed
	crashed := make([]string, 0, len(h.crashed))
	for n := range h.crashed {
		crashed = append(crashed, n)
	}
	h.mu.Unlock()
	slices.Sort(crashed)
	if rng.IntN(2) == 0 {
		for _, n := range crashed {
			h.restartParticipant(n)
		}
		crashed = nil
	}
	if coordCrashed || rng.IntN(2) == 0 {
		h.restartCoordinator(true, true)
	} else {
		rep, err := c.coord.Recover(c.ctx)
		h.logf("recover: %+v, %v", rep, err)
		if err != nil {
			h.fail("Recover: %v", err)
		}
	}
	for _, n := range crashed {
		h.restartParticipant(n)
	}
	// Decisions the coordinator could not deliver while participants were down go now.
	rep, err := c.coord.Recover(c.ctx)
	h.logf("final recover: %+v, %v", rep, err)
	if err != nil || rep.Unfinished != 0 {
		h.fail("final Recover = %+v, %v", rep, err)
	}

	// The checks.
	want := maps.Clone(opening)
	for _, x := range txns {
		committed := c.checkAtomic(x.id, x.ops)
		if x.reported == Committed && !committed || x.reported != Committed && committed {
			h.fail("%s: Run reported %v (%v) but the participants committed=%v", x.id, x.reported, x.err, committed)
		}
		stats.txns++
		if committed {
			stats.committed++
			for n, ops := range x.ops {
				for _, op := range ops {
					want[n+"/"+op.Key] += op.Delta
				}
			}
		} else {
			stats.aborted++
		}
	}
	got := c.balances()
	var total int64
	for acct, w := range want {
		n, key, _ := strings.Cut(acct, "/")
		if got[n][key] != w || w < 0 {
			h.fail("%s: balance %d, want %d", acct, got[n][key], w)
		}
		total += got[n][key]
	}
	if total != int64(100*len(opening)) {
		h.fail("total %d, want %d", total, 100*len(opening))
	}
	c.checkQuiescent()
	if t.Failed() {
		h.fail("seed %d", seed)
	}
}

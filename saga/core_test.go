package saga

import (
	"errors"
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func noop() Invoker { return Command("svc.commands") }

// threeSteps: reserve → charge (pivot optional) → ship.
func coreDef(pivot bool) *Definition {
	d := New("order")
	d.Step(Step{Name: "reserve", Action: noop(), Compensate: noop(), MaxAttempts: 2, Timeout: time.Second})
	if pivot {
		d.Pivot(Step{Name: "charge", Action: noop(), MaxAttempts: 2, Timeout: time.Second})
	} else {
		d.Step(Step{Name: "charge", Action: noop(), Compensate: noop(), MaxAttempts: 2, Timeout: time.Second})
	}
	d.Step(Step{Name: "ship", Action: noop(), Compensate: noop(), MaxAttempts: 2, Timeout: time.Second})
	return d
}

type coreRun struct {
	t   *testing.T
	sp  *spec
	st  *State
	now time.Time
	inv []invocation
	log []LogEntry
}

func newCoreRun(t *testing.T, d *Definition) *coreRun {
	t.Helper()
	if err := d.Validate(); err != nil {
		t.Fatal(err)
	}
	sp := d.spec()
	r := &coreRun{t: t, sp: sp, st: newState(sp, "s1", nil, t0), now: t0}
	r.do(func(tr *transition) { tr.start() })
	return r
}

func (r *coreRun) do(f func(tr *transition)) {
	tr := newTransition(r.sp, r.st, r.now, func() float64 { return 0.5 })
	f(tr)
	r.inv = tr.invokes
	r.log = append(r.log, tr.log...)
}

func (r *coreRun) ok(step string, op Op, attempt int) {
	r.do(func(tr *transition) { tr.result(Result{Step: step, Op: op, Attempt: attempt}) })
}

func (r *coreRun) fail(step string, op Op, attempt int, refused bool) {
	r.do(func(tr *transition) {
		tr.result(Result{Step: step, Op: op, Attempt: attempt, Err: errors.New("boom"), Failure: refused})
	})
}

func (r *coreRun) advance(d time.Duration) {
	r.now = r.now.Add(d)
	r.do(func(tr *transition) { tr.tick() })
}

func (r *coreRun) wantInvokes(want ...string) {
	r.t.Helper()
	var got []string
	for _, i := range r.inv {
		got = append(got, r.sp.steps[i.step].name+"/"+string(i.op))
	}
	if len(got) != len(want) {
		r.t.Fatalf("invocations = %v, want %v", got, want)
	}
	for i := range got {
		if got[i] != want[i] {
			r.t.Fatalf("invocations = %v, want %v", got, want)
		}
	}
}

func (r *coreRun) wantStatus(s Status) {
	r.t.Helper()
	if r.st.Status != s {
		r.t.Fatalf("status = %s, want %s (reason %q)", r.st.Status, s, r.st.Reason)
	}
}

func TestCoreHappyPath(t *testing.T) {
	r := newCoreRun(t, coreDef(false))
	r.wantInvokes("reserve/action")
	r.ok("reserve", OpAction, 1)
	r.wantInvokes("charge/action")
	r.ok("charge", OpAction, 1)
	r.wantInvokes("ship/action")
	r.ok("ship", OpAction, 1)
	r.wantInvokes()
	r.wantStatus(StatusCompleted)
	if !wake(r.sp, r.st).IsZero() {
		t.Fatal("a completed saga still wants to wake")
	}
}

func TestCoreRefusalCompensatesInReverse(t *testing.T) {
	r := newCoreRun(t, coreDef(false))
	r.ok("reserve", OpAction, 1)
	r.ok("charge", OpAction, 1)
	r.fail("ship", OpAction, 1, true)
	r.wantStatus(StatusCompensating)
	// ship was refused: nothing to undo; charge first, then reserve.
	r.wantInvokes("charge/compensate")
	r.ok("charge", OpCompensate, 1)
	r.wantInvokes("reserve/compensate")
	r.ok("reserve", OpCompensate, 1)
	r.wantStatus(StatusCompensated)
	if s := r.st.Step("ship"); s.Status != StepFailed || !s.Refused {
		t.Fatalf("ship = %+v", s)
	}
}

func TestCoreTransientRetriesThenGivesUp(t *testing.T) {
	r := newCoreRun(t, coreDef(false))
	r.fail("reserve", OpAction, 1, false)
	r.wantInvokes()
	ss := r.st.Step("reserve")
	if ss.RetryAt.IsZero() || ss.InFlight {
		t.Fatalf("no retry scheduled: %+v", ss)
	}
	r.advance(ss.RetryAt.Sub(r.now))
	r.wantInvokes("reserve/action")
	if ss.Attempt != 2 {
		t.Fatalf("attempt = %d", ss.Attempt)
	}
	// The second attempt times out: attempts exhausted, the outcome is unknown, so reserve is
	// compensated (the participant's barrier makes a compensation of nothing harmless).
	r.advance(time.Second)
	r.wantStatus(StatusCompensating)
	r.wantInvokes("reserve/compensate")
	// A late success of attempt 1 changes nothing now.
	r.ok("reserve", OpAction, 1)
	r.wantInvokes()
	r.ok("reserve", OpCompensate, 1)
	r.wantStatus(StatusCompensated)
}

func TestCoreStaleAndDuplicateResultsIgnored(t *testing.T) {
	r := newCoreRun(t, coreDef(false))
	r.fail("reserve", OpAction, 1, false)
	r.advance(time.Hour) // retry due
	r.wantInvokes("reserve/action")
	r.fail("reserve", OpAction, 1, false) // stale failure of attempt 1: ignored
	if !r.st.Step("reserve").InFlight {
		t.Fatal("stale failure counted")
	}
	r.ok("reserve", OpAction, 1) // a late success of any attempt counts
	r.wantInvokes("charge/action")
	r.ok("reserve", OpAction, 2) // duplicate
	r.wantInvokes()
	r.ok("ship", OpAction, 1) // not started: ignored
	if r.st.Step("ship").Status != StepPending {
		t.Fatal("result for a pending step applied")
	}
}

func TestCoreCompensationParksAfterBudget(t *testing.T) {
	d := coreDef(false)
	d.CompensationMaxAttempts = 2
	r := newCoreRun(t, d)
	r.ok("reserve", OpAction, 1)
	r.fail("charge", OpAction, 1, true)
	r.wantInvokes("reserve/compensate")
	r.fail("reserve", OpCompensate, 1, false)
	r.advance(time.Hour)
	r.wantInvokes("reserve/compensate")
	r.fail("reserve", OpCompensate, 2, false)
	r.wantStatus(StatusNeedsAttention)
	if r.st.Reason == "" || !wake(r.sp, r.st).IsZero() {
		t.Fatalf("parked saga: reason %q wake %v", r.st.Reason, wake(r.sp, r.st))
	}
	r.advance(time.Hour)
	r.wantInvokes() // parked: no automatic retries
	// Operator retry: a fresh budget.
	r.do(func(tr *transition) {
		if err := tr.retry(); err != nil {
			t.Fatal(err)
		}
	})
	r.wantStatus(StatusCompensating)
	r.wantInvokes("reserve/compensate")
	r.ok("reserve", OpCompensate, 3)
	r.wantStatus(StatusCompensated)
}

func TestCorePivot(t *testing.T) {
	r := newCoreRun(t, coreDef(true))
	r.ok("reserve", OpAction, 1)
	r.ok("charge", OpAction, 1)
	if !r.st.PivotPassed {
		t.Fatal("pivot not passed")
	}
	// After the pivot, ship is retried however often it fails.
	for n := 1; n <= 10; n++ {
		r.fail("ship", OpAction, n, false)
		r.advance(time.Hour)
		r.wantInvokes("ship/action")
	}
	r.do(func(tr *transition) {
		if err := tr.abort("no"); !errors.Is(err, ErrPastPivot) {
			t.Fatalf("abort after pivot: %v", err)
		}
	})
	// A refusal after the pivot cannot compensate: the saga is parked.
	r.fail("ship", OpAction, 11, true)
	r.wantStatus(StatusNeedsAttention)
	r.do(func(tr *transition) {
		if err := tr.retry(); err != nil {
			t.Fatal(err)
		}
	})
	r.ok("ship", OpAction, 12)
	r.wantStatus(StatusCompleted)
}

func TestCorePivotRefusedCompensatesBefore(t *testing.T) {
	r := newCoreRun(t, coreDef(true))
	r.ok("reserve", OpAction, 1)
	r.fail("charge", OpAction, 1, true)
	r.wantInvokes("reserve/compensate")
}

func TestCorePivotUnknownOutcomeParks(t *testing.T) {
	r := newCoreRun(t, coreDef(true))
	r.ok("reserve", OpAction, 1)
	r.advance(time.Second) // attempt 1 times out
	r.advance(time.Hour)   // retry
	r.wantInvokes("charge/action")
	r.advance(time.Second) // attempt 2 times out: budget spent, outcome unknown
	r.wantStatus(StatusNeedsAttention)
}

func TestCoreDeadline(t *testing.T) {
	d := coreDef(false)
	d.Timeout = 10 * time.Second
	d.steps[1].Timeout = time.Minute
	r := newCoreRun(t, d)
	r.ok("reserve", OpAction, 1)
	if w := wake(r.sp, r.st); !w.Equal(t0.Add(10 * time.Second)) {
		t.Fatalf("wake = %v, want the deadline", w)
	}
	r.advance(10 * time.Second)
	r.wantStatus(StatusCompensating)
	// charge is in flight: compensated too; reserve waits for it.
	r.wantInvokes("charge/compensate")
	r.ok("charge", OpAction, 1) // the action's late success: ignored
	r.ok("charge", OpCompensate, 1)
	r.wantInvokes("reserve/compensate")
}

func TestCoreParallelStage(t *testing.T) {
	d := New("trip").
		Parallel(
			Step{Name: "hotel", Action: noop(), Compensate: noop()},
			Step{Name: "flight", Action: noop(), Compensate: noop()},
			Step{Name: "note", Action: noop()},
		).
		Step(Step{Name: "pay", Action: noop(), Compensate: noop()})
	r := newCoreRun(t, d)
	r.wantInvokes("hotel/action", "flight/action", "note/action")
	r.ok("hotel", OpAction, 1)
	r.wantInvokes()
	r.fail("flight", OpAction, 1, true)
	r.wantStatus(StatusCompensating)
	// hotel succeeded → compensate; flight refused → nothing; note in flight without a
	// compensation → abandoned.
	r.wantInvokes("hotel/compensate")
	if r.st.Step("note").Status != StepAbandoned {
		t.Fatalf("note = %s", r.st.Step("note").Status)
	}
	r.ok("hotel", OpCompensate, 1)
	r.wantStatus(StatusCompensated)
}

func TestCoreAbort(t *testing.T) {
	r := newCoreRun(t, coreDef(false))
	r.ok("reserve", OpAction, 1)
	r.do(func(tr *transition) {
		if err := tr.abort("customer cancelled"); err != nil {
			t.Fatal(err)
		}
	})
	r.wantStatus(StatusCompensating)
	r.wantInvokes("charge/compensate")
	r.do(func(tr *transition) {
		if err := tr.abort("again"); !errors.Is(err, ErrCompensating) {
			t.Fatalf("second abort: %v", err)
		}
	})
	r.ok("charge", OpCompensate, 1)
	r.ok("reserve", OpCompensate, 1)
	r.wantStatus(StatusCompensated)
	r.do(func(tr *transition) {
		if err := tr.abort("late"); !errors.Is(err, ErrTerminal) {
			t.Fatalf("abort of an ended saga: %v", err)
		}
	})
}

package saga

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Status is where a saga instance stands.
type Status string

const (
	// StatusRunning: the saga is going forward.
	StatusRunning Status = "running"
	// StatusCompensating: a step failed (or the deadline passed, or an operator aborted) and the
	// saga is undoing the steps that ran, in reverse order.
	StatusCompensating Status = "compensating"
	// StatusCompleted: every step succeeded. Terminal.
	StatusCompleted Status = "completed"
	// StatusCompensated: every step that ran was undone. Terminal.
	StatusCompensated Status = "compensated"
	// StatusNeedsAttention: a compensation kept failing, a step after the pivot was refused, or
	// the pivot's outcome is unknown. The saga is parked with the error until an operator retries
	// or aborts it; it is never dropped.
	StatusNeedsAttention Status = "needs-attention"
	// StatusAborted: an operator aborted a parked saga and took over by hand. Terminal.
	StatusAborted Status = "aborted"
)

// Terminal reports whether the saga will not change any more.
func (s Status) Terminal() bool {
	return s == StatusCompleted || s == StatusCompensated || s == StatusAborted
}

// StepStatus is where one step stands.
type StepStatus string

const (
	// StepPending: not started.
	StepPending StepStatus = "pending"
	// StepRunning: the action is in flight or waiting for its next attempt.
	StepRunning StepStatus = "running"
	// StepSucceeded: the action succeeded.
	StepSucceeded StepStatus = "succeeded"
	// StepFailed: the action was refused (Refused: nothing to undo) or gave up after its attempts
	// (its effect is unknown, so it is compensated).
	StepFailed StepStatus = "failed"
	// StepCompensating: the compensation is in flight or waiting for its next attempt.
	StepCompensating StepStatus = "compensating"
	// StepCompensated: the compensation succeeded.
	StepCompensated StepStatus = "compensated"
	// StepAbandoned: the saga turned back while the action was in progress and the step has no
	// compensation.
	StepAbandoned StepStatus = "abandoned"
)

// StepState is the durable record of one step of a saga instance.
type StepState struct {
	Name   string     `json:"name"`
	Status StepStatus `json:"status"`
	// Op and Attempt describe the operation in progress (or the last one).
	Op      Op  `json:"op,omitempty"`
	Attempt int `json:"attempt,omitempty"`
	// InFlight: the attempt was sent and has neither answered nor timed out.
	InFlight bool `json:"inFlight,omitempty"`
	// TimeoutAt is when the attempt in flight times out; RetryAt when the next attempt is due.
	TimeoutAt time.Time `json:"timeoutAt,omitzero"`
	RetryAt   time.Time `json:"retryAt,omitzero"`
	// attemptBase: attempts counted against the budget are Attempt − AttemptBase (an operator
	// retry starts a new budget).
	AttemptBase int `json:"attemptBase,omitempty"`

	ActionAttempts       int       `json:"actionAttempts,omitempty"`
	CompensationAttempts int       `json:"compensationAttempts,omitempty"`
	StartedAt            time.Time `json:"startedAt,omitzero"`
	EndedAt              time.Time `json:"endedAt,omitzero"`
	CompensationStarted  time.Time `json:"compensationStartedAt,omitzero"`
	CompensationEnded    time.Time `json:"compensationEndedAt,omitzero"`
	// Error is the last failure of this step.
	Error string `json:"error,omitempty"`
	// Refused: the action was refused for a business reason and left nothing to undo.
	Refused bool `json:"refused,omitempty"`
	// Output is the action's result, passed to later steps.
	Output json.RawMessage `json:"output,omitempty"`
}

// State is the durable record of a saga instance.
type State struct {
	ID     string          `json:"id"`
	Saga   string          `json:"saga"`
	Status Status          `json:"status"`
	Input  json.RawMessage `json:"input,omitempty"`
	// Stage is the stage going forward, or being compensated.
	Stage       int         `json:"stage"`
	Steps       []StepState `json:"steps"`
	PivotPassed bool        `json:"pivotPassed,omitempty"`
	// PivotReached: the pivot's stage has started, so the saga can no longer be aborted.
	PivotReached bool      `json:"pivotReached,omitempty"`
	CreatedAt    time.Time `json:"createdAt"`
	UpdatedAt    time.Time `json:"updatedAt"`
	EndedAt      time.Time `json:"endedAt,omitzero"`
	Deadline     time.Time `json:"deadline,omitzero"`
	// Reason says why the saga compensated, was parked or aborted.
	Reason string `json:"reason,omitempty"`
	// ParkedFrom is the status a needs-attention saga resumes on retry.
	ParkedFrom Status `json:"parkedFrom,omitempty"`
	// Version counts the saved changes (optimistic concurrency in the store).
	Version int64 `json:"version"`
}

// Step returns the state of the named step, or nil.
func (st *State) Step(name string) *StepState {
	for i := range st.Steps {
		if st.Steps[i].Name == name {
			return &st.Steps[i]
		}
	}
	return nil
}

// Result is the outcome of one invocation, fed back to the core.
type Result struct {
	Step    string
	Op      Op
	Attempt int
	// Err is nil on success; Failure says whether it is a business refusal (not retried).
	Err     error
	Failure bool
	Output  json.RawMessage
}

// LogEntry is one line of a saga's history.
type LogEntry struct {
	At      time.Time `json:"at"`
	Step    string    `json:"step,omitempty"`
	Op      Op        `json:"op,omitempty"`
	Attempt int       `json:"attempt,omitempty"`
	Event   string    `json:"event"`
	Detail  string    `json:"detail,omitempty"`
}

// invocation asks the runtime to carry out one attempt.
type invocation struct {
	step    int
	op      Op
	attempt int
}

// Errors of operator commands.
var (
	// ErrTerminal: the saga has already ended.
	ErrTerminal = errors.New("saga: the saga has ended")
	// ErrPastPivot: the saga passed its pivot and can only go forward.
	ErrPastPivot = errors.New("saga: the saga has reached its pivot and can only go forward")
	// ErrNotParked: only a needs-attention saga can be retried.
	ErrNotParked = errors.New("saga: only a needs-attention saga can be retried")
	// ErrCompensating: the saga is already compensating.
	ErrCompensating = errors.New("saga: the saga is already compensating")
)

// transition applies events to a State. It is the deterministic core: it reads no clock (now is
// given), draws no random number of its own (rnd is given) and performs no I/O; it records the
// attempts to make and a history.
type transition struct {
	sp      *spec
	st      *State
	now     time.Time
	rnd     func() float64
	invokes []invocation
	log     []LogEntry
}

func newTransition(sp *spec, st *State, now time.Time, rnd func() float64) *transition {
	return &transition{sp: sp, st: st, now: now, rnd: rnd}
}

func (t *transition) note(step int, op Op, attempt int, event, detail string) {
	e := LogEntry{At: t.now, Op: op, Attempt: attempt, Event: event, Detail: detail}
	if step >= 0 {
		e.Step = t.sp.steps[step].name
	}
	t.log = append(t.log, e)
}

// newState returns the initial state of a saga instance (not started).
func newState(sp *spec, id string, input json.RawMessage, now time.Time) *State {
	st := &State{ID: id, Saga: sp.name, Status: StatusRunning, Input: input, CreatedAt: now, UpdatedAt: now}
	if sp.timeout > 0 {
		st.Deadline = now.Add(sp.timeout)
	}
	st.Steps = make([]StepState, len(sp.steps))
	for i, s := range sp.steps {
		st.Steps[i] = StepState{Name: s.name, Status: StepPending}
	}
	return st
}

// start launches the first stage.
func (t *transition) start() {
	t.note(-1, "", 0, "started", "")
	t.launchStage(0)
}

func (t *transition) launchStage(k int) {
	t.st.Stage = k
	if k == t.sp.pivot {
		t.st.PivotReached = true
		t.note(t.sp.stages[k][0], OpAction, 0, "pivot", "")
	}
	for _, i := range t.sp.stages[k] {
		ss := &t.st.Steps[i]
		ss.Status = StepRunning
		ss.StartedAt = t.now
		t.send(i, OpAction, 1)
	}
}

// send starts attempt n of op on step i.
func (t *transition) send(i int, op Op, n int) {
	ss := &t.st.Steps[i]
	ss.Op, ss.Attempt, ss.InFlight = op, n, true
	ss.RetryAt = time.Time{}
	ss.TimeoutAt = t.now.Add(t.sp.steps[i].timeout)
	if op == OpAction {
		ss.ActionAttempts++
	} else {
		ss.CompensationAttempts++
	}
	t.invokes = append(t.invokes, invocation{step: i, op: op, attempt: n})
	t.note(i, op, n, "invoked", "")
}

// phase is the status whose rules apply: a parked saga keeps recording results of the phase it
// was parked in.
func (t *transition) phase() Status {
	if t.st.Status == StatusNeedsAttention {
		return t.st.ParkedFrom
	}
	return t.st.Status
}

// result applies one invocation's outcome. Stale and duplicate results are ignored.
func (t *transition) result(r Result) {
	i, ok := t.sp.stepByName[r.Step]
	if !ok || t.st.Status.Terminal() {
		return
	}
	ss := &t.st.Steps[i]
	parked := t.st.Status == StatusNeedsAttention
	switch {
	case r.Op == OpAction && ss.Status == StepRunning && t.phase() == StatusRunning:
		if r.Err == nil {
			ss.Status, ss.InFlight, ss.EndedAt, ss.Output, ss.Error = StepSucceeded, false, t.now, r.Output, ""
			ss.TimeoutAt, ss.RetryAt = time.Time{}, time.Time{}
			t.note(i, r.Op, r.Attempt, "succeeded", "")
			if t.sp.steps[i].stage == t.sp.pivot {
				t.st.PivotPassed = true
			}
			if !parked {
				t.advance()
			}
			return
		}
		if r.Attempt != ss.Attempt || !ss.InFlight {
			return
		}
		t.actionFailed(i, r.Err.Error(), r.Failure)
	case r.Op == OpCompensate && ss.Status == StepCompensating && t.phase() == StatusCompensating:
		if r.Err == nil {
			ss.Status, ss.InFlight, ss.CompensationEnded, ss.Error = StepCompensated, false, t.now, ""
			ss.TimeoutAt, ss.RetryAt = time.Time{}, time.Time{}
			t.note(i, r.Op, r.Attempt, "compensated", "")
			if !parked {
				t.advance()
			}
			return
		}
		if r.Attempt != ss.Attempt || !ss.InFlight {
			return
		}
		t.compensationFailed(i, r.Err.Error())
	}
}

// afterPivot reports whether step i can no longer be compensated: it comes after a pivot that
// succeeded.
func (t *transition) afterPivot(i int) bool {
	return t.sp.pivot >= 0 && t.sp.steps[i].stage > t.sp.pivot
}

func (t *transition) actionFailed(i int, msg string, refused bool) {
	ss := &t.st.Steps[i]
	ss.InFlight, ss.TimeoutAt, ss.Error = false, time.Time{}, msg
	event := "failed"
	if refused {
		event = "refused"
	}
	t.note(i, OpAction, ss.Attempt, event, msg)
	if t.st.Status == StatusNeedsAttention {
		return
	}
	name := t.sp.steps[i].name
	switch {
	case t.afterPivot(i):
		if refused {
			t.park(fmt.Sprintf("step %q after the pivot was refused: %s", name, msg))
			return
		}
		t.retryLater(i)
	case refused:
		ss.Status, ss.Refused, ss.EndedAt = StepFailed, true, t.now
		t.beginCompensation(fmt.Sprintf("step %q refused: %s", name, msg))
	case ss.Attempt-ss.AttemptBase >= t.sp.steps[i].maxAttempts:
		if t.sp.steps[i].stage == t.sp.pivot {
			// The pivot has no compensation and its effect is unknown: going back could leave it
			// applied with everything before it undone. A person decides.
			t.park(fmt.Sprintf("pivot %q gave up after %s with its outcome unknown: %s", name, attempts(ss.Attempt-ss.AttemptBase), msg))
			return
		}
		ss.Status, ss.EndedAt = StepFailed, t.now
		t.beginCompensation(fmt.Sprintf("step %q gave up after %s: %s", name, attempts(ss.Attempt-ss.AttemptBase), msg))
	default:
		t.retryLater(i)
	}
}

func (t *transition) compensationFailed(i int, msg string) {
	ss := &t.st.Steps[i]
	ss.InFlight, ss.TimeoutAt, ss.Error = false, time.Time{}, msg
	t.note(i, OpCompensate, ss.Attempt, "failed", msg)
	if t.st.Status == StatusNeedsAttention {
		return
	}
	if ss.Attempt-ss.AttemptBase >= t.sp.compMax {
		t.park(fmt.Sprintf("compensation of step %q failed %s: %s", t.sp.steps[i].name, times(ss.Attempt-ss.AttemptBase), msg))
		return
	}
	t.retryLater(i)
}

// retryLater schedules the next attempt of step i's current op after its backoff.
func (t *transition) retryLater(i int) {
	ss := &t.st.Steps[i]
	n := ss.Attempt - ss.AttemptBase - 1
	if n < 0 {
		n = 0
	}
	d := t.sp.steps[i].backoff.Delay(n, 0, t.rnd())
	ss.RetryAt = t.now.Add(d)
}

func (t *transition) park(reason string) {
	t.st.ParkedFrom = t.st.Status
	t.st.Status = StatusNeedsAttention
	t.st.Reason = reason
	for i := range t.st.Steps {
		t.st.Steps[i].RetryAt = time.Time{}
	}
	t.note(-1, "", 0, "needs-attention", reason)
}

// advance moves on when the current stage is done: forward to the next stage (or completion),
// or back to the previous stage's compensations (or the end).
func (t *transition) advance() {
	switch t.st.Status {
	case StatusRunning:
		for _, i := range t.sp.stages[t.st.Stage] {
			if t.st.Steps[i].Status != StepSucceeded {
				return
			}
		}
		if t.st.Stage+1 == len(t.sp.stages) {
			t.st.Status, t.st.EndedAt = StatusCompleted, t.now
			t.note(-1, "", 0, "completed", "")
			return
		}
		t.launchStage(t.st.Stage + 1)
	case StatusCompensating:
		for _, i := range t.sp.stages[t.st.Stage] {
			if t.st.Steps[i].Status == StepCompensating {
				return
			}
		}
		t.compensateFrom(t.st.Stage - 1)
	}
}

func (t *transition) beginCompensation(reason string) {
	t.st.Status, t.st.Reason = StatusCompensating, reason
	t.note(-1, "", 0, "compensating", reason)
	for _, i := range t.sp.stages[t.st.Stage] {
		// Attempts in backoff stop; attempts in flight are covered by the compensation (a
		// participant's barrier skips an action that arrives after its compensation).
		t.st.Steps[i].RetryAt = time.Time{}
	}
	t.compensateFrom(t.st.Stage)
}

// compensateFrom starts the compensations of stage k, or of the first stage below it that has
// something to undo; with none left the saga is compensated.
func (t *transition) compensateFrom(k int) {
	for ; k >= 0; k-- {
		t.st.Stage = k
		started := false
		for _, i := range t.sp.stages[k] {
			ss := &t.st.Steps[i]
			undo := ss.Status == StepSucceeded || ss.Status == StepRunning || (ss.Status == StepFailed && !ss.Refused)
			if !undo {
				continue
			}
			if !t.sp.steps[i].compensable {
				if ss.Status == StepRunning {
					ss.Status, ss.InFlight, ss.TimeoutAt, ss.RetryAt = StepAbandoned, false, time.Time{}, time.Time{}
					t.note(i, OpAction, ss.Attempt, "abandoned", "")
				}
				continue
			}
			ss.Status, ss.CompensationStarted, ss.AttemptBase = StepCompensating, t.now, 0
			t.send(i, OpCompensate, 1)
			started = true
		}
		if started {
			return
		}
	}
	t.st.Status, t.st.EndedAt = StatusCompensated, t.now
	t.note(-1, "", 0, "compensated", t.st.Reason)
}

// tick applies the passage of time: attempts that timed out, retries that are due, and the
// saga's deadline.
func (t *transition) tick() {
	if t.st.Status != StatusRunning && t.st.Status != StatusCompensating {
		return
	}
	if t.st.Status == StatusRunning && t.deadlineApplies() && !t.now.Before(t.st.Deadline) {
		t.beginCompensation(fmt.Sprintf("saga deadline %s passed", t.st.Deadline.UTC().Format(time.RFC3339Nano)))
	}
	for i := range t.st.Steps {
		if t.st.Status != StatusRunning && t.st.Status != StatusCompensating {
			return
		}
		ss := &t.st.Steps[i]
		active := (ss.Status == StepRunning && t.st.Status == StatusRunning) || (ss.Status == StepCompensating && t.st.Status == StatusCompensating)
		if !active {
			continue
		}
		switch {
		case ss.InFlight && !t.now.Before(ss.TimeoutAt):
			msg := fmt.Sprintf("attempt %d timed out after %v", ss.Attempt, t.sp.steps[i].timeout)
			if ss.Op == OpAction {
				t.actionFailed(i, msg, false)
			} else {
				t.compensationFailed(i, msg)
			}
		case !ss.InFlight && !ss.RetryAt.IsZero() && !t.now.Before(ss.RetryAt):
			t.send(i, ss.Op, ss.Attempt+1)
		}
	}
}

// deadlineApplies: the deadline can turn the saga back only before the pivot stage starts.
func (t *transition) deadlineApplies() bool {
	return !t.st.Deadline.IsZero() && !t.st.PivotPassed && (t.sp.pivot < 0 || t.st.Stage < t.sp.pivot)
}

// wake returns when tick next has something to do, or the zero time.
func wake(sp *spec, st *State) time.Time {
	if st.Status != StatusRunning && st.Status != StatusCompensating {
		return time.Time{}
	}
	var w time.Time
	earlier := func(x time.Time) {
		if !x.IsZero() && (w.IsZero() || x.Before(w)) {
			w = x
		}
	}
	if st.Status == StatusRunning && !st.Deadline.IsZero() && !st.PivotPassed && (sp.pivot < 0 || st.Stage < sp.pivot) {
		earlier(st.Deadline)
	}
	for i := range st.Steps {
		ss := &st.Steps[i]
		if ss.Status != StepRunning && ss.Status != StepCompensating {
			continue
		}
		if ss.InFlight {
			earlier(ss.TimeoutAt)
		} else {
			earlier(ss.RetryAt)
		}
	}
	return w
}

// abort turns a running saga back, or ends a parked one.
func (t *transition) abort(reason string) error {
	if reason == "" {
		reason = "no reason given"
	}
	switch t.st.Status {
	case StatusRunning:
		if t.st.PivotPassed || t.st.PivotReached {
			return ErrPastPivot
		}
		t.beginCompensation("aborted by operator: " + reason)
	case StatusCompensating:
		return ErrCompensating
	case StatusNeedsAttention:
		t.st.Status, t.st.EndedAt = StatusAborted, t.now
		t.st.Reason = "aborted by operator: " + reason + " (was: " + t.st.Reason + ")"
		for i := range t.st.Steps {
			t.st.Steps[i].InFlight, t.st.Steps[i].TimeoutAt, t.st.Steps[i].RetryAt = false, time.Time{}, time.Time{}
		}
		t.note(-1, "", 0, "aborted", reason)
	default:
		return ErrTerminal
	}
	return nil
}

// retry resumes a parked saga with a fresh attempt budget for its stuck steps.
func (t *transition) retry() error {
	if t.st.Status != StatusNeedsAttention {
		if t.st.Status.Terminal() {
			return ErrTerminal
		}
		return ErrNotParked
	}
	t.st.Status, t.st.ParkedFrom = t.st.ParkedFrom, ""
	t.note(-1, "", 0, "retried", "by operator")
	want := StepRunning
	if t.st.Status == StatusCompensating {
		want = StepCompensating
	}
	for _, i := range t.sp.stages[t.st.Stage] {
		ss := &t.st.Steps[i]
		if ss.Status != want || ss.InFlight {
			continue
		}
		ss.AttemptBase = ss.Attempt
		t.send(i, ss.Op, ss.Attempt+1)
	}
	t.advance()
	return nil
}

func attempts(n int) string {
	if n == 1 {
		return "1 attempt"
	}
	return fmt.Sprintf("%d attempts", n)
}

func times(n int) string {
	if n == 1 {
		return "once"
	}
	return fmt.Sprintf("%d times", n)
}

// Statuses lists every saga status, in lifecycle order.
func Statuses() []Status {
	return []Status{StatusRunning, StatusCompensating, StatusNeedsAttention, StatusCompleted, StatusCompensated, StatusAborted}
}

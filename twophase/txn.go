package twophase

import (
	"fmt"
	"slices"
	"time"
)

// Outcome is the fate of a transaction.
type Outcome int

// Outcomes.
const (
	// Undecided: no decision has been logged yet (or the caller cannot know it, after a crash
	// before the decision). Under presumed abort an undecided transaction whose coordinator
	// failed ends aborted.
	Undecided Outcome = iota
	// Committed: the commit decision is durable in the coordinator's log; every participant
	// applies the transaction's operations, now or after recovery.
	Committed
	// Aborted: the transaction has no effect anywhere.
	Aborted
)

// String returns the outcome's name (committed, aborted, undecided).
func (o Outcome) String() string {
	switch o {
	case Undecided:
		return "undecided"
	case Committed:
		return "committed"
	case Aborted:
		return "aborted"
	}
	return fmt.Sprintf("Outcome(%d)", int(o))
}

// State is where a coordinator's transaction stands.
type State int

// States, in the order a transaction goes through them.
const (
	// StateInit: created; the begin record is not durable yet.
	StateInit State = iota
	// StatePreparing: prepare messages are out, votes are being collected until the deadline.
	StatePreparing
	// StateCommitting: the decision is commit; it is being logged, then sent.
	StateCommitting
	// StateAborting: the decision is abort; it is being logged, then sent.
	StateAborting
	// StateDone: every participant acknowledged the decision; the log record can go.
	StateDone
)

// String returns the state's name.
func (s State) String() string {
	switch s {
	case StateInit:
		return "init"
	case StatePreparing:
		return "preparing"
	case StateCommitting:
		return "committing"
	case StateAborting:
		return "aborting"
	case StateDone:
		return "done"
	}
	return fmt.Sprintf("State(%d)", int(s))
}

// EventKind says what happened to a transaction.
type EventKind int

// Event kinds.
const (
	// EventStart begins a new transaction (NewTxn).
	EventStart EventKind = iota + 1
	// EventLogged: the log write the last ActionLogBegin or ActionLogDecision asked for is
	// durable.
	EventLogged
	// EventVote: Participant answered prepare: yes, or no (it aborted on its own).
	EventVote
	// EventNoAnswer: Participant could not be asked, or did not answer. It counts as a no vote,
	// but the participant may have prepared, so it is sent the abort.
	EventNoAnswer
	// EventAck: Participant applied the decision.
	EventAck
	// EventTick: time passed; Now is the time. Ends the voting once the prepare deadline passes.
	EventTick
	// EventRecover resumes a transaction read back from the log after a restart (RestoreTxn).
	EventRecover
)

// String returns the event kind's name.
func (k EventKind) String() string {
	switch k {
	case EventStart:
		return "start"
	case EventLogged:
		return "logged"
	case EventVote:
		return "vote"
	case EventNoAnswer:
		return "no-answer"
	case EventAck:
		return "ack"
	case EventTick:
		return "tick"
	case EventRecover:
		return "recover"
	}
	return fmt.Sprintf("EventKind(%d)", int(k))
}

// Event is an input to Txn.Step.
type Event struct {
	Kind EventKind
	// Participant is the voter (EventVote, EventNoAnswer) or the acknowledger (EventAck).
	Participant string
	// Yes is the vote (EventVote).
	Yes bool
	// Now is when the event happened, on the runtime's clock.
	Now time.Time
}

// ActionKind says what the runtime must do.
type ActionKind int

// Action kinds.
const (
	// ActionLogBegin: write the begin record (transaction id and participants) durably, then
	// report EventLogged. It lets Recover find transactions that never reached a decision.
	ActionLogBegin ActionKind = iota + 1
	// ActionSendPrepare: ask Participant to prepare and report its answer as EventVote.
	ActionSendPrepare
	// ActionLogDecision: write Outcome durably, then report EventLogged. No decision message goes
	// out before that.
	ActionLogDecision
	// ActionSendCommit: tell Participant to commit and report EventAck when it did.
	ActionSendCommit
	// ActionSendAbort: tell Participant to abort and report EventAck when it did.
	ActionSendAbort
	// ActionForget: every participant acknowledged; delete the log record.
	ActionForget
)

// String returns the action kind's name.
func (k ActionKind) String() string {
	switch k {
	case ActionLogBegin:
		return "log-begin"
	case ActionSendPrepare:
		return "send-prepare"
	case ActionLogDecision:
		return "log-decision"
	case ActionSendCommit:
		return "send-commit"
	case ActionSendAbort:
		return "send-abort"
	case ActionForget:
		return "forget"
	}
	return fmt.Sprintf("ActionKind(%d)", int(k))
}

// Action is an output of Txn.Step: something the runtime must do, in the order given.
type Action struct {
	Kind ActionKind
	// Participant is the addressee of a send.
	Participant string
	// Outcome is the decision to log (ActionLogDecision).
	Outcome Outcome
}

// String returns the action as the scripts in testdata/txn print it ("send-commit a").
func (a Action) String() string {
	switch a.Kind {
	case ActionSendPrepare, ActionSendCommit, ActionSendAbort:
		return a.Kind.String() + " " + a.Participant
	case ActionLogDecision:
		return a.Kind.String() + " " + a.Outcome.String()
	}
	return a.Kind.String()
}

// Txn is the coordinator's side of one two-phase commit, as a deterministic state machine: Step
// takes an event and returns the actions the runtime must perform. It starts no goroutine, never
// sleeps and never reads a clock, so tests (and the simulator) drive it with any time they like.
//
// The protocol is the classic one (Gray, "Notes on Data Base Operating Systems", 1978) with the
// presumed-abort optimisation of R* (Mohan, Lindsay and Obermarck, "Transaction Management in
// the R* Distributed Database Management System", TODS 1986): any no vote, or a prepare deadline
// that passes, aborts; a transaction with no commit record is aborted. The decision is logged
// (ActionLogDecision, then EventLogged) before any decision message is sent.
//
// Events that do not fit the state (a late vote after the decision, a duplicate ack, a vote from
// an unknown participant) are ignored: messages arrive late and twice in real networks.
type Txn struct {
	id           string
	participants []string
	timeout      time.Duration

	state    State
	restored bool // made by RestoreTxn; waits for EventRecover
	logging  bool // a log write is outstanding
	decision Outcome
	durable  bool // the decision is logged
	deadline time.Time
	yes      map[string]bool
	acked    map[string]bool
}

// NewTxn returns a transaction over participants (at least one, no duplicates) that aborts
// unless every participant votes yes within prepareTimeout of the prepares going out. Step it
// with EventStart.
func NewTxn(id string, participants []string, prepareTimeout time.Duration) *Txn {
	ps := slices.Clone(participants)
	slices.Sort(ps)
	ps = slices.Compact(ps)
	return &Txn{id: id, participants: ps, timeout: prepareTimeout, yes: map[string]bool{}, acked: map[string]bool{}}
}

// RestoreTxn returns a transaction read back from the log after a restart: its participants and
// its logged decision (Undecided when the log holds only the begin record). Step it with
// EventRecover: an undecided transaction is aborted (presumed abort); a decided one sends its
// decision to every participant again.
func RestoreTxn(id string, participants []string, decision Outcome) *Txn {
	t := NewTxn(id, participants, 0)
	t.restored = true
	t.decision = decision
	return t
}

// ID returns the transaction's id.
func (t *Txn) ID() string { return t.id }

// Participants returns the participants, sorted.
func (t *Txn) Participants() []string { return slices.Clone(t.participants) }

// State returns the current state.
func (t *Txn) State() State { return t.state }

// Decision returns the decision once it is logged durably, and Undecided before.
func (t *Txn) Decision() Outcome {
	if !t.durable {
		return Undecided
	}
	return t.decision
}

// Deadline returns when the voting ends (zero before the prepares go out).
func (t *Txn) Deadline() time.Time { return t.deadline }

// Unacked returns the participants that have not acknowledged the decision, sorted.
func (t *Txn) Unacked() []string {
	var out []string
	for _, p := range t.participants {
		if !t.acked[p] {
			out = append(out, p)
		}
	}
	return out
}

func (t *Txn) isParticipant(p string) bool {
	_, ok := slices.BinarySearch(t.participants, p)
	return ok
}

// Step applies ev and returns the actions to perform, in order.
func (t *Txn) Step(ev Event) []Action {
	switch ev.Kind {
	case EventStart:
		if t.state != StateInit || t.restored || t.logging {
			return nil
		}
		t.logging = true
		return []Action{{Kind: ActionLogBegin}}

	case EventRecover:
		if !t.restored || t.state != StateInit {
			return nil
		}
		if t.decision == Undecided {
			// Presumed abort: nobody can have been told to commit.
			return t.decide(Aborted)
		}
		t.state = StateCommitting
		if t.decision == Aborted {
			t.state = StateAborting
		}
		t.durable = true
		return t.sendDecision()

	case EventLogged:
		if !t.logging {
			return nil
		}
		t.logging = false
		switch t.state {
		case StateInit:
			t.state = StatePreparing
			t.deadline = ev.Now.Add(t.timeout)
			acts := make([]Action, 0, len(t.participants))
			for _, p := range t.participants {
				acts = append(acts, Action{Kind: ActionSendPrepare, Participant: p})
			}
			return acts
		case StateCommitting, StateAborting:
			t.durable = true
			return t.sendDecision()
		}
		return nil

	case EventVote:
		if t.state != StatePreparing || !t.isParticipant(ev.Participant) {
			return nil
		}
		if !ev.Now.Before(t.deadline) {
			return t.decide(Aborted) // too late, whatever the vote
		}
		if !ev.Yes {
			// The participant aborted on its own (or was never reached): it needs no abort
			// message.
			t.acked[ev.Participant] = true
			return t.decide(Aborted)
		}
		t.yes[ev.Participant] = true
		if len(t.yes) == len(t.participants) {
			return t.decide(Committed)
		}
		return nil

	case EventNoAnswer:
		if t.state != StatePreparing || !t.isParticipant(ev.Participant) {
			return nil
		}
		return t.decide(Aborted)

	case EventTick:
		if t.state == StatePreparing && !ev.Now.Before(t.deadline) {
			return t.decide(Aborted)
		}
		return nil

	case EventAck:
		if (t.state != StateCommitting && t.state != StateAborting) || !t.durable || !t.isParticipant(ev.Participant) {
			return nil
		}
		t.acked[ev.Participant] = true
		return t.maybeDone()
	}
	return nil
}

func (t *Txn) decide(o Outcome) []Action {
	t.decision = o
	t.state = StateCommitting
	if o == Aborted {
		t.state = StateAborting
	}
	t.logging = true
	return []Action{{Kind: ActionLogDecision, Outcome: o}}
}

func (t *Txn) sendDecision() []Action {
	kind := ActionSendCommit
	if t.decision == Aborted {
		kind = ActionSendAbort
	}
	var acts []Action
	for _, p := range t.participants {
		if !t.acked[p] {
			acts = append(acts, Action{Kind: kind, Participant: p})
		}
	}
	return append(acts, t.maybeDone()...)
}

func (t *Txn) maybeDone() []Action {
	for _, p := range t.participants {
		if !t.acked[p] {
			return nil
		}
	}
	t.state = StateDone
	return []Action{{Kind: ActionForget}}
}

package saga

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/faultline-dev/faultline/messaging"
	"github.com/faultline-dev/faultline/resilience"
)

// Defaults for a Step's zero fields.
const (
	// DefaultStepTimeout bounds one attempt of a step: a Func's context deadline, or how long the
	// orchestrator waits for a command's reply before it sends the command again.
	DefaultStepTimeout = 30 * time.Second
	// DefaultMaxAttempts is how many times an action is tried before the saga compensates.
	DefaultMaxAttempts = 3
	// DefaultCompensationMaxAttempts is how many times a compensation is tried before the saga is
	// parked as needs-attention.
	DefaultCompensationMaxAttempts = 10
)

// Invoker says how a step's action or compensation is carried out: Func (an in-process call,
// or HTTP, which is a Func), Local (a function run inside the orchestrator's own transaction) or
// Command (a message to a participant, answered by a reply message).
type Invoker interface{ invokerKind() invokerKind }

type invokerKind uint8

const (
	kindFunc invokerKind = iota + 1
	kindLocal
	kindCommand
)

// FuncHandler carries out one invocation. It returns the step's output (for an action; may be
// nil), an error made with Fail for a business refusal (not retried), or any other error for
// transient trouble (retried with backoff). It must be idempotent per Request.Key: after a crash
// or a timeout the orchestrator invokes it again with the same key (a participant's Barrier makes
// a handler idempotent).
type FuncHandler func(ctx context.Context, req *Request) (json.RawMessage, error)

// LocalHandler is a FuncHandler that runs inside the orchestrator's transaction, so its writes
// commit atomically with the saga's progress and it runs exactly once per key. A failed Local
// handler's writes are rolled back (to a savepoint) before the failure is recorded.
type LocalHandler func(ctx context.Context, tx *sql.Tx, req *Request) (json.RawMessage, error)

type funcInvoker struct{ fn FuncHandler }
type localInvoker struct{ fn LocalHandler }
type commandInvoker struct{ topic string }

func (funcInvoker) invokerKind() invokerKind    { return kindFunc }
func (localInvoker) invokerKind() invokerKind   { return kindLocal }
func (commandInvoker) invokerKind() invokerKind { return kindCommand }

// Func invokes fn in-process, under the step's Timeout and Policy, outside any transaction.
func Func(fn FuncHandler) Invoker { return funcInvoker{fn: fn} }

// Local invokes fn inside the orchestrator's transaction (see LocalHandler): for the steps a saga
// takes in the orchestrating service's own database, such as creating, approving or rejecting
// the order that the saga is about.
func Local(fn LocalHandler) Invoker { return localInvoker{fn: fn} }

// Command sends the invocation as a command message to topic, written to the orchestrator's
// outbox in the transaction that records the step as started, and waits for the participant's
// Reply on the orchestrator's reply topic. A participant serves commands with a Participant.
func Command(topic string) Invoker { return commandInvoker{topic: topic} }

// Fail marks err as a business refusal: the step is not retried; a failed action makes the saga
// compensate. Fail(nil) is nil.
func Fail(err error) error { return resilience.Permanent(err) }

// IsFailure reports whether err was marked with Fail (or resilience.Permanent).
func IsFailure(err error) bool { return resilience.IsPermanent(err) }

// Step is one step of a saga: an action and the compensation that undoes it.
type Step struct {
	// Name identifies the step within its saga. Required.
	Name string
	// Action is the forward operation. Required.
	Action Invoker
	// Compensate undoes Action. Nil means there is nothing to undo (a read, a notification).
	Compensate Invoker
	// Timeout bounds each attempt. Zero means DefaultStepTimeout.
	Timeout time.Duration
	// MaxAttempts is how many times the action is tried before the saga compensates. Zero means
	// DefaultMaxAttempts. Steps after the pivot are retried until they succeed.
	MaxAttempts int
	// Backoff spaces the attempts of the action and of the compensation; the zero value means
	// resilience's defaults (100 ms doubling to 10 s). Jitter is drawn from the orchestrator's
	// seeded source.
	Backoff resilience.Backoff
	// Policy wraps every in-process invocation (Func steps): a circuit breaker, bulkhead or rate
	// limiter shared with other callers of the same dependency. The durable retries above are
	// the orchestrator's; a retry policy here retries within one attempt.
	Policy resilience.Policy[json.RawMessage]
}

// Definition is a saga: stages of steps run in order (the steps of a parallel stage at once),
// an optional pivot step after which the saga can only go forward, and a deadline.
type Definition struct {
	// Name identifies the definition; an orchestrator runs each saga under its definition's name.
	Name string
	// Timeout is the saga's deadline from Start. When it passes before the pivot succeeded, the
	// saga compensates. Zero means no deadline.
	Timeout time.Duration
	// CompensationMaxAttempts is how many times each compensation is tried before the saga is
	// parked as needs-attention. Zero means DefaultCompensationMaxAttempts.
	CompensationMaxAttempts int

	stages [][]int // indexes into steps
	steps  []Step
	pivot  int // index of the pivot stage, -1 for none
	errs   []error
}

// New starts a definition named name; add steps with Step, Parallel and Pivot.
func New(name string) *Definition { return &Definition{Name: name, pivot: -1} }

// Step appends a stage of one step.
func (d *Definition) Step(s Step) *Definition { return d.stage(s) }

// Parallel appends a stage whose steps run at once; the next stage starts when all succeeded.
// When one fails, the others are compensated with the earlier stages.
func (d *Definition) Parallel(steps ...Step) *Definition {
	if len(steps) == 0 {
		d.errs = append(d.errs, fmt.Errorf("stage %d: Parallel needs at least one step", len(d.stages)+1))
		return d
	}
	return d.stage(steps...)
}

// Pivot appends the pivot step: the go/no-go point. If it fails, the saga compensates the steps
// before it; once it succeeded, the saga can no longer be compensated, the steps after it are
// retried until they succeed, and the deadline no longer applies. A pivot has no compensation.
func (d *Definition) Pivot(s Step) *Definition {
	if d.pivot >= 0 {
		d.errs = append(d.errs, fmt.Errorf("step %q: a saga has at most one pivot (already %q)", s.Name, d.steps[d.stages[d.pivot][0]].Name))
		return d
	}
	if s.Compensate != nil {
		d.errs = append(d.errs, fmt.Errorf("step %q: a pivot step cannot have a compensation", s.Name))
	}
	d.pivot = len(d.stages)
	return d.stage(s)
}

func (d *Definition) stage(steps ...Step) *Definition {
	idx := make([]int, len(steps))
	for i, s := range steps {
		idx[i] = len(d.steps)
		d.steps = append(d.steps, s)
	}
	d.stages = append(d.stages, idx)
	return d
}

// Steps returns the steps in order.
func (d *Definition) Steps() []Step { return append([]Step(nil), d.steps...) }

// Validate reports every problem with the definition, naming the step and field.
func (d *Definition) Validate() error {
	errs := append([]error(nil), d.errs...)
	if d.Name == "" {
		errs = append(errs, errors.New("definition: Name is empty"))
	}
	if len(d.steps) == 0 {
		errs = append(errs, fmt.Errorf("saga %q: no steps", d.Name))
	}
	if d.Timeout < 0 {
		errs = append(errs, fmt.Errorf("saga %q: Timeout is %v, want ≥ 0", d.Name, d.Timeout))
	}
	if d.CompensationMaxAttempts < 0 {
		errs = append(errs, fmt.Errorf("saga %q: CompensationMaxAttempts is %d, want ≥ 0", d.Name, d.CompensationMaxAttempts))
	}
	seen := map[string]bool{}
	for i, s := range d.steps {
		where := fmt.Sprintf("saga %q step %d", d.Name, i+1)
		if s.Name != "" {
			where = fmt.Sprintf("saga %q step %q", d.Name, s.Name)
		}
		switch {
		case s.Name == "":
			errs = append(errs, fmt.Errorf("%s: Name is empty", where))
		case seen[s.Name]:
			errs = append(errs, fmt.Errorf("%s: Name is used twice", where))
		}
		seen[s.Name] = true
		if s.Action == nil {
			errs = append(errs, fmt.Errorf("%s: Action is nil", where))
		}
		for _, inv := range []struct {
			field string
			inv   Invoker
		}{{"Action", s.Action}, {"Compensate", s.Compensate}} {
			switch v := inv.inv.(type) {
			case commandInvoker:
				if err := messaging.ValidTopic(v.topic); err != nil {
					errs = append(errs, fmt.Errorf("%s: %s: Command topic: %w", where, inv.field, err))
				}
			case funcInvoker:
				if v.fn == nil {
					errs = append(errs, fmt.Errorf("%s: %s: Func handler is nil", where, inv.field))
				}
			case localInvoker:
				if v.fn == nil {
					errs = append(errs, fmt.Errorf("%s: %s: Local handler is nil", where, inv.field))
				}
			}
		}
		if s.Timeout < 0 {
			errs = append(errs, fmt.Errorf("%s: Timeout is %v, want ≥ 0", where, s.Timeout))
		}
		if s.MaxAttempts < 0 {
			errs = append(errs, fmt.Errorf("%s: MaxAttempts is %d, want ≥ 0", where, s.MaxAttempts))
		}
		if err := s.Backoff.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("%s: Backoff: %w", where, err))
		}
	}
	if d.pivot >= 0 && len(d.stages[d.pivot]) != 1 {
		errs = append(errs, fmt.Errorf("saga %q: the pivot must be a stage of its own", d.Name))
	}
	return errors.Join(errs...)
}

// spec is the part of a definition the deterministic core needs: names, shape and timings,
// without the invokers.
type spec struct {
	name       string
	timeout    time.Duration
	compMax    int
	stages     [][]int
	pivot      int
	steps      []stepSpec
	stepByName map[string]int
}

type stepSpec struct {
	name        string
	timeout     time.Duration
	maxAttempts int
	backoff     resilience.Backoff
	compensable bool
	stage       int
}

func (d *Definition) spec() *spec {
	sp := &spec{
		name:       d.Name,
		timeout:    d.Timeout,
		compMax:    d.CompensationMaxAttempts,
		stages:     d.stages,
		pivot:      d.pivot,
		stepByName: make(map[string]int, len(d.steps)),
	}
	if sp.compMax == 0 {
		sp.compMax = DefaultCompensationMaxAttempts
	}
	sp.steps = make([]stepSpec, len(d.steps))
	for si, st := range d.stages {
		for _, i := range st {
			s := d.steps[i]
			ss := stepSpec{name: s.Name, timeout: s.Timeout, maxAttempts: s.MaxAttempts, backoff: s.Backoff, compensable: s.Compensate != nil, stage: si}
			if ss.timeout == 0 {
				ss.timeout = DefaultStepTimeout
			}
			if ss.maxAttempts == 0 {
				ss.maxAttempts = DefaultMaxAttempts
			}
			sp.steps[i] = ss
			sp.stepByName[s.Name] = i
		}
	}
	return sp
}

package saga

import (
	"encoding/json"
	"fmt"
	"strconv"
)

// Op says which half of a step an invocation runs.
type Op string

const (
	// OpAction is a step's forward action.
	OpAction Op = "action"
	// OpCompensate is a step's compensation: it undoes the action.
	OpCompensate Op = "compensate"
)

func (op Op) valid() bool { return op == OpAction || op == OpCompensate }

// Request is what a participant receives for one invocation of a step: as the JSON payload of a
// command message (Command steps), the JSON body of an HTTP POST (HTTP steps), or directly (Func
// steps).
type Request struct {
	// SagaID identifies the saga instance; with Step and Op it is the idempotency key a
	// participant's barrier records.
	SagaID string `json:"sagaId"`
	// Saga is the saga definition's name.
	Saga string `json:"saga"`
	// Step is the step's name.
	Step string `json:"step"`
	// Op is OpAction or OpCompensate.
	Op Op `json:"op"`
	// Attempt counts the invocations of this step's Op, from 1. A participant must give the same
	// result for every attempt (the barrier makes sure of it).
	Attempt int `json:"attempt"`
	// Input is the saga's input, as given to Start.
	Input json.RawMessage `json:"input,omitempty"`
	// Results holds the outputs of the steps that succeeded before this one, by step name.
	Results map[string]json.RawMessage `json:"results,omitempty"`
}

// Key returns the request's idempotency key: saga ID, step and op.
func (r *Request) Key() Key { return Key{SagaID: r.SagaID, Step: r.Step, Op: r.Op} }

// Validate reports the first missing or malformed field, naming it.
func (r *Request) Validate() error {
	switch {
	case r.SagaID == "":
		return fmt.Errorf("saga request: field sagaId is empty")
	case r.Step == "":
		return fmt.Errorf("saga request: field step is empty")
	case !r.Op.valid():
		return fmt.Errorf("saga request: field op is %q, want %q or %q", r.Op, OpAction, OpCompensate)
	case r.Attempt < 1:
		return fmt.Errorf("saga request: field attempt is %d, want ≥ 1", r.Attempt)
	}
	return nil
}

// Key identifies one half of one step of one saga instance.
type Key struct {
	SagaID string
	Step   string
	Op     Op
}

// String renders the key as "sagaID/step/op".
func (k Key) String() string { return k.SagaID + "/" + k.Step + "/" + string(k.Op) }

// ReplyStatus is a participant's answer to a Request.
type ReplyStatus string

const (
	// ReplySucceeded: the operation was applied (or had been applied by an earlier attempt).
	ReplySucceeded ReplyStatus = "succeeded"
	// ReplyFailed: the operation was refused for a business reason and left nothing behind (a
	// declined payment, no stock). The orchestrator does not retry it: a failed action makes the
	// saga compensate; a failed compensation is retried and then parks the saga.
	ReplyFailed ReplyStatus = "failed"
)

// Reply is a participant's answer to a Request: the JSON payload of a reply message, or the JSON
// body of an HTTP step's response. Transient trouble is not a reply: the participant lets the
// message be redelivered (or answers HTTP 5xx) and the orchestrator retries.
type Reply struct {
	SagaID  string      `json:"sagaId"`
	Step    string      `json:"step"`
	Op      Op          `json:"op"`
	Attempt int         `json:"attempt"`
	Status  ReplyStatus `json:"status"`
	// Error is the reason, for a failed reply.
	Error string `json:"error,omitempty"`
	// Output is the step's result (for a succeeded action), handed to later steps in
	// Request.Results.
	Output json.RawMessage `json:"output,omitempty"`
}

// Validate reports the first missing or malformed field, naming it.
func (r *Reply) Validate() error {
	switch {
	case r.SagaID == "":
		return fmt.Errorf("saga reply: field sagaId is empty")
	case r.Step == "":
		return fmt.Errorf("saga reply: field step is empty")
	case !r.Op.valid():
		return fmt.Errorf("saga reply: field op is %q, want %q or %q", r.Op, OpAction, OpCompensate)
	case r.Attempt < 1:
		return fmt.Errorf("saga reply: field attempt is %d, want ≥ 1", r.Attempt)
	case r.Status != ReplySucceeded && r.Status != ReplyFailed:
		return fmt.Errorf("saga reply: field status is %q, want %q or %q", r.Status, ReplySucceeded, ReplyFailed)
	}
	return nil
}

// DecodeRequest parses and validates a Request.
func DecodeRequest(data []byte) (*Request, error) {
	var r Request
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("saga request: %w", err)
	}
	if err := r.Validate(); err != nil {
		return nil, err
	}
	return &r, nil
}

// DecodeReply parses and validates a Reply.
func DecodeReply(data []byte) (*Reply, error) {
	var r Reply
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("saga reply: %w", err)
	}
	if err := r.Validate(); err != nil {
		return nil, err
	}
	return &r, nil
}

// Message headers on command messages.
const (
	// HeaderReplyTo names the topic a participant publishes its Reply to.
	HeaderReplyTo = "faultline-saga-reply-to"
	// HeaderSagaID carries the saga ID on commands and replies (also the message key).
	HeaderSagaID = "faultline-saga-id"
)

// commandMessageID is the ID of the command message for one attempt: the outbox may publish it
// twice after a crash, and both copies share it.
func commandMessageID(k Key, attempt int) string {
	return k.String() + "/" + strconv.Itoa(attempt)
}

// replyMessageID is the ID of the reply to one attempt.
func replyMessageID(k Key, attempt int) string {
	return commandMessageID(k, attempt) + "/reply"
}

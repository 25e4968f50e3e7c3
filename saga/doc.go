// Package saga runs sagas: business transactions that span services, each step a local
// transaction in its own service, kept consistent by compensations instead of distributed locks.
//
// A saga is defined in Go as stages of steps (an action and the compensation that undoes it),
// optionally with parallel stages and a pivot step after which the saga can only go forward:
//
//	order := saga.New("order").
//		Step(saga.Step{Name: "create", Action: saga.Local(createOrder), Compensate: saga.Local(rejectOrder)}).
//		Step(saga.Step{Name: "reserve", Action: saga.Command("inventory.commands"), Compensate: saga.Command("inventory.commands")}).
//		Step(saga.Step{Name: "charge", Action: saga.Command("payment.commands"), Compensate: saga.Command("payment.commands")}).
//		Step(saga.Step{Name: "approve", Action: saga.Local(approveOrder)})
//
// An Orchestrator runs them durably on SQLite or PostgreSQL. Every change of a saga is one
// transaction that records the new state, appends its history and writes the commands to send to
// the outbox, so the orchestrator can crash at any instruction: on restart Run resumes every saga
// in flight, and nothing is sent that was not recorded. Steps are invoked as commands over
// package messaging (answered by replies), as in-process calls (Func, or HTTP), or as Local
// functions inside the orchestrator's own transaction. Each attempt has a timeout; failed
// attempts are retried with backoff; a step refused for a business reason (Fail) or out of
// attempts makes the saga compensate the steps that ran, in reverse order, with retries; a
// compensation that keeps failing parks the saga as needs-attention, with the error, for an
// operator to retry or abort (faultline saga retry|abort). A deadline makes the saga compensate.
//
// Participants make their handlers safe under redelivery, retries and reordering with a
// Barrier (or a Participant, which serves commands through one): each (saga, step, op) is
// applied once, a compensation that arrives before its action succeeds without undoing
// anything, and an action that arrives after its compensation is skipped.
//
// The core (the transition rules) is deterministic: it takes the time and random draws as
// arguments and performs no I/O, so the randomized fault-schedule test drives the real
// orchestrator, participants and barrier through crashes, duplicates, delays and reordering and
// checks that money and stock are conserved. See docs/saga.md.
package saga

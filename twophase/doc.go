// Package twophase is a two-phase commit (2PC) coordinator and resource managers, written to be
// read and to show, under test, the blocking that the protocol is known for.
//
// A Coordinator runs a transaction over several Participants, each of which owns its own
// database (SQLite or PostgreSQL) of accounts: a key and an integer balance. Phase one: the
// coordinator logs a begin record and asks every participant to prepare; a participant locks the
// keys the transaction touches, checks that no balance would go negative, records the
// transaction durably and votes yes, keeping the locks. Phase two: if every vote is yes, the
// coordinator logs the commit decision and only then tells the participants to commit; any no
// vote, a participant that cannot be reached, or a prepare deadline that passes makes the
// decision abort. Once every participant has acknowledged, the log record is deleted.
//
//	bankA, _ := twophase.NewParticipant(twophase.ParticipantConfig{Name: "bank-a", DB: dbA, Dialect: twophase.SQLite})
//	bankA.Migrate(ctx)
//	bankA.Recover(ctx) // always, at start-up: re-locks what was in doubt when the process stopped
//	// ... bank-b likewise
//	co, _ := twophase.NewCoordinator(twophase.Config{
//		DB: logDB, Dialect: twophase.SQLite,
//		Participants: map[string]twophase.Resource{"bank-a": bankA, "bank-b": bankB},
//	})
//	co.Migrate(ctx)
//	co.Recover(ctx) // finishes what a previous coordinator left
//	outcome, err := co.Run(ctx, "tx-42", map[string][]twophase.Op{
//		"bank-a": {{Key: "alice", Delta: -40}},
//		"bank-b": {{Key: "bob", Delta: +40}},
//	})
//
// # Guarantees
//
// Atomicity: a transaction commits at every participant or at none, whatever crashes in
// between, once the crashed processes restart and recover. The coordinator's decision is
// durable before any participant hears it; a participant's yes vote is durable before the
// coordinator hears it; Commit and Abort are idempotent, so decisions can be sent again.
//
// Presumed abort (Mohan, Lindsay and Obermarck, TODS 1986): a transaction the coordinator has
// no commit record for is aborted. Recover aborts transactions that have a begin record but no
// decision, and Decision answers Aborted for a transaction the log does not know.
//
// Blocking: a participant that voted yes may not decide alone, so while the coordinator is down
// (or unreachable) it keeps the transaction's locks, and every Get, Update and prepare on those
// keys waits. Prepares give up after ParticipantConfig.LockTimeout and vote no; Get and Update
// wait as long as their context allows. Participant.Stats reports how long locks were held and
// how many operations waited. TestBlockingWhileCoordinatorDown measures it; docs/consistency.md
// discusses it.
//
// # Shape
//
// The protocol is Txn, a deterministic state machine: Step takes an event (start, a vote, an
// acknowledgement, a tick of the clock, a durable log write) and returns the actions to perform
// (log, send prepare, send the decision, forget). It starts no goroutine and reads no clock; the
// Coordinator performs its actions with the injected clock.Clock, its database and its
// Resources. Participants and coordinator talk through two small interfaces, Resource and
// Decider: in process (a *Participant is a Resource, a *Coordinator a Decider), through Network
// (an in-process network that tests cut), or over HTTP (NewParticipantHandler and
// NewHTTPResource, NewDecisionHandler and NewHTTPDecider).
//
// Tests crash the coordinator at named points (Config.Crash, CrashPoints) and participants with
// Participant.Close, then restart them over the same databases.
//
// This is teaching code that runs for real, not an XA transaction manager: operations are
// balance changes, locks are exclusive and in memory, the participants' outcome tables grow
// without bound, and one Coordinator at a time may use a log table.
package twophase

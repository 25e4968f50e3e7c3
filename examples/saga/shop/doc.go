// Package shop is the event-driven saga example's shop: three services, each owning its
// database, that talk only through a message broker, plus the trouble to throw at them and the
// audit that says whether they survived it.
//
//   - OrderService is the orchestrator (saga package). PlaceOrder starts the saga
//     create-order → reserve-stock → charge-payment → approve-order; create and approve are
//     Local steps in its own transaction, reserve and charge are Commands written to its outbox
//     and answered by replies.
//   - InventoryService and PaymentService are saga participants: each command runs through the
//     saga barrier in the transaction of its business writes and its reply (written to the
//     participant's own outbox, published by its own relay).
//   - TroubledBroker wraps any messaging.Broker and delays and duplicates deliveries and
//     duplicates publishes; Simulate also kills each service mid-run (its context cancelled, its
//     work in flight lost) and starts a fresh instance over the same database.
//   - Check reads the three databases as an auditor and reports the outcome and the invariants:
//     every order ended, approved ⇒ reserved and charged, rejected ⇒ neither, stock and money
//     conserved.
//
// Each service keeps its data in a Store: a SQLite file per service, or a PostgreSQL schema per
// service. A service runs once (New, Migrate, Run until its context ends, Close); a restart is a
// new instance over the same Store, which resumes where the dead one left off.
//
// The command in the parent directory (go run ./examples/saga) drives all of this; see its
// README for the commands and a real run's output.
package shop

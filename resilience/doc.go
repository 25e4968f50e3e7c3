// Package resilience holds faultline's resilience policies: circuit breaker (count- and time-based
// windows, and Google SRE adaptive throttling), retry with backoff and jitter and a retry budget,
// timeout, bulkhead, rate limiter, hedging, fallback and adaptive concurrency limiting.
//
// Every policy is two layers. The core is a deterministic state machine that takes events with
// the time they happened (a call is allowed, a call finished with an outcome) and returns
// decisions; it starts no goroutine, never sleeps and never reads the wall clock, so tests drive
// it with a clock.Manual and the simulator runs the very same code on virtual time. The runtime
// layer (Apply / Execute) reads the injected clock, runs the operation, honours the context, and
// reports the outcome to the core.
//
// Policies compose with Compose(outermost, ..., innermost): Compose(retry, breaker, timeout)
// retries calls that each go through the breaker and each have their own timeout. The context is
// honoured everywhere: when the caller's context ends, every policy returns at once with the
// caller's error (context.Canceled or DeadlineExceeded), never a policy error, and leaves no
// goroutine behind.
package resilience

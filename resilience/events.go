package resilience

import (
	"context"
	"fmt"
	"time"
)

// Observer receives what the policies do, for metrics, traces and logs (the telemetry package
// turns events into Prometheus metrics, OpenTelemetry span events and slog records). Observe runs
// on the goroutine of the call that caused the event, outside every policy lock, so it must be
// safe for concurrent use and quick; ctx is that call's context (context.Background() for events
// caused outside a call, such as Breaker.ForceOpen or Breaker.Allow). Every policy config has an
// Observer field; nil (the default) costs one pointer comparison per event.
type Observer interface {
	Observe(ctx context.Context, e Event)
}

// ObserverFunc adapts a function to Observer.
type ObserverFunc func(ctx context.Context, e Event)

// Observe calls f.
func (f ObserverFunc) Observe(ctx context.Context, e Event) { f(ctx, e) }

// Observers fans events out to several observers in order; nil entries are skipped. It returns nil
// when no observer is left, so the policies skip event construction altogether.
func Observers(obs ...Observer) Observer {
	var list multiObserver
	for _, o := range obs {
		if o != nil {
			list = append(list, o)
		}
	}
	switch len(list) {
	case 0:
		return nil
	case 1:
		return list[0]
	}
	return list
}

type multiObserver []Observer

func (m multiObserver) Observe(ctx context.Context, e Event) {
	for _, o := range m {
		o.Observe(ctx, e)
	}
}

// PolicyKind names the kind of policy an Event comes from.
type PolicyKind uint8

const (
	// KindBreaker is a circuit breaker (Breaker).
	KindBreaker PolicyKind = iota + 1
	// KindThrottle is adaptive client-side throttling (Throttle).
	KindThrottle
	// KindRetry is Retry.
	KindRetry
	// KindTimeout is Timeout.
	KindTimeout
	// KindBulkhead is Bulkhead.
	KindBulkhead
	// KindRateLimit is RateLimiter.
	KindRateLimit
	// KindHedge is Hedge.
	KindHedge
	// KindFallback is Fallback.
	KindFallback
	// KindLimiter is the adaptive concurrency Limiter.
	KindLimiter
)

// String returns the kind's name as used in metric labels: "breaker", "throttle", "retry",
// "timeout", "bulkhead", "ratelimit", "hedge", "fallback", "limiter".
func (k PolicyKind) String() string {
	switch k {
	case KindBreaker:
		return "breaker"
	case KindThrottle:
		return "throttle"
	case KindRetry:
		return "retry"
	case KindTimeout:
		return "timeout"
	case KindBulkhead:
		return "bulkhead"
	case KindRateLimit:
		return "ratelimit"
	case KindHedge:
		return "hedge"
	case KindFallback:
		return "fallback"
	case KindLimiter:
		return "limiter"
	}
	return fmt.Sprintf("PolicyKind(%d)", uint8(k))
}

// EventType says what happened.
type EventType uint8

const (
	// EventSuccess: a call the policy let through ended and counts as a success (breaker,
	// throttle, limiter). Duration is how long it ran.
	EventSuccess EventType = iota + 1
	// EventFailure: a call the policy let through ended and counts as a failure (breaker,
	// throttle, limiter). Err is its error; Duration how long it ran.
	EventFailure
	// EventIgnored: a call ended without counting either way, mostly because its caller gave up
	// (breaker, limiter).
	EventIgnored
	// EventRejected: the policy refused the call without running it. Err is the policy error
	// (ErrOpen, ErrBulkheadFull, ErrRateLimited, ErrBudgetExhausted, ErrLimitExceeded).
	EventRejected
	// EventAdmitted: the call got a slot or a token after waiting; Duration is the wait (bulkhead
	// queue, rate limiter). Calls admitted at once emit nothing.
	EventAdmitted
	// EventStateChange: a breaker moved From one state To another.
	EventStateChange
	// EventRetry: an attempt failed and another will be made after Duration. Attempt is the
	// failed attempt's number (1-based); Err its error.
	EventRetry
	// EventRetriesExhausted: the last attempt failed and Retry gives up (attempts, elapsed time or
	// budget). Attempt is how many were made; Err the error returned.
	EventRetriesExhausted
	// EventTimeout: the policy's own deadline cancelled a call (Timeout, or Retry's per-attempt
	// timeout with Kind KindRetry). Duration is the timeout.
	EventTimeout
	// EventHedge: a hedged attempt started because the earlier ones had not answered within
	// Duration. Attempt is its number (2 for the first hedge).
	EventHedge
	// EventFallback: a failed call was answered by the fallback. Err is the failure.
	EventFallback
	// EventLimitChanged: the adaptive limiter moved its concurrency limit to Limit.
	EventLimitChanged
)

// String returns the event type's name.
func (t EventType) String() string {
	switch t {
	case EventSuccess:
		return "success"
	case EventFailure:
		return "failure"
	case EventIgnored:
		return "ignored"
	case EventRejected:
		return "rejected"
	case EventAdmitted:
		return "admitted"
	case EventStateChange:
		return "state-change"
	case EventRetry:
		return "retry"
	case EventRetriesExhausted:
		return "retries-exhausted"
	case EventTimeout:
		return "timeout"
	case EventHedge:
		return "hedge"
	case EventFallback:
		return "fallback"
	case EventLimitChanged:
		return "limit-changed"
	}
	return fmt.Sprintf("EventType(%d)", uint8(t))
}

// Event is one thing a policy did. Only the fields its Type documents are set.
type Event struct {
	// Kind is the kind of policy; Name the instance's name from its config (may be empty).
	Kind PolicyKind
	Name string
	// Type says what happened.
	Type EventType
	// From and To are the breaker states of an EventStateChange.
	From, To BreakerState
	// Attempt numbers attempts (EventRetry, EventRetriesExhausted, EventHedge).
	Attempt int
	// Duration is a call's run time, a wait, a backoff delay or a timeout, by Type.
	Duration time.Duration
	// Limit is the adaptive limiter's new limit (EventLimitChanged).
	Limit int
	// Err is the error involved, when there is one.
	Err error
}

// String renders the event on one line, for logs and test failures.
func (e Event) String() string {
	s := e.Kind.String()
	if e.Name != "" {
		s += " " + e.Name
	}
	s += ": " + e.Type.String()
	switch e.Type {
	case EventStateChange:
		s += fmt.Sprintf(" %v -> %v", e.From, e.To)
	case EventLimitChanged:
		s += fmt.Sprintf(" limit=%d", e.Limit)
	}
	if e.Attempt > 0 {
		s += fmt.Sprintf(" attempt=%d", e.Attempt)
	}
	if e.Duration > 0 {
		s += fmt.Sprintf(" duration=%v", e.Duration)
	}
	if e.Err != nil {
		s += fmt.Sprintf(" err=%q", e.Err.Error())
	}
	return s
}

// emitter is the part of a policy that sends events; the zero emitter sends nothing.
type emitter struct {
	kind PolicyKind
	name string
	obs  Observer
}

func newEmitter(kind PolicyKind, name string, obs Observer) emitter {
	return emitter{kind: kind, name: name, obs: obs}
}

// on reports whether anyone listens, so callers can skip building costly events.
func (em *emitter) on() bool { return em.obs != nil }

// emit completes e with the policy's kind and name and sends it.
func (em *emitter) emit(ctx context.Context, e Event) {
	if em.obs == nil {
		return
	}
	e.Kind, e.Name = em.kind, em.name
	em.obs.Observe(ctx, e)
}

package telemetry

import (
	"context"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/faultline-dev/faultline/resilience"
)

// Attribute keys of the span events Tracing adds.
const (
	AttrPolicy     = attribute.Key("resilience.policy")      // the policy kind: "breaker", "retry", …
	AttrName       = attribute.Key("resilience.name")        // the policy's Name
	AttrAttempt    = attribute.Key("resilience.attempt")     // retry, retries_exhausted, hedge
	AttrDelayMS    = attribute.Key("resilience.delay_ms")    // retry: backoff before the next attempt; hedge: the hedging delay
	AttrDurationMS = attribute.Key("resilience.duration_ms") // run time (success, failure, ignored), wait (admitted), timeout
	AttrStateFrom  = attribute.Key("resilience.state.from")  // state_change
	AttrStateTo    = attribute.Key("resilience.state.to")    // state_change
	AttrLimit      = attribute.Key("resilience.limit")       // limit_changed
	AttrError      = attribute.Key("error.message")          // the event's error, when it has one
)

// spanEventNames are the span event names by resilience.EventType.
var spanEventNames = [...]string{
	resilience.EventSuccess:          "resilience.success",
	resilience.EventFailure:          "resilience.failure",
	resilience.EventIgnored:          "resilience.ignored",
	resilience.EventRejected:         "resilience.rejected",
	resilience.EventAdmitted:         "resilience.admitted",
	resilience.EventStateChange:      "resilience.state_change",
	resilience.EventRetry:            "resilience.retry",
	resilience.EventRetriesExhausted: "resilience.retries_exhausted",
	resilience.EventTimeout:          "resilience.timeout",
	resilience.EventHedge:            "resilience.hedge",
	resilience.EventFallback:         "resilience.fallback",
	resilience.EventLimitChanged:     "resilience.limit_changed",
}

// SpanEventName returns the name of the span event Tracing adds for t, e.g. "resilience.retry" or
// "resilience.state_change".
func SpanEventName(t resilience.EventType) string {
	if int(t) < len(spanEventNames) && spanEventNames[t] != "" {
		return spanEventNames[t]
	}
	return "resilience." + t.String()
}

// TracingOption configures Tracing.
type TracingOption func(*tracer)

// TraceSuccess makes Tracing record EventSuccess too. By default successes are skipped: every call
// through a breaker, throttle or limiter has one, and the span itself already says the call
// succeeded.
func TraceSuccess() TracingOption {
	return func(t *tracer) { t.skip[resilience.EventSuccess] = false }
}

// TraceSkip makes Tracing skip events of the given types, e.g. TraceSkip(resilience.EventAdmitted).
func TraceSkip(types ...resilience.EventType) TracingOption {
	return func(t *tracer) {
		for _, ty := range types {
			if int(ty) < len(t.skip) {
				t.skip[ty] = true
			}
		}
	}
}

// Tracing returns an Observer that adds an OpenTelemetry span event to the span in the call's
// context for each resilience event (see SpanEventName and the Attr keys). It does nothing when
// the context has no recording span: events caused outside a call (Breaker.ForceOpen, Allow) carry
// context.Background(). It never sets the span's status, not even for a rejection or exhausted
// retries: whether that fails the operation is the caller's decision.
func Tracing(opts ...TracingOption) resilience.Observer {
	t := &tracer{}
	t.skip[resilience.EventSuccess] = true
	for _, o := range opts {
		o(t)
	}
	return t
}

type tracer struct {
	skip [256]bool // by EventType
}

func (t *tracer) Observe(ctx context.Context, e resilience.Event) {
	if t.skip[e.Type] {
		return
	}
	span := trace.SpanFromContext(ctx)
	if !span.IsRecording() {
		return
	}
	attrs := make([]attribute.KeyValue, 0, 6)
	attrs = append(attrs, AttrPolicy.String(e.Kind.String()), AttrName.String(e.Name))
	if e.Attempt > 0 {
		attrs = append(attrs, AttrAttempt.Int(e.Attempt))
	}
	switch e.Type {
	case resilience.EventStateChange:
		attrs = append(attrs, AttrStateFrom.String(e.From.String()), AttrStateTo.String(e.To.String()))
	case resilience.EventLimitChanged:
		attrs = append(attrs, AttrLimit.Int(e.Limit))
	case resilience.EventRetry, resilience.EventHedge:
		attrs = append(attrs, AttrDelayMS.Float64(ms(e.Duration)))
	default:
		if e.Duration > 0 {
			attrs = append(attrs, AttrDurationMS.Float64(ms(e.Duration)))
		}
	}
	if e.Err != nil {
		attrs = append(attrs, AttrError.String(e.Err.Error()))
	}
	span.AddEvent(SpanEventName(e.Type), trace.WithAttributes(attrs...))
}

// ms converts d to milliseconds, keeping fractions.
func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

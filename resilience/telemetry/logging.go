package telemetry

import (
	"context"
	"log/slog"

	"github.com/faultline-dev/faultline/resilience"
)

// levelOff marks an event type Logging does not write.
const levelOff = slog.Level(1 << 30)

// LoggingOption configures Logging.
type LoggingOption func(*logger)

// LogCalls makes Logging write call outcomes (EventSuccess, EventFailure, EventIgnored) at Debug.
// By default they are not written: there is one per call.
func LogCalls() LoggingOption {
	return func(l *logger) {
		for _, t := range []resilience.EventType{resilience.EventSuccess, resilience.EventFailure, resilience.EventIgnored} {
			l.levels[t] = slog.LevelDebug
		}
	}
}

// LogLevel writes events of type t at level instead of their default level (for
// EventStateChange, whatever the new state).
func LogLevel(t resilience.EventType, level slog.Level) LoggingOption {
	return func(l *logger) {
		l.levels[t] = level
		if t == resilience.EventStateChange {
			l.stateFixed = true
		}
	}
}

// LogSkip makes Logging write nothing for events of the given types.
func LogSkip(types ...resilience.EventType) LoggingOption {
	return func(l *logger) {
		for _, t := range types {
			l.levels[t] = levelOff
			if t == resilience.EventStateChange {
				l.stateFixed = true
			}
		}
	}
}

// Logging returns an Observer that writes each event to logger (slog.Default() when nil) with
// logger.LogAttrs, after asking logger.Enabled, so a disabled level costs no record.
//
// Default levels:
//
//   - breaker state change: Warn when the breaker opens (open, forced-open), Info otherwise
//     (half-open, closed, disabled);
//   - retries exhausted: Warn;
//   - timeout, fallback: Info;
//   - rejection, retry, hedge, admission after a wait, limit change: Debug (they can come by the
//     thousand per second under load; count them with Metrics);
//   - success, failure, ignored: not written, unless LogCalls (Debug).
//
// Each record has the attributes policy, name and event, and when set: from, to (state change),
// attempt, delay (retry, hedge), duration (run time, wait or timeout), limit and error.
func Logging(lg *slog.Logger, opts ...LoggingOption) resilience.Observer {
	if lg == nil {
		lg = slog.Default()
	}
	l := &logger{lg: lg}
	for i := range l.levels {
		l.levels[i] = levelOff
	}
	l.levels[resilience.EventRejected] = slog.LevelDebug
	l.levels[resilience.EventAdmitted] = slog.LevelDebug
	l.levels[resilience.EventStateChange] = slog.LevelInfo
	l.levels[resilience.EventRetry] = slog.LevelDebug
	l.levels[resilience.EventRetriesExhausted] = slog.LevelWarn
	l.levels[resilience.EventTimeout] = slog.LevelInfo
	l.levels[resilience.EventHedge] = slog.LevelDebug
	l.levels[resilience.EventFallback] = slog.LevelInfo
	l.levels[resilience.EventLimitChanged] = slog.LevelDebug
	for _, o := range opts {
		o(l)
	}
	return l
}

type logger struct {
	lg         *slog.Logger
	levels     [256]slog.Level // by EventType; levelOff: not written
	stateFixed bool            // EventStateChange's level was set by an option
}

var logMessages = [...]string{
	resilience.EventSuccess:          "resilience: call succeeded",
	resilience.EventFailure:          "resilience: call failed",
	resilience.EventIgnored:          "resilience: call not counted",
	resilience.EventRejected:         "resilience: call rejected",
	resilience.EventAdmitted:         "resilience: call admitted after waiting",
	resilience.EventStateChange:      "resilience: circuit breaker state changed",
	resilience.EventRetry:            "resilience: retrying",
	resilience.EventRetriesExhausted: "resilience: retries exhausted",
	resilience.EventTimeout:          "resilience: call timed out",
	resilience.EventHedge:            "resilience: hedged attempt started",
	resilience.EventFallback:         "resilience: fallback used",
	resilience.EventLimitChanged:     "resilience: concurrency limit changed",
}

func (l *logger) level(e resilience.Event) slog.Level {
	lv := l.levels[e.Type]
	if e.Type == resilience.EventStateChange && !l.stateFixed &&
		(e.To == resilience.BreakerOpen || e.To == resilience.BreakerForcedOpen) {
		lv = slog.LevelWarn
	}
	return lv
}

func (l *logger) Observe(ctx context.Context, e resilience.Event) {
	lv := l.level(e)
	if lv == levelOff || !l.lg.Enabled(ctx, lv) {
		return
	}
	msg := "resilience: " + e.Type.String()
	if int(e.Type) < len(logMessages) && logMessages[e.Type] != "" {
		msg = logMessages[e.Type]
	}
	var buf [9]slog.Attr
	attrs := append(buf[:0],
		slog.String("policy", e.Kind.String()),
		slog.String("name", e.Name),
		slog.String("event", e.Type.String()))
	switch e.Type {
	case resilience.EventStateChange:
		attrs = append(attrs, slog.String("from", e.From.String()), slog.String("to", e.To.String()))
	case resilience.EventLimitChanged:
		attrs = append(attrs, slog.Int("limit", e.Limit))
	case resilience.EventRetry, resilience.EventHedge:
		attrs = append(attrs, slog.Duration("delay", e.Duration))
	default:
		if e.Duration > 0 {
			attrs = append(attrs, slog.Duration("duration", e.Duration))
		}
	}
	if e.Attempt > 0 {
		attrs = append(attrs, slog.Int("attempt", e.Attempt))
	}
	if e.Err != nil {
		attrs = append(attrs, slog.Any("error", e.Err))
	}
	l.lg.LogAttrs(ctx, lv, msg, attrs...)
}

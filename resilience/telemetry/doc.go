// Package telemetry turns the events of faultline's resilience policies into Prometheus metrics,
// OpenTelemetry span events and slog records.
//
// Every policy in package resilience reports what it does to one resilience.Observer (the
// Observer field of its config). This package provides three observers:
//
//   - Metrics (NewMetrics) counts calls, rejections, retries, timeouts, hedges and fallbacks,
//     tracks breaker states and the adaptive limit, and records call durations and queue waits,
//     on a prometheus.Registerer the caller passes in (nothing is registered globally);
//   - Tracing adds a span event to the span found in the call's context, when it is recording;
//   - Logging writes slog records at levels that suit each event.
//
// Combine them with resilience.Observers:
//
//	obs := resilience.Observers(metrics, telemetry.Tracing(), telemetry.Logging(logger))
//	b, err := resilience.NewBreaker(resilience.BreakerConfig{Name: "payments", Observer: obs})
//
// All three are safe for concurrent use and cheap when they have nothing to do: Metrics does not
// allocate once a policy's series exist, Tracing returns at once when the context carries no
// recording span, and Logging asks logger.Enabled before building a record.
package telemetry

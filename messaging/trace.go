package messaging

import (
	"context"

	"go.opentelemetry.io/otel/propagation"
)

// traceContext is the W3C Trace Context propagator (traceparent, tracestate).
var traceContext = propagation.TraceContext{}

// InjectTrace writes the span context of ctx into msg's headers as W3C "traceparent" and
// "tracestate", so the consumer's spans join the producer's trace. It does nothing when ctx has no
// valid span context. Implementations call it in Publish for messages that carry no traceparent yet.
func InjectTrace(ctx context.Context, msg *Message) {
	if _, ok := msg.Headers["traceparent"]; ok {
		return
	}
	carrier := propagation.MapCarrier{}
	traceContext.Inject(ctx, carrier)
	if len(carrier) == 0 {
		return
	}
	if msg.Headers == nil {
		msg.Headers = make(map[string]string, len(carrier))
	}
	for k, v := range carrier {
		msg.Headers[k] = v
	}
}

// ExtractTrace returns ctx carrying the remote span context found in msg's headers (unchanged when
// there is none or it is malformed). Implementations call it before running a Handler.
func ExtractTrace(ctx context.Context, msg *Message) context.Context {
	if msg.Headers["traceparent"] == "" {
		return ctx
	}
	return traceContext.Extract(ctx, propagation.MapCarrier(msg.Headers))
}

// Package grpcx adapts faultline's resilience policies to gRPC: unary and stream interceptors for
// clients (rate limiter, retry, a circuit breaker per target, bulkhead and a per-attempt timeout)
// and for servers (rate limiter, adaptive concurrency limiter and bulkhead, answering rejections
// with a grpc-retry-pushback-ms trailer).
//
// Policy decisions become gRPC status errors a caller can branch on with status.Code, and the
// policy error stays visible to errors.Is: a call rejected by an open breaker fails with
// codes.Unavailable and errors.Is(err, resilience.ErrOpen) holds. The caller's context ends
// everything at once with codes.Canceled or codes.DeadlineExceeded (errors.Is finds the context
// error too) and leaves no goroutine behind.
//
// The client retries what gRFC A6 (gRPC's own retry design) calls safe: UNAVAILABLE, and
// DEADLINE_EXCEEDED when it is not the caller's deadline; RESOURCE_EXHAUSTED only when the server
// pushed back with a delay (grpc-retry-pushback-ms), which is honoured as the wait; a negative or
// malformed pushback means "do not retry". Streams are gated (breaker, bulkhead, rate limiter) and
// retried only while being established, never once messages have flowed.
//
// See docs/resilience/grpc.md.
package grpcx

package grpcx

import (
	"context"
	"errors"
	"fmt"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/faultline-dev/faultline/resilience"
)

// DefaultRetryPushback is the pushback a server sends with a shed or a full bulkhead when
// ServerConfig.RetryPushback is zero.
const DefaultRetryPushback = time.Second

// ServerConfig configures the server interceptors. Every field is optional; the zero value passes
// calls straight through.
//
// A call goes through, outermost first: RateLimiter → Limiter → Bulkhead → the handler. The
// cheapest refusal comes first; the adaptive Limiter sheds before the Bulkhead queues, and it sees
// the Bulkhead's queueing as latency and its rejections as overload.
type ServerConfig struct {
	// Bulkhead, when set, bounds the handlers running at once (with its queue, if any).
	Bulkhead *resilience.Bulkhead
	// RateLimiter, when set, admits calls at its rate.
	RateLimiter *resilience.RateLimiter
	// Limiter, when set, sheds calls beyond its adaptive concurrency limit. Handler errors with
	// codes DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED and UNAVAILABLE, and Bulkhead rejections, count
	// as drops (overload) that shrink the limit: the limiter sees them as an error matching
	// resilience.ErrTimeout (which its default IsDrop accepts; a custom IsDrop can read the code
	// with status.Code). Calls the client cancelled are not counted; other errors are successes.
	Limiter *resilience.Limiter
	// RetryPushback is sent as the grpc-retry-pushback-ms trailer with a shed (Limiter) or a full
	// Bulkhead, telling gRFC A6 clients (and UnaryClientInterceptor) when to retry. Zero means
	// DefaultRetryPushback (1 s). Rate limiter rejections send the rate limiter's own wait instead.
	RetryPushback time.Duration
	// OnReject, when set, is called for each call a policy refused, with the error returned to the
	// client (a status error that also matches the policy error: resilience.ErrRateLimited,
	// ErrLimitExceeded or ErrBulkheadFull). It is not called when the client gave up while the
	// call waited (for a token or a slot).
	OnReject func(ctx context.Context, fullMethod string, err error)
}

type server struct {
	bulkhead *resilience.Bulkhead
	rl       *resilience.RateLimiter
	limiter  *resilience.Limiter
	pushback string // RetryPushback as grpc-retry-pushback-ms
	onReject func(context.Context, string, error)
}

func newServer(cfg ServerConfig) (*server, error) {
	if cfg.RetryPushback < 0 {
		return nil, fmt.Errorf("resilience/grpcx: ServerConfig.RetryPushback %v: want ≥ 0 (0: %v)",
			cfg.RetryPushback, DefaultRetryPushback)
	}
	d := cfg.RetryPushback
	if d == 0 {
		d = DefaultRetryPushback
	}
	return &server{bulkhead: cfg.Bulkhead, rl: cfg.RateLimiter, limiter: cfg.Limiter,
		pushback: formatPushback(d), onReject: cfg.OnReject}, nil
}

// UnaryServerInterceptor returns an interceptor that runs each unary call through cfg's policies:
// RateLimiter → Limiter → Bulkhead → the handler. A rate-limited call fails with
// codes.ResourceExhausted and the rate limiter's wait as grpc-retry-pushback-ms; a shed call or a
// full bulkhead with codes.Unavailable and RetryPushback. A handler's error is returned unchanged.
// A panicking handler frees its slots and the panic goes on. It returns an error only for a bad
// cfg.
func UnaryServerInterceptor(cfg ServerConfig) (grpc.UnaryServerInterceptor, error) {
	s, err := newServer(cfg)
	if err != nil {
		return nil, err
	}
	return s.unary, nil
}

// StreamServerInterceptor is UnaryServerInterceptor for streams: the policies gate the stream's
// handler, whose slots are held until it returns.
func StreamServerInterceptor(cfg ServerConfig) (grpc.StreamServerInterceptor, error) {
	s, err := newServer(cfg)
	if err != nil {
		return nil, err
	}
	return s.stream, nil
}

func (s *server) unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	var resp any
	pushback, err := s.guard(ctx, info.FullMethod, func(ctx context.Context) error {
		var err error
		resp, err = handler(ctx, req)
		return err
	})
	if pushback != "" {
		_ = grpc.SetTrailer(ctx, metadata.MD{PushbackKey: []string{pushback}})
	}
	return resp, err
}

func (s *server) stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	pushback, err := s.guard(ss.Context(), info.FullMethod, func(context.Context) error { return handler(srv, ss) })
	if pushback != "" {
		ss.SetTrailer(metadata.MD{PushbackKey: []string{pushback}})
	}
	return err
}

// guard runs handle through the policies. It returns the handler's error unchanged when the
// handler ran; otherwise the rejection as a status error, with the pushback to send.
func (s *server) guard(ctx context.Context, method string, handle func(context.Context) error) (pushback string, err error) {
	ran := false
	var herr error
	call := func(ctx context.Context) error {
		ran = true
		herr = handle(ctx)
		return herr
	}
	if s.bulkhead != nil {
		inner := call
		call = func(ctx context.Context) error { return s.bulkhead.Execute(ctx, inner) }
	}
	if s.limiter != nil {
		inner := call
		call = func(ctx context.Context) error {
			return s.limiter.Execute(ctx, func(ctx context.Context) error { return dropView(ctx, inner(ctx)) })
		}
	}
	if s.rl != nil {
		err = s.rl.Execute(ctx, call)
	} else {
		err = call(ctx)
	}
	if ran {
		return "", herr
	}
	return s.reject(ctx, method, err)
}

// reject turns a policy's refusal into the client's status error and pushback.
func (s *server) reject(ctx context.Context, method string, err error) (pushback string, _ error) {
	if err == nil {
		return "", nil
	}
	if ctx.Err() != nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)) {
		return "", callerEndedError(ctx, err) // the client gave up while waiting
	}
	var code codes.Code
	switch {
	case errors.Is(err, resilience.ErrRateLimited):
		code, pushback = codes.ResourceExhausted, s.pushback
		var ra resilience.RetryAfterError
		if errors.As(err, &ra) && ra.RetryAfter() > 0 {
			pushback = formatPushback(ra.RetryAfter())
		}
	case errors.Is(err, resilience.ErrLimitExceeded), errors.Is(err, resilience.ErrBulkheadFull):
		code, pushback = codes.Unavailable, s.pushback
	default:
		return "", err
	}
	serr := newStatusError(code, err.Error(), err)
	if s.onReject != nil {
		s.onReject(ctx, method, serr)
	}
	return pushback, serr
}

// dropError is what the Limiter sees of an overloaded call: it matches resilience.ErrTimeout
// (the default IsDrop's test) and carries the call's status for a custom IsDrop. It wraps nothing
// else on purpose: a context error behind it would make the limiter ignore the call.
type dropError struct{ st *status.Status }

func (e *dropError) Error() string              { return "resilience/grpcx: overload: " + e.st.Message() }
func (e *dropError) Is(target error) bool       { return target == resilience.ErrTimeout }
func (e *dropError) GRPCStatus() *status.Status { return e.st }

// dropView is the error the Limiter classifies for a call that ended with err: a drop (an error
// matching ErrTimeout) for DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED, UNAVAILABLE and a full
// bulkhead; the context error when the client cancelled (ignored); err itself otherwise.
func dropView(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(ctx.Err(), context.Canceled) {
		return ctx.Err()
	}
	if errors.Is(err, resilience.ErrBulkheadFull) {
		return &dropError{st: status.New(codes.Unavailable, err.Error())}
	}
	st, ok := status.FromError(err)
	if !ok {
		st = status.FromContextError(err) // what grpc sends for a handler's bare context error
	}
	switch st.Code() {
	case codes.DeadlineExceeded, codes.ResourceExhausted, codes.Unavailable:
		return &dropError{st: st}
	}
	return err
}

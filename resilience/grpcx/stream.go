package grpcx

import (
	"context"
	"io"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/faultline-dev/faultline/resilience"
)

// StreamClientInterceptor returns an interceptor that gates the creation of each stream with
// cfg's policies: RateLimiter → Retry → (per attempt) Breaker of cc.Target() → Bulkhead → the
// stream's creation. Errors map to status codes as in UnaryClientInterceptor.
//
// Rules for streams:
//
//   - Retry covers establishing the stream only (the streamer failing, or a gate rejecting). Once
//     the stream is returned there is no transparent retry: messages may have flowed, and only the
//     caller knows whether resending them is safe. Retry.PerAttemptTimeout and ClientConfig.Timeout
//     do not apply: the stream lives on the caller's context, which alone bounds it.
//   - The breaker outcome is recorded when the stream ends: RecvMsg returning io.EOF (or, for a
//     client-streaming RPC, the response) is a success; another error from RecvMsg, SendMsg or
//     Header is classified by IsFailure; the caller's context ending first (the caller abandoned
//     the stream) is not counted.
//   - The bulkhead slot is held until the stream ends, however it ends (io.EOF, an error, the
//     caller's context ending, CloseSend then draining), and released exactly once. A stream the
//     caller neither drains nor cancels holds its slot, as it holds its gRPC resources: gRPC's own
//     rule applies (cancel the context or call RecvMsg until it returns an error).
func StreamClientInterceptor(cfg ClientConfig) (grpc.StreamClientInterceptor, error) {
	c, err := newClient(cfg)
	if err != nil {
		return nil, err
	}
	return c.stream, nil
}

func (c *client) stream(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string,
	streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	target := targetOf(cc)
	b, err := c.breaker(target)
	if err != nil {
		return nil, err
	}
	var cs grpc.ClientStream
	// The attempt's context (which a Retry.PerAttemptTimeout would cancel when the attempt returns)
	// is deliberately ignored: the stream must live on the caller's.
	err = c.run(ctx, func(context.Context) error {
		s, err := c.streamAttempt(ctx, b, target, desc, cc, method, streamer, opts)
		if err == nil {
			cs = s
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return cs, nil
}

// streamAttempt passes the gates and creates the stream, which then holds the breaker permit and
// the bulkhead slot until it ends.
func (c *client) streamAttempt(ctx context.Context, b *resilience.Breaker, target string, desc *grpc.StreamDesc,
	cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts []grpc.CallOption) (grpc.ClientStream, error) {
	if b == nil && c.bulkhead == nil {
		return streamer(ctx, desc, cc, method, opts...)
	}
	g := &streamGuard{c: c, ctx: ctx, b: b}
	if b != nil {
		g.start = c.clk.Now()
		p, err := b.Allow(g.start)
		if err != nil {
			return nil, policyStatus(err, target)
		}
		g.permit = p
	}
	if c.bulkhead != nil {
		if err := g.hold(ctx, c.bulkhead); err != nil {
			g.end(resilience.OutcomeIgnored)
			return nil, policyStatus(err, target)
		}
	}
	created := false
	defer func() {
		if !created { // the streamer panicked
			g.end(resilience.OutcomeFailure)
		}
	}()
	s, err := streamer(ctx, desc, cc, method, opts...)
	created = true
	if err != nil {
		g.end(c.outcome(ctx, err))
		return nil, err
	}
	g.stop = context.AfterFunc(ctx, func() { g.end(resilience.OutcomeIgnored) })
	return &clientStream{ClientStream: s, g: g, serverStreams: desc.ServerStreams}, nil
}

// streamGuard holds a stream's breaker permit and bulkhead slot and gives them back once.
type streamGuard struct {
	c      *client
	ctx    context.Context // the caller's
	b      *resilience.Breaker
	permit resilience.Permit
	start  time.Time

	bulkhead *resilience.Bulkhead // whose slot the stream holds; nil without one
	stop     func() bool          // unregisters the context watcher; set once the stream is returned
	ended    atomic.Bool
}

// hold takes a bulkhead slot for the stream's life; end gives it back.
func (g *streamGuard) hold(ctx context.Context, bh *resilience.Bulkhead) error {
	if err := bh.Acquire(ctx); err != nil {
		return err
	}
	g.bulkhead = bh
	return nil
}

// end records the outcome with the breaker and frees the bulkhead slot, the first time only; the
// slot is free when it returns.
func (g *streamGuard) end(kind resilience.OutcomeKind) {
	if !g.ended.CompareAndSwap(false, true) {
		return
	}
	if g.b != nil {
		now := g.c.clk.Now()
		g.b.Done(g.permit, now, resilience.Outcome{Kind: kind, Duration: now.Sub(g.start)})
	}
	if g.bulkhead != nil {
		g.bulkhead.Release()
	}
}

// finish ends the stream on an error the caller saw (io.EOF: the server's clean end).
func (g *streamGuard) finish(err error) {
	if g.stop != nil {
		g.stop()
	}
	kind := resilience.OutcomeSuccess
	switch {
	case err == nil || err == io.EOF:
	case g.ctx.Err() != nil:
		kind = resilience.OutcomeIgnored
	case g.c.isFailure(err):
		kind = resilience.OutcomeFailure
	}
	g.end(kind)
}

// clientStream watches the stream's end for its guard.
type clientStream struct {
	grpc.ClientStream
	g             *streamGuard
	serverStreams bool
}

func (s *clientStream) RecvMsg(m any) error {
	err := s.ClientStream.RecvMsg(m)
	if err != nil || !s.serverStreams { // a client-streaming RPC ends with its one response
		s.g.finish(err)
	}
	return err
}

func (s *clientStream) SendMsg(m any) error {
	err := s.ClientStream.SendMsg(m)
	if err != nil && err != io.EOF { // io.EOF: the stream ended; RecvMsg tells how
		s.g.finish(err)
	}
	return err
}

func (s *clientStream) Header() (metadata.MD, error) {
	md, err := s.ClientStream.Header()
	if err != nil && err != io.EOF {
		s.g.finish(err)
	}
	return md, err
}

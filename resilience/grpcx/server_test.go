package grpcx

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/faultline-dev/faultline/clock"
	"github.com/faultline-dev/faultline/resilience"
)

const checkMethod = "/grpc.health.v1.Health/Check"

// rejections records OnReject calls.
type rejections struct {
	mu   sync.Mutex
	errs []error
}

func (r *rejections) record(_ context.Context, method string, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if method != checkMethod && method != "/grpc.health.v1.Health/Watch" {
		err = errors.New("unexpected method " + method)
	}
	r.errs = append(r.errs, err)
}

func (r *rejections) list() []error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]error(nil), r.errs...)
}

func serverWith(t *testing.T, h *healthServer, cfg ServerConfig) healthpb.HealthClient {
	t.Helper()
	s := startServer(t, h,
		grpc.UnaryInterceptor(must(UnaryServerInterceptor(cfg))),
		grpc.StreamInterceptor(must(StreamServerInterceptor(cfg))))
	return s.dial(t, "a")
}

// blocking returns a Check handler that signals entered and waits for release.
func blocking(entered chan<- struct{}, release <-chan struct{}) func(context.Context, int) (*healthpb.HealthCheckResponse, error) {
	return func(context.Context, int) (*healthpb.HealthCheckResponse, error) {
		entered <- struct{}{}
		<-release
		return serving, nil
	}
}

// checkRejected calls Check and asserts the code and the pushback trailer.
func checkRejected(t *testing.T, cl healthpb.HealthClient, code codes.Code, pushback string) {
	t.Helper()
	var md metadata.MD
	_, err := cl.Check(context.Background(), req, grpc.Trailer(&md))
	if status.Code(err) != code {
		t.Fatalf("err = %v, want %v", err, code)
	}
	if got := md[PushbackKey]; len(got) != 1 || got[0] != pushback {
		t.Fatalf("pushback trailer %q, want %q", got, pushback)
	}
}

func TestServerRateLimited(t *testing.T) {
	m := clock.NewManual(time.Time{})
	rl := must(resilience.NewRateLimiter(resilience.RateLimitConfig{Rate: 2, Clock: m}))
	var rej rejections
	h := &healthServer{}
	cl := serverWith(t, h, ServerConfig{RateLimiter: rl, OnReject: rej.record})
	if _, err := cl.Check(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	checkRejected(t, cl, codes.ResourceExhausted, "500") // the rate limiter's own wait
	if h.checks.Load() != 1 {
		t.Errorf("handler ran %d times, want 1", h.checks.Load())
	}
	if errs := rej.list(); len(errs) != 1 || !errors.Is(errs[0], resilience.ErrRateLimited) || status.Code(errs[0]) != codes.ResourceExhausted {
		t.Errorf("OnReject saw %v", errs)
	}
}

func TestServerBulkheadFull(t *testing.T) {
	for _, tc := range []struct {
		pushback time.Duration
		want     string
	}{{0, "1000"}, {250 * time.Millisecond, "250"}} {
		entered, release := make(chan struct{}), make(chan struct{})
		h := &healthServer{check: blocking(entered, release)}
		bh := must(resilience.NewBulkhead(resilience.BulkheadConfig{MaxConcurrent: 1}))
		var rej rejections
		cl := serverWith(t, h, ServerConfig{Bulkhead: bh, RetryPushback: tc.pushback, OnReject: rej.record})
		first := make(chan error, 1)
		go func() { _, err := cl.Check(context.Background(), req); first <- err }()
		<-entered
		checkRejected(t, cl, codes.Unavailable, tc.want)
		close(release)
		if err := recv(t, first); err != nil {
			t.Fatal(err)
		}
		if errs := rej.list(); len(errs) != 1 || !errors.Is(errs[0], resilience.ErrBulkheadFull) {
			t.Errorf("OnReject saw %v", errs)
		}
		if bh.InFlight() != 0 {
			t.Errorf("InFlight = %d", bh.InFlight())
		}
	}
}

func TestServerLimiterShed(t *testing.T) {
	lim := must(resilience.NewLimiter(resilience.LimiterConfig{InitialLimit: 1, MinLimit: 1, MaxLimit: 1}))
	entered, release := make(chan struct{}), make(chan struct{})
	h := &healthServer{check: blocking(entered, release)}
	var rej rejections
	cl := serverWith(t, h, ServerConfig{Limiter: lim, OnReject: rej.record})
	first := make(chan error, 1)
	go func() { _, err := cl.Check(context.Background(), req); first <- err }()
	<-entered
	checkRejected(t, cl, codes.Unavailable, "1000")
	close(release)
	if err := recv(t, first); err != nil {
		t.Fatal(err)
	}
	if errs := rej.list(); len(errs) != 1 || !errors.Is(errs[0], resilience.ErrLimitExceeded) {
		t.Errorf("OnReject saw %v", errs)
	}
	if lim.InFlight() != 0 {
		t.Errorf("limiter InFlight = %d", lim.InFlight())
	}
}

func TestServerHandlerErrorsPassThrough(t *testing.T) {
	bh := must(resilience.NewBulkhead(resilience.BulkheadConfig{MaxConcurrent: 1}))
	var rej rejections
	h := &healthServer{check: failing(1, codes.Unavailable, nil)}
	cl := serverWith(t, h, ServerConfig{Bulkhead: bh, OnReject: rej.record})
	var md metadata.MD
	_, err := cl.Check(context.Background(), req, grpc.Trailer(&md))
	if status.Code(err) != codes.Unavailable || status.Convert(err).Message() != "injected failure" {
		t.Fatalf("err = %v, want the handler's own", err)
	}
	if len(md[PushbackKey]) != 0 || len(rej.list()) != 0 {
		t.Errorf("a handler error was treated as a rejection (trailer %v, OnReject %v)", md, rej.list())
	}
}

func TestServerPanicReleasesSlots(t *testing.T) {
	bh := must(resilience.NewBulkhead(resilience.BulkheadConfig{MaxConcurrent: 1}))
	lim := must(resilience.NewLimiter(resilience.LimiterConfig{InitialLimit: 1, MinLimit: 1, MaxLimit: 1}))
	rl := must(resilience.NewRateLimiter(resilience.RateLimitConfig{Rate: 1e9, Burst: 100}))
	cfg := ServerConfig{Bulkhead: bh, Limiter: lim, RateLimiter: rl}
	unary := must(UnaryServerInterceptor(cfg))
	stream := must(StreamServerInterceptor(cfg))
	type boom struct{}
	catch := func(f func()) (v any) {
		defer func() { v = recover() }()
		f()
		return nil
	}
	for range 2 { // a leaked slot would make the second round shed
		v := catch(func() {
			_, _ = unary(context.Background(), req, &grpc.UnaryServerInfo{FullMethod: checkMethod},
				func(context.Context, any) (any, error) { panic(boom{}) })
		})
		if _, ok := v.(boom); !ok {
			t.Fatalf("recovered %v, want the handler's panic", v)
		}
		v = catch(func() {
			_ = stream(nil, &fakeServerStream{ctx: context.Background()}, &grpc.StreamServerInfo{FullMethod: "/svc/S"},
				func(any, grpc.ServerStream) error { panic(boom{}) })
		})
		if _, ok := v.(boom); !ok {
			t.Fatalf("recovered %v, want the handler's panic", v)
		}
		if bh.InFlight() != 0 || lim.InFlight() != 0 {
			t.Fatalf("after a panic: bulkhead %d, limiter %d in flight", bh.InFlight(), lim.InFlight())
		}
	}
}

// fakeServerStream is a ServerStream for calling the stream interceptor directly.
type fakeServerStream struct {
	grpc.ServerStream
	ctx     context.Context
	trailer metadata.MD
}

func (f *fakeServerStream) Context() context.Context { return f.ctx }
func (f *fakeServerStream) SetTrailer(md metadata.MD) {
	f.trailer = metadata.Join(f.trailer, md)
}

func TestServerLimiterDrops(t *testing.T) {
	m := clock.NewManual(time.Time{})
	lim := must(resilience.NewLimiter(resilience.LimiterConfig{InitialLimit: 10, MinLimit: 1, MaxLimit: 10, BackoffRatio: 0.9, Clock: m}))
	unary := must(UnaryServerInterceptor(ServerConfig{Limiter: lim}))
	info := &grpc.UnaryServerInfo{FullMethod: checkMethod}
	steps := []struct {
		name      string
		err       error
		cancelled bool // the client cancels while the handler runs
		limit     int
	}{
		{"unavailable", status.Error(codes.Unavailable, "x"), false, 9},
		{"resource exhausted", status.Error(codes.ResourceExhausted, "x"), false, 8},
		{"deadline exceeded", status.Error(codes.DeadlineExceeded, "x"), false, 7},
		{"bare context deadline", context.DeadlineExceeded, false, 6},
		{"invalid argument", status.Error(codes.InvalidArgument, "x"), false, 6},
		{"plain error", errors.New("app"), false, 6},
		{"client cancelled", status.Error(codes.DeadlineExceeded, "x"), true, 6},
		{"drop after all", status.Error(codes.DeadlineExceeded, "x"), false, 5},
	}
	for _, s := range steps {
		m.Advance(time.Second) // each call starts after the limit's last move
		ctx, cancel := context.WithCancel(context.Background())
		_, err := unary(ctx, req, info, func(context.Context, any) (any, error) {
			if s.cancelled {
				cancel()
			}
			return nil, s.err
		})
		cancel()
		if err != s.err {
			t.Fatalf("%s: the interceptor returned %v, want the handler's %v", s.name, err, s.err)
		}
		if got := lim.Limit(); got != s.limit {
			t.Fatalf("after %s: limit %d, want %d", s.name, got, s.limit)
		}
	}
}

func TestServerStreamBulkheadFull(t *testing.T) {
	bh := must(resilience.NewBulkhead(resilience.BulkheadConfig{MaxConcurrent: 1}))
	h := &healthServer{watch: func(_ int, s healthpb.Health_WatchServer) error { return blockUntilDone(s) }}
	var rej rejections
	cl := serverWith(t, h, ServerConfig{Bulkhead: bh, RetryPushback: 2 * time.Second, OnReject: rej.record})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	first := must(cl.Watch(ctx, req))
	if _, err := first.Recv(); err != nil {
		t.Fatal(err)
	}
	second := must(cl.Watch(context.Background(), req))
	if _, err := second.Recv(); status.Code(err) != codes.Unavailable {
		t.Fatalf("second stream: %v, want UNAVAILABLE", err)
	}
	if got := second.Trailer()[PushbackKey]; len(got) != 1 || got[0] != "2000" {
		t.Errorf("pushback trailer %q, want 2000", got)
	}
	cancel()
	eventually(t, "the stream's slot to be freed", func() bool { return bh.InFlight() == 0 })
	if len(rej.list()) != 1 {
		t.Errorf("OnReject saw %v", rej.list())
	}
}

// TestPushbackEndToEnd: the server's rate limiter pushes back, the client's Retry waits exactly
// that long and then succeeds.
func TestPushbackEndToEnd(t *testing.T) {
	sm, cm := clock.NewManual(time.Time{}), clock.NewManual(time.Time{})
	rl := must(resilience.NewRateLimiter(resilience.RateLimitConfig{Rate: 4, Clock: sm}))
	h := &healthServer{}
	s := startServer(t, h, grpc.UnaryInterceptor(must(UnaryServerInterceptor(ServerConfig{RateLimiter: rl}))))
	var delays []time.Duration
	r := must(resilience.NewRetry(resilience.RetryConfig{Clock: cm, OnRetry: func(_ int, _ error, d time.Duration) { delays = append(delays, d) }}))
	cl := s.dial(t, "a", grpc.WithUnaryInterceptor(must(UnaryClientInterceptor(ClientConfig{Retry: r}))))
	if _, err := cl.Check(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { _, err := cl.Check(context.Background(), req); done <- err }()
	waitTimers(t, cm, 1)
	if len(delays) != 1 || delays[0] != 250*time.Millisecond {
		t.Fatalf("client waits %v, want the server's 250ms", delays)
	}
	sm.Advance(250 * time.Millisecond)
	cm.Advance(250 * time.Millisecond)
	if err := recv(t, done); err != nil {
		t.Fatal(err)
	}
	if h.checks.Load() != 2 {
		t.Errorf("handler ran %d times, want 2", h.checks.Load())
	}
}

func TestServerClientGivesUpWhileQueued(t *testing.T) {
	bh := must(resilience.NewBulkhead(resilience.BulkheadConfig{MaxConcurrent: 1, MaxQueue: 1}))
	var rej rejections
	unary := must(UnaryServerInterceptor(ServerConfig{Bulkhead: bh, OnReject: rej.record}))
	info := &grpc.UnaryServerInfo{FullMethod: checkMethod}
	entered, release := make(chan struct{}), make(chan struct{})
	first := make(chan error, 1)
	go func() {
		_, err := unary(context.Background(), req, info, func(context.Context, any) (any, error) {
			close(entered)
			<-release
			return serving, nil
		})
		first <- err
	}()
	<-entered
	ctx, cancel := context.WithCancel(context.Background())
	queued := make(chan error, 1)
	go func() {
		_, err := unary(ctx, req, info, func(context.Context, any) (any, error) {
			t.Error("the handler ran for a client that gave up")
			return nil, nil
		})
		queued <- err
	}()
	eventually(t, "the call to queue", func() bool { return bh.Queued() == 1 })
	cancel()
	if err := recv(t, queued); status.Code(err) != codes.Canceled || !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want CANCELED", err)
	}
	close(release)
	if err := recv(t, first); err != nil {
		t.Fatal(err)
	}
	if len(rej.list()) != 0 {
		t.Errorf("OnReject called for a client that gave up: %v", rej.list())
	}
}

func TestErrorStrings(t *testing.T) {
	err := newStatusError(codes.Unavailable, "breaker open", resilience.ErrOpen)
	if want := status.Error(codes.Unavailable, "breaker open").Error(); err.Error() != want {
		t.Errorf("Error() = %q, want grpc's form %q", err.Error(), want)
	}
	orig := status.Error(codes.ResourceExhausted, "quota")
	pe := &pushbackError{err: orig, st: status.Convert(orig), d: time.Second}
	if pe.Error() != orig.Error() || !errors.Is(pe, orig) || pe.RetryAfter() != time.Second {
		t.Errorf("pushbackError hides the server's error: %v", pe)
	}
	de := &dropError{st: status.New(codes.Unavailable, "busy")}
	if !errors.Is(de, resilience.ErrTimeout) || errors.Is(de, context.DeadlineExceeded) || status.Code(de) != codes.Unavailable || de.Error() == "" {
		t.Errorf("dropError: %v", de)
	}
}

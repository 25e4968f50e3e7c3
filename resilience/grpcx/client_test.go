package grpcx

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/faultline-dev/faultline/clock"
	"github.com/faultline-dev/faultline/resilience"
)

var req = &healthpb.HealthCheckRequest{}

// quickRetry retries at once (1 ns backoff), so tests need not move a clock.
func quickRetry(t *testing.T, attempts int, onRetry func(int, error, time.Duration)) *resilience.Retry {
	t.Helper()
	return must(resilience.NewRetry(resilience.RetryConfig{
		MaxAttempts: attempts, Backoff: resilience.Backoff{Base: 1, Max: 1}, OnRetry: onRetry,
	}))
}

func unaryClient(t *testing.T, s *testServer, target string, cfg ClientConfig) healthpb.HealthClient {
	t.Helper()
	ic := must(UnaryClientInterceptor(cfg))
	return s.dial(t, target, grpc.WithUnaryInterceptor(ic))
}

// failing returns a Check handler that fails the first n calls with code (and trailer md, if any).
func failing(n int, code codes.Code, md metadata.MD) func(context.Context, int) (*healthpb.HealthCheckResponse, error) {
	return func(ctx context.Context, call int) (*healthpb.HealthCheckResponse, error) {
		if call > n {
			return serving, nil
		}
		if md != nil {
			_ = grpc.SetTrailer(ctx, md)
		}
		return nil, status.Error(code, "injected failure")
	}
}

func TestUnaryRetriesUnavailableThenSucceeds(t *testing.T) {
	h := &healthServer{check: failing(2, codes.Unavailable, nil)}
	var retries []codes.Code
	cl := unaryClient(t, startServer(t, h), "a", ClientConfig{
		Retry: quickRetry(t, 3, func(_ int, err error, _ time.Duration) { retries = append(retries, status.Code(err)) }),
	})
	if _, err := cl.Check(context.Background(), req); err != nil {
		t.Fatalf("Check: %v", err)
	}
	if got := h.checks.Load(); got != 3 {
		t.Errorf("server saw %d calls, want 3", got)
	}
	if len(retries) != 2 || retries[0] != codes.Unavailable {
		t.Errorf("retried %v, want two UNAVAILABLE", retries)
	}
}

func TestUnaryDoesNotRetryOtherCodes(t *testing.T) {
	for _, code := range []codes.Code{codes.InvalidArgument, codes.NotFound, codes.Internal, codes.PermissionDenied, codes.Aborted} {
		t.Run(code.String(), func(t *testing.T) {
			h := &healthServer{check: failing(5, code, nil)}
			cl := unaryClient(t, startServer(t, h), "a", ClientConfig{Retry: quickRetry(t, 3, nil)})
			_, err := cl.Check(context.Background(), req)
			if status.Code(err) != code {
				t.Fatalf("err = %v, want code %v", err, code)
			}
			if msg := status.Convert(err).Message(); msg != "injected failure" {
				t.Errorf("message = %q, want the server's own", msg)
			}
			if resilience.IsPermanent(err) {
				t.Error("the interceptor's Permanent mark leaked to the caller")
			}
			if got := h.checks.Load(); got != 1 {
				t.Errorf("server saw %d calls, want 1", got)
			}
		})
	}
}

func TestUnaryResourceExhaustedNeedsPushback(t *testing.T) {
	mdPush := func(v ...string) metadata.MD { return metadata.MD{PushbackKey: v} }
	cases := []struct {
		name      string
		code      codes.Code
		md        metadata.MD
		wantCalls int32
		wantDelay time.Duration // the wait before the retry, when there is one
	}{
		{"exhausted without pushback", codes.ResourceExhausted, nil, 1, 0},
		{"exhausted with pushback", codes.ResourceExhausted, mdPush("250"), 2, 250 * time.Millisecond},
		{"exhausted with zero pushback", codes.ResourceExhausted, mdPush("0"), 2, 100 * time.Millisecond},
		{"unavailable with pushback", codes.Unavailable, mdPush("1500"), 2, 1500 * time.Millisecond},
		{"negative pushback", codes.Unavailable, mdPush("-1"), 1, 0},
		{"malformed pushback", codes.Unavailable, mdPush("soon"), 1, 0},
		{"repeated pushback", codes.Unavailable, mdPush("10", "20"), 1, 0},
		{"negative pushback, exhausted", codes.ResourceExhausted, mdPush("-5"), 1, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := clock.NewManual(time.Time{})
			var delays []time.Duration
			r := must(resilience.NewRetry(resilience.RetryConfig{
				MaxAttempts: 3, Clock: m, // default backoff: 100 ms, doubling
				OnRetry: func(_ int, _ error, d time.Duration) { delays = append(delays, d) },
			}))
			h := &healthServer{check: failing(1, tc.code, tc.md)}
			cl := unaryClient(t, startServer(t, h), "a", ClientConfig{Retry: r})
			done := make(chan error, 1)
			go func() { _, err := cl.Check(context.Background(), req); done <- err }()
			if tc.wantCalls > 1 {
				waitTimers(t, m, 1) // the Retry waits on the manual clock
				if len(delays) != 1 || delays[0] != tc.wantDelay {
					t.Fatalf("retry delays %v, want [%v]", delays, tc.wantDelay)
				}
				m.Advance(tc.wantDelay - 1)
				if h.checks.Load() != 1 {
					t.Fatal("retried before the pushback passed")
				}
				m.Advance(1)
			}
			err := recv(t, done)
			if got := h.checks.Load(); got != tc.wantCalls {
				t.Fatalf("server saw %d calls, want %d (err %v)", got, tc.wantCalls, err)
			}
			if tc.wantCalls == 1 {
				if status.Code(err) != tc.code {
					t.Fatalf("err = %v, want %v", err, tc.code)
				}
				if d, ok := Pushback(err); tc.md != nil && (!ok || d >= 0) { // every refused pushback here says "do not retry"
					t.Errorf("Pushback(err) = %v, %v", d, ok)
				}
			} else if err != nil {
				t.Fatalf("Check: %v", err)
			}
		})
	}
}

func TestUnaryBreakerPerTarget(t *testing.T) {
	h := &healthServer{check: func(context.Context, int) (*healthpb.HealthCheckResponse, error) {
		return nil, status.Error(codes.Unavailable, "down")
	}}
	s := startServer(t, h)
	var made sync.Map // target → *int32 (factory calls)
	cfg := ClientConfig{Breaker: func(target string) (*resilience.Breaker, error) {
		n, _ := made.LoadOrStore(target, new(int32))
		atomic.AddInt32(n.(*int32), 1)
		return resilience.NewBreaker(resilience.BreakerConfig{ConsecutiveFailures: 2, OpenDuration: time.Hour})
	}}
	ic := must(UnaryClientInterceptor(cfg)) // one interceptor, two connections
	a := s.dial(t, "a", grpc.WithUnaryInterceptor(ic))
	b := s.dial(t, "b", grpc.WithUnaryInterceptor(ic))

	var wg sync.WaitGroup
	for range 2 { // concurrent first calls: the factory must still run once per target
		wg.Go(func() { _, _ = a.Check(context.Background(), req) })
	}
	wg.Wait()
	if got := h.checks.Load(); got != 2 {
		t.Fatalf("server saw %d calls, want 2", got)
	}
	_, err := a.Check(context.Background(), req)
	if status.Code(err) != codes.Unavailable || !errors.Is(err, resilience.ErrOpen) {
		t.Fatalf("call through the open breaker: %v; want UNAVAILABLE matching ErrOpen", err)
	}
	if msg := status.Convert(err).Message(); msg != `resilience/grpcx: circuit breaker for target "passthrough:///a" is open` {
		t.Errorf("message %q", msg)
	}
	if got := h.checks.Load(); got != 2 {
		t.Fatalf("the open breaker let a call reach the server (%d calls)", got)
	}
	// Target b has its own, closed breaker.
	if _, err := b.Check(context.Background(), req); status.Code(err) != codes.Unavailable || errors.Is(err, resilience.ErrOpen) {
		t.Fatalf("call to b: %v; want the server's UNAVAILABLE", err)
	}
	if got := h.checks.Load(); got != 3 {
		t.Fatalf("server saw %d calls, want 3", got)
	}
	made.Range(func(k, v any) bool {
		if n := atomic.LoadInt32(v.(*int32)); n != 1 {
			t.Errorf("factory called %d times for %v, want 1", n, k)
		}
		return true
	})
}

func TestUnaryOpenBreakerStopsRetries(t *testing.T) {
	h := &healthServer{check: failing(100, codes.Unavailable, nil)}
	br := must(resilience.NewBreaker(resilience.BreakerConfig{ConsecutiveFailures: 2, OpenDuration: time.Hour}))
	cl := unaryClient(t, startServer(t, h), "a", ClientConfig{
		Retry:   quickRetry(t, 5, nil),
		Breaker: func(string) (*resilience.Breaker, error) { return br, nil },
	})
	_, err := cl.Check(context.Background(), req)
	if status.Code(err) != codes.Unavailable || !errors.Is(err, resilience.ErrOpen) {
		t.Fatalf("err = %v, want UNAVAILABLE matching ErrOpen", err)
	}
	if got := h.checks.Load(); got != 2 {
		t.Errorf("server saw %d calls, want 2 (the breaker opened, and its rejection is not retried)", got)
	}
}

func TestUnaryBreakerCountsOnlyTargetFailures(t *testing.T) {
	codesSeq := []codes.Code{codes.InvalidArgument, codes.NotFound, codes.Unavailable, codes.Internal, codes.OK}
	h := &healthServer{check: func(_ context.Context, n int) (*healthpb.HealthCheckResponse, error) {
		if c := codesSeq[n-1]; c != codes.OK {
			return nil, status.Error(c, "x")
		}
		return serving, nil
	}}
	br := must(resilience.NewBreaker(resilience.BreakerConfig{WindowSize: 100, MinCalls: 100}))
	cl := unaryClient(t, startServer(t, h), "a", ClientConfig{Breaker: func(string) (*resilience.Breaker, error) { return br, nil }})
	for range codesSeq {
		_, _ = cl.Check(context.Background(), req)
	}
	// A call its caller abandoned is not counted.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, _ = cl.Check(ctx, req)
	got := br.Counts(time.Now())
	if got.Calls != 5 || got.Failures != 2 {
		t.Errorf("breaker counts %+v, want 5 calls, 2 failures (UNAVAILABLE, INTERNAL)", got)
	}
}

// stubCC is a connection that is never dialled: the stub invokers below stand in for it.
func stubCC(t testing.TB) *grpc.ClientConn {
	t.Helper()
	cc, err := grpc.NewClient("passthrough:///stub", grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	return cc
}

func TestUnaryCallerCancelDuringBackoff(t *testing.T) {
	checkNoLeak(t)
	m := clock.NewManual(time.Time{})
	r := must(resilience.NewRetry(resilience.RetryConfig{MaxAttempts: 5, Clock: m, Backoff: resilience.Backoff{Base: time.Hour, Max: time.Hour}}))
	br := must(resilience.NewBreaker(resilience.BreakerConfig{WindowSize: 10, MinCalls: 10, Clock: m}))
	bh := must(resilience.NewBulkhead(resilience.BulkheadConfig{MaxConcurrent: 1}))
	ic := must(UnaryClientInterceptor(ClientConfig{
		Retry: r, Bulkhead: bh, Clock: m, Timeout: time.Minute,
		Breaker: func(string) (*resilience.Breaker, error) { return br, nil },
	}))
	var calls atomic.Int32
	invoker := func(ctx context.Context, _ string, _, _ any, _ *grpc.ClientConn, _ ...grpc.CallOption) error {
		calls.Add(1)
		return status.Error(codes.Unavailable, "down")
	}
	cc := stubCC(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ic(ctx, "/svc/M", req, new(healthpb.HealthCheckResponse), cc, invoker) }()
	waitTimers(t, m, 1) // in the backoff wait
	cancel()
	err := recv(t, done)
	if status.Code(err) != codes.Canceled || !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want CANCELED matching context.Canceled", err)
	}
	if calls.Load() != 1 {
		t.Errorf("%d attempts, want 1", calls.Load())
	}
	if bh.InFlight() != 0 {
		t.Errorf("bulkhead holds %d slots after the call", bh.InFlight())
	}
	if m.Timers() != 0 {
		t.Errorf("%d timers left on the clock", m.Timers())
	}
}

func TestUnaryCallerCancelDuringAttempt(t *testing.T) {
	checkNoLeak(t)
	h := &healthServer{}
	started := make(chan struct{})
	h.check = func(ctx context.Context, _ int) (*healthpb.HealthCheckResponse, error) {
		close(started)
		<-ctx.Done()
		return nil, status.FromContextError(ctx.Err()).Err()
	}
	br := must(resilience.NewBreaker(resilience.BreakerConfig{ConsecutiveFailures: 1}))
	bh := must(resilience.NewBulkhead(resilience.BulkheadConfig{MaxConcurrent: 1}))
	cl := unaryClient(t, startServer(t, h), "a", ClientConfig{
		Retry: quickRetry(t, 3, nil), Bulkhead: bh,
		Breaker: func(string) (*resilience.Breaker, error) { return br, nil },
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { _, err := cl.Check(ctx, req); done <- err }()
	<-started
	cancel()
	err := recv(t, done)
	if status.Code(err) != codes.Canceled || !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want CANCELED matching context.Canceled", err)
	}
	if st := br.State(time.Now()); st != resilience.BreakerClosed {
		t.Errorf("the caller's cancellation opened the breaker (%v)", st)
	}
	if bh.InFlight() != 0 {
		t.Errorf("bulkhead holds %d slots", bh.InFlight())
	}
	if h.checks.Load() != 1 {
		t.Errorf("a cancelled call was retried (%d calls)", h.checks.Load())
	}
}

func TestUnaryEndedContext(t *testing.T) {
	ic := must(UnaryClientInterceptor(ClientConfig{Retry: quickRetry(t, 3, nil)}))
	invoker := func(context.Context, string, any, any, *grpc.ClientConn, ...grpc.CallOption) error {
		t.Error("the RPC ran on an ended context")
		return nil
	}
	ctx, cancel := context.WithDeadline(context.Background(), time.Unix(1, 0))
	defer cancel()
	err := ic(ctx, "/svc/M", req, nil, nil, invoker)
	if status.Code(err) != codes.DeadlineExceeded || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want DEADLINE_EXCEEDED matching context.DeadlineExceeded", err)
	}
}

func TestUnaryAttemptTimeoutIsRetried(t *testing.T) {
	checkNoLeak(t)
	m := clock.NewManual(time.Time{})
	r := must(resilience.NewRetry(resilience.RetryConfig{MaxAttempts: 2, Clock: m, Backoff: resilience.Backoff{Base: time.Second, Max: time.Second}}))
	var calls atomic.Int32
	invoker := func(ctx context.Context, _ string, _, _ any, _ *grpc.ClientConn, _ ...grpc.CallOption) error {
		if calls.Add(1) == 1 {
			<-ctx.Done() // the first attempt hangs until its timeout
			return status.FromContextError(ctx.Err()).Err()
		}
		return nil
	}
	var errs []error
	ic := must(UnaryClientInterceptor(ClientConfig{
		Retry: r, Timeout: 5 * time.Second, Clock: m,
		Retryable: func(err error) bool { errs = append(errs, err); return DefaultRetryable(err) },
	}))
	done := make(chan error, 1)
	go func() { done <- ic(context.Background(), "/svc/M", req, nil, nil, invoker) }()
	waitTimers(t, m, 1)
	m.Advance(5 * time.Second) // the attempt's timeout fires
	waitTimers(t, m, 1)
	m.Advance(time.Second) // the backoff
	if err := recv(t, done); err != nil {
		t.Fatalf("err = %v, want the second attempt's success", err)
	}
	if len(errs) != 1 || status.Code(errs[0]) != codes.DeadlineExceeded || !errors.Is(errs[0], resilience.ErrTimeout) {
		t.Fatalf("classified %v, want one DEADLINE_EXCEEDED matching ErrTimeout", errs)
	}
}

func TestUnaryAttemptTimeoutWithoutRetry(t *testing.T) {
	m := clock.NewManual(time.Time{})
	invoker := func(ctx context.Context, _ string, _, _ any, _ *grpc.ClientConn, _ ...grpc.CallOption) error {
		<-ctx.Done()
		return status.FromContextError(ctx.Err()).Err()
	}
	ic := must(UnaryClientInterceptor(ClientConfig{Timeout: time.Second, Clock: m}))
	done := make(chan error, 1)
	go func() { done <- ic(context.Background(), "/svc/M", req, nil, nil, invoker) }()
	waitTimers(t, m, 1)
	m.Advance(time.Second)
	err := recv(t, done)
	if status.Code(err) != codes.DeadlineExceeded || !errors.Is(err, resilience.ErrTimeout) || errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want DEADLINE_EXCEEDED matching ErrTimeout (not the caller's deadline)", err)
	}
}

func TestUnaryBulkheadFull(t *testing.T) {
	release := make(chan struct{})
	entered := make(chan struct{}, 1)
	h := &healthServer{check: func(context.Context, int) (*healthpb.HealthCheckResponse, error) {
		entered <- struct{}{}
		<-release
		return serving, nil
	}}
	bh := must(resilience.NewBulkhead(resilience.BulkheadConfig{MaxConcurrent: 1}))
	br := must(resilience.NewBreaker(resilience.BreakerConfig{ConsecutiveFailures: 1}))
	cl := unaryClient(t, startServer(t, h), "a", ClientConfig{
		Bulkhead: bh, Retry: quickRetry(t, 3, nil),
		Breaker: func(string) (*resilience.Breaker, error) { return br, nil },
	})
	first := make(chan error, 1)
	go func() { _, err := cl.Check(context.Background(), req); first <- err }()
	<-entered
	_, err := cl.Check(context.Background(), req)
	if status.Code(err) != codes.ResourceExhausted || !errors.Is(err, resilience.ErrBulkheadFull) {
		t.Fatalf("err = %v, want RESOURCE_EXHAUSTED matching ErrBulkheadFull", err)
	}
	if st := br.State(time.Now()); st != resilience.BreakerClosed {
		t.Errorf("a local bulkhead rejection counted against the target (breaker %v)", st)
	}
	close(release)
	if err := recv(t, first); err != nil {
		t.Fatal(err)
	}
	if h.checks.Load() != 1 {
		t.Errorf("server saw %d calls, want 1 (a bulkhead rejection is not retried)", h.checks.Load())
	}
}

func TestUnaryRateLimited(t *testing.T) {
	m := clock.NewManual(time.Time{})
	rl := must(resilience.NewRateLimiter(resilience.RateLimitConfig{Rate: 1, Clock: m}))
	h := &healthServer{}
	cl := unaryClient(t, startServer(t, h), "a", ClientConfig{RateLimiter: rl, Retry: quickRetry(t, 3, nil)})
	if _, err := cl.Check(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	_, err := cl.Check(context.Background(), req)
	if status.Code(err) != codes.ResourceExhausted || !errors.Is(err, resilience.ErrRateLimited) {
		t.Fatalf("err = %v, want RESOURCE_EXHAUSTED matching ErrRateLimited", err)
	}
	var ra resilience.RetryAfterError
	if !errors.As(err, &ra) || ra.RetryAfter() != time.Second {
		t.Errorf("the rate limiter's wait is not visible: %v", err)
	}
	if h.checks.Load() != 1 {
		t.Errorf("server saw %d calls, want 1", h.checks.Load())
	}
}

func TestUnaryBudgetExhausted(t *testing.T) {
	budget := must(resilience.NewRetryBudget(resilience.RetryBudgetConfig{Ratio: 0.1, MinRetriesPerSecond: -1}))
	r := must(resilience.NewRetry(resilience.RetryConfig{MaxAttempts: 3, Backoff: resilience.Backoff{Base: 1, Max: 1}, Budget: budget}))
	h := &healthServer{check: failing(100, codes.Unavailable, nil)}
	cl := unaryClient(t, startServer(t, h), "a", ClientConfig{Retry: r})
	_, err := cl.Check(context.Background(), req)
	if status.Code(err) != codes.Unavailable || !errors.Is(err, resilience.ErrBudgetExhausted) {
		t.Fatalf("err = %v, want UNAVAILABLE matching ErrBudgetExhausted", err)
	}
}

func TestBreakerFactoryError(t *testing.T) {
	var calls atomic.Int32
	ic := must(UnaryClientInterceptor(ClientConfig{Breaker: func(string) (*resilience.Breaker, error) {
		calls.Add(1)
		return resilience.NewBreaker(resilience.BreakerConfig{FailureRate: 2})
	}}))
	invoker := func(context.Context, string, any, any, *grpc.ClientConn, ...grpc.CallOption) error {
		t.Error("the RPC ran without its breaker")
		return nil
	}
	cc := stubCC(t)
	for range 2 {
		if err := ic(context.Background(), "/svc/M", req, nil, cc, invoker); status.Code(err) != codes.Internal {
			t.Fatalf("err = %v, want INTERNAL", err)
		}
	}
	if calls.Load() != 1 {
		t.Errorf("factory called %d times, want 1", calls.Load())
	}
}

func TestConfigErrors(t *testing.T) {
	if _, err := UnaryClientInterceptor(ClientConfig{Timeout: -1}); err == nil {
		t.Error("negative Timeout accepted")
	}
	if _, err := StreamClientInterceptor(ClientConfig{Timeout: -1}); err == nil {
		t.Error("negative Timeout accepted")
	}
	if _, err := UnaryServerInterceptor(ServerConfig{RetryPushback: -1}); err == nil {
		t.Error("negative RetryPushback accepted")
	}
	if _, err := StreamServerInterceptor(ServerConfig{RetryPushback: -1}); err == nil {
		t.Error("negative RetryPushback accepted")
	}
}

func TestParsePushback(t *testing.T) {
	for _, tc := range []struct {
		vals []string
		d    time.Duration
		ok   bool
	}{
		{nil, 0, false},
		{[]string{"0"}, 0, true},
		{[]string{"1500"}, 1500 * time.Millisecond, true},
		{[]string{"-1"}, -1, true},
		{[]string{""}, -1, true},
		{[]string{"1.5"}, -1, true},
		{[]string{"1", "2"}, -1, true},
		{[]string{"99999999999999999999"}, time.Duration(1<<63 - 1), true},
		{[]string{"9223372036854775"}, time.Duration(1<<63 - 1), true},
	} {
		md := metadata.MD{}
		if tc.vals != nil {
			md[PushbackKey] = tc.vals
		}
		if d, ok := parsePushback(md); d != tc.d || ok != tc.ok {
			t.Errorf("parsePushback(%q) = %v, %v; want %v, %v", tc.vals, d, ok, tc.d, tc.ok)
		}
	}
	for d, want := range map[time.Duration]string{time.Second: "1000", 1: "1", 1500 * time.Microsecond: "2", 0: "1"} {
		if got := formatPushback(d); got != want {
			t.Errorf("formatPushback(%v) = %q, want %q", d, got, want)
		}
	}
}

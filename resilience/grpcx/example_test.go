package grpcx_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"

	"github.com/faultline-dev/faultline/resilience"
	"github.com/faultline-dev/faultline/resilience/grpcx"
)

// A client that retries UNAVAILABLE (and pushed-back RESOURCE_EXHAUSTED) with full-jitter
// backoff under a retry budget, breaks the circuit per target, bounds concurrency, and gives each
// attempt 2 s.
func ExampleUnaryClientInterceptor() {
	budget, err := resilience.NewRetryBudget(resilience.RetryBudgetConfig{})
	if err != nil {
		log.Fatal(err)
	}
	retry, err := resilience.NewRetry(resilience.RetryConfig{
		MaxAttempts: 4,
		Backoff:     resilience.Backoff{Base: 50 * time.Millisecond, Max: 2 * time.Second, Jitter: resilience.JitterFull},
		Budget:      budget,
	})
	if err != nil {
		log.Fatal(err)
	}
	bulkhead, err := resilience.NewBulkhead(resilience.BulkheadConfig{MaxConcurrent: 64})
	if err != nil {
		log.Fatal(err)
	}
	cfg := grpcx.ClientConfig{
		Retry: retry,
		Breaker: func(target string) (*resilience.Breaker, error) {
			return resilience.NewBreaker(resilience.BreakerConfig{Name: target, OpenDuration: 10 * time.Second})
		},
		Bulkhead: bulkhead,
		Timeout:  2 * time.Second,
	}
	unary, err := grpcx.UnaryClientInterceptor(cfg)
	if err != nil {
		log.Fatal(err)
	}
	stream, err := grpcx.StreamClientInterceptor(cfg)
	if err != nil {
		log.Fatal(err)
	}
	cc, err := grpc.NewClient("dns:///orders.internal:443",
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithChainUnaryInterceptor(unary),
		grpc.WithChainStreamInterceptor(stream),
		grpc.WithDisableRetry(), // one retry layer is enough: ours
	)
	if err != nil {
		log.Fatal(err)
	}
	defer cc.Close()
	_ = healthpb.NewHealthClient(cc) // make calls as usual
}

// A server that admits 500 calls a second, sheds beyond its adaptive concurrency limit, and runs
// at most 100 handlers at once; clients are told to come back after 2 s.
func ExampleUnaryServerInterceptor() {
	rl, err := resilience.NewRateLimiter(resilience.RateLimitConfig{Rate: 500, Burst: 50})
	if err != nil {
		log.Fatal(err)
	}
	lim, err := resilience.NewLimiter(resilience.LimiterConfig{Algorithm: resilience.LimitGradient})
	if err != nil {
		log.Fatal(err)
	}
	bh, err := resilience.NewBulkhead(resilience.BulkheadConfig{MaxConcurrent: 100})
	if err != nil {
		log.Fatal(err)
	}
	cfg := grpcx.ServerConfig{
		RateLimiter: rl, Limiter: lim, Bulkhead: bh,
		RetryPushback: 2 * time.Second,
		OnReject: func(ctx context.Context, method string, err error) {
			log.Printf("rejected %s: %v", method, err)
		},
	}
	unary, err := grpcx.UnaryServerInterceptor(cfg)
	if err != nil {
		log.Fatal(err)
	}
	stream, err := grpcx.StreamServerInterceptor(cfg)
	if err != nil {
		log.Fatal(err)
	}
	srv := grpc.NewServer(grpc.ChainUnaryInterceptor(unary), grpc.ChainStreamInterceptor(stream))
	defer srv.Stop()
}

type downServer struct {
	healthpb.UnimplementedHealthServer
}

func (downServer) Check(context.Context, *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	return nil, status.Error(codes.Unavailable, "warming up")
}

// Branching on a policy's decision: the status code for gRPC-minded callers, errors.Is for the
// policy itself.
func Example_branching() {
	lis := bufconn.Listen(1 << 16)
	srv := grpc.NewServer()
	healthpb.RegisterHealthServer(srv, downServer{})
	go func() { _ = srv.Serve(lis) }()
	defer srv.Stop()

	unary, err := grpcx.UnaryClientInterceptor(grpcx.ClientConfig{
		Breaker: func(string) (*resilience.Breaker, error) {
			return resilience.NewBreaker(resilience.BreakerConfig{ConsecutiveFailures: 2})
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	cc, err := grpc.NewClient("passthrough:///health",
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithUnaryInterceptor(unary))
	if err != nil {
		log.Fatal(err)
	}
	defer cc.Close()
	health := healthpb.NewHealthClient(cc)

	for range 3 {
		_, err := health.Check(context.Background(), &healthpb.HealthCheckRequest{})
		fmt.Printf("%v, breaker open: %v\n", status.Code(err), errors.Is(err, resilience.ErrOpen))
	}
	// Output:
	// Unavailable, breaker open: false
	// Unavailable, breaker open: false
	// Unavailable, breaker open: true
}

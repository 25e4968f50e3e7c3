package grpcx

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/faultline-dev/faultline/resilience"
)

// BenchmarkUnaryClientInterceptor measures the interceptor's own cost on the success path: the
// invoker is a stub that returns at once.
func BenchmarkUnaryClientInterceptor(b *testing.B) {
	cc := stubCC(b)
	invoker := func(context.Context, string, any, any, *grpc.ClientConn, ...grpc.CallOption) error { return nil }
	breaker := func(string) (*resilience.Breaker, error) { return resilience.NewBreaker(resilience.BreakerConfig{}) }
	cases := []struct {
		name string
		cfg  *ClientConfig // nil: the invoker alone
	}{
		{"invoker-only", nil},
		{"no-policies", &ClientConfig{}},
		{"breaker", &ClientConfig{Breaker: breaker}},
		{"breaker+bulkhead", &ClientConfig{Breaker: breaker,
			Bulkhead: must(resilience.NewBulkhead(resilience.BulkheadConfig{MaxConcurrent: 1 << 20}))}},
		{"retry", &ClientConfig{Retry: must(resilience.NewRetry(resilience.RetryConfig{}))}},
		{"all", &ClientConfig{
			Retry:       must(resilience.NewRetry(resilience.RetryConfig{})),
			Breaker:     breaker,
			Bulkhead:    must(resilience.NewBulkhead(resilience.BulkheadConfig{MaxConcurrent: 1 << 20})),
			RateLimiter: must(resilience.NewRateLimiter(resilience.RateLimitConfig{Rate: 1e9, Burst: 1 << 30})),
			Timeout:     time.Minute,
		}},
	}
	ctx := context.Background()
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			ic := func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
				return invoker(ctx, method, req, reply, cc, opts...)
			}
			if tc.cfg != nil {
				ic = must(UnaryClientInterceptor(*tc.cfg))
			}
			b.ReportAllocs()
			for b.Loop() {
				if err := ic(ctx, "/svc/M", nil, nil, cc, invoker); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

package resilience

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/faultline-dev/faultline/clock"
)

// Execute runs faultline's own policies without a closure per policy per call.
func TestExecuteBuiltinPoliciesDoNotAllocate(t *testing.T) {
	clk := clock.NewManual(time.Time{})
	b := mustBreaker(t, BreakerConfig{Clock: clk})
	r, _ := NewRetry(RetryConfig{Clock: clk})
	bh, _ := NewBulkhead(BulkheadConfig{MaxConcurrent: 4, Clock: clk})
	rl, _ := NewRateLimiter(RateLimitConfig{Rate: 1e9, Burst: 1 << 20, Clock: clk})
	policies := []Policy[int]{WithRetry[int](r), WithRateLimit[int](rl), WithBreaker[int](b), WithBulkhead[int](bh)}
	ctx := context.Background()
	fn := func(context.Context) (int, error) { return 1, nil }
	if n := testing.AllocsPerRun(1000, func() { _, _ = Execute(ctx, fn, policies...) }); n != 0 {
		t.Fatalf("Execute(retry, ratelimit, breaker, bulkhead) success path: %v allocs/op, want 0", n)
	}
}

// Compose and Execute keep the order, outermost first, for built-in and user policies mixed, and
// skip nil entries.
func TestComposeOrderWithUserPolicies(t *testing.T) {
	var trace []string
	mark := func(name string) Policy[int] {
		return PolicyFunc[int](func(next Func[int]) Func[int] {
			return func(ctx context.Context) (int, error) {
				trace = append(trace, name+">")
				v, err := next(ctx)
				trace = append(trace, "<"+name)
				return v, err
			}
		})
	}
	clk := clock.NewManual(time.Time{})
	b := mustBreaker(t, BreakerConfig{Clock: clk, Observer: ObserverFunc(func(_ context.Context, e Event) {
		trace = append(trace, "breaker:"+e.Type.String())
	})})
	fn := func(context.Context) (int, error) { trace = append(trace, "fn"); return 7, nil }
	policies := []Policy[int]{mark("a"), nil, WithBreaker[int](b), mark("c")}
	want := "a> c> fn <c breaker:success <a"
	for name, run := range map[string]func() (int, error){
		"Execute": func() (int, error) { return Execute(context.Background(), fn, policies...) },
		"Compose": func() (int, error) { return Compose(policies...).Apply(fn)(context.Background()) },
	} {
		trace = nil
		v, err := run()
		if v != 7 || err != nil {
			t.Fatalf("%s: %d, %v", name, v, err)
		}
		if got := strings.Join(trace, " "); got != want {
			t.Errorf("%s: %s, want %s", name, got, want)
		}
	}
	// Compose copies its slice: changing the caller's afterwards changes nothing.
	composed := Compose(policies...)
	policies[0] = mark("z")
	trace = nil
	composed.Apply(fn)(context.Background())
	if got := strings.Join(trace, " "); got != want {
		t.Errorf("after the caller's slice changed: %s, want %s", got, want)
	}
}

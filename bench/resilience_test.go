package bench

// Side-by-side benchmarks of faultline's resilience policies against sony/gobreaker/v2 and
// failsafe-go. Every benchmark has one sub-benchmark per library, named after it (faultline first,
// then the peers), with the same settings; see settings.go for what each library is given and
// where a peer cannot express a setting. run.sh runs them interleaved and prints the ratios.

import (
	"context"
	"errors"
	"testing"

	"github.com/failsafe-go/failsafe-go"
	fscb "github.com/failsafe-go/failsafe-go/circuitbreaker"
	"github.com/sony/gobreaker/v2"

	"github.com/faultline-dev/faultline/resilience"
)

var errBoom = errors.New("boom")

// The guarded operations: they succeed (or fail) at once, so what is measured is the policies.
var (
	okErr   = func(context.Context) error { return nil }
	failErr = func(context.Context) error { return errBoom }
	okRes   = func(context.Context) (struct{}, error) { return struct{}{}, nil }
	okGo    = func() (struct{}, error) { return struct{}{}, nil }
	failGo  = func() (struct{}, error) { return struct{}{}, errBoom }
	okFs    = func() error { return nil }
	failFs  = func() error { return errBoom }
)

// --- 1. Breaker, closed, one goroutine ---

func BenchmarkBreakerSuccess(b *testing.B) {
	ctx := context.Background()
	b.Run("faultline", func(b *testing.B) {
		cb := newFaultlineBreaker(b)
		b.ReportAllocs()
		for b.Loop() {
			if err := cb.Execute(ctx, okErr); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("gobreaker", func(b *testing.B) {
		cb := newGobreaker()
		b.ReportAllocs()
		for b.Loop() {
			if _, err := cb.Execute(okGo); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("failsafe", func(b *testing.B) {
		ex := failsafe.With[struct{}](newFailsafeBreaker())
		b.ReportAllocs()
		for b.Loop() {
			if err := ex.Run(okFs); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// --- 2. Breaker, closed, GOMAXPROCS goroutines on one breaker ---

func BenchmarkBreakerSuccessParallel(b *testing.B) {
	ctx := context.Background()
	b.Run("faultline", func(b *testing.B) {
		cb := newFaultlineBreaker(b)
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := cb.Execute(ctx, okErr); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
	b.Run("gobreaker", func(b *testing.B) {
		cb := newGobreaker()
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := cb.Execute(okGo); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
	b.Run("failsafe", func(b *testing.B) {
		ex := failsafe.With[struct{}](newFailsafeBreaker())
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := ex.Run(okFs); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}

// --- 3. Breaker, open: every call is rejected ---

// Each breaker is tripped the way a real one is, by failing calls until it opens (not forced), so
// every library runs its ordinary "open, open duration not over yet" path.
func BenchmarkBreakerOpen(b *testing.B) {
	ctx := context.Background()
	b.Run("faultline", func(b *testing.B) {
		cb := newFaultlineBreaker(b)
		for range 1000 {
			if errors.Is(cb.Execute(ctx, failErr), resilience.ErrOpen) {
				break
			}
		}
		b.ReportAllocs()
		for b.Loop() {
			if err := cb.Execute(ctx, okErr); !errors.Is(err, resilience.ErrOpen) {
				b.Fatalf("got %v, want ErrOpen", err)
			}
		}
	})
	b.Run("gobreaker", func(b *testing.B) {
		cb := newGobreaker()
		for range 1000 {
			if _, err := cb.Execute(failGo); errors.Is(err, gobreaker.ErrOpenState) {
				break
			}
		}
		b.ReportAllocs()
		for b.Loop() {
			if _, err := cb.Execute(okGo); !errors.Is(err, gobreaker.ErrOpenState) {
				b.Fatalf("got %v, want ErrOpenState", err)
			}
		}
	})
	b.Run("failsafe", func(b *testing.B) {
		ex := failsafe.With[struct{}](newFailsafeBreaker())
		for range 1000 {
			if errors.Is(ex.Run(failFs), fscb.ErrOpen) {
				break
			}
		}
		b.ReportAllocs()
		for b.Loop() {
			if err := ex.Run(okFs); !errors.Is(err, fscb.ErrOpen) {
				b.Fatalf("got %v, want ErrOpen", err)
			}
		}
	})
}

// --- 4. Pipeline: retry(breaker(bulkhead(timeout(fn)))) around a successful fn ---

// The order is the same in every library, outermost first: retry, breaker, bulkhead, timeout. So
// each attempt asks the breaker, holds a bulkhead slot and has its own deadline; that is
// faultline's documented order (retry outside the breaker and the bulkhead) and failsafe-go's
// With(retry, breaker, bulkhead, timeout). Both compose the policies on every call (faultline's
// Execute, failsafe-go's executor), as a caller with a per-request fn does.
func BenchmarkPipeline(b *testing.B) {
	ctx := context.Background()
	b.Run("faultline", func(b *testing.B) {
		p := newFaultlinePipeline(b)
		b.ReportAllocs()
		for b.Loop() {
			if _, err := resilience.Execute(ctx, okRes, p...); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("gobreaker", func(b *testing.B) {
		// gobreaker has only a breaker: the rest is composed by hand, as its users do.
		gp := newGobreakerPipeline()
		b.ReportAllocs()
		for b.Loop() {
			if err := gp.run(ctx, okErr); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("failsafe", func(b *testing.B) {
		ex := newFailsafePipeline()
		b.ReportAllocs()
		for b.Loop() {
			if err := ex.Run(okFs); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkPipelinePrecomposed is faultline's pipeline composed once (Compose(...).Apply(fn)) and
// called many times, for a caller whose fn does not change per call. Faultline only: failsafe-go
// has no way to bind its policies to a fn ahead of the call.
func BenchmarkPipelinePrecomposed(b *testing.B) {
	ctx := context.Background()
	b.Run("faultline", func(b *testing.B) {
		run := resilience.Compose(newFaultlinePipeline(b)...).Apply(okRes)
		b.ReportAllocs()
		for b.Loop() {
			if _, err := run(ctx); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// --- 5. Context rows: single policies on their success path ---

func BenchmarkBulkheadSuccess(b *testing.B) {
	ctx := context.Background()
	b.Run("faultline", func(b *testing.B) {
		bh := must(resilience.NewBulkhead(bulkheadConfig()))
		b.ReportAllocs()
		for b.Loop() {
			if err := bh.Execute(ctx, okErr); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("failsafe", func(b *testing.B) {
		ex := failsafe.With[struct{}](newFailsafeBulkhead())
		b.ReportAllocs()
		for b.Loop() {
			if err := ex.Run(okFs); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkRateLimiterSuccess(b *testing.B) {
	ctx := context.Background()
	b.Run("faultline", func(b *testing.B) {
		rl := must(resilience.NewRateLimiter(rateLimitConfig()))
		b.ReportAllocs()
		for b.Loop() {
			if err := rl.Execute(ctx, okErr); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("failsafe", func(b *testing.B) {
		ex := failsafe.With[struct{}](newFailsafeRateLimiter())
		b.ReportAllocs()
		for b.Loop() {
			if err := ex.Run(okFs); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// Retry and Timeout alone, to attribute the pipeline's cost.

func BenchmarkRetrySuccess(b *testing.B) {
	ctx := context.Background()
	b.Run("faultline", func(b *testing.B) {
		r := must(resilience.NewRetry(retryConfig()))
		b.ReportAllocs()
		for b.Loop() {
			if err := r.Execute(ctx, okErr); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("failsafe", func(b *testing.B) {
		ex := failsafe.With[struct{}](newFailsafeRetry())
		b.ReportAllocs()
		for b.Loop() {
			if err := ex.Run(okFs); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkTimeoutSuccess(b *testing.B) {
	ctx := context.Background()
	b.Run("faultline", func(b *testing.B) {
		t := must(resilience.NewTimeout(timeoutConfig()))
		b.ReportAllocs()
		for b.Loop() {
			if err := t.Execute(ctx, okErr); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("failsafe", func(b *testing.B) {
		ex := failsafe.With[struct{}](newFailsafeTimeout())
		b.ReportAllocs()
		for b.Loop() {
			if err := ex.Run(okFs); err != nil {
				b.Fatal(err)
			}
		}
	})
}

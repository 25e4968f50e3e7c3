package resilience

import (
	"context"
	"errors"
	"math"
	"math/rand"
	"strings"
	"testing"
	"time"

	"github.com/faultline-dev/faultline/clock"
)

func mustThrottle(t testing.TB, cfg ThrottleConfig) *Throttle {
	t.Helper()
	th, err := NewThrottle(cfg)
	if err != nil {
		t.Fatalf("NewThrottle: %v", err)
	}
	return th
}

func TestNewThrottleErrors(t *testing.T) {
	tests := []struct {
		name  string
		cfg   ThrottleConfig
		field string
	}{
		{"K below one", ThrottleConfig{K: 0.5}, "K"},
		{"K not finite", ThrottleConfig{K: math.Inf(1)}, "K"},
		{"negative window", ThrottleConfig{Window: -time.Second}, "Window"},
		{"negative buckets", ThrottleConfig{Buckets: -1}, "Buckets"},
		{"window shorter than buckets", ThrottleConfig{Window: 3, Buckets: 4}, "Window"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewThrottle(tt.cfg)
			if err == nil || !strings.Contains(err.Error(), "ThrottleConfig."+tt.field+" ") {
				t.Fatalf("NewThrottle(%+v) = %v, want an error naming %s", tt.cfg, err, tt.field)
			}
		})
	}
}

// Google SRE book, ch. 21 "Handling Overload", client-side throttling:
// p = max(0, (requests − K·accepts) / (requests + 1)).
func TestThrottleSREBookFormula(t *testing.T) {
	tests := []struct {
		requests, accepts int
		k                 float64
		want              float64
	}{
		{0, 0, 2, 0},
		{100, 100, 2, 0},
		{100, 50, 2, 0},
		{100, 40, 2, 20.0 / 101},
		{100, 0, 2, 100.0 / 101},
		{1, 0, 2, 0.5},
		{100, 50, 1.5, 25.0 / 101},
		{10, 9, 1, 1.0 / 11},
	}
	for _, tt := range tests {
		th := mustThrottle(t, ThrottleConfig{K: tt.k, Seed: 1})
		for i := range tt.requests {
			th.Done(breakerT0, i < tt.accepts)
		}
		got := th.Probability(breakerT0)
		if math.Abs(got-tt.want) > 1e-12 {
			t.Errorf("requests %d accepts %d K %v: p = %v, want %v", tt.requests, tt.accepts, tt.k, got, tt.want)
		}
		// Allow rejects exactly when the caller's random number is below p.
		if tt.want > 0 {
			if err := th.Allow(breakerT0, math.Nextafter(tt.want, 0)); !errors.Is(err, ErrOpen) {
				t.Errorf("requests %d accepts %d: Allow(rnd just below p) = %v, want ErrOpen", tt.requests, tt.accepts, err)
			}
		}
		p := th.Probability(breakerT0)
		if err := th.Allow(breakerT0, p); err != nil {
			t.Errorf("requests %d accepts %d: Allow(rnd = p) = %v, want admitted", tt.requests, tt.accepts, err)
		}
	}
}

// Over many draws with a backend that accepts only some requests, the number of rejections
// matches the sum of the formula's probabilities (a sum of Bernoulli trials) within 5σ.
func TestThrottleRejectionRateMatchesFormula(t *testing.T) {
	rng := rand.New(rand.NewSource(testSeed(t)))
	for _, acceptP := range []float64{0.1, 0.3, 0.45, 0.8, 1} {
		th := mustThrottle(t, ThrottleConfig{Seed: rng.Uint64() | 1, Window: time.Hour, Clock: clock.NewManual(breakerT0)})
		now := breakerT0
		requests, accepts := 0, 0
		var sumP, sumVar float64
		rejections := 0
		draws := testRounds(20000, 200000)
		for range draws {
			p := throttleRefProbability(requests, accepts, 2)
			if got := th.Probability(now); math.Abs(got-p) > 1e-12 {
				t.Fatalf("accept %v: Probability %v, model %v (requests %d accepts %d)", acceptP, got, p, requests, accepts)
			}
			sumP += p
			sumVar += p * (1 - p)
			err := th.allowNow(context.Background(), th.clock.Now())
			requests++
			if err != nil {
				rejections++
				continue
			}
			ok := rng.Float64() < acceptP
			if ok {
				accepts++
			}
			th.Done(now, ok)
		}
		sigma := math.Sqrt(sumVar)
		t.Logf("accept %.2f: %d rejections, expected %.1f ± %.1f (σ)", acceptP, rejections, sumP, sigma)
		if math.Abs(float64(rejections)-sumP) > 5*sigma+1 {
			t.Errorf("accept %.2f: %d rejections, expected %.1f ± 5×%.1f", acceptP, rejections, sumP, sigma)
		}
		if acceptP == 1 && rejections > 0 {
			t.Errorf("healthy backend: %d rejections", rejections)
		}
	}
}

func throttleRefProbability(requests, accepts int, k float64) float64 {
	return math.Max(0, (float64(requests)-k*float64(accepts))/(float64(requests)+1))
}

func TestThrottleHealthyNeverRejects(t *testing.T) {
	clk := clock.NewManual(time.Time{})
	th := mustThrottle(t, ThrottleConfig{Clock: clk, Seed: 7})
	for i := range 10000 {
		if err := th.Execute(context.Background(), func(context.Context) error { return nil }); err != nil {
			t.Fatalf("call %d rejected: %v", i, err)
		}
		clk.Advance(10 * time.Millisecond)
	}
}

func TestThrottleWindowExpires(t *testing.T) {
	clk := clock.NewManual(time.Time{})
	boom := errors.New("boom")
	th := mustThrottle(t, ThrottleConfig{Clock: clk, Window: 10 * time.Second, Buckets: 10, Seed: 3})
	for range 50 {
		_ = th.Execute(context.Background(), func(context.Context) error { return boom })
	}
	if p := th.Probability(clk.Now()); p < 0.9 {
		t.Fatalf("after failures p = %v, want ≥ 0.9", p)
	}
	clk.Advance(9 * time.Second)
	if p := th.Probability(clk.Now()); p < 0.9 {
		t.Fatalf("9 s later p = %v, want the failures still counted", p)
	}
	clk.Advance(time.Second)
	if p := th.Probability(clk.Now()); p != 0 {
		t.Fatalf("a window later p = %v, want 0", p)
	}
}

func TestThrottleExecute(t *testing.T) {
	clk := clock.NewManual(time.Time{})
	notFound := errors.New("not found")
	boom := errors.New("boom")
	var rejectedP []float64
	th := mustThrottle(t, ThrottleConfig{Clock: clk, Seed: 11,
		IsFailure: func(err error) bool { return !errors.Is(err, notFound) },
		OnReject:  func(p float64) { rejectedP = append(rejectedP, p) }})
	ctx := context.Background()
	_ = th.Execute(ctx, func(context.Context) error { return notFound })
	_ = th.Execute(ctx, func(context.Context) error { return boom })
	if r, a := th.Counts(clk.Now()); r != 2 || a != 1 {
		t.Fatalf("Counts = %d requests %d accepts, want 2 and 1 (not found is accepted)", r, a)
	}
	// the caller's cancellation is not counted, and comes back unchanged
	cctx, cancel := context.WithCancel(ctx)
	err := th.Execute(cctx, func(ctx context.Context) error { cancel(); return ctx.Err() })
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Execute = %v, want context.Canceled", err)
	}
	if r, _ := th.Counts(clk.Now()); r != 2 {
		t.Fatalf("the caller's cancellation was counted: %d requests", r)
	}
	if err := th.Execute(cctx, func(context.Context) error { t.Fatal("fn called on an ended ctx"); return nil }); !errors.Is(err, context.Canceled) {
		t.Fatalf("Execute on an ended ctx = %v", err)
	}
	// a dead backend: the throttle rejects most calls locally, with ErrOpen, through WithThrottle
	calls, rejected := 0, 0
	for range 1000 {
		_, err := Execute(ctx, func(context.Context) (int, error) { calls++; return 0, boom }, WithThrottle[int](th))
		if errors.Is(err, ErrOpen) {
			rejected++
		}
	}
	if rejected < 900 || calls+rejected != 1000 || len(rejectedP) != rejected {
		t.Fatalf("dead backend: %d rejected, %d calls, %d OnReject, want ≥ 900 rejected", rejected, calls, len(rejectedP))
	}
}

// The same seed and the same calls give the same decisions.
func TestThrottleSeedReplays(t *testing.T) {
	run := func(seed uint64) string {
		clk := clock.NewManual(time.Time{})
		th := mustThrottle(t, ThrottleConfig{Clock: clk, Seed: seed})
		var sb strings.Builder
		for i := range 300 {
			err := th.Execute(context.Background(), func(context.Context) error {
				if i%3 == 0 {
					return nil
				}
				return errors.New("boom")
			})
			if errors.Is(err, ErrOpen) {
				sb.WriteByte('x')
			} else {
				sb.WriteByte('.')
			}
		}
		return sb.String()
	}
	a, b := run(42), run(42)
	if a != b {
		t.Fatalf("same seed, different decisions:\n%s\n%s", a, b)
	}
	if !strings.Contains(a, "x") {
		t.Fatalf("no rejection at all with a mostly failing backend: %s", a)
	}
	if th := mustThrottle(t, ThrottleConfig{}); th.Seed() == 0 {
		t.Fatal("zero Seed was not replaced by a random one")
	}
}

func TestThrottleSuccessPathAllocs(t *testing.T) {
	th := mustThrottle(t, ThrottleConfig{Seed: 1})
	ctx := context.Background()
	fn := func(context.Context) error { return nil }
	if n := testing.AllocsPerRun(1000, func() { _ = th.Execute(ctx, fn) }); n != 0 {
		t.Fatalf("Execute success path: %v allocs/op, want 0", n)
	}
}

func BenchmarkThrottleSuccess(b *testing.B) {
	th := mustThrottle(b, ThrottleConfig{Seed: 1})
	ctx := context.Background()
	fn := func(context.Context) error { return nil }
	b.ReportAllocs()
	for b.Loop() {
		_ = th.Execute(ctx, fn)
	}
}

package resilience

import (
	"context"
	"errors"
	"math/rand"
	"strings"
	"testing"
	"time"

	"github.com/faultline-dev/faultline/clock"
)

func TestNewRateLimiterErrors(t *testing.T) {
	tests := []struct {
		name string
		cfg  RateLimitConfig
		want string // substring of the error; "" means valid
	}{
		{"minimal", RateLimitConfig{Rate: 10}, ""},
		{"fractional rate", RateLimitConfig{Rate: 0.5, Burst: 3, MaxWait: time.Second}, ""},
		{"zero rate", RateLimitConfig{}, "Rate = 0"},
		{"negative rate", RateLimitConfig{Rate: -1}, "Rate = -1"},
		{"too fast", RateLimitConfig{Rate: 2e9}, "Rate = 2e+09"},
		{"negative burst", RateLimitConfig{Rate: 1, Burst: -1}, "Burst = -1"},
		{"negative wait", RateLimitConfig{Rate: 1, MaxWait: -time.Second}, "MaxWait = -1s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, err := NewRateLimiter(tt.cfg)
			if tt.want == "" {
				if err != nil || l == nil {
					t.Fatalf("NewRateLimiter = %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("NewRateLimiter error = %v, want it to name %q", err, tt.want)
			}
		})
	}
}

// TestTokenBucketScript runs scripted reservations through the core.
func TestTokenBucketScript(t *testing.T) {
	type step struct {
		at     time.Duration // time of the call since start
		cancel time.Duration // >0: cancel the reservation acting at this offset instead of reserving
		wait   time.Duration
		ok     bool
	}
	ms := time.Millisecond
	tests := []struct {
		name  string
		cfg   RateLimitConfig
		steps []step
	}{
		{"smooth, no wait", RateLimitConfig{Rate: 10}, []step{
			{0, 0, 0, true},
			{0, 0, 100 * ms, false},
			{99 * ms, 0, ms, false},
			{100 * ms, 0, 0, true},
			{time.Second, 0, 0, true}, // a quiet spell saves nothing beyond Burst
			{time.Second, 0, 100 * ms, false},
		}},
		{"bursty", RateLimitConfig{Rate: 10, Burst: 3}, []step{
			{0, 0, 0, true},
			{0, 0, 0, true},
			{0, 0, 0, true},
			{0, 0, 100 * ms, false},
			{250 * ms, 0, 0, true},
			{250 * ms, 0, 0, true},
			{250 * ms, 0, 50 * ms, false},
		}},
		{"waits up to MaxWait", RateLimitConfig{Rate: 10, MaxWait: 250 * ms}, []step{
			{0, 0, 0, true},
			{0, 0, 100 * ms, true},
			{0, 0, 200 * ms, true},
			{0, 0, 300 * ms, false},
			{50 * ms, 0, 250 * ms, true},
		}},
		{"cancel of the latest returns its token", RateLimitConfig{Rate: 10, MaxWait: time.Second}, []step{
			{0, 0, 0, true},
			{0, 0, 100 * ms, true},
			{0, 0, 200 * ms, true},
			{10 * ms, 200 * ms, 0, false}, // cancel the one acting at 200ms
			{10 * ms, 0, 190 * ms, true},  // the next caller takes its turn
		}},
		{"cancel under a later reservation keeps the token", RateLimitConfig{Rate: 10, MaxWait: time.Second}, []step{
			{0, 0, 0, true},
			{0, 0, 100 * ms, true},
			{0, 0, 200 * ms, true},
			{10 * ms, 100 * ms, 0, false}, // not the latest: no refund
			{10 * ms, 0, 290 * ms, true},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := NewTokenBucket(tt.cfg)
			if err != nil {
				t.Fatal(err)
			}
			start := clock.NewManual(time.Time{}).Now()
			for i, s := range tt.steps {
				now := start.Add(s.at)
				if s.cancel > 0 {
					b.Cancel(now, start.Add(s.cancel))
					continue
				}
				wait, ok := b.Reserve(now)
				if wait != s.wait || ok != s.ok {
					t.Fatalf("step %d at %v: Reserve = %v %v, want %v %v", i, s.at, wait, ok, s.wait, s.ok)
				}
			}
		})
	}
}

// TestRateLimiterAccuracyOverAMinute: polling as fast as the clock moves, exactly Rate·60 + Burst
// calls are admitted in a simulated minute.
func TestRateLimiterAccuracyOverAMinute(t *testing.T) {
	tests := []struct {
		rate  float64
		burst int
		step  time.Duration
	}{
		{1, 0, time.Millisecond},
		{10, 1, time.Millisecond},
		{100, 5, time.Millisecond},
		{1000, 50, 100 * time.Microsecond},
		{0.5, 2, 10 * time.Millisecond},
		{40, 10, 7 * time.Millisecond}, // steps that do not line up with the interval
	}
	for _, tt := range tests {
		t.Run("", func(t *testing.T) {
			m := clock.NewManual(time.Time{})
			l, err := NewRateLimiter(RateLimitConfig{Rate: tt.rate, Burst: tt.burst, Clock: m})
			if err != nil {
				t.Fatal(err)
			}
			end := m.Now().Add(time.Minute)
			admitted := 0
			for {
				for l.Allow() {
					admitted++
				}
				if !m.Now().Before(end) {
					break
				}
				next := m.Now().Add(tt.step)
				if next.After(end) {
					next = end
				}
				m.Set(next)
			}
			want := int(tt.rate*60) + max(tt.burst, 1)
			if admitted != want {
				t.Errorf("rate %v burst %d: admitted %d in a minute, want %d", tt.rate, tt.burst, admitted, want)
			}
		})
	}
}

// TestTokenBucketModel compares the core with a classic token bucket kept in nanoseconds of
// credit (credit = time saved up, capped at Burst·interval; a call costs one interval; waiting
// calls borrow against future credit) on random call times.
func TestTokenBucketModel(t *testing.T) {
	rng := rand.New(rand.NewSource(testSeed(t)))
	for round := range testRounds(300, 10000) {
		cfg := RateLimitConfig{Rate: float64(1 + rng.Intn(1000)), Burst: rng.Intn(6),
			MaxWait: time.Duration(rng.Intn(3)) * time.Duration(rng.Intn(50)) * time.Millisecond}
		b, err := NewTokenBucket(cfg)
		if err != nil {
			t.Fatal(err)
		}
		T := b.Interval()
		capacity := time.Duration(max(cfg.Burst, 1)) * T
		now := clock.NewManual(time.Time{}).Now()
		credit, last := capacity, now
		for step := range 200 {
			now = now.Add(time.Duration(rng.Int63n(int64(3 * T))))
			credit = min(capacity, credit+now.Sub(last))
			last = now
			var wantWait time.Duration
			if credit < T {
				wantWait = T - credit
			}
			wantOK := wantWait <= cfg.MaxWait
			if wantOK {
				credit -= T
			}
			wait, ok := b.Reserve(now)
			if ok != wantOK || wait != wantWait {
				t.Fatalf("round %d step %d (%+v): Reserve = %v %v, model %v %v", round, step, cfg, wait, ok, wantWait, wantOK)
			}
		}
	}
}

func TestRateLimiterRejectCarriesRetryAfter(t *testing.T) {
	m := clock.NewManual(time.Time{})
	var rejects []error
	l, _ := NewRateLimiter(RateLimitConfig{Rate: 10, Clock: m, OnReject: func(r error) { rejects = append(rejects, r) }})
	ctx := context.Background()
	calls := 0
	fn := func(context.Context) error { calls++; return nil }
	if err := l.Execute(ctx, fn); err != nil {
		t.Fatal(err)
	}
	m.Advance(30 * time.Millisecond)
	err := l.Execute(ctx, fn)
	var ra RetryAfterError
	if !errors.Is(err, ErrRateLimited) || !errors.As(err, &ra) || ra.RetryAfter() != 70*time.Millisecond {
		t.Fatalf("second call = %v, want ErrRateLimited with RetryAfter 70ms", err)
	}
	if calls != 1 || len(rejects) != 1 || !errors.Is(rejects[0], ErrRateLimited) {
		t.Errorf("calls %d, rejects %v", calls, rejects)
	}
	if l.Allow() {
		t.Error("Allow with no token")
	}
	m.Advance(70 * time.Millisecond)
	if !l.Allow() {
		t.Error("Allow after the interval")
	}
}

// TestRateLimiterWaitsOnTheClock: a call waits for its turn on the clock, in arrival order.
func TestRateLimiterWaitsOnTheClock(t *testing.T) {
	checkNoLeak(t)
	m := clock.NewManual(time.Time{})
	l, _ := NewRateLimiter(RateLimitConfig{Rate: 10, MaxWait: time.Second, Clock: m})
	ctx := context.Background()
	start := m.Now()
	ran := make(chan time.Duration, 3)
	fn := func(context.Context) error { ran <- m.Since(start); return nil }
	for i := range 3 {
		go func() {
			if err := l.Execute(ctx, fn); err != nil {
				t.Error(err)
			}
		}()
		if i == 0 {
			if got := <-ran; got != 0 {
				t.Fatalf("first call ran at %v", got)
			}
		} else {
			waitTimers(t, m, i)
		}
	}
	m.Advance(100 * time.Millisecond)
	if got := <-ran; got != 100*time.Millisecond {
		t.Fatalf("second call ran at %v", got)
	}
	m.Advance(100 * time.Millisecond)
	if got := <-ran; got != 200*time.Millisecond {
		t.Fatalf("third call ran at %v", got)
	}
}

// TestRateLimiterCancelWhileWaiting: a waiter whose context ends returns the caller's error at
// once, never runs fn, leaves no timer, and gives its token back.
func TestRateLimiterCancelWhileWaiting(t *testing.T) {
	checkNoLeak(t)
	m := clock.NewManual(time.Time{})
	l, _ := NewRateLimiter(RateLimitConfig{Rate: 10, MaxWait: time.Second, Clock: m})
	if !l.Allow() {
		t.Fatal("first Allow")
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- l.Execute(ctx, func(context.Context) error { t.Error("fn ran"); return nil }) }()
	waitTimers(t, m, 1)
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("waiter = %v", err)
	}
	if m.Timers() != 0 {
		t.Errorf("%d timers left", m.Timers())
	}
	m.Advance(100 * time.Millisecond)
	if !l.Allow() {
		t.Error("the cancelled waiter's token was not returned")
	}
	// An already-ended context never runs fn.
	if err := l.Execute(ctx, func(context.Context) error { t.Error("fn ran"); return nil }); !errors.Is(err, context.Canceled) {
		t.Errorf("ended ctx = %v", err)
	}
}

func TestWithRateLimitComposes(t *testing.T) {
	m := clock.NewManual(time.Time{})
	l, _ := NewRateLimiter(RateLimitConfig{Rate: 1, Clock: m})
	b, _ := NewBulkhead(BulkheadConfig{MaxConcurrent: 1})
	p := Compose(WithRateLimit[string](l), WithBulkhead[string](b))
	fn := func(context.Context) (string, error) { return "ok", nil }
	if got, err := Execute(context.Background(), fn, p); got != "ok" || err != nil {
		t.Fatalf("first = %q, %v", got, err)
	}
	if _, err := Execute(context.Background(), fn, p); !errors.Is(err, ErrRateLimited) {
		t.Fatalf("second = %v", err)
	}
}

func TestRateLimiterSuccessPathAllocs(t *testing.T) {
	m := clock.NewManual(time.Time{})
	l, _ := NewRateLimiter(RateLimitConfig{Rate: 1e9, Burst: 1 << 20, Clock: m})
	ctx := context.Background()
	fn := func(context.Context) error { return nil }
	if n := testing.AllocsPerRun(1000, func() { _ = l.Execute(ctx, fn) }); n != 0 {
		t.Errorf("Execute: %v allocs/op, want 0", n)
	}
	g := WithRateLimit[int](l).Apply(func(context.Context) (int, error) { return 1, nil })
	if n := testing.AllocsPerRun(1000, func() { _, _ = g(ctx) }); n != 0 {
		t.Errorf("WithRateLimit: %v allocs/op, want 0", n)
	}
	if n := testing.AllocsPerRun(1000, func() { _ = l.Allow() }); n != 0 {
		t.Errorf("Allow: %v allocs/op, want 0", n)
	}
}

func BenchmarkRateLimiter(b *testing.B) {
	ctx := context.Background()
	fn := func(context.Context) error { return nil }
	newL := func() *RateLimiter {
		l, _ := NewRateLimiter(RateLimitConfig{Rate: 1e9, Burst: 1 << 30})
		return l
	}
	b.Run("serial", func(b *testing.B) {
		l := newL()
		b.ReportAllocs()
		for b.Loop() {
			_ = l.Execute(ctx, fn)
		}
	})
	b.Run("parallel", func(b *testing.B) {
		l := newL()
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				_ = l.Execute(ctx, fn)
			}
		})
	})
}

package resilience

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/faultline-dev/faultline/clock"
)

var limiterT0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func mustLimiterCore(t testing.TB, cfg LimiterConfig) *LimiterCore {
	t.Helper()
	c, err := NewLimiterCore(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func mustLimiter(t testing.TB, cfg LimiterConfig) *Limiter {
	t.Helper()
	l, err := NewLimiter(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestNewLimiterErrors(t *testing.T) {
	grad := LimitGradient
	tests := []struct {
		name string
		cfg  LimiterConfig
		want string // substring of the error; "" means valid
	}{
		{"zero value", LimiterConfig{}, ""},
		{"gradient defaults", LimiterConfig{Algorithm: grad}, ""},
		{"full aimd", LimiterConfig{InitialLimit: 5, MinLimit: 2, MaxLimit: 10, BackoffRatio: 0.5, SlowCall: time.Second}, ""},
		{"full gradient", LimiterConfig{Algorithm: grad, Tolerance: 1, Smoothing: 1, LongWindow: 1, BackoffRatio: 0.99}, ""},
		{"min above default initial", LimiterConfig{MinLimit: 50}, ""},
		{"max below default initial", LimiterConfig{MaxLimit: 5}, ""},
		{"unknown algorithm", LimiterConfig{Algorithm: 7}, "LimiterConfig.Algorithm LimitAlgorithm(7)"},
		{"negative initial", LimiterConfig{InitialLimit: -1}, "LimiterConfig.InitialLimit -1: must not be negative"},
		{"negative min", LimiterConfig{MinLimit: -1}, "LimiterConfig.MinLimit -1: must not be negative"},
		{"negative max", LimiterConfig{MaxLimit: -1}, "LimiterConfig.MaxLimit -1"},
		{"min above max", LimiterConfig{MinLimit: 10, MaxLimit: 5}, "LimiterConfig.MinLimit 10"},
		{"min above default max", LimiterConfig{MinLimit: 2000}, "LimiterConfig.MinLimit 2000"},
		{"initial below min", LimiterConfig{InitialLimit: 2, MinLimit: 5}, "LimiterConfig.InitialLimit 2"},
		{"initial above max", LimiterConfig{InitialLimit: 20, MaxLimit: 10}, "LimiterConfig.InitialLimit 20"},
		{"backoff too low", LimiterConfig{BackoffRatio: 0.4}, "LimiterConfig.BackoffRatio 0.4"},
		{"backoff one", LimiterConfig{BackoffRatio: 1}, "LimiterConfig.BackoffRatio 1"},
		{"backoff negative", LimiterConfig{BackoffRatio: -0.9}, "LimiterConfig.BackoffRatio -0.9"},
		{"backoff NaN", LimiterConfig{BackoffRatio: math.NaN()}, "LimiterConfig.BackoffRatio NaN"},
		{"negative slow call", LimiterConfig{SlowCall: -time.Second}, "LimiterConfig.SlowCall -1s"},
		{"tolerance below one", LimiterConfig{Algorithm: grad, Tolerance: 0.9}, "LimiterConfig.Tolerance 0.9"},
		{"tolerance infinite", LimiterConfig{Algorithm: grad, Tolerance: math.Inf(1)}, "LimiterConfig.Tolerance +Inf"},
		{"smoothing above one", LimiterConfig{Algorithm: grad, Smoothing: 1.5}, "LimiterConfig.Smoothing 1.5"},
		{"smoothing negative", LimiterConfig{Algorithm: grad, Smoothing: -0.1}, "LimiterConfig.Smoothing -0.1"},
		{"negative long window", LimiterConfig{Algorithm: grad, LongWindow: -1}, "LimiterConfig.LongWindow -1"},
		{"slow call with gradient", LimiterConfig{Algorithm: grad, SlowCall: time.Second}, "LimiterConfig.SlowCall 1s: only applies to LimitAIMD"},
		{"tolerance with aimd", LimiterConfig{Tolerance: 2}, "LimiterConfig.Tolerance 2: only applies to LimitGradient"},
		{"smoothing with aimd", LimiterConfig{Smoothing: 0.5}, "LimiterConfig.Smoothing 0.5: only applies to LimitGradient"},
		{"long window with aimd", LimiterConfig{LongWindow: 10}, "LimiterConfig.LongWindow 10: only applies to LimitGradient"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, err := NewLimiter(tt.cfg)
			c, cerr := NewLimiterCore(tt.cfg)
			if tt.want == "" {
				if err != nil || l == nil || cerr != nil || c == nil {
					t.Fatalf("NewLimiter = %v, NewLimiterCore = %v", err, cerr)
				}
				if lim := l.Limit(); lim < c.minLimitInt() || lim > int(c.maxLimit) {
					t.Fatalf("initial limit %d outside [%v, %v]", lim, c.minLimit, c.maxLimit)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), "resilience: ") {
				t.Fatalf("NewLimiter error = %v, want it to contain %q", err, tt.want)
			}
			if cerr == nil || cerr.Error() != err.Error() {
				t.Fatalf("NewLimiterCore error = %v, want %v", cerr, err)
			}
		})
	}
}

func (c *LimiterCore) minLimitInt() int { return int(c.minLimit) }

func TestLimiterDefaults(t *testing.T) {
	c := mustLimiterCore(t, LimiterConfig{})
	if c.Limit() != 20 || c.minLimit != 1 || c.maxLimit != 1000 || c.backoff != 0.9 {
		t.Fatalf("AIMD defaults: limit %d [%v, %v] backoff %v", c.Limit(), c.minLimit, c.maxLimit, c.backoff)
	}
	g := mustLimiterCore(t, LimiterConfig{Algorithm: LimitGradient})
	if g.tolerance != 1.5 || g.smoothing != 0.2 || g.longAlpha != 2.0/601 {
		t.Fatalf("gradient defaults: tolerance %v smoothing %v alpha %v", g.tolerance, g.smoothing, g.longAlpha)
	}
	if c := mustLimiterCore(t, LimiterConfig{MinLimit: 50}); c.Limit() != 50 {
		t.Fatalf("default initial with MinLimit 50 = %d, want 50", c.Limit())
	}
	if c := mustLimiterCore(t, LimiterConfig{MaxLimit: 5}); c.Limit() != 5 {
		t.Fatalf("default initial with MaxLimit 5 = %d, want 5", c.Limit())
	}
	for _, s := range []fmt.Stringer{LimitAIMD, LimitGradient, LimitAlgorithm(9), LimitSuccess, LimitDropped, LimitIgnored, LimitOutcome(9)} {
		if s.String() == "" {
			t.Fatal("empty name")
		}
	}
	if LimitAIMD.String() != "aimd" || LimitGradient.String() != "gradient" || LimitDropped.String() != "dropped" {
		t.Fatal("names changed")
	}
}

// hold acquires n slots (all must be admitted).
func limiterHold(t *testing.T, c *LimiterCore, n int) {
	t.Helper()
	for i := 0; i < n; i++ {
		if !c.Acquire() {
			t.Fatalf("acquire %d of %d refused at limit %d, in flight %d", i+1, n, c.Limit(), c.InFlight())
		}
	}
}

func TestLimiterCoreAIMD(t *testing.T) {
	now := limiterT0
	t.Run("grows under used load up to MaxLimit", func(t *testing.T) {
		c := mustLimiterCore(t, LimiterConfig{InitialLimit: 20, MaxLimit: 30})
		limiterHold(t, c, 15) // the limiter is busy: 16 in flight at each release, ≥ 30/2
		for i := 0; i < 40; i++ {
			limiterHold(t, c, 1)
			before := c.Limit()
			l, changed := c.Release(now, time.Millisecond, LimitSuccess)
			want := min(before+1, 30)
			if l != want || c.Limit() != want || changed != (want != before) {
				t.Fatalf("step %d: Release = %d, %v; want %d (from %d)", i, l, changed, want, before)
			}
		}
		if c.Limit() != 30 {
			t.Fatalf("limit = %d, want MaxLimit 30", c.Limit())
		}
	})
	t.Run("does not grow when under-used", func(t *testing.T) {
		c := mustLimiterCore(t, LimiterConfig{InitialLimit: 10})
		limiterHold(t, c, 3) // 4 in flight at release: 4 < 10/2
		for i := 0; i < 50; i++ {
			limiterHold(t, c, 1)
			if l, changed := c.Release(now, time.Millisecond, LimitSuccess); l != 10 || changed {
				t.Fatalf("under-used Release = %d, %v; want 10, false", l, changed)
			}
		}
		limiterHold(t, c, 2) // 5 in flight: exactly half counts as used
		if l, changed := c.Release(now, time.Millisecond, LimitSuccess); l != 11 || !changed {
			t.Fatalf("half-used Release = %d, %v; want 11, true", l, changed)
		}
	})
	t.Run("drops shrink by the ratio, rounded down, to MinLimit", func(t *testing.T) {
		c := mustLimiterCore(t, LimiterConfig{InitialLimit: 100, MinLimit: 3, BackoffRatio: 0.8})
		want := []int{80, 64, 51, 40, 32, 25, 20, 16, 12, 9, 7, 5, 4, 3, 3, 3}
		for i, w := range want {
			limiterHold(t, c, 1)
			if l, _ := c.Release(now, time.Millisecond, LimitDropped); l != w {
				t.Fatalf("drop %d: limit %d, want %d", i+1, l, w)
			}
		}
	})
	t.Run("default ratio still shrinks small limits", func(t *testing.T) {
		c := mustLimiterCore(t, LimiterConfig{InitialLimit: 5})
		for _, w := range []int{4, 3, 2, 1, 1} {
			limiterHold(t, c, 1)
			if l, _ := c.Release(now, 0, LimitDropped); l != w {
				t.Fatalf("limit %d, want %d", l, w)
			}
		}
	})
	t.Run("slow calls count as drops", func(t *testing.T) {
		c := mustLimiterCore(t, LimiterConfig{InitialLimit: 10, SlowCall: 100 * time.Millisecond})
		limiterHold(t, c, 9)
		limiterHold(t, c, 1)
		if l, _ := c.Release(now, 99*time.Millisecond, LimitSuccess); l != 11 {
			t.Fatalf("fast success: limit %d, want 11", l)
		}
		limiterHold(t, c, 1)
		if l, changed := c.Release(now, 100*time.Millisecond, LimitSuccess); l != 9 || !changed {
			t.Fatalf("slow success: limit %d %v, want 9 (11×0.9 rounded down)", l, changed)
		}
	})
	t.Run("ignored calls only free their slot", func(t *testing.T) {
		c := mustLimiterCore(t, LimiterConfig{InitialLimit: 2, SlowCall: time.Millisecond})
		limiterHold(t, c, 2)
		if c.Acquire() {
			t.Fatal("admitted beyond the limit")
		}
		if l, changed := c.Release(now, time.Hour, LimitIgnored); l != 2 || changed || c.InFlight() != 1 {
			t.Fatalf("ignored: limit %d %v in flight %d", l, changed, c.InFlight())
		}
	})
	t.Run("release with nothing in flight is a no-op", func(t *testing.T) {
		c := mustLimiterCore(t, LimiterConfig{InitialLimit: 4})
		if l, changed := c.Release(now, 0, LimitDropped); l != 4 || changed || c.InFlight() != 0 {
			t.Fatalf("stray release: limit %d %v in flight %d", l, changed, c.InFlight())
		}
	})
	t.Run("sheds exactly at the limit, also after it shrinks below in-flight", func(t *testing.T) {
		c := mustLimiterCore(t, LimiterConfig{InitialLimit: 5, BackoffRatio: 0.5})
		limiterHold(t, c, 5)
		if c.Acquire() {
			t.Fatal("admitted a 6th call at limit 5")
		}
		c.Release(now, 0, LimitDropped) // limit 2, 4 in flight
		for i := 0; i < 3; i++ {
			if c.Acquire() {
				t.Fatalf("admitted with %d in flight at limit %d", c.InFlight(), c.Limit())
			}
			c.Release(now, 0, LimitIgnored)
		}
		if c.InFlight() != 1 || !c.Acquire() || c.Acquire() {
			t.Fatalf("after draining: in flight %d at limit %d", c.InFlight(), c.Limit())
		}
	})
}

// TestLimiterCoreAIMDModel runs random operations through the core and a plain reference model of
// AIMD (integers, Netflix's AIMDLimit rules) and compares every answer.
func TestLimiterCoreAIMDModel(t *testing.T) {
	rng := rand.New(rand.NewSource(testSeed(t)))
	for round := 0; round < testRounds(200, 5000); round++ {
		minL := 1 + rng.Intn(5)
		maxL := minL + rng.Intn(60)
		cfg := LimiterConfig{
			MinLimit:     minL,
			MaxLimit:     maxL,
			InitialLimit: minL + rng.Intn(maxL-minL+1),
			BackoffRatio: 0.5 + 0.49*rng.Float64(),
		}
		if rng.Intn(2) == 0 {
			cfg.SlowCall = time.Duration(1+rng.Intn(20)) * time.Millisecond
		}
		c := mustLimiterCore(t, cfg)
		limit, inFlight := cfg.InitialLimit, 0 // the model
		now := limiterT0
		for step := 0; step < 300; step++ {
			now = now.Add(time.Duration(rng.Intn(5)) * time.Millisecond)
			if rng.Intn(2) == 0 {
				want := inFlight < limit
				if want {
					inFlight++
				}
				if got := c.Acquire(); got != want {
					t.Fatalf("round %d step %d (%+v): Acquire = %v, model %v (limit %d, in flight %d)", round, step, cfg, got, want, limit, inFlight)
				}
				if c.InFlight() > c.Limit() && want {
					t.Fatalf("admitted to %d in flight at limit %d", c.InFlight(), c.Limit())
				}
				continue
			}
			o := LimitOutcome(rng.Intn(3))
			rtt := time.Duration(rng.Intn(25)) * time.Millisecond
			before := limit
			if inFlight > 0 {
				used := 2*inFlight >= limit
				inFlight--
				switch {
				case o == LimitIgnored:
				case o == LimitDropped || (cfg.SlowCall > 0 && rtt >= cfg.SlowCall):
					limit = max(cfg.MinLimit, int(math.Floor(float64(limit)*cfg.BackoffRatio)))
				case used:
					limit = min(limit+1, cfg.MaxLimit)
				}
			}
			got, changed := c.Release(now, rtt, o)
			if got != limit || changed != (limit != before) || c.InFlight() != inFlight {
				t.Fatalf("round %d step %d (%+v): Release(%v, %v) = %d, %v, in flight %d; model %d, %v, %d",
					round, step, cfg, rtt, o, got, changed, c.InFlight(), limit, limit != before, inFlight)
			}
			if got < cfg.MinLimit || got > cfg.MaxLimit {
				t.Fatalf("limit %d left [%d, %d]", got, cfg.MinLimit, cfg.MaxLimit)
			}
		}
	}
}

// gradientRound fills the limiter to its limit at now, then releases every call rtt later with
// outcome o; it returns the time the round ended.
func gradientRound(t *testing.T, c *LimiterCore, now time.Time, rtt time.Duration, o LimitOutcome) time.Time {
	t.Helper()
	n := 0
	for c.Acquire() {
		n++
	}
	if n == 0 {
		t.Fatalf("nothing admitted at limit %d, in flight %d", c.Limit(), c.InFlight())
	}
	end := now.Add(rtt)
	for i := 0; i < n; i++ {
		c.Release(end, rtt, o)
	}
	return end
}

func TestLimiterCoreGradient(t *testing.T) {
	c := mustLimiterCore(t, LimiterConfig{Algorithm: LimitGradient, InitialLimit: 10, MaxLimit: 200})
	now := limiterT0
	const rtt = 10 * time.Millisecond

	// Steady RTT under full load: the limit climbs (by about 0.2·√limit a round) to MaxLimit.
	prev, rounds := c.Limit(), 0
	for ; c.Limit() < 200 && rounds < 500; rounds++ {
		now = gradientRound(t, c, now, rtt, LimitSuccess)
		if c.Limit() < prev {
			t.Fatalf("round %d: limit fell from %d to %d with a steady RTT", rounds, prev, c.Limit())
		}
		prev = c.Limit()
	}
	if c.Limit() != 200 {
		t.Fatalf("limit %d after %d steady rounds, want MaxLimit 200", c.Limit(), rounds)
	}
	t.Logf("reached MaxLimit after %d rounds", rounds)
	for i := 0; i < 50; i++ {
		now = gradientRound(t, c, now, rtt, LimitSuccess)
	}

	// The RTT doubles under load: 2·short > 1.5·long, so the gradient is 0.75 and the limit falls.
	for i := 0; i < 30; i++ {
		now = gradientRound(t, c, now, 2*rtt, LimitSuccess)
	}
	low := c.Limit()
	if low > 120 {
		t.Fatalf("limit %d after 30 rounds at double RTT, want it well below 200", low)
	}
	t.Logf("limit %d after 30 rounds at double RTT", low)

	// The RTT recovers: the limit grows back.
	for i := 0; i < 200 && c.Limit() < 200; i++ {
		now = gradientRound(t, c, now, rtt, LimitSuccess)
	}
	if c.Limit() != 200 {
		t.Fatalf("limit %d after recovery, want 200", c.Limit())
	}
}

func TestLimiterCoreGradientDetails(t *testing.T) {
	now := limiterT0
	const rtt = 10 * time.Millisecond
	t.Run("under-used: the limit does not move", func(t *testing.T) {
		c := mustLimiterCore(t, LimiterConfig{Algorithm: LimitGradient, InitialLimit: 20})
		for i := 0; i < 100; i++ {
			limiterHold(t, c, 1) // one call at a time: 1 < 20/2
			now = now.Add(rtt)
			if l, changed := c.Release(now, rtt, LimitSuccess); l != 20 || changed {
				t.Fatalf("under-used: limit %d %v", l, changed)
			}
		}
	})
	t.Run("drops cut by BackoffRatio once per round trip", func(t *testing.T) {
		c := mustLimiterCore(t, LimiterConfig{Algorithm: LimitGradient, InitialLimit: 100, BackoffRatio: 0.5})
		limiterHold(t, c, 10)
		now = now.Add(rtt)
		if l, _ := c.Release(now, rtt, LimitDropped); l != 50 {
			t.Fatalf("first drop: limit %d, want 50", l)
		}
		for i := 0; i < 9; i++ { // started before the cut: the same overload
			if l, _ := c.Release(now, rtt, LimitDropped); l != 50 {
				t.Fatalf("drop of a call admitted under the old limit cut again: %d", l)
			}
		}
		limiterHold(t, c, 1)
		now = now.Add(rtt)
		if l, _ := c.Release(now, rtt, LimitDropped); l != 25 {
			t.Fatalf("drop of a call admitted after the cut: limit %d, want 25", l)
		}
	})
	t.Run("limit stays a float between updates", func(t *testing.T) {
		c := mustLimiterCore(t, LimiterConfig{Algorithm: LimitGradient, InitialLimit: 4, MaxLimit: 50})
		for i := 0; i < 20; i++ {
			now = gradientRound(t, c, now, rtt, LimitSuccess)
		}
		if c.limit == math.Trunc(c.limit) {
			t.Logf("limit happens to be integral: %v", c.limit)
		}
		if c.Limit() != int(c.limit) || c.Limit() <= 4 {
			t.Fatalf("Limit() %d, internal %v", c.Limit(), c.limit)
		}
	})
}

// limiterRecorder collects events.
type limiterRecorder struct {
	mu     sync.Mutex
	events []Event
}

func (r *limiterRecorder) Observe(_ context.Context, e Event) {
	r.mu.Lock()
	r.events = append(r.events, e)
	r.mu.Unlock()
}

func (r *limiterRecorder) take() []Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	ev := r.events
	r.events = nil
	return ev
}

func TestLimiterExecuteSheds(t *testing.T) {
	checkNoLeak(t)
	rec := &limiterRecorder{}
	l := mustLimiter(t, LimiterConfig{InitialLimit: 3, Clock: clock.NewManual(time.Time{}), Name: "api", Observer: rec})
	ctx := context.Background()
	release := make(chan struct{})
	started := make(chan struct{})
	var wg sync.WaitGroup
	for i := 0; i < 3; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := l.Execute(ctx, func(context.Context) error {
				started <- struct{}{}
				<-release
				return nil
			})
			if err != nil {
				t.Errorf("held call: %v", err)
			}
		}()
		<-started
	}
	if l.InFlight() != 3 {
		t.Fatalf("in flight %d, want 3", l.InFlight())
	}
	called := false
	err := l.Execute(ctx, func(context.Context) error { called = true; return nil })
	if !errors.Is(err, ErrLimitExceeded) || called {
		t.Fatalf("4th call: err %v, fn called %v; want ErrLimitExceeded without calling fn", err, called)
	}
	if !strings.Contains(err.Error(), "limit 3") || !strings.Contains(err.Error(), "in flight 3") {
		t.Fatalf("error %q should state the limit and the count in flight", err)
	}
	ev := rec.take()
	if len(ev) != 1 || ev[0].Type != EventRejected || ev[0].Kind != KindLimiter || ev[0].Name != "api" || !errors.Is(ev[0].Err, ErrLimitExceeded) {
		t.Fatalf("events %v, want one rejection", ev)
	}
	release <- struct{}{} // one finishes: a slot frees
	bulkheadWaitFor(t, "a slot to free", func() bool { return l.InFlight() == 2 })
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := l.Execute(ctx, func(context.Context) error { started <- struct{}{}; <-release; return nil }); err != nil {
			t.Errorf("call after release: %v", err)
		}
	}()
	<-started
	close(release)
	wg.Wait()
	if l.InFlight() != 0 {
		t.Fatalf("in flight %d at the end", l.InFlight())
	}
}

func TestLimiterExecuteOutcomes(t *testing.T) {
	m := clock.NewManual(time.Time{})
	rec := &limiterRecorder{}
	l := mustLimiter(t, LimiterConfig{InitialLimit: 2, MaxLimit: 100, Clock: m, Observer: rec})
	appErr := errors.New("not found")
	run := func(ctx context.Context, d time.Duration, err error) error {
		return l.Execute(ctx, func(context.Context) error {
			m.Advance(d)
			return err
		})
	}
	ctx := context.Background()

	// success while in use (1 in flight ≥ 2/2): limit 3, events success + limit-changed
	if err := run(ctx, 30*time.Millisecond, nil); err != nil {
		t.Fatal(err)
	}
	ev := rec.take()
	if len(ev) != 2 || ev[0].Type != EventSuccess || ev[0].Duration != 30*time.Millisecond ||
		ev[1].Type != EventLimitChanged || ev[1].Limit != 3 || l.Limit() != 3 {
		t.Fatalf("success: events %v, limit %d", ev, l.Limit())
	}

	// an application error is returned unchanged and counts as a success (not overload)
	l2 := mustLimiter(t, LimiterConfig{InitialLimit: 2, Clock: m, Observer: rec})
	if err := l2.Execute(ctx, func(context.Context) error { return appErr }); err != appErr {
		t.Fatalf("app error = %v", err)
	}
	if l2.Limit() != 3 {
		t.Fatalf("app error: limit %d, want 3", l2.Limit())
	}
	if ev := rec.take(); ev[0].Type != EventSuccess {
		t.Fatalf("app error events %v", ev)
	}

	// our own timeouts and deadlines that are not the caller's: drops
	for _, err := range []error{ErrTimeout, fmt.Errorf("upstream: %w", context.DeadlineExceeded)} {
		before := l.Limit()
		if got := run(ctx, time.Millisecond, err); got != err {
			t.Fatalf("drop error %v returned as %v", err, got)
		}
		if want := int(float64(before) * 0.9); l.Limit() != max(want, 1) {
			t.Fatalf("after %v: limit %d, want %d", err, l.Limit(), want)
		}
		ev := rec.take()
		if ev[0].Type != EventFailure || ev[0].Err != err || ev[0].Duration != time.Millisecond {
			t.Fatalf("drop events %v", ev)
		}
	}

	// the caller's own cancellation: not counted, slot released
	before := l.Limit()
	cctx, cancel := context.WithCancel(ctx)
	err := l.Execute(cctx, func(ctx context.Context) error { cancel(); return ctx.Err() })
	if !errors.Is(err, context.Canceled) || l.Limit() != before || l.InFlight() != 0 {
		t.Fatalf("caller cancel: err %v, limit %d (was %d), in flight %d", err, l.Limit(), before, l.InFlight())
	}
	if ev := rec.take(); len(ev) != 1 || ev[0].Type != EventIgnored {
		t.Fatalf("caller cancel events %v", ev)
	}
	// even when IsDrop would say drop
	ld := mustLimiter(t, LimiterConfig{InitialLimit: 4, Clock: m, IsDrop: func(error) bool { return true }})
	dctx, dcancel := context.WithTimeout(ctx, time.Hour)
	dcancel()
	_ = ld.Execute(context.Background(), func(context.Context) error { return dctx.Err() }) // not the caller's ctx: drop
	if ld.Limit() != 3 {
		t.Fatalf("custom IsDrop: limit %d, want 3", ld.Limit())
	}
	cctx2, cancel2 := context.WithCancel(ctx)
	_ = ld.Execute(cctx2, func(ctx context.Context) error { cancel2(); return ctx.Err() })
	if ld.Limit() != 3 || ld.InFlight() != 0 {
		t.Fatalf("caller cancel with IsDrop always true: limit %d, in flight %d", ld.Limit(), ld.InFlight())
	}

	// an ended context: ctx.Err(), fn not called, nothing emitted
	ended, cancel3 := context.WithCancel(ctx)
	cancel3()
	called := false
	if err := l.Execute(ended, func(context.Context) error { called = true; return nil }); !errors.Is(err, context.Canceled) || called {
		t.Fatalf("ended ctx: %v, called %v", err, called)
	}
	if ev := rec.take(); len(ev) != 0 {
		t.Fatalf("ended ctx events %v", ev)
	}
}

func TestLimiterPanicReleasesSlot(t *testing.T) {
	rec := &limiterRecorder{}
	l := mustLimiter(t, LimiterConfig{InitialLimit: 1, Clock: clock.NewManual(time.Time{}), Observer: rec})
	func() {
		defer func() {
			if r := recover(); r != "boom" {
				t.Fatalf("recovered %v, want the panic to go on", r)
			}
		}()
		_ = l.Execute(context.Background(), func(context.Context) error { panic("boom") })
	}()
	if l.InFlight() != 0 || l.Limit() != 1 {
		t.Fatalf("after panic: in flight %d, limit %d", l.InFlight(), l.Limit())
	}
	if ev := rec.take(); len(ev) != 1 || ev[0].Type != EventIgnored {
		t.Fatalf("panic events %v", ev)
	}
	if err := l.Execute(context.Background(), func(context.Context) error { return nil }); err != nil {
		t.Fatalf("slot lost after panic: %v", err)
	}
	// the same through the policy
	p := WithLimiter[int](l)
	func() {
		defer func() { _ = recover() }()
		_, _ = p.Apply(func(context.Context) (int, error) { panic("boom") })(context.Background())
	}()
	if l.InFlight() != 0 {
		t.Fatalf("policy panic: in flight %d", l.InFlight())
	}
}

func TestWithLimiter(t *testing.T) {
	l := mustLimiter(t, LimiterConfig{InitialLimit: 1, Clock: clock.NewManual(time.Time{})})
	p := WithLimiter[string](l)
	ctx := context.Background()
	v, err := Execute(ctx, func(ctx context.Context) (string, error) {
		// nested call while the only slot is held: shed with the zero value
		inner, err := p.Apply(func(context.Context) (string, error) { return "inner", nil })(ctx)
		if !errors.Is(err, ErrLimitExceeded) || inner != "" {
			t.Errorf("nested call: %q, %v", inner, err)
		}
		return "ok", nil
	}, p)
	if v != "ok" || err != nil || l.InFlight() != 0 {
		t.Fatalf("policy: %q, %v, in flight %d", v, err, l.InFlight())
	}
	ended, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := p.Apply(func(context.Context) (string, error) { t.Fatal("called"); return "", nil })(ended); !errors.Is(err, context.Canceled) {
		t.Fatalf("ended ctx: %v", err)
	}
}

// --- closed-loop simulation ---

type limSimEvent struct {
	at     time.Time
	seq    int
	done   bool // a call ends (else: a client sends)
	rtt    time.Duration
	out    LimitOutcome
	client int
}

type limSimQueue []limSimEvent

func (q limSimQueue) Len() int { return len(q) }
func (q limSimQueue) Less(i, j int) bool {
	if !q[i].at.Equal(q[j].at) {
		return q[i].at.Before(q[j].at)
	}
	return q[i].seq < q[j].seq
}
func (q limSimQueue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *limSimQueue) Push(x any)   { *q = append(*q, x.(limSimEvent)) }
func (q *limSimQueue) Pop() any {
	old := *q
	e := old[len(old)-1]
	*q = old[:len(old)-1]
	return e
}

type limSimResult struct {
	inFlight    float64 // time-weighted mean over the measured half
	meanLatency time.Duration
	p99Latency  time.Duration
	goodput     float64 // successful calls per second
	minLimit    int
	maxLimit    int
}

// runLimiterSim runs a closed loop on virtual time (a clock.Manual moved from event to event):
// clients send a request, wait for the answer (or the shed), think about 1 ms (5 ms ± 50% after a
// shed) and send again. The server runs C calls at full speed (base ± 10%); beyond C, each call
// is slowed by inFlight/C, as when C cores are shared. A deadline, when set, cuts a call at the
// deadline and reports it as a drop. With cfg nil there is no limiter. Deterministic for a seed.
func runLimiterSim(t *testing.T, cfg *LimiterConfig, seed int64, deadline time.Duration) limSimResult {
	t.Helper()
	const (
		capacity = 20
		clients  = 200
		base     = 10 * time.Millisecond
		length   = 20 * time.Second
	)
	rng := rand.New(rand.NewSource(seed))
	m := clock.NewManual(time.Time{})
	t0 := m.Now()
	measureFrom, end := t0.Add(length/2), t0.Add(length)
	var core *LimiterCore
	if cfg != nil {
		core = mustLimiterCore(t, *cfg)
	}
	q := &limSimQueue{}
	seq := 0
	push := func(e limSimEvent) { seq++; e.seq = seq; heap.Push(q, e) }
	for i := 0; i < clients; i++ {
		push(limSimEvent{at: t0.Add(time.Duration(rng.Int63n(int64(base)))), client: i})
	}
	res := limSimResult{minLimit: math.MaxInt}
	var latencies []time.Duration
	var area float64 // ∫ inFlight dt over the measured half
	inFlight, good := 0, 0
	last := t0
	for q.Len() > 0 {
		e := heap.Pop(q).(limSimEvent)
		if e.at.After(end) {
			break
		}
		if e.at.After(measureFrom) {
			from := last
			if from.Before(measureFrom) {
				from = measureFrom
			}
			area += float64(inFlight) * float64(e.at.Sub(from))
		}
		last = e.at
		m.Set(e.at)
		now := m.Now()
		measured := now.After(measureFrom)
		if e.done {
			inFlight--
			if core != nil {
				l, _ := core.Release(now, e.rtt, e.out)
				if measured {
					res.minLimit, res.maxLimit = min(res.minLimit, l), max(res.maxLimit, l)
				}
			}
			if measured {
				latencies = append(latencies, e.rtt)
				if e.out == LimitSuccess {
					good++
				}
			}
			push(limSimEvent{at: now.Add(time.Duration(rng.ExpFloat64() * float64(time.Millisecond))), client: e.client})
			continue
		}
		if core != nil && !core.Acquire() {
			push(limSimEvent{at: now.Add(time.Duration((0.5 + rng.Float64()) * float64(5*time.Millisecond))), client: e.client})
			continue
		}
		inFlight++
		if core != nil && core.InFlight() != inFlight {
			t.Fatalf("core in flight %d, simulation %d", core.InFlight(), inFlight)
		}
		slow := math.Max(1, float64(inFlight)/capacity) * (0.9 + 0.2*rng.Float64())
		rtt, out := time.Duration(slow*float64(base)), LimitSuccess
		if deadline > 0 && rtt > deadline {
			rtt, out = deadline, LimitDropped
		}
		push(limSimEvent{at: now.Add(rtt), done: true, rtt: rtt, out: out, client: e.client})
	}
	sort.Slice(latencies, func(i, j int) bool { return latencies[i] < latencies[j] })
	var sum time.Duration
	for _, d := range latencies {
		sum += d
	}
	res.inFlight = area / float64(end.Sub(measureFrom))
	res.meanLatency = sum / time.Duration(len(latencies))
	res.p99Latency = latencies[len(latencies)*99/100]
	res.goodput = float64(good) / end.Sub(measureFrom).Seconds()
	return res
}

func TestLimiterClosedLoopSimulation(t *testing.T) {
	const (
		capacity = 20
		base     = 10 * time.Millisecond
		seed     = 1 // fixed: the thresholds below are for this run
	)
	log := func(name string, r limSimResult) {
		t.Logf("%-22s in flight %6.1f  latency mean %6v p99 %6v  goodput %5.0f/s  limit [%d, %d]",
			name, r.inFlight, r.meanLatency.Round(100*time.Microsecond), r.p99Latency.Round(100*time.Microsecond), r.goodput, r.minLimit, r.maxLimit)
	}

	// Without a limiter all 200 clients are in flight and every call takes 10× as long.
	none := runLimiterSim(t, nil, seed, 0)
	log("no limiter", none)
	if none.inFlight < 180 || none.meanLatency < 8*base {
		t.Fatalf("without a limiter: in flight %.1f, mean latency %v; want the queue to build", none.inFlight, none.meanLatency)
	}

	// AIMD with a slow-call threshold of 1.5× the base latency keeps in flight near capacity.
	aimd := runLimiterSim(t, &LimiterConfig{SlowCall: 15 * time.Millisecond}, seed, 0)
	log("AIMD, SlowCall 15ms", aimd)
	if aimd.inFlight < 0.5*capacity || aimd.inFlight > 2*capacity {
		t.Errorf("AIMD: mean in flight %.1f, want near capacity %d", aimd.inFlight, capacity)
	}
	if aimd.p99Latency > 4*base || aimd.meanLatency > 2*base {
		t.Errorf("AIMD: latency mean %v p99 %v, want it bounded near %v", aimd.meanLatency, aimd.p99Latency, base)
	}
	if aimd.goodput < 0.5*capacity/base.Seconds() {
		t.Errorf("AIMD: goodput %.0f/s, want at least half the capacity %.0f/s", aimd.goodput, capacity/base.Seconds())
	}

	// With a 50 ms deadline and no limiter, every call queues past its deadline: goodput 0
	// (congestion collapse). The limiters shed instead and keep serving.
	const deadline = 50 * time.Millisecond
	noneDL := runLimiterSim(t, nil, seed, deadline)
	log("no limiter, deadline", noneDL)
	if noneDL.goodput > 0.05*capacity/base.Seconds() {
		t.Fatalf("without a limiter and with a deadline: goodput %.0f/s, want collapse", noneDL.goodput)
	}
	for _, tc := range []struct {
		name string
		cfg  LimiterConfig
	}{
		{"AIMD, deadline", LimiterConfig{}},
		{"Gradient, deadline", LimiterConfig{Algorithm: LimitGradient}},
	} {
		r := runLimiterSim(t, &tc.cfg, seed, deadline)
		log(tc.name, r)
		if r.goodput < 0.25*capacity/base.Seconds() {
			t.Errorf("%s: goodput %.0f/s, want at least a quarter of capacity", tc.name, r.goodput)
		}
		if r.inFlight > 0.75*float64(none.inFlight) {
			t.Errorf("%s: mean in flight %.1f, want well below the %0.f of no limiter", tc.name, r.inFlight, none.inFlight)
		}
	}
}

// --- concurrency ---

func TestLimiterConcurrent(t *testing.T) {
	checkNoLeak(t)
	const maxLimit = 16
	var admitted, rejected, ended atomic.Int64
	obs := ObserverFunc(func(_ context.Context, e Event) {
		switch e.Type {
		case EventRejected:
			rejected.Add(1)
		case EventSuccess, EventFailure, EventIgnored:
			ended.Add(1)
		}
	})
	l := mustLimiter(t, LimiterConfig{InitialLimit: 4, MaxLimit: maxLimit, Observer: obs})
	var active, peak atomic.Int64
	workers, calls := 32, testRounds(300, 3000)
	run := func(drops bool) {
		var wg sync.WaitGroup
		for w := 0; w < workers; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < calls; i++ {
					err := l.Execute(context.Background(), func(context.Context) error {
						admitted.Add(1)
						n := active.Add(1)
						defer active.Add(-1)
						for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
						}
						if in := l.InFlight(); in > maxLimit {
							t.Errorf("in flight %d > MaxLimit", in)
						}
						if !drops { // the limit only grows: in flight can never exceed it
							if in, lim := l.InFlight(), l.Limit(); in > lim {
								t.Errorf("in flight %d > limit %d", in, lim)
							}
						}
						runtime.Gosched()
						if drops && i%5 == 0 {
							return ErrTimeout
						}
						return nil
					})
					if err != nil && !errors.Is(err, ErrLimitExceeded) && !errors.Is(err, ErrTimeout) {
						t.Errorf("unexpected error %v", err)
					}
				}
			}()
		}
		wg.Wait()
	}
	run(true)
	run(false)
	if p := peak.Load(); p > maxLimit {
		t.Fatalf("peak concurrency %d > MaxLimit %d", p, maxLimit)
	}
	if l.InFlight() != 0 {
		t.Fatalf("in flight %d at the end", l.InFlight())
	}
	if lim := l.Limit(); lim < 1 || lim > maxLimit {
		t.Fatalf("limit %d outside [1, %d]", lim, maxLimit)
	}
	total := int64(2 * workers * calls)
	if admitted.Load()+rejected.Load() != total || ended.Load() != admitted.Load() {
		t.Fatalf("admitted %d + rejected %d != %d calls, or ended events %d != admitted", admitted.Load(), rejected.Load(), total, ended.Load())
	}
	t.Logf("admitted %d, shed %d, peak %d, final limit %d", admitted.Load(), rejected.Load(), peak.Load(), l.Limit())
}

func BenchmarkLimiterExecute(b *testing.B) {
	ctx := context.Background()
	fn := func(context.Context) error { return nil }
	b.Run("serial", func(b *testing.B) {
		l := mustLimiter(b, LimiterConfig{})
		b.ReportAllocs()
		for b.Loop() {
			_ = l.Execute(ctx, fn)
		}
	})
	b.Run("serial-gradient", func(b *testing.B) {
		l := mustLimiter(b, LimiterConfig{Algorithm: LimitGradient})
		b.ReportAllocs()
		for b.Loop() {
			_ = l.Execute(ctx, fn)
		}
	})
	b.Run("parallel", func(b *testing.B) {
		l := mustLimiter(b, LimiterConfig{MaxLimit: 1000, InitialLimit: 1000})
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				_ = l.Execute(ctx, fn)
			}
		})
	})
}

func TestLimiterExecuteDoesNotAllocate(t *testing.T) {
	if testing.Short() {
		t.Skip("allocation count")
	}
	l := mustLimiter(t, LimiterConfig{})
	ctx := context.Background()
	fn := func(context.Context) error { return nil }
	if n := testing.AllocsPerRun(1000, func() { _ = l.Execute(ctx, fn) }); n != 0 {
		t.Fatalf("Execute success path: %v allocs, want 0", n)
	}
}

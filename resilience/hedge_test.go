package resilience

import (
	"context"
	"errors"
	"math/rand"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/faultline-dev/faultline/clock"
)

// hedgeRig runs hedged calls whose attempts block until the test answers them.
type hedgeRig struct {
	t        *testing.T
	clk      *clock.Manual
	attempts chan *hedgeAttempt
}

type hedgeAttempt struct {
	n      int
	ctx    context.Context
	answer chan error
}

func newHedgeRig(t *testing.T) *hedgeRig {
	return &hedgeRig{t: t, clk: clock.NewManual(time.Time{}), attempts: make(chan *hedgeAttempt, 16)}
}

// fn is the guarded operation: each call announces itself and waits for its answer or its ctx.
func (r *hedgeRig) fn() func(context.Context) (int, error) {
	var n atomic.Int32
	return func(ctx context.Context) (int, error) {
		a := &hedgeAttempt{n: int(n.Add(1)), ctx: ctx, answer: make(chan error, 1)}
		r.attempts <- a
		select {
		case err := <-a.answer:
			if err != nil {
				return 0, err
			}
			return a.n, nil
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
}

func (r *hedgeRig) next() *hedgeAttempt {
	r.t.Helper()
	select {
	case a := <-r.attempts:
		return a
	case <-time.After(5 * time.Second): // a hang guard, not a timing assertion
		r.t.Fatal("no attempt started")
		return nil
	}
}

func (r *hedgeRig) none() {
	r.t.Helper()
	select {
	case a := <-r.attempts:
		r.t.Fatalf("unexpected attempt %d", a.n)
	default:
	}
}

type hedgeOutcome struct {
	v   int
	err error
}

func (r *hedgeRig) start(ctx context.Context, h *Hedge) chan hedgeOutcome {
	out := make(chan hedgeOutcome, 1)
	fn := r.fn()
	go func() {
		v, err := WithHedge[int](h).Apply(fn)(ctx)
		out <- hedgeOutcome{v, err}
	}()
	return out
}

func waitOutcome(t *testing.T, out chan hedgeOutcome) hedgeOutcome {
	t.Helper()
	select {
	case o := <-out:
		return o
	case <-time.After(5 * time.Second):
		t.Fatal("hedged call did not return")
		return hedgeOutcome{}
	}
}

func waitCtxDone(t *testing.T, ctx context.Context, what string) {
	t.Helper()
	select {
	case <-ctx.Done():
	case <-time.After(5 * time.Second):
		t.Fatalf("%s: context never cancelled", what)
	}
}

func TestHedgeSecondAttemptWins(t *testing.T) {
	checkNoLeak(t)
	r := newHedgeRig(t)
	var events []Event
	var mu sync.Mutex
	h, err := NewHedge(HedgeConfig{Delay: 50 * time.Millisecond, Clock: r.clk, Name: "quotes",
		Observer: ObserverFunc(func(_ context.Context, e Event) { mu.Lock(); events = append(events, e); mu.Unlock() })})
	if err != nil {
		t.Fatal(err)
	}
	out := r.start(context.Background(), h)
	first := r.next()
	waitTimers(t, r.clk, 1)
	r.none()
	r.clk.Advance(49 * time.Millisecond)
	r.none()
	r.clk.Advance(time.Millisecond)
	second := r.next()
	second.answer <- nil
	o := waitOutcome(t, out)
	if o.err != nil || o.v != 2 {
		t.Fatalf("got %d, %v; want the second attempt's 2", o.v, o.err)
	}
	waitCtxDone(t, first.ctx, "losing first attempt")
	if second.ctx.Err() != nil {
		t.Errorf("the winner's context was cancelled (%v): a result streaming from it would break", second.ctx.Err())
	}
	mu.Lock()
	defer mu.Unlock()
	if len(events) != 1 || events[0].Type != EventHedge || events[0].Attempt != 2 || events[0].Kind != KindHedge ||
		events[0].Name != "quotes" || events[0].Duration != 50*time.Millisecond {
		t.Errorf("events = %v, want one hedge event for attempt 2 after 50ms", events)
	}
}

func TestHedgeFastAnswerNoHedge(t *testing.T) {
	checkNoLeak(t)
	r := newHedgeRig(t)
	h, _ := NewHedge(HedgeConfig{Delay: time.Second, Clock: r.clk})
	out := r.start(context.Background(), h)
	r.next().answer <- nil
	if o := waitOutcome(t, out); o.err != nil || o.v != 1 {
		t.Fatalf("got %d, %v", o.v, o.err)
	}
	if n := r.clk.Timers(); n != 0 {
		t.Errorf("%d timers pending after the call: the hedge timer was not stopped", n)
	}
	r.clk.Advance(time.Hour)
	r.none()
}

func TestHedgeBoundedAndCallerCancel(t *testing.T) {
	checkNoLeak(t)
	r := newHedgeRig(t)
	h, _ := NewHedge(HedgeConfig{Delay: 10 * time.Millisecond, MaxHedges: 2, Clock: r.clk})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := r.start(ctx, h)
	var attempts []*hedgeAttempt
	attempts = append(attempts, r.next())
	for range 2 {
		waitTimers(t, r.clk, 1)
		r.clk.Advance(10 * time.Millisecond)
		attempts = append(attempts, r.next())
	}
	// No fourth attempt, however long we wait.
	r.clk.Advance(time.Hour)
	r.none()
	cancel()
	o := waitOutcome(t, out)
	if !errors.Is(o.err, context.Canceled) {
		t.Fatalf("err = %v, want the caller's context.Canceled", o.err)
	}
	for _, a := range attempts {
		waitCtxDone(t, a.ctx, "attempt")
	}
}

func TestHedgeFailureStartsNextAtOnce(t *testing.T) {
	checkNoLeak(t)
	r := newHedgeRig(t)
	h, _ := NewHedge(HedgeConfig{Delay: time.Hour, MaxHedges: 2, Clock: r.clk})
	out := r.start(context.Background(), h)
	r.next().answer <- errFlaky
	second := r.next() // started without the clock moving
	second.answer <- errFlaky
	third := r.next()
	third.answer <- errors.New("still down")
	o := waitOutcome(t, out)
	if o.err == nil || o.err.Error() != "still down" {
		t.Fatalf("err = %v, want the last attempt's error", o.err)
	}
}

func TestHedgePermanentErrorEndsCall(t *testing.T) {
	checkNoLeak(t)
	r := newHedgeRig(t)
	h, _ := NewHedge(HedgeConfig{Delay: time.Millisecond, MaxHedges: 1, Clock: r.clk})
	out := r.start(context.Background(), h)
	first := r.next()
	waitTimers(t, r.clk, 1)
	r.clk.Advance(time.Millisecond)
	second := r.next()
	bad := Permanent(errors.New("400 bad request"))
	second.answer <- bad
	o := waitOutcome(t, out)
	if !errors.Is(o.err, bad) {
		t.Fatalf("err = %v, want the permanent error", o.err)
	}
	waitCtxDone(t, first.ctx, "first attempt after a permanent failure")
}

func TestHedgeBudgetRefusesHedges(t *testing.T) {
	checkNoLeak(t)
	r := newHedgeRig(t)
	budget, _ := NewRetryBudget(RetryBudgetConfig{Ratio: -1, MinRetriesPerSecond: -1})
	h, _ := NewHedge(HedgeConfig{Delay: time.Millisecond, MaxHedges: 3, Budget: budget, Clock: r.clk})
	out := r.start(context.Background(), h)
	first := r.next()
	waitTimers(t, r.clk, 1)
	r.clk.Advance(time.Millisecond)
	r.clk.Advance(time.Hour)
	r.none()
	first.answer <- nil
	if o := waitOutcome(t, out); o.err != nil || o.v != 1 {
		t.Fatalf("got %d, %v", o.v, o.err)
	}
}

func TestHedgeDiscardsLateWinners(t *testing.T) {
	checkNoLeak(t)
	clk := clock.NewManual(time.Time{})
	h, _ := NewHedge(HedgeConfig{Delay: time.Millisecond, Clock: clk})
	var discarded atomic.Int32
	release := make(chan struct{})
	started := make(chan int, 2)
	var n atomic.Int32
	fn := func(ctx context.Context) (int, error) {
		i := int(n.Add(1))
		started <- i
		if i == 1 {
			<-release // ignores cancellation, then succeeds: a late winner
			return 1, nil
		}
		return 2, nil
	}
	out := make(chan hedgeOutcome, 1)
	go func() {
		v, err := WithHedgeDiscard[int](h, func(v int) { discarded.Add(int32(v)) }).Apply(fn)(context.Background())
		out <- hedgeOutcome{v, err}
	}()
	<-started
	waitTimers(t, clk, 1)
	clk.Advance(time.Millisecond)
	if o := waitOutcome(t, out); o.err != nil || o.v != 2 {
		t.Fatalf("got %d, %v; want 2", o.v, o.err)
	}
	close(release)
	deadline := time.Now().Add(5 * time.Second)
	for discarded.Load() != 1 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Microsecond) // the loser's goroutine runs the discard after returning
	}
	if d := discarded.Load(); d != 1 {
		t.Fatalf("discarded = %d, want the late result 1", d)
	}
}

func TestHedgePanicReachesCaller(t *testing.T) {
	checkNoLeak(t)
	h, _ := NewHedge(HedgeConfig{Delay: time.Hour, Clock: clock.NewManual(time.Time{})})
	defer func() {
		if p := recover(); p != "boom" {
			t.Fatalf("recovered %v, want the attempt's panic", p)
		}
	}()
	h.Execute(context.Background(), func(context.Context) error { panic("boom") })
	t.Fatal("Execute returned instead of panicking")
}

func TestHedgeConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		cfg   HedgeConfig
		field string
	}{
		{HedgeConfig{}, "Delay"},
		{HedgeConfig{Delay: 1, Percentile: 1}, "Percentile"},
		{HedgeConfig{Delay: 1, Percentile: -0.1}, "Percentile"},
		{HedgeConfig{Delay: 1, MaxHedges: -1}, "MaxHedges"},
		{HedgeConfig{Delay: 1, Window: 10}, "Percentile"},
		{HedgeConfig{Delay: 1, Percentile: 0.9, Window: -1}, "Window"},
		{HedgeConfig{Delay: 1, Percentile: 0.9, MinSamples: -1}, "MinSamples"},
		{HedgeConfig{Delay: 1, Percentile: 0.9, Window: 5, MinSamples: 6}, "MinSamples"},
	} {
		_, err := NewHedge(tc.cfg)
		if err == nil || !strings.Contains(err.Error(), "HedgeConfig."+tc.field) {
			t.Errorf("%+v: err = %v, want one naming %s", tc.cfg, err, tc.field)
		}
	}
}

func TestHedgeCorePercentile(t *testing.T) {
	c, err := NewHedgeCore(HedgeConfig{Delay: 7 * time.Millisecond, Percentile: 0.95, Window: 100, MinSamples: 4})
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 3; i++ {
		c.Record(time.Duration(i) * time.Millisecond)
		if d := c.Delay(); d != 7*time.Millisecond {
			t.Fatalf("after %d samples delay = %v, want the fixed 7ms until MinSamples", i, d)
		}
	}
	// The estimate is refreshed at MinSamples and then every Window/8 = 12 samples: 4, 16, …, 100.
	for i := 4; i <= 100; i++ {
		c.Record(time.Duration(i) * time.Millisecond)
	}
	if d := c.Delay(); d != 95*time.Millisecond {
		t.Fatalf("p95 of 1..100ms = %v, want 95ms", d)
	}
	// The window slides: 100 samples of 1s push every old one out.
	for range 100 {
		c.Record(time.Second)
	}
	if d := c.Delay(); d != time.Second {
		t.Fatalf("after the window slid, delay = %v, want 1s", d)
	}
}

// TestHedgeCorePercentileRandom checks the percentile against a sort of the last Window samples.
func TestHedgeCorePercentileRandom(t *testing.T) {
	rng := rand.New(rand.NewSource(testSeed(t)))
	for round := range testRounds(50, 2000) {
		window := 1 + rng.Intn(64)
		p := 0.01 + 0.98*rng.Float64()
		c, err := NewHedgeCore(HedgeConfig{Delay: time.Second, Percentile: p, Window: window, MinSamples: 1})
		if err != nil {
			t.Fatal(err)
		}
		var all []time.Duration
		n := window + rng.Intn(3*window)
		for range n {
			d := time.Duration(1 + rng.Intn(1000))
			all = append(all, d)
			c.Record(d)
		}
		// Force a recomputation point: the core refreshes every window/8 samples, so compare
		// against the samples as of its last refresh, which is what Delay promises at most
		// window/8 samples late. Record until a refresh lands exactly on the end.
		for c.sinceCalc != 0 {
			d := time.Duration(1 + rng.Intn(1000))
			all = append(all, d)
			c.Record(d)
		}
		last := slices.Clone(all[max(0, len(all)-window):])
		slices.Sort(last)
		rank := int(float64(len(last))*p + 0.999999999)
		want := last[max(rank-1, 0)]
		if got := c.Delay(); got != want {
			t.Fatalf("round %d (window %d, p %.3f, %d samples): delay %v, want %v", round, window, p, len(all), got, want)
		}
	}
}

func TestHedgeRecordsLatencyForPercentile(t *testing.T) {
	checkNoLeak(t)
	r := newHedgeRig(t)
	h, _ := NewHedge(HedgeConfig{Delay: time.Hour, Percentile: 0.5, Window: 4, MinSamples: 4, Clock: r.clk})
	for i := range 4 {
		out := r.start(context.Background(), h)
		a := r.next()
		waitTimers(t, r.clk, 1)
		r.clk.Advance(time.Duration(i+1) * time.Millisecond)
		a.answer <- nil
		if o := waitOutcome(t, out); o.err != nil {
			t.Fatal(o.err)
		}
	}
	if d := h.Delay(); d != 2*time.Millisecond {
		t.Fatalf("delay after latencies 1..4ms = %v, want the median 2ms", d)
	}
}

package resilience

import (
	"context"
	"errors"
	"math/rand"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/faultline-dev/faultline/clock"
)

var breakerT0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func mustBreaker(t testing.TB, cfg BreakerConfig) *Breaker {
	t.Helper()
	b, err := NewBreaker(cfg)
	if err != nil {
		t.Fatalf("NewBreaker: %v", err)
	}
	return b
}

func TestNewBreakerErrors(t *testing.T) {
	tests := []struct {
		name  string
		cfg   BreakerConfig
		field string
	}{
		{"negative window size", BreakerConfig{WindowSize: -1}, "WindowSize"},
		{"negative window", BreakerConfig{Window: -time.Second}, "Window"},
		{"rate above one", BreakerConfig{FailureRate: 1.5}, "FailureRate"},
		{"slow rate without duration", BreakerConfig{SlowCallRate: 0.5}, "SlowCallRate"},
		{"both windows", BreakerConfig{WindowSize: 10, Window: time.Second}, "Window"},
		{"buckets without window", BreakerConfig{Buckets: 5}, "Buckets"},
		{"min calls above size", BreakerConfig{WindowSize: 5, MinCalls: 6}, "MinCalls"},
		{"consecutive with window", BreakerConfig{ConsecutiveFailures: 3, WindowSize: 10}, "ConsecutiveFailures"},
		{"consecutive with rate", BreakerConfig{ConsecutiveFailures: 3, FailureRate: 0.2}, "ConsecutiveFailures"},
		{"backoff below one", BreakerConfig{OpenBackoff: 0.5}, "OpenBackoff"},
		{"max open below open", BreakerConfig{OpenDuration: time.Minute, MaxOpenDuration: time.Second}, "MaxOpenDuration"},
		{"negative probes", BreakerConfig{HalfOpenProbes: -1}, "HalfOpenProbes"},
		{"window too short for buckets", BreakerConfig{Window: 5, Buckets: 10}, "Window"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewBreaker(tt.cfg)
			if err == nil || !strings.Contains(err.Error(), "BreakerConfig."+tt.field+" ") {
				t.Fatalf("NewBreaker(%+v) = %v, want an error naming %s", tt.cfg, err, tt.field)
			}
		})
	}
	if _, err := NewBreaker(BreakerConfig{}); err != nil {
		t.Fatalf("zero config: %v", err)
	}
}

// runBreakerScript drives a breaker's core with a script of space-separated steps:
//
//	s, f     a call that succeeds / fails (Allow must admit it), taking no time
//	S, F     the same, taking an hour (slow when SlowCallDuration is set)
//	r        a call that must be rejected with ErrOpen
//	+D       time passes (D as in time.ParseDuration)
//	=STATE   the state must be STATE (closed, open, half-open, forced-open, disabled)
//	force, disable, reset   the manual controls
func runBreakerScript(t *testing.T, b *Breaker, script string) {
	t.Helper()
	now := breakerT0
	for i, step := range strings.Fields(script) {
		call := func(kind OutcomeKind, d time.Duration) {
			p, err := b.Allow(now)
			if err != nil {
				t.Fatalf("step %d %q: Allow = %v, want admitted (state %v)", i, step, err, b.State(now))
			}
			b.Done(p, now.Add(d), Outcome{Kind: kind, Duration: d})
		}
		switch {
		case step == "s":
			call(OutcomeSuccess, 0)
		case step == "f":
			call(OutcomeFailure, 0)
		case step == "S":
			call(OutcomeSuccess, time.Hour)
		case step == "F":
			call(OutcomeFailure, time.Hour)
		case step == "r":
			if _, err := b.Allow(now); !errors.Is(err, ErrOpen) {
				t.Fatalf("step %d %q: Allow = %v, want ErrOpen (state %v)", i, step, err, b.State(now))
			}
		case step == "force":
			b.ForceOpen()
		case step == "disable":
			b.Disable()
		case step == "reset":
			b.Reset()
		case step[0] == '+':
			d, err := time.ParseDuration(step[1:])
			if err != nil {
				t.Fatalf("step %d %q: %v", i, step, err)
			}
			now = now.Add(d)
		case step[0] == '=':
			if got := b.State(now).String(); got != step[1:] {
				t.Fatalf("step %d %q: state %s, want %s", i, step, got, step[1:])
			}
		default:
			t.Fatalf("step %d: unknown step %q", i, step)
		}
	}
}

func TestBreakerTransitions(t *testing.T) {
	tests := []struct {
		name   string
		cfg    BreakerConfig
		script string
	}{
		{"trips at the failure rate once MinCalls are in",
			BreakerConfig{WindowSize: 4, MinCalls: 4, FailureRate: 0.5},
			"f f s =closed s =open r"},
		{"MinCalls holds the breaker closed",
			BreakerConfig{WindowSize: 10, MinCalls: 5},
			"f f f f =closed f =open"},
		{"count window forgets the oldest call",
			BreakerConfig{WindowSize: 4, MinCalls: 4, FailureRate: 0.75},
			"f s s s s f f =closed f =open"},
		{"open, half-open after OpenDuration, closed after a probe succeeds",
			BreakerConfig{WindowSize: 2, MinCalls: 2, OpenDuration: 10 * time.Second},
			"f f =open +9s r =open +1s =half-open s =closed s s"},
		{"a failed probe reopens",
			BreakerConfig{WindowSize: 2, MinCalls: 2, OpenDuration: 10 * time.Second},
			"f f +10s f =open r +9s r +1s s =closed"},
		{"half-open lets one probe at a time by default",
			BreakerConfig{WindowSize: 2, MinCalls: 2, OpenDuration: time.Second, HalfOpenSuccesses: 3},
			"f f +1s s =half-open s =half-open s =closed"},
		{"closing clears the window",
			BreakerConfig{WindowSize: 4, MinCalls: 2, FailureRate: 0.75, OpenDuration: time.Second},
			"f f =open +1s s =closed f s f =closed f =open"},
		{"slow calls trip at the slow-call rate",
			BreakerConfig{WindowSize: 4, MinCalls: 4, SlowCallDuration: time.Second, SlowCallRate: 0.5},
			"S S s =closed s =open"},
		{"a slow probe reopens",
			BreakerConfig{WindowSize: 2, MinCalls: 2, SlowCallDuration: time.Second, OpenDuration: time.Second},
			"f f +1s S =open"},
		{"slow calls ignored without SlowCallDuration",
			BreakerConfig{WindowSize: 4, MinCalls: 4},
			"S S S S S =closed"},
		{"consecutive failures",
			BreakerConfig{ConsecutiveFailures: 3, OpenDuration: time.Second},
			"f f s f f =closed f =open +1s s =closed f f =closed f =open"},
		{"time window expires old buckets",
			BreakerConfig{Window: 10 * time.Second, Buckets: 10, MinCalls: 3},
			"f f +10s s s =closed s =closed f f =closed f =open"},
		{"time window keeps calls younger than Window",
			BreakerConfig{Window: 10 * time.Second, Buckets: 10, MinCalls: 3},
			"f f +9s s =open"},
		{"time window buckets expire one at a time",
			BreakerConfig{Window: 10 * time.Second, Buckets: 10, MinCalls: 4},
			"f +5s f s +5s s =closed f =open"},
		{"open duration grows and resets after closing",
			BreakerConfig{WindowSize: 2, MinCalls: 2, OpenDuration: 10 * time.Second, OpenBackoff: 2, MaxOpenDuration: 30 * time.Second},
			"f f +10s f +19s r +1s f +29s r +1s s =closed f f +9s r +1s =half-open"},
		{"force open rejects until reset",
			BreakerConfig{},
			"force =forced-open r +1h r reset =closed s"},
		{"disabled admits everything and never trips",
			BreakerConfig{WindowSize: 2, MinCalls: 2},
			"disable f f f f =disabled s reset =closed f =closed"},
		{"force open beats an open breaker's timer",
			BreakerConfig{WindowSize: 2, MinCalls: 2, OpenDuration: time.Second},
			"f f =open force +1h =forced-open r disable =disabled f f s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			runBreakerScript(t, mustBreaker(t, tt.cfg), tt.script)
		})
	}
}

func TestBreakerStateChangeListener(t *testing.T) {
	var got []string
	b := mustBreaker(t, BreakerConfig{WindowSize: 2, MinCalls: 2, OpenDuration: time.Second,
		OnStateChange: func(from, to BreakerState) { got = append(got, from.String()+">"+to.String()) }})
	runBreakerScript(t, b, "f f +1s s force disable reset reset")
	want := strings.Join([]string{"closed>open", "open>half-open", "half-open>closed", "closed>forced-open",
		"forced-open>disabled", "disabled>closed"}, " ")
	if g := strings.Join(got, " "); g != want {
		t.Fatalf("state changes %q, want %q", g, want)
	}
}

func TestBreakerCounts(t *testing.T) {
	b := mustBreaker(t, BreakerConfig{WindowSize: 10, SlowCallDuration: time.Second})
	runBreakerScript(t, b, "s f F S")
	want := BreakerCounts{Calls: 4, Failures: 2, Slow: 2, ConsecutiveFailures: 0}
	if got := b.Counts(breakerT0); got != want {
		t.Fatalf("Counts = %+v, want %+v", got, want)
	}
}

// A call admitted before the breaker changed state must not move it when it ends.
func TestBreakerStalePermitsIgnored(t *testing.T) {
	b := mustBreaker(t, BreakerConfig{WindowSize: 2, MinCalls: 2, OpenDuration: time.Second, HalfOpenProbes: 1})
	now := breakerT0
	slow, _ := b.Allow(now) // a slow call from while closed
	runBreakerScript(t, b, "f f =open +1s =half-open")
	now = now.Add(time.Second)
	probe, err := b.Allow(now)
	if err != nil {
		t.Fatal(err)
	}
	b.Done(slow, now, Outcome{Kind: OutcomeSuccess})
	if s := b.State(now); s != BreakerHalfOpen {
		t.Fatalf("stale success moved the breaker to %v", s)
	}
	b.Done(slow, now, Outcome{Kind: OutcomeFailure})
	if s := b.State(now); s != BreakerHalfOpen {
		t.Fatalf("stale failure moved the breaker to %v", s)
	}
	if _, err := b.Allow(now); !errors.Is(err, ErrOpen) {
		t.Fatalf("stale Done freed the probe slot: Allow = %v", err)
	}
	b.Done(probe, now, Outcome{Kind: OutcomeSuccess})
	if s := b.State(now); s != BreakerClosed {
		t.Fatalf("probe success: state %v, want closed", s)
	}
	b.Done(Permit{}, now, Outcome{Kind: OutcomeFailure}) // the zero permit is always stale
	b.Done(probe, now, Outcome{Kind: OutcomeFailure})    // and so is a permit already used
	if c := b.Counts(now); c.Calls != 0 {
		t.Fatalf("stale permits were counted: %+v", c)
	}
	// Reset makes calls in flight stale too.
	p, _ := b.Allow(now)
	b.Reset()
	b.Done(p, now, Outcome{Kind: OutcomeFailure})
	if c := b.Counts(now); c.Calls != 0 {
		t.Fatalf("a permit from before Reset was counted: %+v", c)
	}
}

func TestBreakerHalfOpenProbeLimitConcurrent(t *testing.T) {
	const probes, callers = 3, 64
	b := mustBreaker(t, BreakerConfig{WindowSize: 2, MinCalls: 2, OpenDuration: time.Second, HalfOpenProbes: probes})
	runBreakerScript(t, b, "f f =open")
	now := breakerT0.Add(time.Second)
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		permits []Permit
	)
	start := make(chan struct{})
	for range callers {
		wg.Go(func() {
			<-start
			if p, err := b.Allow(now); err == nil {
				mu.Lock()
				permits = append(permits, p)
				mu.Unlock()
			} else if !errors.Is(err, ErrOpen) {
				t.Errorf("Allow = %v", err)
			}
		})
	}
	close(start)
	wg.Wait()
	if len(permits) != probes {
		t.Fatalf("%d probes admitted, want %d", len(permits), probes)
	}
	for _, p := range permits {
		wg.Go(func() { b.Done(p, now, Outcome{Kind: OutcomeSuccess}) })
	}
	wg.Wait()
	if s := b.State(now); s != BreakerClosed {
		t.Fatalf("after %d successful probes: %v, want closed", probes, s)
	}
}

// The runtime: probes running inside Execute never exceed HalfOpenProbes.
func TestBreakerExecuteHalfOpenConcurrency(t *testing.T) {
	const probes, callers = 2, 32
	clk := clock.NewManual(time.Time{})
	b := mustBreaker(t, BreakerConfig{WindowSize: 2, MinCalls: 2, OpenDuration: time.Second,
		HalfOpenProbes: probes, HalfOpenSuccesses: 100, Clock: clk})
	boom := errors.New("boom")
	for range 2 {
		_ = b.Execute(context.Background(), func(context.Context) error { return boom })
	}
	clk.Advance(time.Second)
	var running, peak, rejected atomic.Int32
	release := make(chan struct{})
	var wg sync.WaitGroup
	for range callers {
		wg.Go(func() {
			err := b.Execute(context.Background(), func(context.Context) error {
				n := running.Add(1)
				for {
					p := peak.Load()
					if n <= p || peak.CompareAndSwap(p, n) {
						break
					}
				}
				<-release
				running.Add(-1)
				return nil
			})
			if errors.Is(err, ErrOpen) {
				rejected.Add(1)
			}
		})
	}
	// every caller either runs (blocked on release) or has been rejected
	for running.Load()+rejected.Load() < callers {
		if running.Load() > probes {
			break
		}
		runtime.Gosched()
	}
	close(release)
	wg.Wait()
	if p := peak.Load(); p != probes {
		t.Fatalf("peak concurrent probes %d, want %d", p, probes)
	}
	if r := rejected.Load(); r != callers-probes {
		t.Fatalf("%d rejected, want %d", r, callers-probes)
	}
}

func TestBreakerExecuteClassifies(t *testing.T) {
	notFound := errors.New("not found")
	boom := errors.New("boom")
	clk := clock.NewManual(time.Time{})
	b := mustBreaker(t, BreakerConfig{WindowSize: 10, SlowCallDuration: time.Second, Clock: clk,
		IsFailure: func(err error) bool { return !errors.Is(err, notFound) }})
	ctx := context.Background()
	if err := b.Execute(ctx, func(context.Context) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if err := b.Execute(ctx, func(context.Context) error { return notFound }); err != notFound {
		t.Fatalf("Execute = %v, want fn's error unchanged", err)
	}
	if err := b.Execute(ctx, func(context.Context) error { clk.Advance(2 * time.Second); return boom }); err != boom {
		t.Fatalf("Execute = %v, want fn's error unchanged", err)
	}
	want := BreakerCounts{Calls: 3, Failures: 1, Slow: 1, ConsecutiveFailures: 1}
	if got := b.Counts(clk.Now()); got != want {
		t.Fatalf("Counts = %+v, want %+v", got, want)
	}
	// a panicking call counts as a failure and frees its permit
	func() {
		defer func() { _ = recover() }()
		_ = b.Execute(ctx, func(context.Context) error { panic("x") })
	}()
	if got := b.Counts(clk.Now()).Failures; got != 2 {
		t.Fatalf("after a panic: %d failures, want 2", got)
	}
}

func TestBreakerCallerCancellationNotCounted(t *testing.T) {
	clk := clock.NewManual(time.Time{})
	b := mustBreaker(t, BreakerConfig{WindowSize: 2, MinCalls: 2, OpenDuration: time.Second, Clock: clk})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	// already ended: fn is not called
	called := false
	if err := b.Execute(ctx, func(context.Context) error { called = true; return nil }); !errors.Is(err, context.Canceled) || called {
		t.Fatalf("Execute on an ended ctx = %v (fn called %v)", err, called)
	}
	// ends during fn: the caller's error comes back, nothing is counted
	for range 5 {
		ctx, cancel := context.WithCancel(context.Background())
		err := b.Execute(ctx, func(ctx context.Context) error {
			cancel()
			<-ctx.Done()
			return ctx.Err()
		})
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Execute = %v, want context.Canceled", err)
		}
	}
	if s, c := b.State(clk.Now()), b.Counts(clk.Now()); s != BreakerClosed || c.Calls != 0 {
		t.Fatalf("caller cancellations counted: state %v, %+v", s, c)
	}
	// a cancelled probe frees its slot without closing or reopening
	boom := errors.New("boom")
	for range 2 {
		_ = b.Execute(context.Background(), func(context.Context) error { return boom })
	}
	clk.Advance(time.Second)
	ctx, cancel = context.WithCancel(context.Background())
	_ = b.Execute(ctx, func(ctx context.Context) error { cancel(); return ctx.Err() })
	if s := b.State(clk.Now()); s != BreakerHalfOpen {
		t.Fatalf("after a cancelled probe: %v, want half-open", s)
	}
	if err := b.Execute(context.Background(), func(context.Context) error { return nil }); err != nil {
		t.Fatalf("the probe slot was not freed: %v", err)
	}
	if s := b.State(clk.Now()); s != BreakerClosed {
		t.Fatalf("state %v, want closed", s)
	}
}

// breakerEndingCtx is a context the test ends with the error it chooses (Canceled or
// DeadlineExceeded), without waiting on the wall clock.
type breakerEndingCtx struct {
	context.Context
	done chan struct{}
	mu   sync.Mutex
	err  error
}

func (c *breakerEndingCtx) Done() <-chan struct{} { return c.done }
func (c *breakerEndingCtx) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}
func (c *breakerEndingCtx) end(err error) {
	c.mu.Lock()
	c.err = err
	c.mu.Unlock()
	close(c.done)
}

// Execute returns the caller's error as soon as fn does when ctx ends mid-call, through
// Compose too; the breaker itself never blocks, and the caller's end is not counted.
func TestBreakerExecuteReturnsCtxErrPromptly(t *testing.T) {
	clk := clock.NewManual(time.Time{})
	b := mustBreaker(t, BreakerConfig{Clock: clk, ConsecutiveFailures: 1})
	for _, cause := range []error{context.Canceled, context.DeadlineExceeded} {
		t.Run(cause.Error(), func(t *testing.T) {
			ctx := &breakerEndingCtx{Context: context.Background(), done: make(chan struct{})}
			started := make(chan struct{})
			done := make(chan error, 1)
			go func() {
				_, err := Execute[int](ctx, func(ctx context.Context) (int, error) {
					close(started)
					<-ctx.Done()
					return 0, ctx.Err()
				}, WithBreaker[int](b))
				done <- err
			}()
			<-started
			ctx.end(cause)
			select {
			case err := <-done:
				if !errors.Is(err, cause) {
					t.Fatalf("Execute = %v, want the caller's %v", err, cause)
				}
			case <-time.After(5 * time.Second): // a hang guard, never reached when correct
				t.Fatal("Execute did not return after the caller's context ended")
			}
			if s, c := b.State(clk.Now()), b.Counts(clk.Now()); s != BreakerClosed || c.ConsecutiveFailures != 0 {
				t.Fatalf("the caller's end was counted: %v %+v", s, c)
			}
		})
	}
}

func TestWithBreakerPolicy(t *testing.T) {
	b := mustBreaker(t, BreakerConfig{ConsecutiveFailures: 1, OpenDuration: time.Hour})
	boom := errors.New("boom")
	v, err := Execute(context.Background(), func(context.Context) (string, error) { return "ok", nil }, WithBreaker[string](b))
	if v != "ok" || err != nil {
		t.Fatalf("Execute = %q, %v", v, err)
	}
	if _, err := Execute(context.Background(), func(context.Context) (string, error) { return "", boom }, WithBreaker[string](b)); err != boom {
		t.Fatalf("Execute = %v, want boom", err)
	}
	called := false
	_, err = Execute(context.Background(), func(context.Context) (string, error) { called = true; return "", nil }, WithBreaker[string](b))
	if !errors.Is(err, ErrOpen) || called {
		t.Fatalf("open breaker: Execute = %v (fn called %v), want ErrOpen", err, called)
	}
}

func TestBreakerSuccessPathAllocs(t *testing.T) {
	b := mustBreaker(t, BreakerConfig{})
	ctx := context.Background()
	fn := func(context.Context) error { return nil }
	if n := testing.AllocsPerRun(1000, func() { _ = b.Execute(ctx, fn) }); n != 0 {
		t.Fatalf("Execute success path: %v allocs/op, want 0", n)
	}
	tb := mustBreaker(t, BreakerConfig{Window: 10 * time.Second})
	if n := testing.AllocsPerRun(1000, func() { _ = tb.Execute(ctx, fn) }); n != 0 {
		t.Fatalf("time window success path: %v allocs/op, want 0", n)
	}
	call := WithBreaker[int](b).Apply(func(context.Context) (int, error) { return 1, nil })
	if n := testing.AllocsPerRun(1000, func() { _, _ = call(ctx) }); n != 0 {
		t.Fatalf("WithBreaker success path: %v allocs/op, want 0", n)
	}
	b.ForceOpen()
	if n := testing.AllocsPerRun(1000, func() { _ = b.Execute(ctx, fn) }); n != 0 {
		t.Fatalf("open path: %v allocs/op, want 0", n)
	}
}

// --- randomized check against a naive reference model ---

// breakerRef is the count-window breaker written the plain way: it keeps every outcome since the
// window was last cleared and recomputes the rates from the last size of them on every call.
type breakerRef struct {
	size, minCalls      int
	rate, slowRate      float64
	slowDur             time.Duration
	openDur, maxOpen    time.Duration
	backoff             float64
	probes, needed      int
	state               BreakerState
	epoch               int
	history             []Outcome
	openUntil           time.Time
	trips               int
	inFlight, successes int
}

type breakerRefPermit struct {
	real  Permit
	epoch int
	probe bool
}

func (m *breakerRef) move(s BreakerState) { m.state = s; m.epoch++; m.inFlight, m.successes = 0, 0 }

func (m *breakerRef) trip(now time.Time) {
	m.trips++
	d := m.openDur
	for i := 1; i < m.trips; i++ {
		d = time.Duration(float64(d) * m.backoff)
		if d >= m.maxOpen {
			break
		}
	}
	m.openUntil = now.Add(min(d, m.maxOpen))
	m.history = nil
	m.move(BreakerOpen)
}

func (m *breakerRef) tick(now time.Time) {
	if m.state == BreakerOpen && !now.Before(m.openUntil) {
		m.move(BreakerHalfOpen)
	}
}

func (m *breakerRef) allow(now time.Time) (breakerRefPermit, bool) {
	m.tick(now)
	switch m.state {
	case BreakerClosed, BreakerDisabled:
		return breakerRefPermit{epoch: m.epoch}, true
	case BreakerHalfOpen:
		if m.inFlight < m.probes {
			m.inFlight++
			return breakerRefPermit{epoch: m.epoch, probe: true}, true
		}
	}
	return breakerRefPermit{}, false
}

func (m *breakerRef) slow(o Outcome) bool { return m.slowDur > 0 && o.Duration >= m.slowDur }

func (m *breakerRef) done(p breakerRefPermit, now time.Time, o Outcome) {
	if p.epoch != m.epoch {
		return
	}
	if m.state == BreakerHalfOpen {
		m.inFlight--
		if o.Kind == OutcomeIgnored {
			return
		}
		if o.Kind == OutcomeFailure || m.slow(o) {
			m.trip(now)
			return
		}
		if m.successes++; m.successes >= m.needed {
			m.trips = 0
			m.history = nil
			m.move(BreakerClosed)
		}
		return
	}
	if o.Kind == OutcomeIgnored {
		return
	}
	m.history = append(m.history, o)
	if m.state != BreakerClosed {
		return
	}
	last := m.history[max(0, len(m.history)-m.size):]
	var failures, slow int
	for _, h := range last {
		if h.Kind == OutcomeFailure {
			failures++
		}
		if m.slow(h) {
			slow++
		}
	}
	n := len(last)
	if n >= m.minCalls && (float64(failures)/float64(n) >= m.rate || (m.slowDur > 0 && float64(slow)/float64(n) >= m.slowRate)) {
		m.trip(now)
	}
}

func TestBreakerMatchesReferenceModel(t *testing.T) {
	rng := rand.New(rand.NewSource(testSeed(t)))
	runs := testRounds(200, 5000)
	for run := range runs {
		size := 1 + rng.Intn(12)
		cfg := BreakerConfig{
			WindowSize:     size,
			MinCalls:       1 + rng.Intn(size),
			FailureRate:    []float64{0.1, 0.25, 0.3, 0.5, 0.75, 1}[rng.Intn(6)],
			OpenDuration:   time.Duration(1+rng.Intn(5)) * time.Second,
			OpenBackoff:    float64(1 + rng.Intn(3)),
			HalfOpenProbes: rng.Intn(4),
		}
		if rng.Intn(2) == 0 {
			cfg.SlowCallDuration = time.Second
			cfg.SlowCallRate = []float64{0.2, 0.5, 1}[rng.Intn(3)]
		}
		cfg.MaxOpenDuration = cfg.OpenDuration * time.Duration(1+rng.Intn(6))
		cfg.HalfOpenSuccesses = rng.Intn(4)
		b := mustBreaker(t, cfg)
		m := &breakerRef{size: size, minCalls: cfg.MinCalls, rate: cfg.FailureRate, slowRate: cfg.SlowCallRate,
			slowDur: cfg.SlowCallDuration, openDur: cfg.OpenDuration, maxOpen: cfg.MaxOpenDuration,
			backoff: cfg.OpenBackoff, probes: max(1, cfg.HalfOpenProbes), needed: cfg.HalfOpenSuccesses}
		if m.needed == 0 {
			m.needed = m.probes
		}
		now := breakerT0
		var pending []breakerRefPermit
		var trace []string
		fail := func(format string, args ...any) {
			t.Helper()
			t.Fatalf("run %d, cfg %+v\ntrace: %s\n"+format, append([]any{run, cfg, strings.Join(trace, " ")}, args...)...)
		}
		for range 200 {
			switch r := rng.Intn(100); {
			case r < 40:
				mp, mok := m.allow(now)
				p, err := b.Allow(now)
				trace = append(trace, "allow")
				if mok != (err == nil) {
					fail("Allow = %v, model admits %v", err, mok)
				}
				if mok {
					mp.real = p
					pending = append(pending, mp)
				}
			case r < 80 && len(pending) > 0:
				i := rng.Intn(len(pending))
				p := pending[i]
				pending = append(pending[:i], pending[i+1:]...)
				o := Outcome{Kind: OutcomeKind(rng.Intn(3)), Duration: time.Duration(rng.Intn(3)) * 600 * time.Millisecond}
				if rng.Intn(4) == 0 {
					o.Kind = OutcomeSuccess
				}
				trace = append(trace, "done("+strconv.Itoa(int(o.Kind))+","+o.Duration.String()+")")
				m.done(p, now, o)
				b.Done(p.real, now, o)
			case r < 95:
				d := time.Duration(rng.Intn(3000)) * time.Millisecond
				now = now.Add(d)
				trace = append(trace, "+"+d.String())
			default:
				switch rng.Intn(3) {
				case 0:
					trace = append(trace, "force")
					b.ForceOpen()
					m.move(BreakerForcedOpen)
				case 1:
					trace = append(trace, "disable")
					b.Disable()
					m.move(BreakerDisabled)
				case 2:
					trace = append(trace, "reset")
					b.Reset()
					m.history, m.trips = nil, 0
					m.move(BreakerClosed)
				}
			}
			m.tick(now)
			if got := b.State(now); got != m.state {
				fail("state %v, model %v", got, m.state)
			}
			if m.state == BreakerClosed || m.state == BreakerDisabled {
				last := m.history[max(0, len(m.history)-m.size):]
				if got := b.Counts(now).Calls; got != len(last) {
					fail("window holds %d calls, model %d", got, len(last))
				}
			}
		}
	}
}

func BenchmarkBreakerSuccess(b *testing.B) {
	ctx := context.Background()
	fn := func(context.Context) error { return nil }
	b.Run("serial", func(b *testing.B) {
		br := mustBreaker(b, BreakerConfig{})
		b.ReportAllocs()
		for b.Loop() {
			_ = br.Execute(ctx, fn)
		}
	})
	b.Run("parallel", func(b *testing.B) {
		br := mustBreaker(b, BreakerConfig{})
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				_ = br.Execute(ctx, fn)
			}
		})
	})
	b.Run("core", func(b *testing.B) {
		br := mustBreaker(b, BreakerConfig{})
		now := breakerT0
		b.ReportAllocs()
		for b.Loop() {
			p, _ := br.Allow(now)
			br.Done(p, now, Outcome{})
		}
	})
}

func BenchmarkBreakerOpen(b *testing.B) {
	ctx := context.Background()
	fn := func(context.Context) error { return nil }
	br := mustBreaker(b, BreakerConfig{ConsecutiveFailures: 1, OpenDuration: time.Hour})
	_ = br.Execute(ctx, func(context.Context) error { return errors.New("boom") })
	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if br.Execute(ctx, fn) == nil {
				b.Fatal("admitted")
			}
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				_ = br.Execute(ctx, fn)
			}
		})
	})
}

// TestBreakerLazyTimeMatchesTimed drives two breakers with the same random calls, outcomes and
// clock moves: one on the lazy path Execute takes for count and consecutive windows without an
// observer (clock read only while open and on a trip), one forced onto the timed path by an
// observer. Their states must agree after every call.
func TestBreakerLazyTimeMatchesTimed(t *testing.T) {
	rng := rand.New(rand.NewSource(testSeed(t)))
	for round := range testRounds(40, 1000) {
		var cfg BreakerConfig
		if rng.Intn(2) == 0 {
			cfg.ConsecutiveFailures = 1 + rng.Intn(4)
		} else {
			cfg.WindowSize = 2 + rng.Intn(10)
			cfg.MinCalls = 1 + rng.Intn(cfg.WindowSize)
			cfg.FailureRate = 0.1 + 0.9*rng.Float64()
		}
		cfg.OpenDuration = time.Duration(1+rng.Intn(5)) * time.Second
		if rng.Intn(2) == 0 {
			cfg.OpenBackoff, cfg.MaxOpenDuration = 2, 30*time.Second
		}
		cfg.HalfOpenProbes = 1 + rng.Intn(2)
		clk := clock.NewManual(time.Time{})
		cfg.Clock = clk
		lazy, err := NewBreaker(cfg)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Observer = ObserverFunc(func(context.Context, Event) {})
		timed, err := NewBreaker(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if !lazy.lazyTime || timed.lazyTime {
			t.Fatalf("lazyTime: lazy %v, timed %v", lazy.lazyTime, timed.lazyTime)
		}
		for step := range 200 {
			fail := rng.Intn(3) == 0
			fn := func(context.Context) error {
				if fail {
					return errFlaky
				}
				return nil
			}
			e1, e2 := lazy.Execute(context.Background(), fn), timed.Execute(context.Background(), fn)
			if !errors.Is(e1, ErrOpen) != !errors.Is(e2, ErrOpen) {
				t.Fatalf("round %d step %d (%+v): lazy %v, timed %v", round, step, cfg, e1, e2)
			}
			if s1, s2 := lazy.State(clk.Now()), timed.State(clk.Now()); s1 != s2 {
				t.Fatalf("round %d step %d (%+v): lazy %v, timed %v", round, step, cfg, s1, s2)
			}
			clk.Advance(time.Duration(rng.Intn(1500)) * time.Millisecond)
		}
	}
}

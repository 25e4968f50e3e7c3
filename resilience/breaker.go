package resilience

import (
	"context"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/faultline-dev/faultline/clock"
)

// Default circuit breaker settings, used for zero fields of BreakerConfig.
const (
	// DefaultBreakerWindowSize is the count window's size (resilience4j's slidingWindowSize).
	DefaultBreakerWindowSize = 100
	// DefaultBreakerBuckets is how many buckets a time window is split into.
	DefaultBreakerBuckets = 10
	// DefaultBreakerMinCalls is how many calls the window must hold before a rate can trip it.
	DefaultBreakerMinCalls = 10
	// DefaultBreakerFailureRate trips the breaker when half the calls in the window fail.
	DefaultBreakerFailureRate = 0.5
	// DefaultBreakerSlowCallRate trips the breaker when every call in the window is slow.
	DefaultBreakerSlowCallRate = 1.0
	// DefaultBreakerOpenDuration is how long the breaker stays open (gobreaker's Timeout and
	// resilience4j's waitDurationInOpenState are both 60 s).
	DefaultBreakerOpenDuration = 60 * time.Second
	// DefaultBreakerMaxOpenGrowth caps a growing open duration at this many OpenDurations when
	// MaxOpenDuration is zero.
	DefaultBreakerMaxOpenGrowth = 10
)

// BreakerConfig configures a Breaker. The zero value is a count-based breaker over the last 100
// calls that opens for 60 s when at least half of at least 10 calls failed, then lets one probe
// through.
//
// There are three kinds, by which fields are set: a count window (WindowSize, the default), a time
// window (Window and Buckets), or consecutive failures (ConsecutiveFailures, which excludes every
// window and rate field). NewBreaker rejects settings that mix kinds.
type BreakerConfig struct {
	// WindowSize makes a count window over the last WindowSize calls. Zero means
	// DefaultBreakerWindowSize (100) unless Window or ConsecutiveFailures is set.
	WindowSize int
	// Window makes a time window over the calls that ended in the last Window (bucketed; see
	// Buckets). Zero means a count window.
	Window time.Duration
	// Buckets is how many buckets Window is split into; outcomes leave the window one bucket at a
	// time. Zero means DefaultBreakerBuckets (10). Only with Window.
	Buckets int
	// MinCalls is how many calls the window must hold before FailureRate or SlowCallRate can trip
	// the breaker. Zero means DefaultBreakerMinCalls (10), or WindowSize when that is smaller.
	MinCalls int
	// FailureRate trips the breaker when failures/calls ≥ FailureRate in the window (with at
	// least MinCalls calls). In (0, 1]; zero means DefaultBreakerFailureRate (0.5).
	FailureRate float64
	// SlowCallDuration makes calls that take at least this long slow. Zero (the default) turns
	// slow-call detection off.
	SlowCallDuration time.Duration
	// SlowCallRate trips the breaker when slow/calls ≥ SlowCallRate in the window (with at least
	// MinCalls calls). In (0, 1]; zero means DefaultBreakerSlowCallRate (1.0). Only with
	// SlowCallDuration.
	SlowCallRate float64
	// ConsecutiveFailures, when set, makes a consecutive-failures breaker: it trips after this many
	// failures in a row, and a success resets the count. No window is kept.
	ConsecutiveFailures int
	// OpenDuration is how long the breaker stays open before it lets probes through. Zero means
	// DefaultBreakerOpenDuration (60 s).
	OpenDuration time.Duration
	// OpenBackoff multiplies the open duration on each trip that follows a failed half-open probe
	// (repeated trips without closing in between): OpenDuration, ×OpenBackoff, ×OpenBackoff², …
	// capped at MaxOpenDuration. Closing resets it. Zero or 1 (the default) keeps it fixed;
	// otherwise it must be ≥ 1.
	OpenBackoff float64
	// MaxOpenDuration caps a growing open duration. Zero means DefaultBreakerMaxOpenGrowth (10) ×
	// OpenDuration. Must be ≥ OpenDuration.
	MaxOpenDuration time.Duration
	// HalfOpenProbes is how many probe calls may run at once in the half-open state; other calls
	// are rejected with ErrOpen. Zero means 1.
	HalfOpenProbes int
	// HalfOpenSuccesses is how many probes must succeed (not failed and not slow) to close the
	// breaker; one failed or slow probe reopens it. Zero means HalfOpenProbes.
	HalfOpenSuccesses int
	// IsFailure classifies a non-nil error returned by the guarded call (Execute, WithBreaker):
	// true counts a failure, false a success. Nil means every non-nil error is a failure. The end
	// of the caller's own context (CallerEnded) is never counted, whatever IsFailure says.
	IsFailure func(err error) bool
	// Clock is read by Execute and WithBreaker (never by Allow and Done, which take the time).
	// Nil means clock.Real().
	Clock clock.Clock
	// OnStateChange, when set, is called after each state change, outside the breaker's lock, on
	// the goroutine that caused it. Changes caused by concurrent calls may be reported out of
	// order; call State for the current state.
	OnStateChange func(from, to BreakerState)
	// Name names the breaker in events; Observer, when set, receives EventStateChange,
	// EventRejected, and for each call made through Execute or WithBreaker EventSuccess,
	// EventFailure or EventIgnored.
	Name     string
	Observer Observer
}

// BreakerState is a circuit breaker's state.
type BreakerState uint8

const (
	// BreakerClosed: calls go through and their outcomes are counted.
	BreakerClosed BreakerState = iota
	// BreakerOpen: calls are rejected with ErrOpen until the open duration has passed.
	BreakerOpen
	// BreakerHalfOpen: a bounded number of probe calls go through; the rest are rejected.
	BreakerHalfOpen
	// BreakerForcedOpen: every call is rejected until Reset or Disable (set by ForceOpen).
	BreakerForcedOpen
	// BreakerDisabled: every call goes through and is counted, but the breaker never trips (set
	// by Disable).
	BreakerDisabled
)

// String returns the state's name.
func (s BreakerState) String() string {
	switch s {
	case BreakerClosed:
		return "closed"
	case BreakerOpen:
		return "open"
	case BreakerHalfOpen:
		return "half-open"
	case BreakerForcedOpen:
		return "forced-open"
	case BreakerDisabled:
		return "disabled"
	}
	return fmt.Sprintf("BreakerState(%d)", uint8(s))
}

// OutcomeKind says how a call ended, for Breaker.Done.
type OutcomeKind uint8

const (
	// OutcomeSuccess: the call succeeded (or failed in a way the classifier does not count).
	OutcomeSuccess OutcomeKind = iota
	// OutcomeFailure: the call failed.
	OutcomeFailure
	// OutcomeIgnored: the call is not counted at all (the caller gave up); its permit, a half-open
	// probe slot included, is released.
	OutcomeIgnored
)

// Outcome is how a call ended and how long it took.
type Outcome struct {
	// Kind says whether the call succeeded, failed, or is not to be counted.
	Kind OutcomeKind
	// Duration is how long the call took; at least SlowCallDuration makes it slow.
	Duration time.Duration
}

// Permit is the breaker's leave for one call, returned by Allow and handed back to Done. A permit
// belongs to the breaker state (generation) that issued it: once the state has changed, Done
// ignores it, so a slow call started before a trip cannot close or reopen the breaker later. The
// zero Permit is always ignored.
type Permit struct {
	gen   uint64
	probe bool
}

// Breaker is a circuit breaker (Nygard, Release It!; the states, windows and slow-call rate follow
// resilience4j's CircuitBreaker). Its core is deterministic: Allow and Done take the time from the
// caller and never read a clock, sleep or start a goroutine, so the simulator drives the same code
// on virtual time; Execute and WithBreaker are the runtime layer that reads the Clock. A Breaker
// is safe for concurrent use (one mutex around plain data).
type Breaker struct {
	mu   sync.Mutex
	core breakerCore

	clock     clock.Clock
	isFailure func(error) bool
	onChange  func(from, to BreakerState)
	em        emitter

	// lazyTime: the window ignores time (a count window or consecutive failures), slow calls are
	// not detected and no observer wants durations, so Execute reads the clock only while the
	// breaker is open and when it trips.
	lazyTime bool
	// openUntil mirrors core.openUntil while the state is BreakerOpen (nil otherwise), so Execute
	// rejects an open breaker without taking the lock.
	openUntil atomic.Pointer[time.Time]
	// closedGen is core.gen while the state lets every call through (closed or disabled), 0
	// otherwise, so Execute admits such a call without the lock: a permit whose generation is
	// stale by the time the call ends is ignored by the core, as any permit from before a state
	// change is.
	closedGen atomic.Uint64
}

// breakerWindow is a count or a time window of outcomes.
type breakerWindow interface {
	add(now time.Time, failed, slow bool)
	counts(now time.Time) (calls, failures, slow int)
	reset()
}

// breakerCore is the state machine, without lock or clock. Every state change bumps gen.
type breakerCore struct {
	// settings, normalized
	window           breakerWindow // nil in consecutive mode
	minCalls         int
	failureRate      float64
	slowCallDuration time.Duration
	slowCallRate     float64
	consecutiveLimit int
	openDuration     time.Duration
	openBackoff      float64
	maxOpenDuration  time.Duration
	probes           int
	probeSuccesses   int

	state       BreakerState
	gen         uint64
	consecutive int
	openUntil   time.Time
	trips       int // trips since the breaker last closed
	inFlight    int // half-open probes running
	successes   int // half-open probes that succeeded
}

// breakerChange is a state change to report to the listener; zero when nothing changed.
type breakerChange struct {
	from, to BreakerState
	ok       bool
}

// NewBreaker validates cfg and returns a closed breaker; the error names the bad field.
func NewBreaker(cfg BreakerConfig) (*Breaker, error) {
	c, err := newBreakerCore(cfg)
	if err != nil {
		return nil, err
	}
	b := &Breaker{core: c, clock: cfg.Clock, isFailure: cfg.IsFailure, onChange: cfg.OnStateChange,
		em: newEmitter(KindBreaker, cfg.Name, cfg.Observer)}
	if b.clock == nil {
		b.clock = clock.Real()
	}
	_, timeWindow := c.window.(*breakerTimeWindow)
	b.lazyTime = !timeWindow && c.slowCallDuration == 0 && !b.em.on()
	b.closedGen.Store(b.core.gen)
	return b, nil
}

// changed publishes the state for the lock-free paths after the core may have changed it (a state
// change, or a new generation of the same state); called with b.mu held.
func (b *Breaker) changed(ch breakerChange) {
	open := b.openUntil.Load() != nil
	var gen uint64
	if s := b.core.state; s == BreakerClosed || s == BreakerDisabled {
		gen = b.core.gen
	}
	if !ch.ok && open == (b.core.state == BreakerOpen) && b.closedGen.Load() == gen {
		return // nothing to publish: the common case, one atomic load each
	}
	if b.core.state == BreakerOpen {
		until := b.core.openUntil
		b.openUntil.Store(&until)
	} else if open {
		b.openUntil.Store(nil)
	}
	b.closedGen.Store(gen)
}

func breakerBadRate(r float64) bool { return math.IsNaN(r) || r < 0 || r > 1 }

func newBreakerCore(cfg BreakerConfig) (breakerCore, error) {
	bad := func(field string, v any, want string) (breakerCore, error) {
		return breakerCore{}, fmt.Errorf("resilience: BreakerConfig.%s %v: %s", field, v, want)
	}
	switch {
	case cfg.WindowSize < 0:
		return bad("WindowSize", cfg.WindowSize, "must not be negative")
	case cfg.Window < 0:
		return bad("Window", cfg.Window, "must not be negative")
	case cfg.Buckets < 0:
		return bad("Buckets", cfg.Buckets, "must not be negative")
	case cfg.MinCalls < 0:
		return bad("MinCalls", cfg.MinCalls, "must not be negative")
	case breakerBadRate(cfg.FailureRate):
		return bad("FailureRate", cfg.FailureRate, "must be in (0, 1]")
	case cfg.SlowCallDuration < 0:
		return bad("SlowCallDuration", cfg.SlowCallDuration, "must not be negative")
	case breakerBadRate(cfg.SlowCallRate):
		return bad("SlowCallRate", cfg.SlowCallRate, "must be in (0, 1]")
	case cfg.ConsecutiveFailures < 0:
		return bad("ConsecutiveFailures", cfg.ConsecutiveFailures, "must not be negative")
	case cfg.OpenDuration < 0:
		return bad("OpenDuration", cfg.OpenDuration, "must not be negative")
	case math.IsNaN(cfg.OpenBackoff) || math.IsInf(cfg.OpenBackoff, 0) || (cfg.OpenBackoff != 0 && cfg.OpenBackoff < 1):
		return bad("OpenBackoff", cfg.OpenBackoff, "must be 0 or a finite number ≥ 1")
	case cfg.MaxOpenDuration < 0:
		return bad("MaxOpenDuration", cfg.MaxOpenDuration, "must not be negative")
	case cfg.HalfOpenProbes < 0:
		return bad("HalfOpenProbes", cfg.HalfOpenProbes, "must not be negative")
	case cfg.HalfOpenSuccesses < 0:
		return bad("HalfOpenSuccesses", cfg.HalfOpenSuccesses, "must not be negative")
	case cfg.WindowSize > 0 && cfg.Window > 0:
		return bad("Window", cfg.Window, "cannot be combined with WindowSize (a breaker has a count or a time window)")
	case cfg.Buckets > 0 && cfg.Window == 0:
		return bad("Buckets", cfg.Buckets, "needs Window (buckets split a time window)")
	case cfg.SlowCallRate > 0 && cfg.SlowCallDuration == 0:
		return bad("SlowCallRate", cfg.SlowCallRate, "needs SlowCallDuration")
	}
	if cfg.ConsecutiveFailures > 0 {
		for _, f := range []struct {
			name string
			set  bool
		}{
			{"WindowSize", cfg.WindowSize > 0}, {"Window", cfg.Window > 0}, {"MinCalls", cfg.MinCalls > 0},
			{"FailureRate", cfg.FailureRate > 0}, {"SlowCallDuration", cfg.SlowCallDuration > 0},
		} {
			if f.set {
				return bad("ConsecutiveFailures", cfg.ConsecutiveFailures,
					"cannot be combined with "+f.name+" (consecutive mode keeps no window)")
			}
		}
	}

	c := breakerCore{
		consecutiveLimit: cfg.ConsecutiveFailures,
		slowCallDuration: cfg.SlowCallDuration,
		state:            BreakerClosed,
		gen:              1, // the zero Permit is stale
	}
	if c.consecutiveLimit == 0 {
		minCalls := cfg.MinCalls
		if cfg.Window > 0 {
			buckets := cfg.Buckets
			if buckets == 0 {
				buckets = DefaultBreakerBuckets
			}
			if cfg.Window < time.Duration(buckets) {
				return bad("Window", cfg.Window, fmt.Sprintf("is shorter than %d ns (one per bucket)", buckets))
			}
			c.window = newBreakerTimeWindow(cfg.Window, buckets)
			if minCalls == 0 {
				minCalls = DefaultBreakerMinCalls
			}
		} else {
			size := cfg.WindowSize
			if size == 0 {
				size = DefaultBreakerWindowSize
			}
			if minCalls == 0 {
				minCalls = min(DefaultBreakerMinCalls, size)
			}
			if minCalls > size {
				return bad("MinCalls", minCalls, fmt.Sprintf("is larger than WindowSize %d (the breaker could never trip)", size))
			}
			c.window = newBreakerCountWindow(size)
		}
		c.minCalls = minCalls
		c.failureRate = cfg.FailureRate
		if c.failureRate == 0 {
			c.failureRate = DefaultBreakerFailureRate
		}
		c.slowCallRate = cfg.SlowCallRate
		if c.slowCallRate == 0 {
			c.slowCallRate = DefaultBreakerSlowCallRate
		}
	}
	c.openDuration = cfg.OpenDuration
	if c.openDuration == 0 {
		c.openDuration = DefaultBreakerOpenDuration
	}
	c.openBackoff = cfg.OpenBackoff
	if c.openBackoff == 0 {
		c.openBackoff = 1
	}
	c.maxOpenDuration = cfg.MaxOpenDuration
	if c.maxOpenDuration == 0 {
		c.maxOpenDuration = DefaultBreakerMaxOpenGrowth * c.openDuration
	}
	if c.maxOpenDuration < c.openDuration {
		return bad("MaxOpenDuration", c.maxOpenDuration, fmt.Sprintf("is shorter than OpenDuration %v", c.openDuration))
	}
	c.probes = cfg.HalfOpenProbes
	if c.probes == 0 {
		c.probes = 1
	}
	c.probeSuccesses = cfg.HalfOpenSuccesses
	if c.probeSuccesses == 0 {
		c.probeSuccesses = c.probes
	}
	return c, nil
}

// Allow asks to make a call at time now. It returns a permit to hand to Done when the call ends,
// or ErrOpen when the breaker is open, forced open, or half-open with every probe slot taken.
// Allow moves an open breaker whose open duration has passed to half-open.
func (b *Breaker) Allow(now time.Time) (Permit, error) {
	return b.allow(context.Background(), now)
}

func (b *Breaker) allow(ctx context.Context, now time.Time) (Permit, error) {
	b.mu.Lock()
	p, ch, err := b.core.allow(now)
	b.changed(ch)
	b.mu.Unlock()
	b.notify(ctx, ch)
	if err != nil {
		b.em.emit(ctx, Event{Type: EventRejected, Err: err})
	}
	return p, err
}

// Done reports how the call of permit p ended, at time now. Permits issued before the latest
// state change (and the zero Permit) are ignored. Every permit from Allow must be handed to Done
// once, with OutcomeIgnored when the call is not to be counted, or a half-open probe slot stays
// taken.
func (b *Breaker) Done(p Permit, now time.Time, o Outcome) {
	b.done(context.Background(), p, now, o)
}

func (b *Breaker) done(ctx context.Context, p Permit, now time.Time, o Outcome) {
	b.mu.Lock()
	ch := b.core.done(p, now, o)
	b.changed(ch)
	b.mu.Unlock()
	b.notify(ctx, ch)
}

// State returns the state at time now; an open breaker whose open duration has passed becomes
// half-open (and OnStateChange is told).
func (b *Breaker) State(now time.Time) BreakerState {
	b.mu.Lock()
	ch := b.core.tick(now)
	b.changed(ch)
	s := b.core.state
	b.mu.Unlock()
	b.notify(context.Background(), ch)
	return s
}

// Counts returns what the window holds at time now (all zero but ConsecutiveFailures in
// consecutive mode).
func (b *Breaker) Counts(now time.Time) BreakerCounts {
	b.mu.Lock()
	defer b.mu.Unlock()
	c := BreakerCounts{ConsecutiveFailures: b.core.consecutive}
	if b.core.window != nil {
		c.Calls, c.Failures, c.Slow = b.core.window.counts(now)
	}
	return c
}

// ForceOpen holds the breaker open, rejecting every call, until Reset or Disable.
func (b *Breaker) ForceOpen() { b.set(BreakerForcedOpen) }

// Disable lets every call through until Reset or ForceOpen; outcomes are still counted (Counts)
// but never trip the breaker.
func (b *Breaker) Disable() { b.set(BreakerDisabled) }

// Reset closes the breaker and forgets everything: the window, the consecutive failures and the
// growth of the open duration. Calls in flight from before are ignored when they end.
func (b *Breaker) Reset() { b.set(BreakerClosed) }

func (b *Breaker) set(s BreakerState) {
	b.mu.Lock()
	ch := b.core.moveTo(s)
	if s == BreakerClosed {
		b.core.clearCounts()
		b.core.trips = 0
	}
	b.changed(ch)
	b.mu.Unlock()
	b.notify(context.Background(), ch)
}

func (b *Breaker) notify(ctx context.Context, ch breakerChange) {
	if !ch.ok {
		return
	}
	if b.onChange != nil {
		b.onChange(ch.from, ch.to)
	}
	b.em.emit(ctx, Event{Type: EventStateChange, From: ch.from, To: ch.to})
}

// Execute runs fn through the breaker: it returns ErrOpen without calling fn when the breaker
// rejects, and otherwise fn's error unchanged, after counting the outcome (the caller's own
// cancellation is not counted). When ctx has already ended, fn is not called and ctx.Err() is
// returned. The breaker never waits, so Execute returns as soon as fn does.
func (b *Breaker) Execute(ctx context.Context, fn func(context.Context) error) (err error) {
	if err := ctx.Err(); err != nil {
		return err
	}
	p, start, err := b.acquire(ctx)
	if err != nil {
		return err
	}
	finished := false
	defer func() {
		if !finished { // fn panicked: count a failure, free the permit, let the panic go on
			b.done(ctx, p, b.clock.Now(), Outcome{Kind: OutcomeFailure})
		}
	}()
	err = fn(ctx)
	finished = true
	b.finish(ctx, p, start, err)
	return err
}

// WithBreaker returns b as a Policy: calls rejected by the breaker fail with ErrOpen, the others
// run next and are counted as Execute counts them. Put it inside Retry (Compose(retry, breaker,
// timeout)) so each attempt asks the breaker and an open breaker stops the retries.
func WithBreaker[R any](b *Breaker) Policy[R] { return breakerPolicy[R]{b} }

// breakerPolicy is WithBreaker's policy; see chain for why it is a type of its own.
type breakerPolicy[R any] struct{ b *Breaker }

// Apply implements Policy.
func (pol breakerPolicy[R]) Apply(next Func[R]) Func[R] {
	return func(ctx context.Context) (R, error) { return pol.run(ctx, next) }
}

func (pol breakerPolicy[R]) run(ctx context.Context, next Func[R]) (R, error) {
	b := pol.b
	if err := ctx.Err(); err != nil {
		var zero R
		return zero, err
	}
	p, start, err := b.acquire(ctx)
	if err != nil {
		var zero R
		return zero, err
	}
	finished := false
	defer func() {
		if !finished {
			b.done(ctx, p, b.clock.Now(), Outcome{Kind: OutcomeFailure})
		}
	}()
	r, err := next(ctx)
	finished = true
	b.finish(ctx, p, start, err)
	return r, err
}

// acquire is Allow for Execute and WithBreaker: it rejects an open breaker without the lock and,
// with lazyTime, reads the clock only when the breaker is open. start is when the call began (the
// zero time with lazyTime).
func (b *Breaker) acquire(ctx context.Context) (p Permit, start time.Time, err error) {
	if until := b.openUntil.Load(); until != nil {
		if now := b.clock.Now(); now.Before(*until) {
			b.em.emit(ctx, Event{Type: EventRejected, Err: ErrOpen})
			return Permit{}, now, ErrOpen
		}
	}
	if !b.lazyTime {
		start = b.clock.Now()
		if gen := b.closedGen.Load(); gen != 0 {
			return Permit{gen: gen}, start, nil
		}
		p, err = b.allow(ctx, start)
		return p, start, err
	}
	if gen := b.closedGen.Load(); gen != 0 {
		return Permit{gen: gen}, start, nil
	}
	b.mu.Lock()
	if b.core.state == BreakerOpen {
		start = b.clock.Now() // only an open breaker needs the time, to see its duration is over
	}
	p, ch, err := b.core.allow(start)
	b.changed(ch)
	b.mu.Unlock()
	b.notify(ctx, ch)
	return p, start, err // no observer with lazyTime: nothing to emit
}

// finish classifies err and reports the outcome.
func (b *Breaker) finish(ctx context.Context, p Permit, start time.Time, err error) {
	o := Outcome{Kind: OutcomeSuccess}
	switch {
	case err == nil:
	case CallerEnded(ctx, err):
		o.Kind = OutcomeIgnored
	case b.isFailure == nil || b.isFailure(err):
		o.Kind = OutcomeFailure
	}
	if b.lazyTime {
		// The window ignores time, so the core gets the zero time; a trip stamps its open
		// deadline from the clock.
		b.mu.Lock()
		ch := b.core.done(p, time.Time{}, o)
		if ch.ok && b.core.state == BreakerOpen {
			b.core.openUntil = b.clock.Now().Add(b.core.openFor(b.core.trips))
		}
		b.changed(ch)
		b.mu.Unlock()
		b.notify(ctx, ch)
		return
	}
	now := b.clock.Now()
	o.Duration = now.Sub(start)
	if b.em.on() { // the outcome first, then the state change it may cause
		e := Event{Type: EventSuccess, Duration: o.Duration}
		switch o.Kind {
		case OutcomeFailure:
			e.Type, e.Err = EventFailure, err
		case OutcomeIgnored:
			e.Type, e.Err = EventIgnored, err
		}
		b.em.emit(ctx, e)
	}
	b.done(ctx, p, now, o)
}

// Name returns the breaker's name from its config.
func (b *Breaker) Name() string { return b.em.name }

// --- the state machine ---

func (c *breakerCore) moveTo(s BreakerState) breakerChange {
	from := c.state
	c.state = s
	c.gen++
	c.inFlight, c.successes = 0, 0
	if from == s {
		return breakerChange{}
	}
	return breakerChange{from: from, to: s, ok: true}
}

func (c *breakerCore) clearCounts() {
	c.consecutive = 0
	if c.window != nil {
		c.window.reset()
	}
}

// tick moves an open breaker whose time is up to half-open.
func (c *breakerCore) tick(now time.Time) breakerChange {
	if c.state == BreakerOpen && !now.Before(c.openUntil) {
		return c.moveTo(BreakerHalfOpen)
	}
	return breakerChange{}
}

func (c *breakerCore) allow(now time.Time) (Permit, breakerChange, error) {
	switch c.state {
	case BreakerClosed, BreakerDisabled:
		return Permit{gen: c.gen}, breakerChange{}, nil
	case BreakerOpen:
		ch := c.tick(now)
		if !ch.ok {
			return Permit{}, ch, ErrOpen
		}
		p, err := c.allowProbe()
		return p, ch, err
	case BreakerHalfOpen:
		p, err := c.allowProbe()
		return p, breakerChange{}, err
	}
	return Permit{}, breakerChange{}, ErrOpen // forced open
}

func (c *breakerCore) allowProbe() (Permit, error) {
	if c.inFlight >= c.probes {
		return Permit{}, ErrOpen
	}
	c.inFlight++
	return Permit{gen: c.gen, probe: true}, nil
}

func (c *breakerCore) done(p Permit, now time.Time, o Outcome) breakerChange {
	if p.gen != c.gen {
		return breakerChange{}
	}
	slow := c.slowCallDuration > 0 && o.Duration >= c.slowCallDuration
	failed := o.Kind == OutcomeFailure
	switch c.state {
	case BreakerHalfOpen:
		if !p.probe {
			return breakerChange{}
		}
		c.inFlight--
		switch {
		case o.Kind == OutcomeIgnored:
			return breakerChange{}
		case failed || slow:
			return c.trip(now)
		}
		c.successes++
		if c.successes >= c.probeSuccesses {
			c.trips = 0
			c.clearCounts()
			return c.moveTo(BreakerClosed)
		}
		return breakerChange{}
	case BreakerClosed, BreakerDisabled:
		if o.Kind == OutcomeIgnored {
			return breakerChange{}
		}
		if failed {
			c.consecutive++
		} else {
			c.consecutive = 0
		}
		if c.window != nil {
			c.window.add(now, failed, slow)
		}
		if c.state == BreakerClosed && c.shouldTrip(now) {
			return c.trip(now)
		}
	}
	return breakerChange{}
}

func (c *breakerCore) shouldTrip(now time.Time) bool {
	if c.window == nil {
		return c.consecutive >= c.consecutiveLimit
	}
	calls, failures, slow := c.window.counts(now)
	if calls == 0 || calls < c.minCalls {
		return false
	}
	n := float64(calls)
	return float64(failures)/n >= c.failureRate ||
		(c.slowCallDuration > 0 && float64(slow)/n >= c.slowCallRate)
}

// trip opens the breaker for the open duration of this trip (growing by openBackoff for each trip
// since the breaker last closed).
func (c *breakerCore) trip(now time.Time) breakerChange {
	c.trips++
	c.openUntil = now.Add(c.openFor(c.trips))
	c.clearCounts()
	return c.moveTo(BreakerOpen)
}

func (c *breakerCore) openFor(trips int) time.Duration {
	d := float64(c.openDuration)
	for i := 1; i < trips && d < float64(c.maxOpenDuration); i++ {
		d *= c.openBackoff
	}
	if d >= float64(c.maxOpenDuration) {
		return c.maxOpenDuration // also keeps a huge float out of the int64 conversion
	}
	return time.Duration(d)
}

package resilience

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/faultline-dev/faultline/clock"
)

// Default adaptive throttling settings, used for zero fields of ThrottleConfig.
const (
	// DefaultThrottleK is the SRE book's multiplier: the client sends up to K× what the backend
	// accepts before it starts rejecting.
	DefaultThrottleK = 2.0
	// DefaultThrottleWindow is the SRE book's two minutes of history.
	DefaultThrottleWindow = 2 * time.Minute
	// DefaultThrottleBuckets splits the window into 5 s buckets.
	DefaultThrottleBuckets = 24
)

// ThrottleConfig configures a Throttle. The zero value is the SRE book's setting: K = 2 over the
// last two minutes.
type ThrottleConfig struct {
	// K is how many requests per accepted request the client may send before it starts rejecting
	// locally. Lower is more aggressive (K = 1 rejects as soon as anything fails); higher lets
	// more requests reach an overloaded backend. Must be ≥ 1; zero means DefaultThrottleK (2).
	K float64
	// Window is how far back requests and accepts count. Zero means DefaultThrottleWindow (2 min).
	Window time.Duration
	// Buckets is how many buckets Window is split into; counts leave one bucket at a time. Zero
	// means DefaultThrottleBuckets (24).
	Buckets int
	// Seed seeds the random source behind the rejection decisions, so a run can be replayed. Zero
	// picks a random seed, which Seed() returns.
	Seed uint64
	// IsFailure classifies a non-nil error from the guarded call: true means the backend did not
	// accept the request (overloaded, unavailable, timed out), false that it did (a "not found" is
	// an accepted request). Nil means every non-nil error is a rejection. The end of the caller's
	// own context is neither: the request is not counted.
	IsFailure func(err error) bool
	// Clock is read by Execute and WithThrottle. Nil means clock.Real().
	Clock clock.Clock
	// OnReject, when set, is called (outside the lock, on the caller's goroutine) with the
	// rejection probability each time the throttle rejects a call.
	OnReject func(probability float64)
	// Name names the policy in events; Observer, when set, receives EventRejected for each rejection, and for each call
	// made through Execute or WithThrottle EventSuccess, EventFailure or EventIgnored (the caller
	// gave up).
	Name     string
	Observer Observer
}

// Throttle is adaptive client-side throttling, the second breaker kind (Google SRE book, ch. 21
// "Handling Overload", "Client-side throttling"): over a sliding window the client counts requests
// (every call it wanted to make, those it rejected itself included) and accepts (calls the backend
// handled), and rejects a new call locally with probability
//
//	max(0, (requests − K·accepts) / (requests + 1))
//
// so a healthy backend sees no rejections and an overloaded one sees a load that tracks what it can
// accept, without an open/closed state to flap. Allow and Done form the deterministic core (time
// and the random number come from the caller); Execute and WithThrottle are the runtime layer. A
// Throttle is safe for concurrent use.
type Throttle struct {
	mu     sync.Mutex
	k      float64
	window *breakerTimeWindow // calls = requests, failures = requests not accepted
	rng    *rand.Rand
	seed   uint64

	clock     clock.Clock
	isFailure func(error) bool
	onReject  func(float64)
	em        emitter
}

// NewThrottle validates cfg and returns a throttle; the error names the bad field.
func NewThrottle(cfg ThrottleConfig) (*Throttle, error) {
	switch {
	case math.IsNaN(cfg.K) || math.IsInf(cfg.K, 0) || (cfg.K != 0 && cfg.K < 1):
		return nil, fmt.Errorf("resilience: ThrottleConfig.K %v: must be 0 or a finite number ≥ 1", cfg.K)
	case cfg.Window < 0:
		return nil, fmt.Errorf("resilience: ThrottleConfig.Window %v: must not be negative", cfg.Window)
	case cfg.Buckets < 0:
		return nil, fmt.Errorf("resilience: ThrottleConfig.Buckets %d: must not be negative", cfg.Buckets)
	}
	if cfg.K == 0 {
		cfg.K = DefaultThrottleK
	}
	if cfg.Window == 0 {
		cfg.Window = DefaultThrottleWindow
	}
	if cfg.Buckets == 0 {
		cfg.Buckets = DefaultThrottleBuckets
	}
	if cfg.Window < time.Duration(cfg.Buckets) {
		return nil, fmt.Errorf("resilience: ThrottleConfig.Window %v: is shorter than %d ns (one per bucket)", cfg.Window, cfg.Buckets)
	}
	if cfg.Seed == 0 {
		cfg.Seed = rand.Uint64() | 1
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.Real()
	}
	return &Throttle{
		k:         cfg.K,
		window:    newBreakerTimeWindow(cfg.Window, cfg.Buckets),
		rng:       rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15)),
		seed:      cfg.Seed,
		clock:     cfg.Clock,
		isFailure: cfg.IsFailure,
		onReject:  cfg.OnReject,
		em:        newEmitter(KindThrottle, cfg.Name, cfg.Observer),
	}, nil
}

// Seed returns the seed of the throttle's random source (ThrottleConfig.Seed, or the one picked
// when that was zero).
func (t *Throttle) Seed() uint64 { return t.seed }

// Allow decides, at time now, whether a call may go to the backend: it returns ErrOpen when rnd
// (uniform in [0, 1), supplied by the caller so decisions are reproducible) is below the
// rejection probability, and then counts the rejected call as a request. An admitted call is
// counted when it is reported to Done.
func (t *Throttle) Allow(now time.Time, rnd float64) error {
	t.mu.Lock()
	p := t.probability(now)
	if rnd >= p {
		t.mu.Unlock()
		return nil
	}
	t.window.add(now, true, false)
	t.mu.Unlock()
	if t.onReject != nil {
		t.onReject(p)
	}
	return ErrOpen
}

// Done records, at time now, an admitted call that reached the backend: a request, and an accept
// when accepted is true. A call the caller abandoned should not be reported.
func (t *Throttle) Done(now time.Time, accepted bool) {
	t.mu.Lock()
	t.window.add(now, !accepted, false)
	t.mu.Unlock()
}

// Probability returns the rejection probability a call would face at time now.
func (t *Throttle) Probability(now time.Time) float64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.probability(now)
}

// Counts returns the requests and accepts in the window at time now.
func (t *Throttle) Counts(now time.Time) (requests, accepts int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	calls, failures, _ := t.window.counts(now)
	return calls, calls - failures
}

func (t *Throttle) probability(now time.Time) float64 {
	requests, failures, _ := t.window.counts(now)
	accepts := requests - failures
	return throttleProbability(requests, accepts, t.k)
}

// throttleProbability is the SRE book's client-side throttling formula.
func throttleProbability(requests, accepts int, k float64) float64 {
	return max(0, (float64(requests)-k*float64(accepts))/float64(requests+1))
}

// allowNow draws the random number and asks Allow at time now, reporting a rejection.
func (t *Throttle) allowNow(ctx context.Context, now time.Time) error {
	t.mu.Lock()
	rnd := t.rng.Float64()
	t.mu.Unlock()
	err := t.Allow(now, rnd)
	if err != nil {
		t.em.emit(ctx, Event{Type: EventRejected, Err: err})
	}
	return err
}

func (t *Throttle) finish(ctx context.Context, start time.Time, err error) {
	now := t.clock.Now()
	took := now.Sub(start)
	switch {
	case err == nil:
		t.Done(now, true)
		t.em.emit(ctx, Event{Type: EventSuccess, Duration: took})
	case CallerEnded(ctx, err):
		// the caller gave up: the backend neither accepted nor refused anything we know of
		t.em.emit(ctx, Event{Type: EventIgnored, Duration: took, Err: err})
	default:
		accepted := t.isFailure != nil && !t.isFailure(err)
		t.Done(now, accepted)
		if accepted {
			t.em.emit(ctx, Event{Type: EventSuccess, Duration: took, Err: err})
		} else {
			t.em.emit(ctx, Event{Type: EventFailure, Duration: took, Err: err})
		}
	}
}

// Execute runs fn unless the throttle rejects the call (ErrOpen), and counts the outcome. When
// ctx has already ended, fn is not called and ctx.Err() is returned. Execute never waits.
func (t *Throttle) Execute(ctx context.Context, fn func(context.Context) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	start := t.clock.Now()
	if err := t.allowNow(ctx, start); err != nil {
		return err
	}
	err := fn(ctx)
	t.finish(ctx, start, err)
	return err
}

// WithThrottle returns t as a Policy; see Execute. Put it inside Retry so that each attempt is
// throttled and counted.
func WithThrottle[R any](t *Throttle) Policy[R] { return throttlePolicy[R]{t} }

// throttlePolicy is WithThrottle's policy; see chain for why it is a type of its own.
type throttlePolicy[R any] struct{ t *Throttle }

// Apply implements Policy.
func (pol throttlePolicy[R]) Apply(next Func[R]) Func[R] {
	return func(ctx context.Context) (R, error) { return pol.run(ctx, next) }
}

func (pol throttlePolicy[R]) run(ctx context.Context, next Func[R]) (R, error) {
	t := pol.t
	if err := ctx.Err(); err != nil {
		var zero R
		return zero, err
	}
	start := t.clock.Now()
	if err := t.allowNow(ctx, start); err != nil {
		var zero R
		return zero, err
	}
	r, err := next(ctx)
	t.finish(ctx, start, err)
	return r, err
}

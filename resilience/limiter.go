package resilience

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/faultline-dev/faultline/clock"
)

// Default adaptive limiter settings, used for zero fields of LimiterConfig.
const (
	// DefaultLimiterInitialLimit is the limit a new Limiter starts at (Netflix concurrency-limits'
	// AIMDLimit and Gradient2Limit also start at 20).
	DefaultLimiterInitialLimit = 20
	// DefaultLimiterMinLimit is the lowest the limit can fall.
	DefaultLimiterMinLimit = 1
	// DefaultLimiterMaxLimit is the highest the limit can rise.
	DefaultLimiterMaxLimit = 1000
	// DefaultLimiterBackoffRatio multiplies the limit on each drop (Netflix's AIMDLimit default).
	DefaultLimiterBackoffRatio = 0.9
	// DefaultLimiterTolerance is how much slower than the long-term RTT the latest RTT may be
	// before the gradient algorithm shrinks the limit (Netflix's Gradient2Limit rttTolerance).
	DefaultLimiterTolerance = 1.5
	// DefaultLimiterSmoothing is the weight of each new estimate of the gradient algorithm
	// (Netflix's Gradient2Limit smoothing).
	DefaultLimiterSmoothing = 0.2
	// DefaultLimiterLongWindow is how many samples the long-term RTT average spans (Netflix's
	// Gradient2Limit longWindow).
	DefaultLimiterLongWindow = 600

	// limiterWarmup is how many first samples the long-term RTT takes as a plain mean before it
	// becomes an exponential average, so that the first sample alone does not set the baseline.
	limiterWarmup = 10
)

// LimitAlgorithm selects how the Limiter adapts its limit.
type LimitAlgorithm uint8

const (
	// LimitAIMD (the default) adds 1 to the limit for each success while the limiter is in use
	// and multiplies it by BackoffRatio for each drop (an overload error or a slow call): loss
	// based, like TCP Reno and Netflix's AIMDLimit.
	LimitAIMD LimitAlgorithm = iota
	// LimitGradient follows latency, after Netflix's Gradient2Limit: once per round trip, the
	// limit shrinks when the window's mean RTT exceeds Tolerance × the long-term average RTT, and
	// grows by Smoothing·√limit while it does not. Drops cut it by BackoffRatio.
	LimitGradient
)

// String returns the algorithm's name: "aimd" or "gradient".
func (a LimitAlgorithm) String() string {
	switch a {
	case LimitAIMD:
		return "aimd"
	case LimitGradient:
		return "gradient"
	}
	return fmt.Sprintf("LimitAlgorithm(%d)", uint8(a))
}

// LimitOutcome is how a call admitted by the LimiterCore ended.
type LimitOutcome uint8

const (
	// LimitSuccess: the call ended normally (an application error counts as a success: it says
	// nothing about overload). Its RTT feeds the algorithm.
	LimitSuccess LimitOutcome = iota
	// LimitDropped: the call shows overload (a timeout, or an error IsDrop accepts): the limit
	// shrinks by BackoffRatio.
	LimitDropped
	// LimitIgnored: the call is not counted (its caller gave up, or it panicked); only its slot is
	// released.
	LimitIgnored
)

// String returns the outcome's name.
func (o LimitOutcome) String() string {
	switch o {
	case LimitSuccess:
		return "success"
	case LimitDropped:
		return "dropped"
	case LimitIgnored:
		return "ignored"
	}
	return fmt.Sprintf("LimitOutcome(%d)", uint8(o))
}

// LimiterConfig configures a Limiter (and a LimiterCore, which ignores Clock, Name and
// Observer). The zero value is an AIMD limiter starting at 20 calls, between 1 and 1000, that
// backs off by 0.9 on each timeout.
type LimiterConfig struct {
	// Algorithm is LimitAIMD (the default) or LimitGradient.
	Algorithm LimitAlgorithm
	// InitialLimit is the limit to start at. Zero means DefaultLimiterInitialLimit (20), brought
	// within [MinLimit, MaxLimit]; when set it must lie within them.
	InitialLimit int
	// MinLimit is the lowest the limit can fall. Zero means DefaultLimiterMinLimit (1).
	MinLimit int
	// MaxLimit is the highest the limit can rise. Zero means DefaultLimiterMaxLimit (1000); it
	// must not be below MinLimit.
	MaxLimit int
	// BackoffRatio multiplies the limit on each drop, in both algorithms (AIMD rounds the result
	// down). In [0.5, 1); zero means DefaultLimiterBackoffRatio (0.9).
	BackoffRatio float64
	// SlowCall (AIMD only) makes a call that took at least this long count as a drop even when
	// it succeeded. Zero (the default) means only errors drop.
	SlowCall time.Duration
	// Tolerance (Gradient only) is how many times slower than the long-term average RTT the
	// latest RTT may be before the limit shrinks. At least 1; zero means
	// DefaultLimiterTolerance (1.5).
	Tolerance float64
	// Smoothing (Gradient only) is the weight of each new limit estimate: limit = limit·(1 −
	// Smoothing) + estimate·Smoothing. In (0, 1]; zero means DefaultLimiterSmoothing (0.2).
	Smoothing float64
	// LongWindow (Gradient only) is how many samples the long-term RTT average spans (an
	// exponential average with weight 2/(LongWindow+1)); a sample is the mean RTT of one window,
	// and a window closes about once per round trip. Zero means DefaultLimiterLongWindow (600).
	LongWindow int
	// IsDrop says which errors returned by the guarded call mean overload and shrink the limit;
	// other errors count as successes (an application error is not overload). Nil means errors
	// matching ErrTimeout or context.DeadlineExceeded. The end of the caller's own context
	// (CallerEnded) is never a drop, whatever IsDrop says: it is ignored.
	IsDrop func(error) bool
	// Clock measures each call's RTT. Nil means clock.Real().
	Clock clock.Clock
	// Name names the limiter in events; Observer, when set, receives EventRejected for each
	// shed call, EventSuccess, EventFailure (a drop) or EventIgnored with the RTT for each call
	// that ran, and EventLimitChanged each time the limit moves.
	Name     string
	Observer Observer
}

// LimiterCore is the adaptive limiter's deterministic state machine: the limit (a float, exposed
// rounded down), the count of calls in flight, and the RTT averages of the gradient algorithm.
// It starts no goroutine, never waits and reads no clock: the caller passes each call's end time
// and RTT, so the simulator runs it on virtual time. It is not safe for concurrent use; Limiter
// guards it with a mutex.
//
// AIMD moves the limit on every sample, as Netflix's AIMDLimit does: +1 for each success while the
// limiter is in use, ×BackoffRatio (rounded down) for each drop. The gradient moves it at most
// once per round trip, as Netflix's Gradient2Limit does behind its WindowedLimit: RTTs gather in a
// window, and the window closes when a call that started (now − rtt) at or after the last update
// ends; calls already running then were admitted under the old limit, so their RTTs say nothing
// yet about the new one. Updating on every sample instead makes the limit swing between its bounds
// (a hundred slow completions can cut it a hundred times in one round trip).
//
// Whether the limiter "is in use" (AIMD grows and Gradient moves the limit only then, as in
// Netflix's concurrency-limits) is judged when calls end: at least Limit()/2 calls, the ending one
// included, were in flight. The core has no per-call token, so it cannot see the count at the
// call's admission; in a steady state the two are the same.
type LimiterCore struct {
	alg       LimitAlgorithm
	minLimit  float64
	maxLimit  float64
	backoff   float64
	slowCall  time.Duration
	tolerance float64
	smoothing float64
	longAlpha float64 // weight of a sample in the long-term RTT: 2/(LongWindow+1)
	warmup    int     // samples averaged plainly before the long-term RTT becomes exponential

	limit    float64
	inFlight int
	moved    time.Time // Gradient: when the limit was last updated or cut; zero: never

	// Gradient: the RTTs of the calls that ended since the last update, and the averages.
	winSum   float64 // sum of the window's RTTs, in nanoseconds
	winN     int
	winInUse bool    // the window saw at least limit/2 calls in flight
	shortRTT float64 // mean RTT of the last window, in nanoseconds
	longRTT  float64 // long-term average of the short RTT, in nanoseconds
	samples  int     // short RTTs seen, up to warmup
}

// NewLimiterCore validates cfg (Clock, Name and Observer are ignored) and returns a core at its
// initial limit with nothing in flight; the error names the bad field.
func NewLimiterCore(cfg LimiterConfig) (*LimiterCore, error) {
	c, err := newLimiterCore(cfg)
	if err != nil {
		return nil, err
	}
	return &c, nil
}

func limiterBadFloat(v float64) bool { return math.IsNaN(v) || math.IsInf(v, 0) }

func newLimiterCore(cfg LimiterConfig) (LimiterCore, error) {
	bad := func(field string, v any, want string) (LimiterCore, error) {
		return LimiterCore{}, fmt.Errorf("resilience: LimiterConfig.%s %v: %s", field, v, want)
	}
	gradient := cfg.Algorithm == LimitGradient
	switch {
	case cfg.Algorithm != LimitAIMD && cfg.Algorithm != LimitGradient:
		return bad("Algorithm", cfg.Algorithm, "unknown (want LimitAIMD or LimitGradient)")
	case cfg.InitialLimit < 0:
		return bad("InitialLimit", cfg.InitialLimit, "must not be negative")
	case cfg.MinLimit < 0:
		return bad("MinLimit", cfg.MinLimit, "must not be negative")
	case cfg.MaxLimit < 0:
		return bad("MaxLimit", cfg.MaxLimit, "must not be negative")
	case limiterBadFloat(cfg.BackoffRatio) || (cfg.BackoffRatio != 0 && (cfg.BackoffRatio < 0.5 || cfg.BackoffRatio >= 1)):
		return bad("BackoffRatio", cfg.BackoffRatio, "must be in [0.5, 1) (0 means 0.9)")
	case cfg.SlowCall < 0:
		return bad("SlowCall", cfg.SlowCall, "must not be negative")
	case limiterBadFloat(cfg.Tolerance) || (cfg.Tolerance != 0 && cfg.Tolerance < 1):
		return bad("Tolerance", cfg.Tolerance, "must be a finite number ≥ 1 (0 means 1.5)")
	case limiterBadFloat(cfg.Smoothing) || cfg.Smoothing < 0 || cfg.Smoothing > 1:
		return bad("Smoothing", cfg.Smoothing, "must be in (0, 1] (0 means 0.2)")
	case cfg.LongWindow < 0:
		return bad("LongWindow", cfg.LongWindow, "must not be negative")
	case gradient && cfg.SlowCall > 0:
		return bad("SlowCall", cfg.SlowCall, "only applies to LimitAIMD (the gradient algorithm reads latency itself)")
	case !gradient && cfg.Tolerance != 0:
		return bad("Tolerance", cfg.Tolerance, "only applies to LimitGradient")
	case !gradient && cfg.Smoothing != 0:
		return bad("Smoothing", cfg.Smoothing, "only applies to LimitGradient")
	case !gradient && cfg.LongWindow != 0:
		return bad("LongWindow", cfg.LongWindow, "only applies to LimitGradient")
	}
	minLimit := cmp.Or(cfg.MinLimit, DefaultLimiterMinLimit)
	maxLimit := cmp.Or(cfg.MaxLimit, DefaultLimiterMaxLimit)
	if minLimit > maxLimit {
		return bad("MinLimit", minLimit, fmt.Sprintf("is larger than MaxLimit %d", maxLimit))
	}
	initial := cfg.InitialLimit
	if initial == 0 {
		initial = min(max(DefaultLimiterInitialLimit, minLimit), maxLimit)
	} else if initial < minLimit || initial > maxLimit {
		return bad("InitialLimit", initial, fmt.Sprintf("must be within [MinLimit %d, MaxLimit %d]", minLimit, maxLimit))
	}
	longWindow := cmp.Or(cfg.LongWindow, DefaultLimiterLongWindow)
	return LimiterCore{
		alg:       cfg.Algorithm,
		minLimit:  float64(minLimit),
		maxLimit:  float64(maxLimit),
		backoff:   cmp.Or(cfg.BackoffRatio, DefaultLimiterBackoffRatio),
		slowCall:  cfg.SlowCall,
		tolerance: cmp.Or(cfg.Tolerance, DefaultLimiterTolerance),
		smoothing: cmp.Or(cfg.Smoothing, DefaultLimiterSmoothing),
		longAlpha: 2 / float64(longWindow+1),
		warmup:    min(limiterWarmup, longWindow),
		limit:     float64(initial),
	}, nil
}

// Acquire admits a call when fewer than Limit() calls are in flight: it counts the call in
// flight and returns true. Otherwise it returns false and changes nothing (the call is shed).
func (c *LimiterCore) Acquire() bool {
	if c.inFlight >= c.Limit() {
		return false
	}
	c.inFlight++
	return true
}

// Release reports that an admitted call ended at now after running for rtt, with outcome o. It
// takes the call out of flight, adapts the limit (unless o is LimitIgnored) and returns the new
// limit, with changed true when Limit() moved. A Release with nothing in flight is ignored.
func (c *LimiterCore) Release(now time.Time, rtt time.Duration, o LimitOutcome) (limit int, changed bool) {
	before := c.Limit()
	if c.inFlight == 0 {
		return before, false
	}
	inUse := 2*c.inFlight >= before // counted before this call leaves
	c.inFlight--
	rtt = max(rtt, 0)
	switch {
	case o == LimitIgnored:
		return before, false
	case c.alg == LimitGradient:
		// Only a call that started at or after the last update says something about the
		// current limit.
		fresh := c.moved.IsZero() || !now.Add(-rtt).Before(c.moved)
		if o == LimitDropped {
			if fresh {
				c.backOff(now)
			}
		} else {
			c.gradient(now, rtt, inUse, fresh)
		}
	case o == LimitDropped, c.slowCall > 0 && rtt >= c.slowCall:
		c.backOff(now)
	case inUse:
		c.limit = min(c.limit+1, c.maxLimit)
	}
	after := c.Limit()
	return after, after != before
}

// backOff cuts the limit by the backoff ratio: rounded down for AIMD (so a limit of 1..10 still
// falls by one), kept fractional for the gradient, whose current window is dropped (its calls ran
// under the old limit); never below the minimum.
func (c *LimiterCore) backOff(now time.Time) {
	l := c.limit * c.backoff
	if c.alg == LimitAIMD {
		l = math.Floor(l)
	}
	c.limit = max(l, c.minLimit)
	c.moved = now
	c.winSum, c.winN, c.winInUse = 0, 0, false
}

// gradient adds one RTT to the window and, once a call that started after the last update ends,
// closes the window and updates the limit (after Netflix's Gradient2Limit):
//
//	short    = mean RTT of the window
//	long     = exponential average of short over LongWindow windows (decayed ×0.95 while > 2·short)
//	gradient = clamp(Tolerance·long/short, 0.5, 1)
//	limit    = limit·(1−Smoothing) + (limit·gradient + √limit)·Smoothing, within [Min, Max]
//
// The limit moves only when the window saw the limiter in use.
func (c *LimiterCore) gradient(now time.Time, rtt time.Duration, inUse, fresh bool) {
	c.winSum += float64(rtt)
	c.winN++
	c.winInUse = c.winInUse || inUse
	if !fresh {
		return
	}
	c.shortRTT = max(c.winSum/float64(c.winN), 1) // a zero RTT would make the ratio infinite
	used := c.winInUse
	c.winSum, c.winN, c.winInUse = 0, 0, false
	c.moved = now
	if c.samples < c.warmup {
		c.samples++
		c.longRTT += (c.shortRTT - c.longRTT) / float64(c.samples) // running mean
	} else {
		c.longRTT += (c.shortRTT - c.longRTT) * c.longAlpha
	}
	// After a long overload the long-term RTT sits far above the current one; pull it down
	// faster than the average would, so the limit can grow back promptly.
	if c.longRTT > 2*c.shortRTT {
		c.longRTT *= 0.95
	}
	if !used {
		return // too few calls in flight for the RTT to say anything about the limit
	}
	g := min(max(c.tolerance*c.longRTT/c.shortRTT, 0.5), 1)
	estimate := c.limit*g + math.Sqrt(c.limit) // √limit: the queue allowance
	next := c.limit*(1-c.smoothing) + estimate*c.smoothing
	c.limit = min(max(next, c.minLimit), c.maxLimit)
}

// Limit returns the current limit, rounded down: at least MinLimit, at most MaxLimit.
func (c *LimiterCore) Limit() int { return int(c.limit) }

// InFlight returns how many admitted calls have not been released.
func (c *LimiterCore) InFlight() int { return c.inFlight }

// Limiter is an adaptive concurrency limiter for servers: it sheds load by rejecting calls at
// once (never queueing them) when as many calls are in flight as its limit allows, and it moves
// the limit with what it measures, so that it settles near the concurrency the service can take
// without queueing (Little's law: limit ≈ throughput × latency). The algorithms come from Netflix's
// concurrency-limits (AIMDLimit, Gradient2Limit); see LimitAlgorithm.
//
// Its core (LimiterCore) is deterministic; Limiter is the runtime layer that reads the Clock,
// runs the call, classifies its error, and guards the core with one mutex. The success path takes
// the mutex twice and does not allocate. It is safe for concurrent use.
type Limiter struct {
	mu     sync.Mutex
	core   LimiterCore
	clock  clock.Clock
	isDrop func(error) bool
	em     emitter
}

// NewLimiter validates cfg and returns a Limiter at its initial limit; the error names the bad
// field.
func NewLimiter(cfg LimiterConfig) (*Limiter, error) {
	c, err := newLimiterCore(cfg)
	if err != nil {
		return nil, err
	}
	l := &Limiter{core: c, clock: cfg.Clock, isDrop: cfg.IsDrop, em: newEmitter(KindLimiter, cfg.Name, cfg.Observer)}
	if l.clock == nil {
		l.clock = clock.Real()
	}
	if l.isDrop == nil {
		l.isDrop = limiterDefaultIsDrop
	}
	return l, nil
}

// limiterDefaultIsDrop: a timeout (the policy's own or a deadline that is not the caller's) means
// overload.
func limiterDefaultIsDrop(err error) bool {
	return errors.Is(err, ErrTimeout) || errors.Is(err, context.DeadlineExceeded)
}

// Name returns the limiter's name from its config.
func (l *Limiter) Name() string { return l.em.name }

// Limit returns the current concurrency limit.
func (l *Limiter) Limit() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.core.Limit()
}

// InFlight returns how many calls run through the limiter now.
func (l *Limiter) InFlight() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.core.InFlight()
}

// Execute runs fn when fewer calls than the limit are in flight and returns fn's error unchanged.
// Otherwise it returns at once, without calling fn, an error matching ErrLimitExceeded that
// states the limit and the count in flight. When ctx has already ended it returns ctx.Err()
// without calling fn. The call's RTT and outcome then adapt the limit: nil is a success; the
// caller's own cancellation (CallerEnded) is not counted; an error IsDrop accepts is a drop; any
// other error is a success. A panic in fn frees its slot (uncounted) and goes on.
func (l *Limiter) Execute(ctx context.Context, fn func(context.Context) error) (err error) {
	if err := ctx.Err(); err != nil {
		return err
	}
	start, err := l.acquire(ctx)
	if err != nil {
		return err
	}
	finished := false
	defer func() {
		if !finished { // fn panicked: free the slot without counting the call
			l.finish(ctx, start, nil, true)
		}
	}()
	err = fn(ctx)
	finished = true
	l.finish(ctx, start, err, false)
	return err
}

// WithLimiter returns l as a Policy: calls beyond the limit fail at once with an error matching
// ErrLimitExceeded, the others run next and adapt the limit as Execute does. On a server, put it
// outermost, before any retry or timeout of the handler's own (an inner Timeout's ErrTimeout
// then counts as a drop).
func WithLimiter[R any](l *Limiter) Policy[R] { return limiterPolicy[R]{l} }

// limiterPolicy is WithLimiter's policy; see chain for why it is a type of its own.
type limiterPolicy[R any] struct{ l *Limiter }

// Apply implements Policy.
func (pol limiterPolicy[R]) Apply(next Func[R]) Func[R] {
	return func(ctx context.Context) (R, error) { return pol.run(ctx, next) }
}

func (pol limiterPolicy[R]) run(ctx context.Context, next Func[R]) (R, error) {
	l := pol.l
	if err := ctx.Err(); err != nil {
		var zero R
		return zero, err
	}
	start, err := l.acquire(ctx)
	if err != nil {
		var zero R
		return zero, err
	}
	finished := false
	defer func() {
		if !finished {
			l.finish(ctx, start, nil, true)
		}
	}()
	r, err := next(ctx)
	finished = true
	l.finish(ctx, start, err, false)
	return r, err
}

// limitExceededError is the error of a shed call: it matches ErrLimitExceeded and says the limit
// and the count in flight.
type limitExceededError struct{ limit, inFlight int }

func (e *limitExceededError) Error() string {
	return fmt.Sprintf("%v (limit %d, in flight %d)", ErrLimitExceeded, e.limit, e.inFlight)
}

func (e *limitExceededError) Unwrap() error { return ErrLimitExceeded }

// acquire admits the call and returns its start time, or sheds it.
func (l *Limiter) acquire(ctx context.Context) (time.Time, error) {
	l.mu.Lock()
	if !l.core.Acquire() {
		err := &limitExceededError{limit: l.core.Limit(), inFlight: l.core.InFlight()}
		l.mu.Unlock()
		l.em.emit(ctx, Event{Type: EventRejected, Err: err})
		return time.Time{}, err
	}
	l.mu.Unlock()
	return l.clock.Now(), nil
}

// finish classifies the call's end, releases its slot and reports.
func (l *Limiter) finish(ctx context.Context, start time.Time, err error, panicked bool) {
	now := l.clock.Now()
	rtt := now.Sub(start)
	o := LimitSuccess
	switch {
	case panicked:
		o = LimitIgnored
	case err == nil:
	case CallerEnded(ctx, err):
		o = LimitIgnored
	case l.isDrop(err):
		o = LimitDropped
	}
	l.mu.Lock()
	limit, changed := l.core.Release(now, rtt, o)
	l.mu.Unlock()
	if !l.em.on() {
		return
	}
	e := Event{Type: EventSuccess, Duration: rtt}
	switch o {
	case LimitDropped:
		e.Type, e.Err = EventFailure, err
	case LimitIgnored:
		e.Type, e.Err = EventIgnored, err
	}
	l.em.emit(ctx, e)
	if changed {
		l.em.emit(ctx, Event{Type: EventLimitChanged, Limit: limit})
	}
}

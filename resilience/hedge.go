package resilience

import (
	"context"
	"fmt"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/faultline-dev/faultline/clock"
)

// Default hedging settings, used for zero fields of HedgeConfig.
const (
	// DefaultHedgeMaxHedges is how many hedged attempts may start besides the first.
	DefaultHedgeMaxHedges = 1
	// DefaultHedgeWindow is how many recent latencies a percentile delay is computed over.
	DefaultHedgeWindow = 200
	// DefaultHedgeMinSamples is how many latencies a percentile delay needs before it replaces
	// the fixed Delay.
	DefaultHedgeMinSamples = 20
)

// HedgeConfig configures a Hedge. Delay is required; the rest has defaults.
type HedgeConfig struct {
	// Delay is how long to wait for an answer before starting each hedged attempt. Required
	// (> 0). With Percentile it is the delay used until MinSamples latencies were seen.
	Delay time.Duration
	// Percentile, when set (in (0, 1), e.g. 0.95), makes the delay the given percentile of the
	// latencies of recent calls ("The Tail at Scale": hedge after the p95, so about 5% of calls
	// send a second request). Zero means the fixed Delay.
	Percentile float64
	// Window is how many recent latencies the percentile is computed over. Zero means
	// DefaultHedgeWindow (200). Only with Percentile.
	Window int
	// MinSamples is how many latencies must be recorded before the percentile replaces Delay.
	// Zero means DefaultHedgeMinSamples (20), capped at Window. Only with Percentile.
	MinSamples int
	// MaxHedges is how many attempts may start besides the first. Zero means
	// DefaultHedgeMaxHedges (1).
	MaxHedges int
	// Retryable classifies a failed attempt's error: a retryable failure starts the next hedge at
	// once (when one is left) instead of waiting for the delay; a non-retryable one ends the call
	// with that error and cancels the other attempts. Nil means every error except those marked
	// with Permanent and ErrOpen.
	Retryable func(error) bool
	// Budget, when set, must grant every hedge (Acquire), and each call records one request:
	// hedges then spend the same budget as retries and cannot multiply load in an outage. A
	// refused hedge is not started; the attempts already running go on.
	Budget *RetryBudget
	// Clock times the delays. Nil means clock.Real().
	Clock clock.Clock
	// Name names the policy in events; Observer, when set, receives an EventHedge for each
	// hedged attempt started (Attempt ≥ 2, Duration the delay waited).
	Name     string
	Observer Observer
}

// HedgeCore is the hedge's deterministic part: the delay before a hedged attempt, fixed or a
// percentile of recorded latencies. It reads no clock. It is not safe for concurrent use; Hedge
// guards it with a mutex.
type HedgeCore struct {
	fixed      time.Duration
	percentile float64
	minSamples int
	samples    []time.Duration // ring buffer of the last len(samples) latencies
	next       int             // ring position of the next sample
	count      int             // samples recorded, capped at len(samples)
	sinceCalc  int             // samples recorded since delay was last computed
	delay      time.Duration   // the current percentile delay (valid once count ≥ minSamples)
	scratch    []time.Duration
}

// NewHedgeCore validates cfg (Delay, Percentile, Window, MinSamples) and returns a core.
func NewHedgeCore(cfg HedgeConfig) (*HedgeCore, error) {
	bad := func(field string, v any, want string) (*HedgeCore, error) {
		return nil, fmt.Errorf("resilience: HedgeConfig.%s %v: %s", field, v, want)
	}
	switch {
	case cfg.Delay <= 0:
		return bad("Delay", cfg.Delay, "must be > 0")
	case math.IsNaN(cfg.Percentile) || cfg.Percentile < 0 || cfg.Percentile >= 1:
		return bad("Percentile", cfg.Percentile, "must be 0 (fixed delay) or in (0, 1)")
	case cfg.Window < 0:
		return bad("Window", cfg.Window, "must not be negative")
	case cfg.MinSamples < 0:
		return bad("MinSamples", cfg.MinSamples, "must not be negative")
	case cfg.MaxHedges < 0:
		return bad("MaxHedges", cfg.MaxHedges, "must not be negative")
	case cfg.Percentile == 0 && (cfg.Window > 0 || cfg.MinSamples > 0):
		return bad("Percentile", cfg.Percentile, "is needed by Window and MinSamples")
	}
	c := &HedgeCore{fixed: cfg.Delay, percentile: cfg.Percentile}
	if cfg.Percentile > 0 {
		window := cfg.Window
		if window == 0 {
			window = DefaultHedgeWindow
		}
		c.minSamples = cfg.MinSamples
		if c.minSamples == 0 {
			c.minSamples = min(DefaultHedgeMinSamples, window)
		}
		if c.minSamples > window {
			return bad("MinSamples", c.minSamples, fmt.Sprintf("is larger than Window %d", window))
		}
		c.samples = make([]time.Duration, window)
		c.scratch = make([]time.Duration, 0, window)
	}
	return c, nil
}

// Delay returns how long to wait before the next hedged attempt.
func (c *HedgeCore) Delay() time.Duration {
	if c.percentile == 0 || c.count < c.minSamples {
		return c.fixed
	}
	return c.delay
}

// Record adds the latency of a call (from its first attempt's start to the first success). When a
// hedge won, the first attempt was cancelled and its own latency is only known to be at least d;
// recording d keeps the estimate a lower bound rather than the hedged (faster) latency.
func (c *HedgeCore) Record(d time.Duration) {
	if c.percentile == 0 {
		return
	}
	c.samples[c.next] = d
	c.next = (c.next + 1) % len(c.samples)
	if c.count < len(c.samples) {
		c.count++
	}
	c.sinceCalc++
	// Recompute when the estimate first becomes usable, then after every eighth of the window.
	if c.count == c.minSamples || (c.count >= c.minSamples && c.sinceCalc >= max(1, len(c.samples)/8)) {
		c.scratch = append(c.scratch[:0], c.samples[:c.count]...)
		slices.Sort(c.scratch)
		// Nearest-rank percentile.
		rank := int(math.Ceil(c.percentile*float64(len(c.scratch)))) - 1
		c.delay = max(c.scratch[max(rank, 0)], 1)
		c.sinceCalc = 0
	}
}

// Hedge sends a second (and third, …) request when the first has not answered within a delay,
// and takes whichever answers first ("The Tail at Scale", Dean and Barroso, 2013): it trades a
// few percent more requests for a much shorter tail. Use it only for idempotent operations.
//
// Every attempt runs on its own goroutine with its own context derived from the caller's. The
// first success wins: the other attempts are cancelled at once, and their results, should they
// still succeed, are handed to the discard function of WithHedgeDiscard (to close a response
// body, say). The winner's context is left alive, so a result that streams from it (an HTTP body)
// stays readable after Execute returns; it ends with the caller's context. Execute returns as soon
// as it has a result and does not wait for the cancelled attempts: their goroutines end when their
// operation honours its context.
//
// When the caller's context ends, every attempt is cancelled and the caller's error returned.
// A panic in an attempt is re-raised on the caller's goroutine. A Hedge is safe for concurrent use.
type Hedge struct {
	mu        sync.Mutex
	core      *HedgeCore
	maxHedges int
	retryable func(error) bool
	budget    *RetryBudget
	clk       clock.Clock
	em        emitter
}

// NewHedge validates cfg and returns a Hedge; the error names the bad field.
func NewHedge(cfg HedgeConfig) (*Hedge, error) {
	core, err := NewHedgeCore(cfg)
	if err != nil {
		return nil, err
	}
	h := &Hedge{core: core, maxHedges: cfg.MaxHedges, retryable: cfg.Retryable, budget: cfg.Budget,
		clk: cfg.Clock, em: newEmitter(KindHedge, cfg.Name, cfg.Observer)}
	if h.maxHedges == 0 {
		h.maxHedges = DefaultHedgeMaxHedges
	}
	if h.retryable == nil {
		h.retryable = retryDefaultRetryable
	}
	if h.clk == nil {
		h.clk = clock.Real()
	}
	return h, nil
}

// Delay returns the delay the next call would wait before hedging.
func (h *Hedge) Delay() time.Duration {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.core.Delay()
}

// Execute runs fn, hedged; see Hedge. It returns nil on the first success, the error of a
// non-retryable failure, the last error when every attempt failed, or the caller's ctx error
// when ctx ended first.
func (h *Hedge) Execute(ctx context.Context, fn func(context.Context) error) error {
	_, err := hedgeDo(h, ctx, func(ctx context.Context) (struct{}, error) { return struct{}{}, fn(ctx) }, nil)
	return err
}

// WithHedge returns h as a Policy. Put it outside the timeout (Compose(hedge, timeout)) so each
// attempt has its own deadline, and inside a breaker only if hedges should count as one call.
func WithHedge[R any](h *Hedge) Policy[R] { return WithHedgeDiscard[R](h, nil) }

// WithHedgeDiscard is WithHedge with a function that releases the result of an attempt that
// succeeded but lost (for example closing an *http.Response's body). It runs on the losing
// attempt's goroutine, or on the caller's when that finds the result waiting.
func WithHedgeDiscard[R any](h *Hedge, discard func(R)) Policy[R] {
	return PolicyFunc[R](func(next Func[R]) Func[R] {
		return func(ctx context.Context) (R, error) { return hedgeDo(h, ctx, next, discard) }
	})
}

// hedgeResult is what one attempt returns to the call.
type hedgeResult[R any] struct {
	res      R
	err      error
	attempt  int
	panicked bool
	panicVal any
}

// hedgeCall is the state of one hedged call shared with its attempts' goroutines.
type hedgeCall[R any] struct {
	mu      sync.Mutex
	decided bool // the call has its answer; late results are discarded by their goroutine
	results chan hedgeResult[R]
	cancels []context.CancelFunc
	discard func(R)
}

// deliver hands an attempt's result to the call, or disposes of it when the call has moved on.
func (c *hedgeCall[R]) deliver(r hedgeResult[R]) {
	c.mu.Lock()
	if !c.decided {
		c.results <- r // buffered for every attempt: never blocks
		c.mu.Unlock()
		return
	}
	c.mu.Unlock()
	c.dispose(r)
}

func (c *hedgeCall[R]) dispose(r hedgeResult[R]) {
	switch {
	case r.panicked:
		panic(r.panicVal) // nobody is left to receive it: crash like any goroutine's panic
	case r.err == nil && c.discard != nil:
		c.discard(r.res)
	}
}

// decide ends the call: every attempt but keep (0 for none) is cancelled, and results already
// delivered are disposed of. It returns a panic that arrived meanwhile, to re-raise.
func (c *hedgeCall[R]) decide(keep int) (panicVal any, panicked bool) {
	c.mu.Lock()
	c.decided = true
	c.mu.Unlock()
	for i, cancel := range c.cancels {
		if i+1 != keep {
			cancel()
		}
	}
	for {
		select {
		case r := <-c.results:
			if r.panicked {
				panicVal, panicked = r.panicVal, true
				continue
			}
			c.dispose(r)
		default:
			return panicVal, panicked
		}
	}
}

func hedgeDo[R any](h *Hedge, ctx context.Context, next Func[R], discard func(R)) (R, error) {
	var zero R
	if err := ctx.Err(); err != nil {
		return zero, err
	}
	start := h.clk.Now()
	if h.budget != nil {
		h.budget.RecordRequest(start)
	}
	h.mu.Lock()
	delay := h.core.Delay()
	h.mu.Unlock()

	total := h.maxHedges + 1
	call := &hedgeCall[R]{results: make(chan hedgeResult[R], total), discard: discard,
		cancels: make([]context.CancelFunc, 0, total)}
	launch := func() {
		actx, cancel := context.WithCancel(ctx)
		call.cancels = append(call.cancels, cancel)
		attempt := len(call.cancels)
		go func() {
			r := hedgeResult[R]{attempt: attempt, panicked: true}
			defer func() {
				if r.panicked {
					r.panicVal = recover()
				}
				call.deliver(r)
			}()
			r.res, r.err = next(actx)
			r.panicked = false
		}()
	}
	// end decides the call and re-raises a panic that arrived meanwhile.
	end := func(keep int) {
		if p, ok := call.decide(keep); ok {
			panic(p)
		}
	}

	launch()
	running := 1
	var timer clock.Timer
	var timerC <-chan time.Time
	arm := func() {
		if timer != nil {
			timer.Stop()
		}
		timer, timerC = nil, nil
		if len(call.cancels) < total {
			timer = h.clk.NewTimer(delay)
			timerC = timer.C()
		}
	}
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	// hedge starts the next attempt when the budget allows; false means no more hedges.
	hedge := func(waited time.Duration) bool {
		if h.budget != nil && !h.budget.Acquire(h.clk.Now()) {
			return false
		}
		launch()
		running++
		h.em.emit(ctx, Event{Type: EventHedge, Attempt: len(call.cancels), Duration: waited})
		return true
	}
	arm()

	var lastRes R
	var lastErr error
	lastAttempt := 0
	for {
		select {
		case <-ctx.Done():
			end(0)
			return zero, retryCallerErr(ctx, lastErr)
		case <-timerC:
			if hedge(delay) {
				arm()
			} else {
				timer, timerC = nil, nil
			}
		case r := <-call.results:
			running--
			if r.panicked {
				end(0)
				panic(r.panicVal)
			}
			if r.err == nil {
				elapsed := h.clk.Now().Sub(start)
				h.mu.Lock()
				h.core.Record(elapsed)
				h.mu.Unlock()
				end(r.attempt)
				return r.res, nil
			}
			if ctx.Err() != nil {
				end(0)
				return zero, retryCallerErr(ctx, r.err)
			}
			lastRes, lastErr, lastAttempt = r.res, r.err, r.attempt
			if !h.retryable(r.err) {
				end(r.attempt)
				return r.res, r.err
			}
			if running == 0 {
				if len(call.cancels) < total && hedge(0) {
					arm()
					continue
				}
				end(lastAttempt)
				return lastRes, lastErr
			}
		}
	}
}

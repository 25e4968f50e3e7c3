package resilience

import (
	"fmt"
	"math"
	"sync"
	"time"
)

// Default retry budget settings, used for zero fields.
const (
	DefaultBudgetRatio               = 0.1
	DefaultBudgetWindow              = 10 * time.Second
	DefaultBudgetMinRetriesPerSecond = 10.0
	DefaultBudgetBuckets             = 10
)

// RetryBudgetConfig configures a RetryBudget.
type RetryBudgetConfig struct {
	// Ratio is how many retries each request in the window earns: 0.1 allows one retry per ten
	// requests. Zero means DefaultBudgetRatio (0.1); a negative value means no retries earned by
	// requests (only the MinRetriesPerSecond reserve).
	Ratio float64
	// Window is how far back requests and retries count. Zero means DefaultBudgetWindow (10 s).
	Window time.Duration
	// MinRetriesPerSecond is a reserve that lets a client with little traffic still retry:
	// MinRetriesPerSecond·Window retries are allowed per window on top of Ratio. Zero means
	// DefaultBudgetMinRetriesPerSecond (10); a negative value means no reserve.
	MinRetriesPerSecond float64
	// Buckets is how many buckets the window is split into; counts leave the window one bucket at
	// a time. Zero means DefaultBudgetBuckets (10).
	Buckets int
}

// RetryBudget limits retries to a fraction of recent requests, so that retries cannot multiply
// the load on a struggling service: in an outage every request fails, and without a budget each
// caller's retries would add (MaxAttempts−1)× load. Modelled on Finagle's RetryBudget (ttl,
// minRetriesPerSec, percentCanRetry) and Envoy's retry budgets (budget_percent,
// min_retry_concurrency).
//
// In a window of Window, at most Ratio·requests + MinRetriesPerSecond·Window.Seconds() retries are
// allowed. The budget is a deterministic core: callers pass the time; it is safe for concurrent use
// and one budget is meant to be shared by every Retry calling the same service.
type RetryBudget struct {
	ratio   float64
	reserve float64
	width   time.Duration // one bucket
	mu      sync.Mutex
	buckets []budgetBucket
}

type budgetBucket struct {
	epoch    int64 // bucket index since the zero time: now / width
	requests int64
	retries  int64
}

// NewRetryBudget validates cfg and returns a budget; the error names the bad field.
func NewRetryBudget(cfg RetryBudgetConfig) (*RetryBudget, error) {
	switch {
	case math.IsNaN(cfg.Ratio) || math.IsInf(cfg.Ratio, 0):
		return nil, fmt.Errorf("resilience: RetryBudgetConfig.Ratio %v is not finite", cfg.Ratio)
	case math.IsNaN(cfg.MinRetriesPerSecond) || math.IsInf(cfg.MinRetriesPerSecond, 0):
		return nil, fmt.Errorf("resilience: RetryBudgetConfig.MinRetriesPerSecond %v is not finite", cfg.MinRetriesPerSecond)
	case cfg.Window < 0:
		return nil, fmt.Errorf("resilience: RetryBudgetConfig.Window %v is negative", cfg.Window)
	case cfg.Buckets < 0:
		return nil, fmt.Errorf("resilience: RetryBudgetConfig.Buckets %d is negative", cfg.Buckets)
	}
	if cfg.Ratio == 0 {
		cfg.Ratio = DefaultBudgetRatio
	}
	if cfg.Ratio < 0 {
		cfg.Ratio = 0
	}
	if cfg.MinRetriesPerSecond == 0 {
		cfg.MinRetriesPerSecond = DefaultBudgetMinRetriesPerSecond
	}
	if cfg.MinRetriesPerSecond < 0 {
		cfg.MinRetriesPerSecond = 0
	}
	if cfg.Window == 0 {
		cfg.Window = DefaultBudgetWindow
	}
	if cfg.Buckets == 0 {
		cfg.Buckets = DefaultBudgetBuckets
	}
	width := cfg.Window / time.Duration(cfg.Buckets)
	if width <= 0 {
		return nil, fmt.Errorf("resilience: RetryBudgetConfig.Buckets %d: more buckets than nanoseconds in Window %v", cfg.Buckets, cfg.Window)
	}
	return &RetryBudget{
		ratio:   cfg.Ratio,
		reserve: cfg.MinRetriesPerSecond * cfg.Window.Seconds(),
		width:   width,
		buckets: make([]budgetBucket, cfg.Buckets),
	}, nil
}

// budgetSlot returns the bucket for now, clearing it if it held an older epoch. Callers hold mu.
func (b *RetryBudget) budgetSlot(now time.Time) *budgetBucket {
	epoch := budgetEpoch(now, b.width)
	i := int(((epoch % int64(len(b.buckets))) + int64(len(b.buckets))) % int64(len(b.buckets)))
	s := &b.buckets[i]
	if s.epoch != epoch {
		*s = budgetBucket{epoch: epoch}
	}
	return s
}

func budgetEpoch(now time.Time, width time.Duration) int64 {
	n := now.UnixNano()
	e := n / int64(width)
	if n < 0 && n%int64(width) != 0 {
		e--
	}
	return e
}

// budgetCounts sums the buckets still inside the window ending at now. Callers hold mu.
func (b *RetryBudget) budgetCounts(now time.Time) (requests, retries int64) {
	epoch := budgetEpoch(now, b.width)
	oldest := epoch - int64(len(b.buckets)) + 1
	for _, s := range b.buckets {
		if s.epoch >= oldest && s.epoch <= epoch {
			requests += s.requests
			retries += s.retries
		}
	}
	return requests, retries
}

// RecordRequest counts one original (non-retry) request at now; each earns Ratio retries.
func (b *RetryBudget) RecordRequest(now time.Time) {
	b.mu.Lock()
	b.budgetSlot(now).requests++
	b.mu.Unlock()
}

// Acquire reports whether one retry may be made at now, and if so counts it.
func (b *RetryBudget) Acquire(now time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	requests, retries := b.budgetCounts(now)
	if float64(retries)+1 > b.ratio*float64(requests)+b.reserve+1e-9 {
		return false
	}
	b.budgetSlot(now).retries++
	return true
}

// Available returns how many retries Acquire would allow at now.
func (b *RetryBudget) Available(now time.Time) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	requests, retries := b.budgetCounts(now)
	n := math.Floor(b.ratio*float64(requests)+b.reserve+1e-9) - float64(retries)
	if n < 0 {
		return 0
	}
	return int(n)
}

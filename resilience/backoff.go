package resilience

import (
	"fmt"
	"math"
	"time"
)

// Jitter selects how Backoff randomizes a delay. The three randomized kinds are the ones compared
// in the AWS Architecture Blog post "Exponential Backoff And Jitter" (Marc Brooker, 2015).
type Jitter int

const (
	// JitterNone uses the exponential delay as is: min(Max, Base·Multiplier^n).
	JitterNone Jitter = iota
	// JitterFull draws uniformly from [0, d) where d is the exponential delay ("Full Jitter").
	JitterFull
	// JitterEqual keeps half of d and draws the other half: uniform in [d/2, d) ("Equal Jitter").
	JitterEqual
	// JitterDecorrelated draws uniformly from [Base, min(Max, 3·prev)), growing from the previous
	// delay rather than the attempt number ("Decorrelated Jitter").
	JitterDecorrelated
)

// String names the jitter kind.
func (j Jitter) String() string {
	switch j {
	case JitterNone:
		return "none"
	case JitterFull:
		return "full"
	case JitterEqual:
		return "equal"
	case JitterDecorrelated:
		return "decorrelated"
	}
	return fmt.Sprintf("Jitter(%d)", int(j))
}

// Default backoff settings, used for zero fields.
const (
	DefaultBackoffBase       = 100 * time.Millisecond
	DefaultBackoffMax        = 10 * time.Second
	DefaultBackoffMultiplier = 2.0
)

// Backoff computes the wait before a retry. It is a pure value: Delay reads no clock and draws no
// random number; the caller passes the random draw, so a schedule replays exactly.
type Backoff struct {
	// Base is the first delay (attempt 0). Zero means DefaultBackoffBase (100 ms).
	Base time.Duration
	// Max caps every delay. Zero means DefaultBackoffMax (10 s).
	Max time.Duration
	// Multiplier is the growth factor per attempt, at least 1. Zero means 2.
	Multiplier float64
	// Jitter selects the randomization; the zero value is JitterNone.
	Jitter Jitter
}

// Validate reports the first bad field, naming it.
func (b Backoff) Validate() error {
	switch {
	case b.Base < 0:
		return fmt.Errorf("resilience: Backoff.Base %v is negative", b.Base)
	case b.Max < 0:
		return fmt.Errorf("resilience: Backoff.Max %v is negative", b.Max)
	case b.Multiplier != 0 && !(b.Multiplier >= 1) || math.IsInf(b.Multiplier, 0):
		return fmt.Errorf("resilience: Backoff.Multiplier %v: want a finite value >= 1 (0 means 2)", b.Multiplier)
	case b.Jitter < JitterNone || b.Jitter > JitterDecorrelated:
		return fmt.Errorf("resilience: Backoff.Jitter %d: want JitterNone, JitterFull, JitterEqual or JitterDecorrelated", int(b.Jitter))
	}
	d := b.withDefaults()
	if d.Max < d.Base {
		return fmt.Errorf("resilience: Backoff.Max %v is below Base %v", d.Max, d.Base)
	}
	return nil
}

func (b Backoff) withDefaults() Backoff {
	if b.Base == 0 {
		b.Base = DefaultBackoffBase
	}
	if b.Max == 0 {
		b.Max = DefaultBackoffMax
	}
	if b.Multiplier == 0 {
		b.Multiplier = DefaultBackoffMultiplier
	}
	return b
}

// Exponential returns the un-jittered delay for attempt n (0-based: n = 0 is the wait before the
// first retry): min(Max, Base·Multiplier^n), without overflow for any n.
func (b Backoff) Exponential(attempt int) time.Duration {
	b = b.withDefaults()
	if attempt < 0 {
		attempt = 0
	}
	d := float64(b.Base) * math.Pow(b.Multiplier, float64(attempt))
	if math.IsNaN(d) || d >= float64(b.Max) {
		return b.Max
	}
	return time.Duration(d)
}

// Delay returns the wait before retry number attempt (0-based), given the previous delay (used
// only by JitterDecorrelated; pass 0 for the first retry) and a random draw rnd in [0, 1) (values
// outside are clamped). The result is always in [0, Max].
//
//   - JitterNone: d = min(Max, Base·Multiplier^attempt)
//   - JitterFull: rnd·d, uniform in [0, d)
//   - JitterEqual: d/2 + rnd·d/2, uniform in [d/2, d)
//   - JitterDecorrelated: Base + rnd·(min(Max, 3·max(prev, Base)) − Base)
func (b Backoff) Delay(attempt int, prev time.Duration, rnd float64) time.Duration {
	b = b.withDefaults()
	if !(rnd >= 0) { // also NaN
		rnd = 0
	}
	if rnd >= 1 {
		rnd = math.Nextafter(1, 0)
	}
	switch b.Jitter {
	case JitterFull:
		return time.Duration(rnd * float64(b.Exponential(attempt)))
	case JitterEqual:
		d := float64(b.Exponential(attempt))
		return time.Duration(d/2 + rnd*d/2)
	case JitterDecorrelated:
		if prev < b.Base {
			prev = b.Base
		}
		upper := 3 * float64(prev)
		if upper > float64(b.Max) {
			upper = float64(b.Max)
		}
		if upper <= float64(b.Base) {
			return time.Duration(upper)
		}
		return time.Duration(float64(b.Base) + rnd*(upper-float64(b.Base)))
	default:
		return b.Exponential(attempt)
	}
}

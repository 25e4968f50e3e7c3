package resilience

import "time"

// BreakerCounts is what a breaker's window holds at one moment.
type BreakerCounts struct {
	// Calls is how many outcomes the window holds (successes, failures and slow calls alike).
	Calls int
	// Failures is how many of them failed.
	Failures int
	// Slow is how many of them took at least SlowCallDuration (failed or not).
	Slow int
	// ConsecutiveFailures is how many failures were recorded since the last success.
	ConsecutiveFailures int
}

// breakerCountWindow holds the outcomes of the last len(ring) calls: a ring buffer of two bits per
// call with running totals, so adding an outcome is O(1) and never allocates.
type breakerCountWindow struct {
	ring     []uint8 // bit 0: failed, bit 1: slow
	next     int     // where the next outcome goes
	n        int     // outcomes held, ≤ len(ring)
	failures int
	slow     int
}

const (
	breakerBitFailed uint8 = 1 << iota
	breakerBitSlow
)

func newBreakerCountWindow(size int) *breakerCountWindow {
	return &breakerCountWindow{ring: make([]uint8, size)}
}

func (w *breakerCountWindow) add(_ time.Time, failed, slow bool) {
	if w.n == len(w.ring) {
		old := w.ring[w.next]
		if old&breakerBitFailed != 0 {
			w.failures--
		}
		if old&breakerBitSlow != 0 {
			w.slow--
		}
	} else {
		w.n++
	}
	var v uint8
	if failed {
		v |= breakerBitFailed
		w.failures++
	}
	if slow {
		v |= breakerBitSlow
		w.slow++
	}
	w.ring[w.next] = v
	w.next++
	if w.next == len(w.ring) {
		w.next = 0
	}
}

func (w *breakerCountWindow) counts(time.Time) (calls, failures, slow int) {
	return w.n, w.failures, w.slow
}

func (w *breakerCountWindow) reset() {
	clear(w.ring)
	w.next, w.n, w.failures, w.slow = 0, 0, 0, 0
}

// breakerTimeWindow holds the outcomes of the last Window of time, split into buckets of equal
// width: a bucket covers [epoch·width, (epoch+1)·width) and leaves the window whole once time has
// moved len(buckets) widths past it (the classic bucketed sliding window of Hystrix and
// resilience4j's SlidingTimeWindowMetrics). Outcomes therefore expire with a granularity of one
// bucket; the window spans between Window−width and Window of history.
type breakerTimeWindow struct {
	width   int64 // nanoseconds per bucket
	buckets []breakerBucket
	newest  int64 // the highest epoch seen; buckets older than newest−len+1 are stale
}

type breakerBucket struct {
	epoch    int64
	calls    int
	failures int
	slow     int
}

func newBreakerTimeWindow(window time.Duration, buckets int) *breakerTimeWindow {
	w := &breakerTimeWindow{width: int64(window) / int64(buckets), buckets: make([]breakerBucket, buckets)}
	if w.width < 1 {
		w.width = 1
	}
	w.reset()
	return w
}

func (w *breakerTimeWindow) epoch(now time.Time) int64 {
	ns := now.UnixNano()
	e := ns / w.width
	if ns < 0 && ns%w.width != 0 {
		e-- // floor, for times before 1970
	}
	return e
}

// live reports whether a bucket of epoch e is inside the window that ends at epoch cur.
func (w *breakerTimeWindow) live(e, cur int64) bool {
	return e <= cur && e > cur-int64(len(w.buckets))
}

func (w *breakerTimeWindow) add(now time.Time, failed, slow bool) {
	e := w.epoch(now)
	if e > w.newest {
		w.newest = e
	}
	if !w.live(e, w.newest) {
		return // a time older than the window (the caller's clock went backwards): nothing to count
	}
	b := &w.buckets[int(breakerMod(e, int64(len(w.buckets))))]
	if b.epoch != e {
		*b = breakerBucket{epoch: e}
	}
	b.calls++
	if failed {
		b.failures++
	}
	if slow {
		b.slow++
	}
}

func (w *breakerTimeWindow) counts(now time.Time) (calls, failures, slow int) {
	cur := max(w.epoch(now), w.newest)
	for i := range w.buckets {
		b := &w.buckets[i]
		if w.live(b.epoch, cur) {
			calls += b.calls
			failures += b.failures
			slow += b.slow
		}
	}
	return calls, failures, slow
}

func (w *breakerTimeWindow) reset() {
	for i := range w.buckets {
		w.buckets[i] = breakerBucket{epoch: -1 << 62}
	}
	w.newest = -1 << 62
}

func breakerMod(a, n int64) int64 {
	m := a % n
	if m < 0 {
		m += n
	}
	return m
}

package clock

import (
	"container/heap"
	"context"
	"sync"
	"time"
)

// Manual is a clock that moves only when told to (Advance, Set). Timers, AfterFunc callbacks and
// sleepers fire, in deadline order, as time passes their deadline. It is safe for concurrent use.
// Tests use WaitForTimers to know that the code under test is blocked on the clock before advancing
// it, so they never sleep on the wall clock.
type Manual struct {
	mu      sync.Mutex
	now     time.Time
	timers  timerHeap // pending timers, earliest deadline first
	seq     uint64
	changed chan struct{} // closed and replaced whenever the set of pending timers changes
}

// NewManual returns a manual clock reading start (a fixed date when start is zero, so results do
// not depend on when a test runs).
func NewManual(start time.Time) *Manual {
	if start.IsZero() {
		start = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	}
	return &Manual{now: start, changed: make(chan struct{})}
}

// Now returns the clock's time.
func (m *Manual) Now() time.Time {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.now
}

// Since returns the clock's time minus t.
func (m *Manual) Since(t time.Time) time.Duration { return m.Now().Sub(t) }

type manualTimer struct {
	m        *Manual
	deadline time.Time
	seq      uint64 // creation order breaks ties between equal deadlines
	c        chan time.Time
	f        func()
	pending  bool
	index    int // position in the heap while pending
}

// timerHeap orders pending timers by deadline, then by creation.
type timerHeap []*manualTimer

func (h timerHeap) Len() int { return len(h) }
func (h timerHeap) Less(i, j int) bool {
	if !h[i].deadline.Equal(h[j].deadline) {
		return h[i].deadline.Before(h[j].deadline)
	}
	return h[i].seq < h[j].seq
}
func (h timerHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index, h[j].index = i, j
}
func (h *timerHeap) Push(x any) {
	t := x.(*manualTimer)
	t.index = len(*h)
	*h = append(*h, t)
}
func (h *timerHeap) Pop() any {
	old := *h
	t := old[len(old)-1]
	*h = old[:len(old)-1]
	return t
}

func (t *manualTimer) C() <-chan time.Time { return t.c }

func (t *manualTimer) Stop() bool {
	t.m.mu.Lock()
	defer t.m.mu.Unlock()
	was := t.pending
	t.m.remove(t)
	return was
}

func (t *manualTimer) Reset(d time.Duration) bool {
	m := t.m
	m.mu.Lock()
	was := t.pending
	m.remove(t)
	t.deadline = m.now.Add(d)
	m.seq++
	t.seq = m.seq
	fire := m.schedule(t)
	m.mu.Unlock()
	fire()
	return was
}

// NewTimer returns a timer that fires when the clock reaches now + d.
func (m *Manual) NewTimer(d time.Duration) Timer {
	return m.add(d, nil)
}

// AfterFunc calls f in its own goroutine when the clock reaches now + d.
func (m *Manual) AfterFunc(d time.Duration, f func()) Timer {
	return m.add(d, f)
}

func (m *Manual) add(d time.Duration, f func()) *manualTimer {
	m.mu.Lock()
	m.seq++
	t := &manualTimer{m: m, deadline: m.now.Add(d), seq: m.seq, f: f}
	if f == nil {
		t.c = make(chan time.Time, 1)
	}
	fire := m.schedule(t)
	m.mu.Unlock()
	fire()
	return t
}

// schedule registers a timer, or fires it at once when its deadline has passed. It returns the
// work to do after the lock is released.
func (m *Manual) schedule(t *manualTimer) func() {
	if !t.deadline.After(m.now) {
		return t.fire(m.now)
	}
	t.pending = true
	heap.Push(&m.timers, t)
	m.notify()
	return func() {}
}

// fire delivers a timer; the returned func runs an AfterFunc callback outside the lock.
func (t *manualTimer) fire(now time.Time) func() {
	t.pending = false
	if t.f != nil {
		f := t.f
		return func() { go f() }
	}
	select {
	case t.c <- now:
	default: // an unread earlier tick stays, as with time.Timer
	}
	return func() {}
}

func (m *Manual) remove(t *manualTimer) {
	if !t.pending {
		return
	}
	t.pending = false
	heap.Remove(&m.timers, t.index)
	m.notify()
}

func (m *Manual) notify() {
	close(m.changed)
	m.changed = make(chan struct{})
}

// Sleep waits until the clock has advanced by d, or ctx ends.
func (m *Manual) Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if d <= 0 {
		return nil
	}
	t := m.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C():
		return nil
	}
}

// Advance moves the clock forward by d, firing every timer whose deadline is reached, in deadline
// order, each seeing the clock at its own deadline.
func (m *Manual) Advance(d time.Duration) {
	m.Set(m.Now().Add(d))
}

// Set moves the clock to t (never backwards), firing timers as Advance does.
func (m *Manual) Set(t time.Time) {
	for {
		m.mu.Lock()
		if t.Before(m.now) {
			m.mu.Unlock()
			return
		}
		if len(m.timers) == 0 || m.timers[0].deadline.After(t) {
			m.now = t
			m.mu.Unlock()
			return
		}
		next := heap.Pop(&m.timers).(*manualTimer)
		m.now = next.deadline
		run := next.fire(m.now)
		m.notify()
		m.mu.Unlock()
		run()
	}
}

// Timers returns how many timers, sleepers and AfterFunc callbacks are pending.
func (m *Manual) Timers() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.timers)
}

// WaitForTimers blocks until at least n timers are pending (the code under test is waiting on the
// clock) or ctx ends, and returns ctx.Err() in that case.
func (m *Manual) WaitForTimers(ctx context.Context, n int) error {
	for {
		m.mu.Lock()
		count, changed := len(m.timers), m.changed
		m.mu.Unlock()
		if count >= n {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-changed:
		}
	}
}

// NextDeadline returns the earliest pending deadline, and false when nothing is pending. An event
// loop (the simulator) uses it to jump straight to the next thing that happens.
func (m *Manual) NextDeadline() (time.Time, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.timers) == 0 {
		return time.Time{}, false
	}
	return m.timers[0].deadline, true
}

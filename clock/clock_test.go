package clock

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

func TestManualTimersFireInDeadlineOrder(t *testing.T) {
	m := NewManual(time.Time{})
	start := m.Now()
	a := m.NewTimer(3 * time.Second)
	b := m.NewTimer(1 * time.Second)
	c := m.NewTimer(2 * time.Second)
	c.Stop()
	m.Advance(500 * time.Millisecond)
	select {
	case <-b.C():
		t.Fatal("fired early")
	default:
	}
	m.Advance(5 * time.Second)
	if got := <-b.C(); !got.Equal(start.Add(time.Second)) {
		t.Errorf("b fired at %v, want its deadline", got.Sub(start))
	}
	if got := <-a.C(); !got.Equal(start.Add(3 * time.Second)) {
		t.Errorf("a fired at %v", got.Sub(start))
	}
	select {
	case <-c.C():
		t.Fatal("stopped timer fired")
	default:
	}
	if m.Since(start) != 5500*time.Millisecond || m.Timers() != 0 {
		t.Errorf("now %v, %d pending", m.Since(start), m.Timers())
	}
}

func TestManualResetAndImmediate(t *testing.T) {
	m := NewManual(time.Time{})
	tm := m.NewTimer(time.Second)
	if !tm.Reset(10 * time.Second) {
		t.Error("Reset of a pending timer reports false")
	}
	m.Advance(5 * time.Second)
	select {
	case <-tm.C():
		t.Fatal("reset timer fired at its old deadline")
	default:
	}
	m.Advance(5 * time.Second)
	<-tm.C()
	if tm.Stop() {
		t.Error("Stop of a fired timer reports true")
	}
	// A timer for zero or a negative duration fires at once.
	now := m.NewTimer(0)
	<-now.C()
	if m.NewTimer(-time.Second).Stop() {
		t.Error("negative timer pending")
	}
}

func TestManualAfterFunc(t *testing.T) {
	m := NewManual(time.Time{})
	done := make(chan time.Duration, 2)
	start := m.Now()
	m.AfterFunc(2*time.Second, func() { done <- m.Since(start) })
	stopped := m.AfterFunc(time.Second, func() { done <- -1 })
	stopped.Stop()
	m.Advance(3 * time.Second)
	if got := <-done; got < 2*time.Second {
		t.Errorf("callback saw %v", got)
	}
	select {
	case <-done:
		t.Fatal("stopped callback ran")
	default:
	}
}

// TestManualSleep: a sleeper wakes when the test advances the clock; the test knows it is asleep
// through WaitForTimers, not by sleeping itself.
func TestManualSleep(t *testing.T) {
	m := NewManual(time.Time{})
	ctx := context.Background()
	errc := make(chan error, 1)
	go func() { errc <- m.Sleep(ctx, time.Minute) }()
	if err := m.WaitForTimers(ctx, 1); err != nil {
		t.Fatal(err)
	}
	m.Advance(time.Minute)
	if err := <-errc; err != nil {
		t.Fatalf("Sleep = %v", err)
	}

	cctx, cancel := context.WithCancel(ctx)
	go func() { errc <- m.Sleep(cctx, time.Hour) }()
	if err := m.WaitForTimers(ctx, 1); err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled Sleep = %v", err)
	}
	if m.Timers() != 0 {
		t.Errorf("cancelled sleeper left %d timers", m.Timers())
	}
	if err := m.Sleep(cctx, time.Second); !errors.Is(err, context.Canceled) {
		t.Errorf("Sleep on an ended context = %v", err)
	}
}

func TestManualNextDeadlineAndSet(t *testing.T) {
	m := NewManual(time.Time{})
	if _, ok := m.NextDeadline(); ok {
		t.Fatal("deadline with no timers")
	}
	start := m.Now()
	m.NewTimer(4 * time.Second)
	m.NewTimer(2 * time.Second)
	if d, ok := m.NextDeadline(); !ok || !d.Equal(start.Add(2*time.Second)) {
		t.Errorf("NextDeadline = %v", d)
	}
	m.Set(start.Add(-time.Hour)) // never backwards
	if !m.Now().Equal(start) {
		t.Error("clock moved backwards")
	}
	m.Set(start.Add(3 * time.Second))
	if m.Timers() != 1 {
		t.Errorf("%d pending after Set", m.Timers())
	}
}

func TestManualWaitForTimersCancelled(t *testing.T) {
	m := NewManual(time.Time{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := m.WaitForTimers(ctx, 1); !errors.Is(err, context.Canceled) {
		t.Errorf("WaitForTimers = %v", err)
	}
}

// TestManualConcurrent exercises the clock from many goroutines (run with -race).
func TestManualConcurrent(t *testing.T) {
	m := NewManual(time.Time{})
	ctx := context.Background()
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := m.Sleep(ctx, time.Duration(i+1)*time.Millisecond); err != nil {
				t.Error(err)
			}
		}()
	}
	if err := m.WaitForTimers(ctx, 20); err != nil {
		t.Fatal(err)
	}
	m.Advance(time.Second)
	wg.Wait()
}

func TestRealClock(t *testing.T) {
	c := Real()
	start := c.Now()
	if err := c.Sleep(context.Background(), time.Millisecond); err != nil || c.Since(start) < time.Millisecond {
		t.Errorf("Sleep: %v after %v", err, c.Since(start))
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := c.Sleep(ctx, time.Hour); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled Sleep = %v", err)
	}
	tm := c.NewTimer(time.Hour)
	if !tm.Stop() || tm.C() == nil {
		t.Error("real timer")
	}
	ran := make(chan struct{})
	c.AfterFunc(0, func() { close(ran) })
	<-ran
}

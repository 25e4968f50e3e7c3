package twophase

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/faultline-dev/faultline/clock"
)

// ErrLockTimeout is returned when a lock was not granted within the participant's LockTimeout.
// Prepare turns it into a no vote.
var ErrLockTimeout = errors.New("lock wait timed out")

// ErrClosed is returned by a participant after Close (its process is gone).
var ErrClosed = errors.New("participant closed")

// LockHold is one lock held and released: who held Key, and for how long.
type LockHold struct {
	Owner string
	Key   string
	Held  time.Duration
}

// recentHolds is how many LockHold records Stats keeps.
const recentHolds = 64

// lockTable is an in-memory table of exclusive key locks with FIFO waiters. Time comes from the
// injected clock: lock waits time out on it and hold times are measured on it.
type lockTable struct {
	clk clock.Clock

	mu       sync.Mutex
	keys     map[string]*keyLock
	closed   bool
	closedCh chan struct{}
	changed  chan struct{} // closed and replaced when the set of waiters changes (tests)

	waiting   int
	waited    int64
	waitTotal time.Duration
	waitMax   time.Duration
	timeouts  int64
	holds     int64
	holdTotal time.Duration
	holdMax   time.Duration
	recent    []LockHold
}

type keyLock struct {
	owner string
	since time.Time
	queue []*lockWaiter
}

type lockWaiter struct {
	owner     string
	ready     chan struct{}
	granted   bool
	grantedAt time.Time
}

func newLockTable(clk clock.Clock) *lockTable {
	return &lockTable{clk: clk, keys: map[string]*keyLock{}, closedCh: make(chan struct{}), changed: make(chan struct{})}
}

func (lt *lockTable) notify() {
	close(lt.changed)
	lt.changed = make(chan struct{})
}

// acquire takes the locks on keys (sorted, distinct: every owner locks in the same order, so two
// owners on one participant never deadlock) for owner, waiting behind earlier owners in FIFO
// order. timeout > 0 bounds the whole wait (ErrLockTimeout); otherwise only ctx does. On error
// no lock is held.
func (lt *lockTable) acquire(ctx context.Context, owner string, keys []string, timeout time.Duration) error {
	var timer clock.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for i, key := range keys {
		if err := lt.acquireOne(ctx, owner, key, timeout, &timer); err != nil {
			lt.release(owner, keys[:i])
			return err
		}
	}
	return nil
}

func (lt *lockTable) acquireOne(ctx context.Context, owner, key string, timeout time.Duration, timer *clock.Timer) error {
	lt.mu.Lock()
	if lt.closed {
		lt.mu.Unlock()
		return ErrClosed
	}
	kl := lt.keys[key]
	if kl == nil {
		lt.keys[key] = &keyLock{owner: owner, since: lt.clk.Now()}
		lt.mu.Unlock()
		return nil
	}
	if kl.owner == owner {
		lt.mu.Unlock()
		return nil
	}
	w := &lockWaiter{owner: owner, ready: make(chan struct{})}
	kl.queue = append(kl.queue, w)
	lt.waiting++
	lt.waited++
	start := lt.clk.Now()
	lt.notify()
	lt.mu.Unlock()

	var timeoutC <-chan time.Time
	if timeout > 0 {
		if *timer == nil {
			*timer = lt.clk.NewTimer(timeout)
		}
		timeoutC = (*timer).C()
	}
	var (
		err error
		end time.Time // when the wait ended, on the clock (not when this goroutine ran again)
	)
	select {
	case <-w.ready:
	case <-ctx.Done():
		err = ctx.Err()
	case end = <-timeoutC:
		err = fmt.Errorf("key %q held by %s: %w after %v", key, lt.holder(key), ErrLockTimeout, timeout)
	case <-lt.closedCh:
		err = ErrClosed
	}

	lt.mu.Lock()
	defer lt.mu.Unlock()
	switch {
	case w.granted:
		end = w.grantedAt
	case end.IsZero():
		end = lt.clk.Now()
	}
	waited := end.Sub(start)
	lt.waitTotal += waited
	lt.waitMax = max(lt.waitMax, waited)
	if err == nil {
		return nil
	}
	if errors.Is(err, ErrLockTimeout) {
		lt.timeouts++
	}
	if w.granted {
		// Granted while we gave up: pass the lock on.
		lt.releaseLocked(owner, key)
		return err
	}
	kl = lt.keys[key]
	if kl != nil {
		if i := slices.Index(kl.queue, w); i >= 0 {
			kl.queue = slices.Delete(kl.queue, i, i+1)
			lt.waiting--
			lt.notify()
		}
	}
	return err
}

func (lt *lockTable) holder(key string) string {
	lt.mu.Lock()
	defer lt.mu.Unlock()
	if kl := lt.keys[key]; kl != nil {
		return kl.owner
	}
	return "nobody"
}

// grant takes the locks on keys for owner without waiting, as held since since (recovery of a
// prepared transaction, before the participant serves anything).
func (lt *lockTable) grant(owner string, keys []string, since time.Time) error {
	lt.mu.Lock()
	defer lt.mu.Unlock()
	for _, key := range keys {
		if kl := lt.keys[key]; kl != nil && kl.owner != owner {
			return fmt.Errorf("key %q already locked by %s", key, kl.owner)
		}
	}
	for _, key := range keys {
		lt.keys[key] = &keyLock{owner: owner, since: since}
	}
	return nil
}

// release drops owner's locks on keys and hands each to its first waiter.
func (lt *lockTable) release(owner string, keys []string) {
	lt.mu.Lock()
	defer lt.mu.Unlock()
	for _, key := range keys {
		lt.releaseLocked(owner, key)
	}
}

func (lt *lockTable) releaseLocked(owner, key string) {
	kl := lt.keys[key]
	if kl == nil || kl.owner != owner {
		return
	}
	now := lt.clk.Now()
	held := now.Sub(kl.since)
	lt.holds++
	lt.holdTotal += held
	lt.holdMax = max(lt.holdMax, held)
	if len(lt.recent) == recentHolds {
		lt.recent = slices.Delete(lt.recent, 0, 1)
	}
	lt.recent = append(lt.recent, LockHold{Owner: owner, Key: key, Held: held})
	if len(kl.queue) == 0 {
		delete(lt.keys, key)
		return
	}
	w := kl.queue[0]
	kl.queue = slices.Delete(kl.queue, 0, 1)
	kl.owner, kl.since = w.owner, now
	w.granted, w.grantedAt = true, now
	close(w.ready)
	lt.waiting--
	lt.notify()
}

// close wakes every waiter with ErrClosed and refuses new acquisitions.
func (lt *lockTable) close() {
	lt.mu.Lock()
	defer lt.mu.Unlock()
	if !lt.closed {
		lt.closed = true
		close(lt.closedCh)
	}
}

// waitForWaiters blocks until at least n acquisitions are waiting, or ctx ends (tests).
func (lt *lockTable) waitForWaiters(ctx context.Context, n int) error {
	for {
		lt.mu.Lock()
		count, changed := lt.waiting, lt.changed
		lt.mu.Unlock()
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

// fill copies the lock statistics into s.
func (lt *lockTable) fill(s *ParticipantStats) {
	lt.mu.Lock()
	defer lt.mu.Unlock()
	now := lt.clk.Now()
	s.LocksHeld = len(lt.keys)
	for _, kl := range lt.keys {
		s.LongestHeldNow = max(s.LongestHeldNow, now.Sub(kl.since))
	}
	s.Waiting = lt.waiting
	s.Waited = lt.waited
	s.WaitTotal = lt.waitTotal
	s.WaitMax = lt.waitMax
	s.LockTimeouts = lt.timeouts
	s.Holds = lt.holds
	s.HoldTotal = lt.holdTotal
	s.HoldMax = lt.holdMax
	s.RecentHolds = slices.Clone(lt.recent)
}

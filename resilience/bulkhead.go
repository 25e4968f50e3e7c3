package resilience

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/faultline-dev/faultline/clock"
)

// BulkheadConfig configures a Bulkhead. Only MaxConcurrent is required.
type BulkheadConfig struct {
	// MaxConcurrent is how many calls may run at once. Required: at least 1.
	MaxConcurrent int
	// MaxQueue is how many calls may wait for a slot when all are taken; the rest are rejected at
	// once with ErrBulkheadFull. Zero (the default) means no waiting at all.
	MaxQueue int
	// MaxWait bounds how long a queued call waits for a slot before it is rejected with
	// ErrBulkheadFull. Zero (the default) means it waits until its context ends. Ignored when
	// MaxQueue is zero.
	MaxWait time.Duration
	// Clock times MaxWait. Nil means clock.Real().
	Clock clock.Clock
	// OnReject, when set, is called (outside any lock, on the caller's goroutine) with
	// ErrBulkheadFull each time a call is rejected because the queue is full or MaxWait passed.
	// It is not called when a caller's own context ends.
	OnReject func(reason error)
	// Name names the policy in events; Observer, when set, receives EventRejected for each rejection and EventAdmitted
	// (with the time waited) for each call that got a slot after queueing.
	Name     string
	Observer Observer
}

// BulkheadDecision is what BulkheadCore.Acquire decides for a new call.
type BulkheadDecision int

const (
	// BulkheadAdmit: a slot was free and is now held by the call.
	BulkheadAdmit BulkheadDecision = iota
	// BulkheadQueue: the call waits in the FIFO queue under the returned ticket.
	BulkheadQueue
	// BulkheadReject: no slot and no room in the queue.
	BulkheadReject
)

// String returns the decision's name.
func (d BulkheadDecision) String() string {
	switch d {
	case BulkheadAdmit:
		return "admit"
	case BulkheadQueue:
		return "queue"
	case BulkheadReject:
		return "reject"
	}
	return fmt.Sprintf("BulkheadDecision(%d)", int(d))
}

// BulkheadTicket identifies a queued call; tickets are handed out in increasing order.
type BulkheadTicket uint64

// BulkheadCore is the bulkhead's deterministic state machine: a count of held slots and a FIFO
// queue of tickets. It starts no goroutine, never waits and reads no clock; the runtime Bulkhead
// (or the simulator) does the waiting and the timing. A slot freed while calls wait is handed
// directly to the oldest waiter (the in-flight count does not drop), so a newcomer can never
// overtake the queue. It is not safe for concurrent use; Bulkhead guards it with a mutex.
type BulkheadCore struct {
	maxConcurrent int
	maxQueue      int
	inFlight      int
	queue         []BulkheadTicket // waiting tickets are queue[head:], oldest first
	head          int
	next          BulkheadTicket
}

// NewBulkheadCore returns a core admitting maxConcurrent (≥ 1) calls with a queue of maxQueue
// (≥ 0) waiters.
func NewBulkheadCore(maxConcurrent, maxQueue int) (*BulkheadCore, error) {
	if err := bulkheadValidate(maxConcurrent, maxQueue, 0); err != nil {
		return nil, err
	}
	return &BulkheadCore{maxConcurrent: maxConcurrent, maxQueue: maxQueue}, nil
}

func bulkheadValidate(maxConcurrent, maxQueue int, maxWait time.Duration) error {
	switch {
	case maxConcurrent < 1:
		return fmt.Errorf("resilience: BulkheadConfig.MaxConcurrent = %d: want ≥ 1", maxConcurrent)
	case maxQueue < 0:
		return fmt.Errorf("resilience: BulkheadConfig.MaxQueue = %d: want ≥ 0", maxQueue)
	case maxWait < 0:
		return fmt.Errorf("resilience: BulkheadConfig.MaxWait = %v: want ≥ 0", maxWait)
	}
	return nil
}

// Acquire decides for a new call: admit it (it now holds a slot), queue it under the returned
// ticket (only when no slot is free, so a queued call never waits while a slot is idle), or
// reject it.
func (c *BulkheadCore) Acquire() (BulkheadDecision, BulkheadTicket) {
	if c.inFlight < c.maxConcurrent && c.Queued() == 0 {
		c.inFlight++
		return BulkheadAdmit, 0
	}
	if c.Queued() >= c.maxQueue {
		return BulkheadReject, 0
	}
	c.next++
	c.queue = append(c.queue, c.next)
	return BulkheadQueue, c.next
}

// Release frees the slot of a finished call. When calls wait, the slot passes to the oldest
// one, whose ticket is returned with ok true: that waiter now holds the slot.
func (c *BulkheadCore) Release() (woken BulkheadTicket, ok bool) {
	if c.Queued() > 0 {
		woken = c.queue[c.head]
		c.head++
		c.compact()
		return woken, true
	}
	if c.inFlight > 0 {
		c.inFlight--
	}
	return 0, false
}

// Leave removes a waiter that gives up (its context ended or its wait bound passed). It returns
// false when t is no longer queued because Release has already handed it a slot: the caller then
// holds that slot and must Release it (or use it).
func (c *BulkheadCore) Leave(t BulkheadTicket) (left bool) {
	for i := c.head; i < len(c.queue); i++ {
		if c.queue[i] == t {
			copy(c.queue[i:], c.queue[i+1:])
			c.queue = c.queue[:len(c.queue)-1]
			c.compact()
			return true
		}
	}
	return false
}

// compact drops the consumed front of the queue once it is at least half of it, so the slice
// does not grow without bound and pops stay O(1) amortized.
func (c *BulkheadCore) compact() {
	if c.head == len(c.queue) {
		c.queue, c.head = c.queue[:0], 0
		return
	}
	if c.head > 32 && c.head*2 >= len(c.queue) {
		n := copy(c.queue, c.queue[c.head:])
		c.queue, c.head = c.queue[:n], 0
	}
}

// InFlight returns how many slots are held (by running calls and by waiters just handed one).
func (c *BulkheadCore) InFlight() int { return c.inFlight }

// Queued returns how many calls wait.
func (c *BulkheadCore) Queued() int { return len(c.queue) - c.head }

// Bulkhead limits how many calls run at once, with a bounded FIFO queue for the overflow and an
// optional bound on the wait: it keeps one slow dependency from taking every goroutine,
// connection or thread of its caller (the Bulkhead pattern from Nygard's "Release It!").
//
// Guarantees: never more than MaxConcurrent calls run; waiters get slots in arrival order; a
// waiter whose context ends leaves the queue at once and returns the caller's ctx.Err(); a waiter
// that gives up at the very moment a slot is handed to it passes the slot on to the next waiter,
// so no slot is ever lost; an already-ended context never runs the call. The success path (a slot
// is free) takes one mutex twice and does not allocate. It is safe for concurrent use.
type Bulkhead struct {
	mu       sync.Mutex
	core     BulkheadCore
	waiters  map[BulkheadTicket]chan struct{}
	maxWait  time.Duration
	clk      clock.Clock
	onReject func(error)
	em       emitter
}

// NewBulkhead validates cfg and returns a Bulkhead; the error names the bad field.
func NewBulkhead(cfg BulkheadConfig) (*Bulkhead, error) {
	if err := bulkheadValidate(cfg.MaxConcurrent, cfg.MaxQueue, cfg.MaxWait); err != nil {
		return nil, err
	}
	clk := cfg.Clock
	if clk == nil {
		clk = clock.Real()
	}
	return &Bulkhead{
		core:     BulkheadCore{maxConcurrent: cfg.MaxConcurrent, maxQueue: cfg.MaxQueue},
		waiters:  make(map[BulkheadTicket]chan struct{}),
		maxWait:  cfg.MaxWait,
		clk:      clk,
		onReject: cfg.OnReject,
		em:       newEmitter(KindBulkhead, cfg.Name, cfg.Observer),
	}, nil
}

// InFlight returns how many calls hold a slot now.
func (b *Bulkhead) InFlight() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.core.InFlight()
}

// Queued returns how many calls wait for a slot now.
func (b *Bulkhead) Queued() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.core.Queued()
}

// Execute runs fn when a slot is free, waiting in the queue when configured. It returns fn's
// error; ErrBulkheadFull when the queue is full or MaxWait passed; the caller's ctx.Err() when ctx
// ended first (fn is then not called).
func (b *Bulkhead) Execute(ctx context.Context, fn func(context.Context) error) error {
	if err := b.acquire(ctx); err != nil {
		return err
	}
	defer b.release()
	return fn(ctx)
}

// WithBulkhead returns b as a Policy for composition. Put it inside retries
// (Compose(retry, bulkhead, ...)) so that a call waiting for a retry does not hold a slot.
func WithBulkhead[R any](b *Bulkhead) Policy[R] { return bulkheadPolicy[R]{b} }

// bulkheadPolicy is WithBulkhead's policy; see chain for why it is a type of its own.
type bulkheadPolicy[R any] struct{ b *Bulkhead }

// Apply implements Policy.
func (pol bulkheadPolicy[R]) Apply(next Func[R]) Func[R] {
	return func(ctx context.Context) (R, error) { return pol.run(ctx, next) }
}

func (pol bulkheadPolicy[R]) run(ctx context.Context, next Func[R]) (R, error) {
	b := pol.b
	if err := b.acquire(ctx); err != nil {
		var zero R
		return zero, err
	}
	defer b.release()
	return next(ctx)
}

// Acquire takes a slot for work whose end is not a function return (a stream, a connection),
// waiting in the queue as Execute does. nil means the caller holds a slot and must call Release
// exactly once when the work ends; an error (ErrBulkheadFull, or the caller's ctx.Err()) means it
// holds none.
func (b *Bulkhead) Acquire(ctx context.Context) error { return b.acquire(ctx) }

// Release frees a slot taken by Acquire, handing it to the oldest waiter if any. Calling it without
// holding a slot corrupts the count.
func (b *Bulkhead) Release() { b.release() }

// acquire takes a slot, waiting in the queue if need be; nil means the caller holds a slot.
func (b *Bulkhead) acquire(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	b.mu.Lock()
	d, t := b.core.Acquire()
	switch d {
	case BulkheadAdmit:
		b.mu.Unlock()
		return nil
	case BulkheadReject:
		b.mu.Unlock()
		return b.reject(ctx)
	}
	queuedAt := b.clk.Now()
	granted := make(chan struct{}, 1)
	b.waiters[t] = granted
	b.mu.Unlock()

	var expired <-chan time.Time
	if b.maxWait > 0 {
		timer := b.clk.NewTimer(b.maxWait)
		defer timer.Stop()
		expired = timer.C()
	}
	select {
	case <-granted:
		if err := ctx.Err(); err != nil { // ended while the slot was on its way
			b.release()
			return err
		}
		b.admitted(ctx, queuedAt)
		return nil
	case <-ctx.Done():
		if !b.leave(t) {
			b.release() // a slot was handed to us as we gave up: pass it on
		}
		return ctx.Err()
	case <-expired:
		if b.leave(t) {
			return b.reject(ctx)
		}
		b.admitted(ctx, queuedAt)
		return nil // the slot arrived as the wait ran out: use it
	}
}

// leave takes ticket t out of the queue; false means it already holds a slot.
func (b *Bulkhead) leave(t BulkheadTicket) bool {
	b.mu.Lock()
	left := b.core.Leave(t)
	delete(b.waiters, t)
	b.mu.Unlock()
	return left
}

// release frees a slot, handing it to the oldest waiter if any.
func (b *Bulkhead) release() {
	b.mu.Lock()
	t, ok := b.core.Release()
	var granted chan struct{}
	if ok {
		granted = b.waiters[t]
		delete(b.waiters, t)
	}
	b.mu.Unlock()
	if granted != nil {
		granted <- struct{}{} // buffered: never blocks, even if the waiter is leaving
	}
}

func (b *Bulkhead) reject(ctx context.Context) error {
	if b.onReject != nil {
		b.onReject(ErrBulkheadFull)
	}
	b.em.emit(ctx, Event{Type: EventRejected, Err: ErrBulkheadFull})
	return ErrBulkheadFull
}

// admitted reports a queued call that got its slot.
func (b *Bulkhead) admitted(ctx context.Context, queuedAt time.Time) {
	if b.em.on() {
		b.em.emit(ctx, Event{Type: EventAdmitted, Duration: b.clk.Now().Sub(queuedAt)})
	}
}

package resilience

import (
	"context"
	"errors"
	"math/rand"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/faultline-dev/faultline/clock"
)

// bulkheadWaitFor yields until cond holds (a goroutine reached a state), failing after a bound.
func bulkheadWaitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		runtime.Gosched()
	}
}

func TestNewBulkheadErrors(t *testing.T) {
	tests := []struct {
		name string
		cfg  BulkheadConfig
		want string // substring of the error; "" means valid
	}{
		{"minimal", BulkheadConfig{MaxConcurrent: 1}, ""},
		{"queue and wait", BulkheadConfig{MaxConcurrent: 4, MaxQueue: 10, MaxWait: time.Second}, ""},
		{"zero concurrency", BulkheadConfig{}, "MaxConcurrent = 0"},
		{"negative concurrency", BulkheadConfig{MaxConcurrent: -1}, "MaxConcurrent = -1"},
		{"negative queue", BulkheadConfig{MaxConcurrent: 1, MaxQueue: -1}, "MaxQueue = -1"},
		{"negative wait", BulkheadConfig{MaxConcurrent: 1, MaxWait: -time.Second}, "MaxWait = -1s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := NewBulkhead(tt.cfg)
			if tt.want == "" {
				if err != nil || b == nil {
					t.Fatalf("NewBulkhead = %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("NewBulkhead error = %v, want it to name %q", err, tt.want)
			}
		})
	}
}

// TestBulkheadCoreScript runs scripted event sequences through the core.
func TestBulkheadCoreScript(t *testing.T) {
	type step struct {
		op       string // acquire, release, leave
		ticket   BulkheadTicket
		want     string // acquire: decision; release: woken ticket or "-"; leave: "true"/"false"
		inFlight int
		queued   int
	}
	tests := []struct {
		name      string
		max, maxQ int
		steps     []step
	}{
		{"no queue rejects", 1, 0, []step{
			{"acquire", 0, "admit", 1, 0},
			{"acquire", 0, "reject", 1, 0},
			{"release", 0, "-", 0, 0},
			{"acquire", 0, "admit", 1, 0},
		}},
		{"handoff in FIFO order", 1, 2, []step{
			{"acquire", 0, "admit", 1, 0},
			{"acquire", 0, "queue", 1, 1},
			{"acquire", 0, "queue", 1, 2},
			{"acquire", 0, "reject", 1, 2},
			{"release", 0, "1", 1, 1},
			{"release", 0, "2", 1, 0},
			{"release", 0, "-", 0, 0},
		}},
		{"leaver removed from the middle", 1, 3, []step{
			{"acquire", 0, "admit", 1, 0},
			{"acquire", 0, "queue", 1, 1},
			{"acquire", 0, "queue", 1, 2},
			{"acquire", 0, "queue", 1, 3},
			{"leave", 2, "true", 1, 2},
			{"release", 0, "1", 1, 1},
			{"release", 0, "3", 1, 0},
		}},
		{"slot handed while giving up is passed on", 1, 2, []step{
			{"acquire", 0, "admit", 1, 0},
			{"acquire", 0, "queue", 1, 1},
			{"acquire", 0, "queue", 1, 2},
			{"release", 0, "1", 1, 1},
			{"leave", 1, "false", 1, 1}, // 1 holds the slot now and must release it
			{"release", 0, "2", 1, 0},
			{"release", 0, "-", 0, 0},
		}},
		{"newcomer does not overtake waiters", 2, 1, []step{
			{"acquire", 0, "admit", 1, 0},
			{"acquire", 0, "admit", 2, 0},
			{"acquire", 0, "queue", 2, 1},
			{"release", 0, "1", 2, 0},
			{"acquire", 0, "queue", 2, 1},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := NewBulkheadCore(tt.max, tt.maxQ)
			if err != nil {
				t.Fatal(err)
			}
			for i, s := range tt.steps {
				var got string
				switch s.op {
				case "acquire":
					d, _ := c.Acquire()
					got = d.String()
				case "release":
					w, ok := c.Release()
					got = "-"
					if ok {
						got = strconv.FormatUint(uint64(w), 10)
					}
				case "leave":
					got = strconv.FormatBool(c.Leave(s.ticket))
				}
				if got != s.want || c.InFlight() != s.inFlight || c.Queued() != s.queued {
					t.Fatalf("step %d %s(%d) = %s (in flight %d, queued %d), want %s (%d, %d)",
						i, s.op, s.ticket, got, c.InFlight(), c.Queued(), s.want, s.inFlight, s.queued)
				}
			}
		})
	}
}

// TestBulkheadCoreModel checks the core against a plain reference model on random event
// sequences.
func TestBulkheadCoreModel(t *testing.T) {
	rng := rand.New(rand.NewSource(testSeed(t)))
	for round := range testRounds(200, 5000) {
		maxC, maxQ := 1+rng.Intn(4), rng.Intn(5)
		c, _ := NewBulkheadCore(maxC, maxQ)
		// model: holders counts slots, queue holds tickets in order, next numbers them
		holders, next := 0, BulkheadTicket(0)
		var queue []BulkheadTicket
		for step := range 100 {
			switch op := rng.Intn(3); {
			case op == 0:
				d, tk := c.Acquire()
				var want BulkheadDecision
				switch {
				case holders < maxC && len(queue) == 0:
					holders++
					want = BulkheadAdmit
				case len(queue) < maxQ:
					next++
					queue = append(queue, next)
					want = BulkheadQueue
				default:
					want = BulkheadReject
				}
				if d != want || (d == BulkheadQueue && tk != next) {
					t.Fatalf("round %d step %d: Acquire = %v %d, model %v %d", round, step, d, tk, want, next)
				}
			case op == 1 && holders > 0:
				w, ok := c.Release()
				if len(queue) > 0 {
					if !ok || w != queue[0] {
						t.Fatalf("round %d step %d: Release woke %d %v, model %d", round, step, w, ok, queue[0])
					}
					queue = queue[1:]
				} else {
					holders--
					if ok {
						t.Fatalf("round %d step %d: Release woke %d with an empty queue", round, step, w)
					}
				}
			case op == 2 && next > 0:
				tk := 1 + BulkheadTicket(rng.Intn(int(next)))
				want := false
				for i, q := range queue {
					if q == tk {
						queue = append(queue[:i:i], queue[i+1:]...)
						want = true
						break
					}
				}
				if got := c.Leave(tk); got != want {
					t.Fatalf("round %d step %d: Leave(%d) = %v, model %v", round, step, tk, got, want)
				}
			}
			if c.InFlight() != holders || c.Queued() != len(queue) || holders > maxC || len(queue) > maxQ {
				t.Fatalf("round %d step %d: core %d/%d, model %d/%d", round, step, c.InFlight(), c.Queued(), holders, len(queue))
			}
		}
	}
}

// bulkheadHold starts a call that holds a slot until release is closed.
func bulkheadHold(t *testing.T, b *Bulkhead, release <-chan struct{}) <-chan error {
	t.Helper()
	started := make(chan struct{})
	errc := make(chan error, 1)
	go func() {
		errc <- b.Execute(context.Background(), func(context.Context) error {
			close(started)
			<-release
			return nil
		})
	}()
	<-started
	return errc
}

func TestBulkheadRejectsWhenFull(t *testing.T) {
	checkNoLeak(t)
	var rejects []error
	b, _ := NewBulkhead(BulkheadConfig{MaxConcurrent: 2, OnReject: func(r error) { rejects = append(rejects, r) }})
	release := make(chan struct{})
	h1, h2 := bulkheadHold(t, b, release), bulkheadHold(t, b, release)
	called := false
	err := b.Execute(context.Background(), func(context.Context) error { called = true; return nil })
	if !errors.Is(err, ErrBulkheadFull) || called {
		t.Fatalf("third call = %v (called %v), want ErrBulkheadFull without calling", err, called)
	}
	if len(rejects) != 1 || rejects[0] != ErrBulkheadFull {
		t.Errorf("OnReject got %v", rejects)
	}
	if b.InFlight() != 2 {
		t.Errorf("InFlight = %d", b.InFlight())
	}
	close(release)
	if err := errors.Join(<-h1, <-h2); err != nil {
		t.Fatal(err)
	}
	if b.InFlight() != 0 {
		t.Errorf("InFlight after = %d", b.InFlight())
	}
}

// TestBulkheadFIFO: waiters get freed slots in the order they arrived.
func TestBulkheadFIFO(t *testing.T) {
	checkNoLeak(t)
	const n = 8
	b, _ := NewBulkhead(BulkheadConfig{MaxConcurrent: 1, MaxQueue: n})
	release := make(chan struct{})
	holder := bulkheadHold(t, b, release)
	var mu sync.Mutex
	var order []int
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := b.Execute(context.Background(), func(context.Context) error {
				mu.Lock()
				order = append(order, i)
				mu.Unlock()
				return nil
			})
			if err != nil {
				t.Error(err)
			}
		}()
		bulkheadWaitFor(t, "waiter to queue", func() bool { return b.Queued() == i+1 })
	}
	close(release)
	wg.Wait()
	if err := <-holder; err != nil {
		t.Fatal(err)
	}
	for i, got := range order {
		if got != i {
			t.Fatalf("wake order %v, want 0..%d", order, n-1)
		}
	}
	if b.InFlight() != 0 || b.Queued() != 0 {
		t.Errorf("after: in flight %d, queued %d", b.InFlight(), b.Queued())
	}
}

// TestBulkheadMaxWait: a waiter is rejected with ErrBulkheadFull when MaxWait passes on the clock.
func TestBulkheadMaxWait(t *testing.T) {
	checkNoLeak(t)
	m := clock.NewManual(time.Time{})
	var rejects atomic.Int32
	b, _ := NewBulkhead(BulkheadConfig{MaxConcurrent: 1, MaxQueue: 1, MaxWait: time.Second, Clock: m,
		OnReject: func(error) { rejects.Add(1) }})
	release := make(chan struct{})
	holder := bulkheadHold(t, b, release)
	errc := make(chan error, 1)
	go func() {
		errc <- b.Execute(context.Background(), func(context.Context) error {
			t.Error("fn ran after MaxWait")
			return nil
		})
	}()
	waitTimers(t, m, 1)
	m.Advance(999 * time.Millisecond)
	select {
	case err := <-errc:
		t.Fatalf("returned %v before MaxWait", err)
	default:
	}
	m.Advance(time.Millisecond)
	if err := <-errc; !errors.Is(err, ErrBulkheadFull) {
		t.Fatalf("waiter = %v, want ErrBulkheadFull", err)
	}
	if b.Queued() != 0 || rejects.Load() != 1 {
		t.Errorf("queued %d, rejects %d", b.Queued(), rejects.Load())
	}
	close(release)
	<-holder
	if b.InFlight() != 0 || m.Timers() != 0 {
		t.Errorf("in flight %d, timers %d", b.InFlight(), m.Timers())
	}
}

// TestBulkheadWaiterGetsSlotBeforeMaxWait: a slot freed within MaxWait runs the waiter.
func TestBulkheadWaiterGetsSlotBeforeMaxWait(t *testing.T) {
	checkNoLeak(t)
	m := clock.NewManual(time.Time{})
	b, _ := NewBulkhead(BulkheadConfig{MaxConcurrent: 1, MaxQueue: 1, MaxWait: time.Second, Clock: m})
	release := make(chan struct{})
	holder := bulkheadHold(t, b, release)
	errc := make(chan error, 1)
	go func() { errc <- b.Execute(context.Background(), func(context.Context) error { return nil }) }()
	waitTimers(t, m, 1)
	m.Advance(500 * time.Millisecond)
	close(release)
	if err := errors.Join(<-holder, <-errc); err != nil {
		t.Fatal(err)
	}
	if m.Timers() != 0 {
		t.Errorf("wait timer left pending: %d", m.Timers())
	}
}

// TestBulkheadCancellation: a queued waiter whose context ends (or an already-ended context)
// returns the caller's error, never runs fn, and leaves the queue.
func TestBulkheadCancellation(t *testing.T) {
	tests := []struct {
		name    string
		maxWait time.Duration
		cancel  func() (context.Context, func())
		want    error
	}{
		{"cancelled while queued", 0, func() (context.Context, func()) {
			return context.WithCancel(context.Background())
		}, context.Canceled},
		{"cancelled while queued with MaxWait", time.Hour, func() (context.Context, func()) {
			return context.WithCancel(context.Background())
		}, context.Canceled},
		{"deadline while queued", 0, func() (context.Context, func()) {
			ctx := &bulkheadDeadlineCtx{Context: context.Background(), done: make(chan struct{})}
			return ctx, func() { ctx.expired.Store(true); close(ctx.done) }
		}, context.DeadlineExceeded},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkNoLeak(t)
			var rejects atomic.Int32
			b, _ := NewBulkhead(BulkheadConfig{MaxConcurrent: 1, MaxQueue: 2, MaxWait: tt.maxWait,
				Clock: clock.NewManual(time.Time{}), OnReject: func(error) { rejects.Add(1) }})
			release := make(chan struct{})
			holder := bulkheadHold(t, b, release)
			ctx, cancel := tt.cancel()
			errc := make(chan error, 1)
			go func() {
				errc <- b.Execute(ctx, func(context.Context) error { t.Error("fn ran"); return nil })
			}()
			bulkheadWaitFor(t, "waiter to queue", func() bool { return b.Queued() == 1 })
			cancel()
			if err := <-errc; !errors.Is(err, tt.want) {
				t.Fatalf("waiter = %v, want %v", err, tt.want)
			}
			if b.Queued() != 0 || rejects.Load() != 0 {
				t.Errorf("queued %d, rejects %d (a cancellation is not a rejection)", b.Queued(), rejects.Load())
			}
			close(release)
			<-holder
			if b.InFlight() != 0 {
				t.Errorf("in flight %d", b.InFlight())
			}
			// An already-ended context never runs fn, even with a free slot.
			if err := b.Execute(ctx, func(context.Context) error { t.Error("fn ran"); return nil }); !errors.Is(err, ctx.Err()) {
				t.Errorf("ended ctx = %v", err)
			}
		})
	}
}

// bulkheadDeadlineCtx is a context whose deadline passes when the test says so (no wall clock).
type bulkheadDeadlineCtx struct {
	context.Context
	done    chan struct{}
	expired atomic.Bool
}

func (c *bulkheadDeadlineCtx) Done() <-chan struct{} { return c.done }
func (c *bulkheadDeadlineCtx) Err() error {
	if c.expired.Load() {
		return context.DeadlineExceeded
	}
	return nil
}

// TestBulkheadConcurrentInvariants: under random load with random cancellations and wait bounds,
// never more than MaxConcurrent calls run and no slot is lost.
func TestBulkheadConcurrentInvariants(t *testing.T) {
	checkNoLeak(t)
	rng := rand.New(rand.NewSource(testSeed(t)))
	for round := range testRounds(5, 50) {
		maxC, maxQ := 1+rng.Intn(4), rng.Intn(8)
		m := clock.NewManual(time.Time{})
		b, _ := NewBulkhead(BulkheadConfig{MaxConcurrent: maxC, MaxQueue: maxQ, MaxWait: time.Duration(rng.Intn(3)) * time.Millisecond, Clock: m})
		var running, peak atomic.Int32
		var wg sync.WaitGroup
		calls := 200
		cancelAt := make([]int, calls)
		for i := range cancelAt {
			cancelAt[i] = rng.Intn(4) // 0: cancel concurrently
		}
		for i := range calls {
			wg.Add(1)
			ctx, cancel := context.WithCancel(context.Background())
			go func() {
				defer wg.Done()
				defer cancel()
				err := b.Execute(ctx, func(context.Context) error {
					n := running.Add(1)
					for {
						p := peak.Load()
						if n <= p || peak.CompareAndSwap(p, n) {
							break
						}
					}
					runtime.Gosched()
					running.Add(-1)
					return nil
				})
				if err != nil && !errors.Is(err, ErrBulkheadFull) && !errors.Is(err, context.Canceled) {
					t.Error(err)
				}
			}()
			if cancelAt[i] == 0 {
				go cancel()
			}
			if i%20 == 0 {
				m.Advance(time.Millisecond) // expire some MaxWait waiters
			}
		}
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()
	drain:
		for {
			select {
			case <-done:
				break drain
			default:
				m.Advance(time.Millisecond)
				runtime.Gosched()
			}
		}
		if p := peak.Load(); p > int32(maxC) {
			t.Fatalf("round %d: %d calls ran at once, max %d", round, p, maxC)
		}
		if b.InFlight() != 0 || b.Queued() != 0 {
			t.Fatalf("round %d: lost slots: in flight %d, queued %d", round, b.InFlight(), b.Queued())
		}
		// Every slot is still usable: MaxConcurrent holders fit at once.
		release := make(chan struct{})
		var holders []<-chan error
		for range maxC {
			holders = append(holders, bulkheadHold(t, b, release))
		}
		close(release)
		for _, h := range holders {
			if err := <-h; err != nil {
				t.Fatalf("round %d: %v", round, err)
			}
		}
	}
}

// TestBulkheadGiveUpRaceStress hammers the hand-off/give-up race: each released slot goes to a
// waiter that is being cancelled at the same moment. No slot may be lost.
func TestBulkheadGiveUpRaceStress(t *testing.T) {
	checkNoLeak(t)
	b, _ := NewBulkhead(BulkheadConfig{MaxConcurrent: 1, MaxQueue: 1})
	for i := range testRounds(300, 10000) {
		release := make(chan struct{})
		holder := bulkheadHold(t, b, release)
		ctx, cancel := context.WithCancel(context.Background())
		errc := make(chan error, 1)
		go func() { errc <- b.Execute(ctx, func(context.Context) error { return nil }) }()
		bulkheadWaitFor(t, "waiter to queue", func() bool { return b.Queued() == 1 })
		go cancel()
		close(release)
		<-holder
		if err := <-errc; err != nil && !errors.Is(err, context.Canceled) {
			t.Fatal(err)
		}
		if b.InFlight() != 0 || b.Queued() != 0 {
			t.Fatalf("iteration %d: in flight %d, queued %d", i, b.InFlight(), b.Queued())
		}
	}
}

func TestWithBulkheadComposes(t *testing.T) {
	b, _ := NewBulkhead(BulkheadConfig{MaxConcurrent: 1})
	got, err := Execute(context.Background(), func(context.Context) (int, error) {
		if b.InFlight() != 1 {
			t.Errorf("in flight inside = %d", b.InFlight())
		}
		return 42, nil
	}, WithBulkhead[int](b))
	if got != 42 || err != nil || b.InFlight() != 0 {
		t.Fatalf("Execute = %d, %v; in flight %d", got, err, b.InFlight())
	}
	boom := errors.New("boom")
	_, err = WithBulkhead[int](b).Apply(func(context.Context) (int, error) { return 0, boom })(context.Background())
	if !errors.Is(err, boom) || b.InFlight() != 0 {
		t.Fatalf("error path = %v; in flight %d", err, b.InFlight())
	}
	// A panicking call still frees its slot.
	func() {
		defer func() { _ = recover() }()
		_ = b.Execute(context.Background(), func(context.Context) error { panic("x") })
	}()
	if b.InFlight() != 0 {
		t.Fatalf("panic leaked a slot")
	}
}

func TestBulkheadSuccessPathAllocs(t *testing.T) {
	b, _ := NewBulkhead(BulkheadConfig{MaxConcurrent: 4, MaxQueue: 4})
	ctx := context.Background()
	fn := func(context.Context) error { return nil }
	if n := testing.AllocsPerRun(1000, func() { _ = b.Execute(ctx, fn) }); n != 0 {
		t.Errorf("Execute: %v allocs/op, want 0", n)
	}
	g := WithBulkhead[int](b).Apply(func(context.Context) (int, error) { return 1, nil })
	if n := testing.AllocsPerRun(1000, func() { _, _ = g(ctx) }); n != 0 {
		t.Errorf("WithBulkhead: %v allocs/op, want 0", n)
	}
}

func BenchmarkBulkhead(b *testing.B) {
	ctx := context.Background()
	fn := func(context.Context) error { return nil }
	b.Run("serial", func(b *testing.B) {
		bh, _ := NewBulkhead(BulkheadConfig{MaxConcurrent: 1})
		b.ReportAllocs()
		for b.Loop() {
			_ = bh.Execute(ctx, fn)
		}
	})
	b.Run("parallel", func(b *testing.B) {
		bh, _ := NewBulkhead(BulkheadConfig{MaxConcurrent: 1 << 20})
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				_ = bh.Execute(ctx, fn)
			}
		})
	})
}

func TestBulkheadAcquireRelease(t *testing.T) {
	b, err := NewBulkhead(BulkheadConfig{MaxConcurrent: 1})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := b.Acquire(ctx); err != nil {
		t.Fatal(err)
	}
	if err := b.Acquire(ctx); !errors.Is(err, ErrBulkheadFull) {
		t.Fatalf("second Acquire: %v, want ErrBulkheadFull", err)
	}
	if err := b.Execute(ctx, func(context.Context) error { return nil }); !errors.Is(err, ErrBulkheadFull) {
		t.Fatalf("Execute while the slot is held: %v", err)
	}
	b.Release()
	if n := b.InFlight(); n != 0 {
		t.Fatalf("InFlight = %d after Release", n)
	}
	if err := b.Execute(ctx, func(context.Context) error { return nil }); err != nil {
		t.Fatal(err)
	}
}

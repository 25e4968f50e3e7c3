package resilience

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/faultline-dev/faultline/clock"
)

// eventLog records events and the context value each came with.
type eventLog struct {
	mu     sync.Mutex
	events []string
}

type ctxKey struct{}

func (l *eventLog) Observe(ctx context.Context, e Event) {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := e.String()
	if v, ok := ctx.Value(ctxKey{}).(string); ok {
		s += " ctx=" + v
	}
	l.events = append(l.events, s)
}

func (l *eventLog) take() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := l.events
	l.events = nil
	return out
}

func checkEvents(t *testing.T, l *eventLog, want ...string) {
	t.Helper()
	got := l.take()
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("events:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}

func TestEventsBreaker(t *testing.T) {
	log := &eventLog{}
	clk := clock.NewManual(time.Time{})
	b, err := NewBreaker(BreakerConfig{ConsecutiveFailures: 2, OpenDuration: time.Second, Clock: clk, Name: "pay", Observer: log})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.WithValue(context.Background(), ctxKey{}, "call")
	fail := func(context.Context) error { clk.Advance(time.Millisecond); return errFlaky }
	b.Execute(ctx, fail)
	b.Execute(ctx, fail)
	b.Execute(ctx, fail)
	checkEvents(t, log,
		`breaker pay: failure duration=1ms err="flaky upstream" ctx=call`,
		`breaker pay: failure duration=1ms err="flaky upstream" ctx=call`,
		`breaker pay: state-change closed -> open ctx=call`,
		`breaker pay: rejected err="resilience: circuit breaker is open" ctx=call`,
	)
	clk.Advance(time.Second)
	b.Execute(ctx, func(context.Context) error { return nil })
	checkEvents(t, log,
		`breaker pay: state-change open -> half-open ctx=call`,
		`breaker pay: success ctx=call`,
		`breaker pay: state-change half-open -> closed ctx=call`,
	)
	cctx, cancel := context.WithCancel(ctx)
	b.Execute(cctx, func(ctx context.Context) error { cancel(); return ctx.Err() })
	b.ForceOpen()
	checkEvents(t, log,
		`breaker pay: ignored err="context canceled" ctx=call`,
		`breaker pay: state-change closed -> forced-open`,
	)
}

func TestEventsRetryAndTimeout(t *testing.T) {
	log := &eventLog{}
	clk := clock.NewManual(time.Time{})
	ctx := context.WithValue(context.Background(), ctxKey{}, "c")

	// A per-attempt timeout that fires, on a retry with one attempt: timeout, then exhausted.
	once, err := NewRetry(RetryConfig{MaxAttempts: 1, Clock: clk, Name: "quotes", Observer: log, PerAttemptTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	once.Execute(ctx, func(ctx context.Context) error {
		clk.Advance(time.Second)
		<-ctx.Done()
		return ctx.Err()
	})
	checkEvents(t, log,
		`retry quotes: timeout duration=1s err="resilience: timed out after 1s" ctx=c`,
		`retry quotes: retries-exhausted attempt=1 err="resilience: timed out after 1s" ctx=c`,
	)

	// Three failing attempts: two retries with their delays, then exhausted. The test moves the
	// manual clock to each backoff deadline.
	r, err := NewRetry(RetryConfig{MaxAttempts: 3, Backoff: Backoff{Base: 100 * time.Millisecond, Max: time.Second}, Clock: clk, Name: "quotes", Observer: log})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.Execute(ctx, func(context.Context) error { return errFlaky })
	}()
	for stepping := true; stepping; {
		select {
		case <-done:
			stepping = false
		default:
			if d, ok := clk.NextDeadline(); ok {
				clk.Set(d)
			} else {
				runtime.Gosched()
			}
		}
	}
	checkEvents(t, log,
		`retry quotes: retry attempt=1 duration=100ms err="flaky upstream" ctx=c`,
		`retry quotes: retry attempt=2 duration=200ms err="flaky upstream" ctx=c`,
		`retry quotes: retries-exhausted attempt=3 err="flaky upstream" ctx=c`,
	)

	// A permanent error is not "exhausted": nothing was given up.
	r.Execute(ctx, func(context.Context) error { return Permanent(errFlaky) })
	checkEvents(t, log)
}

func TestEventsBulkheadRateLimitThrottleFallback(t *testing.T) {
	log := &eventLog{}
	clk := clock.NewManual(time.Time{})
	ctx := context.Background()

	bh, _ := NewBulkhead(BulkheadConfig{MaxConcurrent: 1, Name: "db", Observer: log, Clock: clk})
	hold := make(chan struct{})
	running := make(chan struct{})
	go bh.Execute(ctx, func(context.Context) error { close(running); <-hold; return nil })
	<-running
	if err := bh.Execute(ctx, func(context.Context) error { return nil }); !errors.Is(err, ErrBulkheadFull) {
		t.Fatalf("err = %v", err)
	}
	close(hold)
	checkEvents(t, log, `bulkhead db: rejected err="resilience: bulkhead full"`)

	rl, _ := NewRateLimiter(RateLimitConfig{Rate: 1, Burst: 1, MaxWait: time.Second, Clock: clk, Name: "api", Observer: log})
	rl.Execute(ctx, func(context.Context) error { return nil })
	done := make(chan error, 1)
	go func() { done <- rl.Execute(ctx, func(context.Context) error { return nil }) }()
	waitTimers(t, clk, 1)
	clk.Advance(time.Second)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	rl2, _ := NewRateLimiter(RateLimitConfig{Rate: 1, Burst: 1, Clock: clk, Name: "api", Observer: log})
	rl2.Execute(ctx, func(context.Context) error { return nil })
	rl2.Execute(ctx, func(context.Context) error { return nil })
	checkEvents(t, log,
		`ratelimit api: admitted duration=1s`,
		`ratelimit api: rejected err="resilience: rate limited (retry after 1s)"`,
	)

	th, _ := NewThrottle(ThrottleConfig{Clock: clk, Seed: 3, Name: "th", Observer: log})
	th.Execute(ctx, func(context.Context) error { return nil })
	th.Execute(ctx, func(context.Context) error { return errFlaky })
	th.Execute(ctx, func(context.Context) error { clk.Advance(time.Millisecond); return nil })
	checkEvents(t, log, `throttle th: success`, `throttle th: failure err="flaky upstream"`, `throttle th: success duration=1ms`)

	fb := FallbackWith(FallbackConfig[int]{Func: func(context.Context, error) (int, error) { return 7, nil }, Name: "cache", Observer: log})
	v, err := fb.Apply(func(context.Context) (int, error) { return 0, errFlaky })(ctx)
	if v != 7 || err != nil {
		t.Fatalf("fallback gave %d, %v", v, err)
	}
	checkEvents(t, log, `fallback cache: fallback err="flaky upstream"`)
}

func TestObserversFanOut(t *testing.T) {
	if Observers() != nil || Observers(nil, nil) != nil {
		t.Error("Observers of nothing should be nil, so policies skip events")
	}
	a, b := &eventLog{}, &eventLog{}
	if Observers(a, nil) != Observer(a) {
		t.Error("a single observer should be returned as is")
	}
	o := Observers(a, nil, b)
	o.Observe(context.Background(), Event{Kind: KindHedge, Type: EventHedge, Attempt: 2})
	if fmt.Sprint(a.take(), b.take()) != "[hedge: hedge attempt=2] [hedge: hedge attempt=2]" {
		t.Error("fan-out did not reach both observers")
	}
}

func TestEventNames(t *testing.T) {
	for k := KindBreaker; k <= KindLimiter; k++ {
		if strings.Contains(k.String(), "(") {
			t.Errorf("kind %d has no name", k)
		}
	}
	for e := EventSuccess; e <= EventLimitChanged; e++ {
		if strings.Contains(e.String(), "(") {
			t.Errorf("event type %d has no name", e)
		}
	}
}

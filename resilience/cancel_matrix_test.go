package resilience

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/faultline-dev/faultline/clock"
)

// The cancellation matrix: every ordered pair and triple of policies, with the caller's context
// cancelled at each phase a composed call can be in (before the call, during an attempt, during a
// retry's backoff, while waiting for a bulkhead slot, while hedged attempts run). Each case must return without the manual
// clock moving (promptly, on the clock's terms), report the caller's context.Canceled and no
// policy error, and leave no goroutine behind. This is the class of bug the peers' open issues are
// about (failsafe-go #65, #123, #141).

type matrixPolicies struct {
	clk      *clock.Manual
	bulkhead *Bulkhead
	retried  chan struct{} // an EventRetry: the retry is about to wait
	hedged   chan struct{} // an EventHedge: a hedged attempt started
}

// signal returns an observer that reports events of type typ on ch without blocking.
func signal(ch chan struct{}, typ EventType) Observer {
	return ObserverFunc(func(_ context.Context, e Event) {
		if e.Type == typ {
			select {
			case ch <- struct{}{}:
			default:
			}
		}
	})
}

// matrixPolicy builds one named policy on the shared manual clock.
func (m *matrixPolicies) policy(t *testing.T, name string) Policy[int] {
	t.Helper()
	must := func(err error) {
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	switch name {
	case "retry":
		r, err := NewRetry(RetryConfig{MaxAttempts: 5, Backoff: Backoff{Base: time.Second, Max: 10 * time.Second}, Clock: m.clk,
			Observer: signal(m.retried, EventRetry)})
		must(err)
		return WithRetry[int](r)
	case "breaker":
		b, err := NewBreaker(BreakerConfig{Clock: m.clk})
		must(err)
		return WithBreaker[int](b)
	case "timeout":
		tm, err := NewTimeout(TimeoutConfig{Duration: time.Minute, Clock: m.clk})
		must(err)
		return WithTimeout[int](tm)
	case "bulkhead":
		b, err := NewBulkhead(BulkheadConfig{MaxConcurrent: 1, MaxQueue: 4, Clock: m.clk})
		must(err)
		m.bulkhead = b
		return WithBulkhead[int](b)
	case "ratelimit":
		l, err := NewRateLimiter(RateLimitConfig{Rate: 1000, Burst: 10, MaxWait: time.Minute, Clock: m.clk})
		must(err)
		return WithRateLimit[int](l)
	case "throttle":
		th, err := NewThrottle(ThrottleConfig{Clock: m.clk, Seed: 1})
		must(err)
		return WithThrottle[int](th)
	case "fallback":
		return FallbackValue[int](-1, nil)
	case "hedge":
		h, err := NewHedge(HedgeConfig{Delay: time.Second, MaxHedges: 2, Clock: m.clk, Observer: signal(m.hedged, EventHedge)})
		must(err)
		return WithHedge[int](h)
	}
	t.Fatalf("unknown policy %s", name)
	return nil
}

var matrixNames = []string{"retry", "breaker", "timeout", "bulkhead", "ratelimit", "throttle", "fallback", "hedge"}

// matrixCombos returns every ordered pair and triple of distinct policies.
func matrixCombos() [][]string {
	var out [][]string
	for _, a := range matrixNames {
		for _, b := range matrixNames {
			if b == a {
				continue
			}
			out = append(out, []string{a, b})
			for _, c := range matrixNames {
				if c != a && c != b {
					out = append(out, []string{a, b, c})
				}
			}
		}
	}
	return out
}

func contains(list []string, s string) bool { return index(list, s) >= 0 }

func index(list []string, s string) int {
	for i, x := range list {
		if x == s {
			return i
		}
	}
	return -1
}

var errFlaky = errors.New("flaky upstream")

func TestCancellationMatrix(t *testing.T) {
	phases := []string{"before", "attempt", "backoff", "bulkhead-wait", "hedge"}
	cases := 0
	for _, combo := range matrixCombos() {
		for _, phase := range phases {
			if phase == "backoff" && (!contains(combo, "retry") || index(combo, "fallback") > index(combo, "retry")) {
				continue // no retry, or a fallback inside it turns every failure into a value
			}
			if phase == "bulkhead-wait" && !contains(combo, "bulkhead") {
				continue
			}
			if phase == "hedge" && !contains(combo, "hedge") {
				continue
			}
			cases++
			name := strings.Join(combo, "+") + "/" + phase
			t.Run(name, func(t *testing.T) { matrixCase(t, combo, phase) })
		}
	}
	t.Logf("%d cases", cases)
}

func matrixCase(t *testing.T, combo []string, phase string) {
	before := runtime.NumGoroutine()
	m := &matrixPolicies{clk: clock.NewManual(time.Time{}), retried: make(chan struct{}, 1), hedged: make(chan struct{}, 1)}
	var policies []Policy[int]
	for _, n := range combo {
		policies = append(policies, m.policy(t, n))
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	calls := make(chan struct{}, 16)
	fn := func(ctx context.Context) (int, error) {
		calls <- struct{}{}
		if phase == "backoff" {
			return 0, errFlaky // fail at once, so the retry waits on its backoff
		}
		<-ctx.Done()
		return 0, ctx.Err()
	}

	var release func()
	if phase == "bulkhead-wait" {
		// Hold the bulkhead's only slot, so the call under test queues for it.
		held, holderDone := make(chan struct{}), make(chan struct{})
		hctx, hcancel := context.WithCancel(context.Background())
		go func() {
			defer close(holderDone)
			m.bulkhead.Execute(hctx, func(ctx context.Context) error { close(held); <-ctx.Done(); return nil })
		}()
		<-held
		release = func() { hcancel(); <-holderDone }
		defer release()
	}

	if phase == "before" {
		cancel()
	}
	done := make(chan error, 1)
	go func() {
		_, err := Execute(ctx, fn, policies...)
		done <- err
	}()

	wait := func(what string, cond func() bool) {
		deadline := time.Now().Add(5 * time.Second) // a hang guard, not a timing assertion
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("%s: never happened", what)
			}
			runtime.Gosched()
			time.Sleep(50 * time.Microsecond)
		}
	}
	switch phase {
	case "attempt":
		<-calls
		cancel()
	case "backoff":
		<-calls
		// The retry is about to wait on its backoff timer (the clock never moves in this phase).
		<-m.retried
		wait("retry backoff wait", func() bool { return m.clk.Timers() >= 1 })
		cancel()
	case "hedge":
		<-calls
		// The first attempt blocks; once the hedge's timer is set, move the clock by its delay so
		// a hedged attempt starts, then cancel while both run.
		// One attempt runs: the hedge's timer is pending, plus the timeout's when there is one.
		want := 1
		if contains(combo, "timeout") {
			want++
		}
		wait("hedge timer", func() bool { return m.clk.Timers() >= want })
		m.clk.Advance(time.Second)
		select {
		case <-m.hedged:
		case <-time.After(5 * time.Second): // a hang guard, not a timing assertion
			t.Fatal("no hedged attempt started")
		}
		cancel()
	case "bulkhead-wait":
		wait("bulkhead queue", func() bool { return m.bulkhead.Queued() == 1 })
		cancel()
	}

	var err error
	select {
	case err = <-done:
	case <-time.After(5 * time.Second):
		t.Fatalf("Execute did not return after the caller cancelled (the manual clock never moved)")
	}
	if phase == "before" && len(calls) > 0 {
		t.Errorf("fn ran although the context had ended")
	}
	if !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want the caller's context.Canceled", err)
	}
	for _, policyErr := range []error{ErrOpen, ErrTimeout, ErrBulkheadFull, ErrRateLimited, ErrBudgetExhausted, ErrLimitExceeded} {
		if errors.Is(err, policyErr) {
			t.Errorf("err = %v: a policy error (%v) instead of the caller's cancellation", err, policyErr)
		}
	}
	if release != nil {
		release()
		release = nil
	}
	matrixNoLeak(t, before)
}

// matrixNoLeak waits for the goroutine count to come back to what it was.
func matrixNoLeak(t *testing.T, before int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			n := runtime.Stack(buf, true)
			t.Fatalf("goroutines: %d before, %d after\n%s", before, runtime.NumGoroutine(), fmt.Sprint(string(buf[:n])))
		}
		runtime.Gosched()
		time.Sleep(100 * time.Microsecond)
	}
}

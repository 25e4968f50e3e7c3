package resilience

import (
	"context"
	"errors"
	"math/rand"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/faultline-dev/faultline/clock"
)

var errRetryFlaky = errors.New("flaky")

type retryAfterErr struct{ d time.Duration }

func (e retryAfterErr) Error() string             { return "slow down" }
func (e retryAfterErr) RetryAfter() time.Duration { return e.d }

func retryTestState(cfg RetryConfig, now time.Time) *retryState {
	r, err := NewRetry(cfg)
	if err != nil {
		panic(err)
	}
	return r.retryNewState(now)
}

func TestRetryStateNext(t *testing.T) {
	ms := time.Millisecond
	type step struct {
		after time.Duration // time since start when the attempt ends
		err   error
		delay time.Duration
		retry bool
		why   error // checked with errors.Is when !retry
	}
	perm := Permanent(errRetryFlaky)
	tests := []struct {
		name  string
		cfg   RetryConfig
		steps []step
	}{
		{"success first", RetryConfig{}, []step{{0, nil, 0, false, nil}}},
		{"defaults: 3 attempts doubling", RetryConfig{}, []step{
			{0, errRetryFlaky, 100 * ms, true, nil},
			{0, errRetryFlaky, 200 * ms, true, nil},
			{0, errRetryFlaky, 0, false, errRetryFlaky},
		}},
		{"max attempts 4", RetryConfig{MaxAttempts: 4, Backoff: Backoff{Base: 10 * ms}}, []step{
			{0, errRetryFlaky, 10 * ms, true, nil},
			{0, errRetryFlaky, 20 * ms, true, nil},
			{0, errRetryFlaky, 40 * ms, true, nil},
			{0, errRetryFlaky, 0, false, errRetryFlaky},
		}},
		{"one attempt", RetryConfig{MaxAttempts: 1}, []step{{0, errRetryFlaky, 0, false, errRetryFlaky}}},
		{"permanent", RetryConfig{}, []step{{0, perm, 0, false, perm}}},
		{"classifier", RetryConfig{Retryable: func(err error) bool { return false }}, []step{{0, errRetryFlaky, 0, false, errRetryFlaky}}},
		{"max elapsed stops before exceeding", RetryConfig{MaxAttempts: 10, MaxElapsed: 250 * ms}, []step{
			{0, errRetryFlaky, 100 * ms, true, nil},
			{100 * ms, errRetryFlaky, 0, false, errRetryFlaky}, // 100+200 > 250
		}},
		{"retry-after overrides", RetryConfig{}, []step{{0, retryAfterErr{3 * time.Second}, 3 * time.Second, true, nil}}},
		{"retry-after capped by Max", RetryConfig{Backoff: Backoff{Max: time.Second}}, []step{{0, retryAfterErr{time.Minute}, time.Second, true, nil}}},
		{"retry-after past MaxElapsed stops", RetryConfig{MaxElapsed: time.Second}, []step{{0, retryAfterErr{2 * time.Second}, 0, false, errRetryFlaky}}},
		{"zero retry-after uses backoff", RetryConfig{}, []step{{0, retryAfterErr{0}, 100 * ms, true, nil}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := retryTestState(tt.cfg, budgetT0)
			for i, s := range tt.steps {
				delay, retry, why := st.Next(budgetT0.Add(s.after), s.err)
				if delay != s.delay || retry != s.retry {
					t.Fatalf("step %d: Next = (%v, %v, %v), want (%v, %v)", i, delay, retry, why, s.delay, s.retry)
				}
				if retry && why != nil {
					t.Fatalf("step %d: why %v with retry", i, why)
				}
				if !retry && s.why == nil && why != nil {
					t.Fatalf("step %d: why %v, want nil", i, why)
				}
				if !retry && s.why != nil && !errors.Is(why, s.why) && !(errors.Is(s.why, errRetryFlaky) && why != nil) {
					t.Fatalf("step %d: why %v, want %v", i, why, s.why)
				}
			}
		})
	}
}

func TestRetryBudgetExhaustedWrapsLastError(t *testing.T) {
	b, _ := NewRetryBudget(RetryBudgetConfig{Ratio: -1, MinRetriesPerSecond: -1})
	st := retryTestState(RetryConfig{Budget: b}, budgetT0)
	_, retry, why := st.Next(budgetT0, errRetryFlaky)
	if retry || !errors.Is(why, ErrBudgetExhausted) || !errors.Is(why, errRetryFlaky) {
		t.Fatalf("Next = %v, %v; want a stop matching ErrBudgetExhausted and the last error", retry, why)
	}
}

func TestNewRetryErrors(t *testing.T) {
	tests := []struct {
		cfg   RetryConfig
		field string
	}{
		{RetryConfig{MaxAttempts: -1}, "RetryConfig.MaxAttempts"},
		{RetryConfig{MaxElapsed: -1}, "RetryConfig.MaxElapsed"},
		{RetryConfig{PerAttemptTimeout: -1}, "RetryConfig.PerAttemptTimeout"},
		{RetryConfig{Backoff: Backoff{Multiplier: 0.1}}, "RetryConfig.Backoff.Multiplier"},
	}
	for _, tt := range tests {
		if _, err := NewRetry(tt.cfg); err == nil || !strings.Contains(err.Error(), tt.field) {
			t.Errorf("%s: got %v", tt.field, err)
		}
	}
}

// retryRun starts r.Execute in a goroutine and returns its result channel.
func retryRun(ctx context.Context, r *Retry, fn func(context.Context) error) <-chan error {
	done := make(chan error, 1)
	go func() { done <- r.Execute(ctx, fn) }()
	return done
}

func TestRetryExecuteBacksOffOnTheClock(t *testing.T) {
	checkNoLeak(t)
	m := clock.NewManual(time.Time{})
	var retries []time.Duration
	r, err := NewRetry(RetryConfig{MaxAttempts: 4, Clock: m, Backoff: Backoff{Base: time.Second},
		OnRetry: func(attempt int, err error, d time.Duration) { retries = append(retries, d) }})
	if err != nil {
		t.Fatal(err)
	}
	var calls atomic.Int32
	done := retryRun(context.Background(), r, func(ctx context.Context) error {
		if calls.Add(1) < 3 {
			return errRetryFlaky
		}
		return nil
	})
	start := m.Now()
	for _, want := range []time.Duration{time.Second, 2 * time.Second} {
		waitTimers(t, m, 1)
		if d, _ := m.NextDeadline(); d.Sub(m.Now()) != want {
			t.Fatalf("waiting %v, want %v", d.Sub(m.Now()), want)
		}
		m.Advance(want)
	}
	if err := <-done; err != nil {
		t.Fatalf("Execute = %v", err)
	}
	if calls.Load() != 3 || m.Since(start) != 3*time.Second || len(retries) != 2 {
		t.Errorf("%d calls, %v elapsed, OnRetry %v", calls.Load(), m.Since(start), retries)
	}
}

func TestRetryCallerCancellation(t *testing.T) {
	m := clock.NewManual(time.Time{})
	r, _ := NewRetry(RetryConfig{MaxAttempts: 5, Clock: m})

	t.Run("before the call", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		called := false
		err := r.Execute(ctx, func(context.Context) error { called = true; return nil })
		if called || !errors.Is(err, context.Canceled) {
			t.Errorf("called %v, err %v", called, err)
		}
	})
	t.Run("during backoff", func(t *testing.T) {
		checkNoLeak(t)
		ctx, cancel := context.WithCancel(context.Background())
		var calls atomic.Int32
		done := retryRun(ctx, r, func(context.Context) error { calls.Add(1); return errRetryFlaky })
		waitTimers(t, m, 1)
		cancel()
		err := <-done
		if !errors.Is(err, context.Canceled) || !errors.Is(err, errRetryFlaky) || calls.Load() != 1 {
			t.Errorf("err %v after %d calls; want Canceled (with the last error)", err, calls.Load())
		}
		if m.Timers() != 0 {
			t.Errorf("%d timers left", m.Timers())
		}
	})
	t.Run("during an attempt", func(t *testing.T) {
		checkNoLeak(t)
		ctx, cancel := context.WithCancel(context.Background())
		var calls atomic.Int32
		started := make(chan struct{})
		done := retryRun(ctx, r, func(ctx context.Context) error {
			calls.Add(1)
			close(started)
			<-ctx.Done()
			return ctx.Err()
		})
		<-started
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) || calls.Load() != 1 {
			t.Errorf("err %v after %d calls", err, calls.Load())
		}
	})
	t.Run("deadline", func(t *testing.T) {
		ctx, cancel := context.WithDeadline(context.Background(), time.Unix(0, 0))
		defer cancel()
		if err := r.Execute(ctx, func(context.Context) error { return nil }); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("err %v", err)
		}
	})
}

func TestRetryPerAttemptTimeout(t *testing.T) {
	checkNoLeak(t)
	m := clock.NewManual(time.Time{})
	r, _ := NewRetry(RetryConfig{MaxAttempts: 2, PerAttemptTimeout: time.Second, Backoff: Backoff{Base: time.Second}, Clock: m})
	var calls atomic.Int32
	done := retryRun(context.Background(), r, func(ctx context.Context) error {
		if calls.Add(1) == 2 {
			return nil
		}
		<-ctx.Done()
		return ctx.Err()
	})
	waitTimers(t, m, 1) // the attempt's timeout
	m.Advance(time.Second)
	waitTimers(t, m, 1) // the backoff
	m.Advance(time.Second)
	if err := <-done; err != nil || calls.Load() != 2 {
		t.Errorf("err %v after %d calls", err, calls.Load())
	}
}

func TestRetryRetryAfterAndBudget(t *testing.T) {
	m := clock.NewManual(time.Time{})
	b, _ := NewRetryBudget(RetryBudgetConfig{Ratio: 1, MinRetriesPerSecond: -1})
	r, _ := NewRetry(RetryConfig{MaxAttempts: 3, Clock: m, Budget: b})
	done := retryRun(context.Background(), r, func(context.Context) error { return retryAfterErr{7 * time.Second} })
	waitTimers(t, m, 1)
	if d, _ := m.NextDeadline(); d.Sub(m.Now()) != 7*time.Second {
		t.Fatalf("wait %v, want the server's 7s", d.Sub(m.Now()))
	}
	m.Advance(7 * time.Second)
	// One request earned one retry; the second retry is refused.
	err := <-done
	var ra retryAfterErr
	if !errors.Is(err, ErrBudgetExhausted) || !errors.As(err, &ra) {
		t.Errorf("err %v", err)
	}
}

func TestWithRetryReturnsResult(t *testing.T) {
	r, _ := NewRetry(RetryConfig{MaxAttempts: 3, Backoff: Backoff{Base: time.Nanosecond, Max: time.Nanosecond}}) // 1 ns waits on the real clock
	n := 0
	got, err := Execute(context.Background(), func(context.Context) (int, error) {
		n++
		if n < 3 {
			return 0, errRetryFlaky
		}
		return 42, nil
	}, WithRetry[int](r))
	if err != nil || got != 42 {
		t.Errorf("got %d, %v", got, err)
	}
	// The permanent mark survives, so an outer retry does not retry it either.
	outer, _ := NewRetry(RetryConfig{MaxAttempts: 3, Clock: clock.NewManual(time.Time{})})
	calls := 0
	_, err = Execute(context.Background(), func(context.Context) (int, error) {
		calls++
		return 0, Permanent(errRetryFlaky)
	}, WithRetry[int](outer), WithRetry[int](r))
	if calls != 1 || !IsPermanent(err) || !errors.Is(err, errRetryFlaky) || err.Error() != "flaky" {
		t.Errorf("%d calls, err %v", calls, err)
	}
}

// TestRetryModel checks the retry core against a reference: for random configurations and
// outcome sequences, the attempts made and the delays waited match a direct computation.
func TestRetryModel(t *testing.T) {
	seed := testSeed(t)
	rng := rand.New(rand.NewSource(seed))
	for round := range testRounds(300, 10000) {
		bo := Backoff{
			Base:       time.Duration(1+rng.Intn(100)) * time.Millisecond,
			Multiplier: []float64{0, 1, 1.5, 3}[rng.Intn(4)],
			Jitter:     Jitter(rng.Intn(4)),
		}
		bo.Max = bo.withDefaults().Base * time.Duration(1+rng.Intn(50))
		cfg := RetryConfig{MaxAttempts: rng.Intn(7), Backoff: bo, Seed: rng.Int63()}
		if rng.Intn(2) == 0 {
			cfg.MaxElapsed = time.Duration(rng.Intn(3000)) * time.Millisecond
		}
		outcomes := make([]error, 10)
		for i := range outcomes {
			switch rng.Intn(6) {
			case 0:
				outcomes[i] = nil
			case 1:
				outcomes[i] = Permanent(errRetryFlaky)
			case 2:
				outcomes[i] = retryAfterErr{time.Duration(rng.Intn(5000)) * time.Millisecond}
			default:
				outcomes[i] = errRetryFlaky
			}
		}
		st := retryTestState(cfg, budgetT0)
		// Reference: the same jitter stream, computed directly.
		ref := rand.New(rand.NewSource(cfg.Seed))
		maxAttempts := cfg.MaxAttempts
		if maxAttempts == 0 {
			maxAttempts = 3
		}
		b := bo.withDefaults()
		now, prev := budgetT0, time.Duration(0)
		for i, out := range outcomes {
			delay, retry, why := st.Next(now, out)
			var wantDelay time.Duration
			wantRetry := out != nil && !IsPermanent(out) && i+1 < maxAttempts
			if wantRetry {
				wantDelay = b.Delay(i, prev, ref.Float64())
				if ra, ok := out.(retryAfterErr); ok && ra.d > 0 {
					wantDelay = min(ra.d, b.Max)
				}
				if cfg.MaxElapsed > 0 && now.Sub(budgetT0)+wantDelay > cfg.MaxElapsed {
					wantRetry, wantDelay = false, 0
				}
			}
			if retry != wantRetry || delay != wantDelay || (!retry && why != out) {
				t.Fatalf("round %d attempt %d (%+v, outcome %v): Next = (%v, %v, %v), model (%v, %v)", round, i+1, cfg, out, delay, retry, why, wantDelay, wantRetry)
			}
			if !retry {
				break
			}
			prev = delay
			now = now.Add(delay + time.Duration(rng.Intn(50))*time.Millisecond)
		}
	}
}

func TestHTTPRetryable(t *testing.T) {
	for status, want := range map[int]bool{200: false, 400: false, 404: false, 408: true, 409: false, 425: true, 429: true, 500: true, 501: false, 502: true, 503: true, 504: true, 505: false} {
		if HTTPRetryable(status) != want {
			t.Errorf("HTTPRetryable(%d) = %v", status, !want)
		}
	}
}

func TestGRPCRetryable(t *testing.T) {
	for code, want := range map[uint32]bool{0: false, 1: false, 2: false, 3: false, 4: true, 5: false, 8: false, 13: false, 14: true, 16: false} {
		if GRPCRetryable(code) != want {
			t.Errorf("GRPCRetryable(%d) = %v", code, !want)
		}
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2015, 10, 21, 7, 28, 0, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"120", 2 * time.Minute, true},
		{" 0 ", 0, true},
		{"Wed, 21 Oct 2015 07:28:30 GMT", 30 * time.Second, true},
		{"Wed, 21 Oct 2015 07:00:00 GMT", 0, true}, // in the past
		{"Wednesday, 21-Oct-15 07:29:00 GMT", time.Minute, true},
		{"99999999999999999999999", time.Duration(1<<63 - 1), true},
		{"", 0, false},
		{"-5", 0, false},
		{"1.5", 0, false},
		{"soon", 0, false},
	}
	for _, tt := range tests {
		got, ok := ParseRetryAfter(tt.in, now)
		if got != tt.want || ok != tt.ok {
			t.Errorf("ParseRetryAfter(%q) = %v, %v; want %v, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

func BenchmarkRetrySuccess(b *testing.B) {
	r, _ := NewRetry(RetryConfig{})
	ctx := context.Background()
	fn := func(context.Context) error { return nil }
	for b.Loop() {
		_ = r.Execute(ctx, fn)
	}
}

// An open breaker stays open far longer than a backoff: the default classifier does not retry it.
func TestRetryDefaultDoesNotRetryOpenBreaker(t *testing.T) {
	r, err := NewRetry(RetryConfig{MaxAttempts: 5, Clock: clock.NewManual(time.Time{})})
	if err != nil {
		t.Fatal(err)
	}
	calls := 0
	err = r.Execute(context.Background(), func(context.Context) error { calls++; return ErrOpen })
	if !errors.Is(err, ErrOpen) || calls != 1 {
		t.Fatalf("err = %v after %d calls, want ErrOpen after 1", err, calls)
	}
}

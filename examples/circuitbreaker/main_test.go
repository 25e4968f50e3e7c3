package main

import (
	"bytes"
	"context"
	"errors"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/faultline-dev/faultline/clock"
	"github.com/faultline-dev/faultline/resilience"
)

// The run makes real HTTP round trips to the in-process upstream, but every duration the policies
// and the script see is on a clock.Manual, so no test sleeps and a seed replays exactly.
//
// The run is strictly sequential: at any moment it is computing or doing fast local I/O (which
// takes no virtual time), or it is parked waiting for the clock. It parks in two places: a Sleep
// (the pause between calls, a retry backoff), and a request the upstream holds open (a hang, which
// only the per-attempt timeout's AfterFunc ends). steppedClock and the upstream's onHang hook both
// report "parked" once the timer they wait for is registered; the driver then moves the clock to
// the next deadline and nothing else. A request that is answered never parks, so its timeout can
// never fire by accident.

// steppedClock is a clock.Manual whose sleepers announce that they are parked.
type steppedClock struct {
	*clock.Manual
	parked chan struct{}
}

func newSteppedClock() *steppedClock {
	return &steppedClock{Manual: clock.NewManual(time.Time{}), parked: make(chan struct{})}
}

// park tells the driver that the run waits for the clock.
func (c *steppedClock) park(ctx context.Context) {
	select {
	case c.parked <- struct{}{}:
	case <-ctx.Done():
	}
}

// Sleep registers the timer first and then parks, so the driver's advance always fires it.
func (c *steppedClock) Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if d <= 0 {
		return nil
	}
	t := c.NewTimer(d)
	defer t.Stop()
	c.park(ctx)
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C():
		return nil
	}
}

// runStepped runs cfg on a stepped manual clock, advancing it each time the run parks.
func runStepped(t *testing.T, cfg config) (summary, string) {
	t.Helper()
	sc := newSteppedClock()
	cfg.Clock = sc
	cfg.onHang = sc.park
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	var out bytes.Buffer // written by run only; read after done delivers
	type result struct {
		sum summary
		err error
	}
	done := make(chan result, 1)
	go func() {
		s, err := run(ctx, &out, cfg)
		done <- result{s, err}
	}()
	watchdog := time.NewTimer(30 * time.Second) // a bound on a stuck test, not a wait
	defer watchdog.Stop()
	for {
		select {
		case <-sc.parked:
			next, ok := sc.NextDeadline()
			if !ok {
				cancel()
				<-done
				t.Fatal("the run parked with no timer pending")
			}
			sc.Set(next)
		case r := <-done:
			if r.err != nil {
				t.Fatalf("run: %v\n%s", r.err, out.String())
			}
			return r.sum, out.String()
		case <-watchdog.C:
			cancel()
			<-done
			t.Fatalf("run did not finish\n%s", out.String())
		}
	}
}

// checkNoLeak fails the test when goroutines started during it are still running at its end
// (the upstream's server and connections, the client's transport, the manual clock's callbacks).
func checkNoLeak(t *testing.T) {
	t.Helper()
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(5 * time.Second)
		for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
			runtime.Gosched()
		}
		if n := runtime.NumGoroutine(); n > before {
			buf := make([]byte, 1<<16)
			t.Errorf("goroutine leak: %d before, %d after\n%s", before, n, buf[:runtime.Stack(buf, true)])
		}
	})
}

// TestBreakerLifecycle runs the full script (healthy → failing → recovered) for several seeds and
// checks what a user of the client would notice.
func TestBreakerLifecycle(t *testing.T) {
	checkNoLeak(t)
	var timeouts, retries, inCallRejections int
	for _, seed := range []int64{1, 2, 3, 7, 42} {
		cfg := defaultConfig()
		cfg.Seed = seed
		sum, out := runStepped(t, cfg)
		if t.Failed() {
			return
		}
		timeouts += sum.Timeouts
		retries += sum.Retries

		// The breaker went closed → open → half-open → closed, each change starting where the
		// previous one ended (a failed probe may reopen it in between).
		tr := sum.Transitions
		var path []string
		for i, x := range tr {
			path = append(path, x.From.String()+"→"+x.To.String())
			want := resilience.BreakerClosed
			if i > 0 {
				want = tr[i-1].To
			}
			if x.From != want {
				t.Errorf("seed %d: transition %d starts at %v, want %v", seed, i, x.From, want)
			}
			if i > 0 && x.At < tr[i-1].At {
				t.Errorf("seed %d: transition %d goes back in time", seed, i)
			}
		}
		if len(tr) < 3 || tr[0].To != resilience.BreakerOpen || tr[1].To != resilience.BreakerHalfOpen ||
			tr[len(tr)-1].From != resilience.BreakerHalfOpen || tr[len(tr)-1].To != resilience.BreakerClosed {
			t.Errorf("seed %d: transitions %v, want closed→open→half-open→…→closed", seed, path)
		}

		// Every call got an answer or an error; with a warm cache, none failed.
		calls := 0
		for _, ph := range cfg.Phases {
			calls += ph.Calls
		}
		if sum.Calls != calls || sum.Calls != len(sum.Records) || sum.Calls != sum.Fresh+sum.Fallbacks+sum.Errors {
			t.Errorf("seed %d: calls %d (records %d) != fresh %d + fallbacks %d + errors %d, want %d calls",
				seed, sum.Calls, len(sum.Records), sum.Fresh, sum.Fallbacks, sum.Errors, calls)
		}
		if sum.Errors != 0 {
			t.Errorf("seed %d: %d errors with a warm cache", seed, sum.Errors)
		}

		// Only attempts the breaker let through reached the upstream, call by call.
		if sum.UpstreamRequests != int64(sum.Attempts) {
			t.Errorf("seed %d: upstream saw %d requests, breaker let %d through", seed, sum.UpstreamRequests, sum.Attempts)
		}
		rejectedCalls, rejected := 0, 0
		for _, r := range sum.Records {
			rejected += r.Rejected
			if r.UpstreamHits != int64(r.Attempts) {
				t.Errorf("seed %d: call #%d: %d upstream hits, %d attempts let through", seed, r.N, r.UpstreamHits, r.Attempts)
			}
			if r.rejectedOnly() {
				rejectedCalls++
				if r.Outcome != outcomeStale || r.UpstreamHits != 0 {
					t.Errorf("seed %d: call #%d rejected by the breaker: outcome %s, %d upstream hits; want stale, 0",
						seed, r.N, r.Outcome, r.UpstreamHits)
				}
			} else if r.Rejected > 0 {
				inCallRejections++
			}
			if r.Outcome == outcomeStale && (r.Rate == 0 || r.Age <= 0) {
				t.Errorf("seed %d: call #%d: stale answer %v, age %v", seed, r.N, r.Rate, r.Age)
			}
		}
		// The open breaker spans at least OpenDuration/Interval calls each time it opens.
		if least := int(cfg.OpenDuration/cfg.Interval) - 2; rejectedCalls < least {
			t.Errorf("seed %d: %d calls answered by the fallback while the breaker was open, want ≥ %d", seed, rejectedCalls, least)
		}
		if rejected != sum.Rejected {
			t.Errorf("seed %d: records count %d rejections, summary %d", seed, rejected, sum.Rejected)
		}
		// The script ends healthy, and so does the client.
		if last := sum.Records[len(sum.Records)-1]; last.Outcome != outcomeFresh {
			t.Errorf("seed %d: last call %+v, want fresh", seed, last)
		}

		for _, want := range []string{"breaker closed → open", "breaker open → half-open", "breaker half-open → closed",
			"rejected by the open breaker, upstream not called", "summary", "fallbacks served (stale cache)"} {
			if !strings.Contains(out, want) {
				t.Errorf("seed %d: output lacks %q", seed, want)
			}
		}
		t.Logf("seed %d: %s; %d timeouts, %d retries, %d fallbacks", seed, strings.Join(path, " "), sum.Timeouts, sum.Retries, sum.Fallbacks)
	}
	// Across the seeds, hangs ended by the timeout (on the manual clock) and retries both happened.
	if timeouts == 0 || retries == 0 || inCallRejections == 0 {
		t.Errorf("over all seeds: %d timeouts, %d retries, %d calls whose retry the opening breaker rejected; want each > 0",
			timeouts, retries, inCallRejections)
	}
}

// TestSameSeedSameRun: on the manual clock a seed replays the run exactly (what -seed promises,
// up to wall-clock noise on the real clock).
func TestSameSeedSameRun(t *testing.T) {
	checkNoLeak(t)
	cfg := defaultConfig()
	cfg.Seed = 11
	a, _ := runStepped(t, cfg)
	b, _ := runStepped(t, cfg)
	a.UpstreamRequests, b.UpstreamRequests = 0, 0
	if !reflect.DeepEqual(a, b) {
		t.Errorf("two runs with seed 11 differ:\n%+v\n%+v", a, b)
	}
}

// TestColdCache: when the upstream fails from the first call there is nothing to fall back on, so
// the caller gets the error, and the breaker still stops the calls from reaching the upstream.
func TestColdCache(t *testing.T) {
	checkNoLeak(t)
	cfg := defaultConfig()
	cfg.Seed = 5
	cfg.Phases = []phase{{modeFailing, 6}}
	sum, out := runStepped(t, cfg)
	if sum.Calls != 6 || sum.Errors != 6 || sum.Fresh != 0 || sum.Fallbacks != 0 {
		t.Errorf("calls %d: fresh %d, fallbacks %d, errors %d; want 6 errors", sum.Calls, sum.Fresh, sum.Fallbacks, sum.Errors)
	}
	if len(sum.Transitions) == 0 || sum.Transitions[0].To != resilience.BreakerOpen {
		t.Errorf("transitions %+v, want the breaker open", sum.Transitions)
	}
	last := sum.Records[len(sum.Records)-1]
	if !last.rejectedOnly() || last.UpstreamHits != 0 || !strings.Contains(last.Err, "no cached EUR-USD rate") {
		t.Errorf("last call %+v, want rejected by the breaker with no cached rate", last)
	}
	if !strings.Contains(out, "error: ") {
		t.Errorf("output shows no error:\n%s", out)
	}
}

// TestClassification: which errors the breaker counts, the retry retries and the fallback covers.
func TestClassification(t *testing.T) {
	for _, tc := range []struct {
		name                   string
		err                    error
		unavailable, retryable bool
	}{
		{"500", &UpstreamError{Status: 500}, true, true},
		{"503", &UpstreamError{Status: 503, retryAfter: time.Second}, true, true},
		{"501 not implemented", &UpstreamError{Status: 501}, true, false},
		{"429", &UpstreamError{Status: 429}, true, true},
		{"404 is our mistake", resilience.Permanent(&UpstreamError{Status: 404}), false, false},
		{"timeout", resilience.ErrTimeout, true, true},
		{"transport", errors.New("connection refused"), true, true},
		{"breaker open", resilience.ErrOpen, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := upstreamUnavailable(tc.err); got != tc.unavailable {
				t.Errorf("upstreamUnavailable = %v, want %v", got, tc.unavailable)
			}
			if got := retryable(tc.err); got != tc.retryable {
				t.Errorf("retryable = %v, want %v", got, tc.retryable)
			}
		})
	}
	var ra resilience.RetryAfterError
	if !errors.As(error(&UpstreamError{Status: 503, retryAfter: time.Second}), &ra) || ra.RetryAfter() != time.Second {
		t.Error("UpstreamError does not carry Retry-After to the retry")
	}
}

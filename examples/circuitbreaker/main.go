// Command circuitbreaker is a runnable example of an external service client hardened with
// faultline's resilience policies: the Go version of the seed document's
// circuit-breaker-implementation/src/external-service-client.ts.
//
// It starts a flaky exchange-rate API in the same process (127.0.0.1:0), then calls it through
//
//	resilience.Compose(fallback, retry, breaker, timeout)
//
// while the API goes healthy → failing (500s, 503s with Retry-After, hangs past the timeout) →
// recovered. It prints each breaker state change as it happens, a line per call (calls rejected by
// the open breaker are batched), and a summary table. It needs no setup and ends in a few seconds.
//
//	go run ./examples/circuitbreaker [-seed N] [-quiet]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"sync"
	"time"

	"github.com/faultline-dev/faultline/clock"
	"github.com/faultline-dev/faultline/resilience"
)

func main() {
	seed := flag.Int64("seed", 0, "seed for the upstream's failures and the retry jitter (0: pick one and print it)")
	quiet := flag.Bool("quiet", false, "print only breaker state changes and the summary")
	flag.Parse()

	cfg := defaultConfig()
	cfg.Seed = *seed
	if cfg.Seed == 0 {
		cfg.Seed = time.Now().UnixNano()%1_000_000 + 1
	}
	cfg.Quiet = *quiet
	cfg.Clock = clock.Real()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if _, err := run(ctx, os.Stdout, cfg); err != nil {
		fmt.Fprintln(os.Stderr, "circuitbreaker:", err)
		os.Exit(1)
	}
}

// phase is a stretch of the script: the upstream's mode and how many calls are made in it.
type phase struct {
	Mode  upstreamMode
	Calls int
}

// config is one run of the example.
type config struct {
	Seed  int64
	Quiet bool
	// Clock drives every policy, the pacing of calls and the upstream's timestamps. main passes
	// clock.Real(); the test a manual clock.
	Clock clock.Clock
	// Interval is the pause between two calls.
	Interval time.Duration
	// Timeout, MaxAttempts, Backoff, FailuresToOpen and OpenDuration set up the client's policies.
	Timeout        time.Duration
	MaxAttempts    int
	Backoff        resilience.Backoff
	FailuresToOpen int
	OpenDuration   time.Duration
	// Phases is the script the upstream goes through.
	Phases []phase

	// onHang, when set, is called by the upstream as a request starts to hang (the test uses it
	// to know that the run is waiting for the timeout).
	onHang func(context.Context)
}

// defaultConfig is the run `go run` makes: about 2–3 seconds on the real clock.
func defaultConfig() config {
	return config{
		Interval:       50 * time.Millisecond,
		Timeout:        100 * time.Millisecond,
		MaxAttempts:    3,
		Backoff:        resilience.Backoff{Base: 20 * time.Millisecond, Max: 80 * time.Millisecond, Jitter: resilience.JitterFull},
		FailuresToOpen: 5,
		OpenDuration:   500 * time.Millisecond,
		Phases:         []phase{{modeHealthy, 8}, {modeFailing, 16}, {modeRecovered, 12}},
	}
}

// outcome is how a call ended for its caller.
type outcome string

const (
	outcomeFresh outcome = "fresh" // answered by the upstream
	outcomeStale outcome = "stale" // answered by the fallback from the cache
	outcomeError outcome = "error" // no answer
)

// callRecord is one call as the run saw it.
type callRecord struct {
	N       int
	Phase   upstreamMode
	At      time.Duration // when the call started, since the start of the run
	End     time.Duration // when it returned
	Outcome outcome
	Rate    float64
	Age     time.Duration // of a stale quote
	// Attempts is how many attempts the breaker let through; UpstreamHits how many requests
	// reached the upstream during the call (they must agree).
	Attempts     int
	UpstreamHits int64
	Retries      int
	Timeouts     int
	Rejected     int  // attempts rejected by the open breaker
	Exhausted    bool // the retry gave up on a retryable error
	Err          string
	LastErr      string // the error the fallback answered, or the call's error
}

// rejectedOnly reports whether the breaker rejected the call before any request was sent.
func (r callRecord) rejectedOnly() bool { return r.Attempts == 0 && r.Rejected > 0 }

// transition is a breaker state change and when it happened.
type transition struct {
	At       time.Duration
	From, To resilience.BreakerState
}

// summary is what a run did.
type summary struct {
	Calls, Fresh, Fallbacks, Errors int
	UpstreamRequests                int64 // requests that reached the upstream
	Attempts                        int   // attempts the breaker let through
	Retries, Timeouts, Rejected     int
	Transitions                     []transition
	Records                         []callRecord
}

// run starts the upstream, runs the script against it through an ExternalServiceClient, prints
// what happens to w and returns the summary. It stops the upstream before returning.
func run(ctx context.Context, w io.Writer, cfg config) (summary, error) {
	clk := cfg.Clock
	if clk == nil {
		clk = clock.Real()
	}
	rec := &recorder{w: w, clk: clk, start: clk.Now(), quiet: cfg.Quiet}

	up, err := startUpstream(cfg.Seed, clk, cfg.onHang)
	if err != nil {
		return summary{}, fmt.Errorf("start upstream: %w", err)
	}
	defer up.Close()
	client, err := NewExternalServiceClient(ClientConfig{
		BaseURL:        up.URL,
		Timeout:        cfg.Timeout,
		MaxAttempts:    cfg.MaxAttempts,
		Backoff:        cfg.Backoff,
		FailuresToOpen: cfg.FailuresToOpen,
		OpenDuration:   cfg.OpenDuration,
		Seed:           cfg.Seed,
		Clock:          clk,
		Observer:       rec,
	})
	if err != nil {
		return summary{}, err
	}
	defer client.Close()

	fmt.Fprintf(w, "circuit breaker example: ExternalServiceClient → flaky exchange-rate API at %s\n", up.URL)
	fmt.Fprintf(w, "seed %d (replay the failures and jitter with -seed %d)\n", cfg.Seed, cfg.Seed)
	fmt.Fprintf(w, "policies, outermost first: fallback (last good quote) → retry (%d attempts, backoff %v..%v, %v jitter)\n",
		cfg.MaxAttempts, cfg.Backoff.Base, cfg.Backoff.Max, cfg.Backoff.Jitter)
	fmt.Fprintf(w, "  → breaker (opens after %d failed attempts in a row, for %v) → timeout (%v per attempt) → HTTP\n\n",
		cfg.FailuresToOpen, cfg.OpenDuration, cfg.Timeout)

	n := 0
	for _, ph := range cfg.Phases {
		up.SetMode(ph.Mode)
		rec.phase(ph)
		for range ph.Calls {
			if n > 0 {
				if err := clk.Sleep(ctx, cfg.Interval); err != nil {
					return rec.done(up), err
				}
			}
			n++
			cs := &callStats{}
			at := clk.Since(rec.start)
			hits := up.Hits()
			q, err := client.GetRate(context.WithValue(ctx, callKey{}, cs), "EUR-USD")
			if ctx.Err() != nil {
				return rec.done(up), ctx.Err()
			}
			r := callRecord{N: n, Phase: ph.Mode, At: at, End: clk.Since(rec.start), UpstreamHits: up.Hits() - hits}
			switch {
			case err != nil:
				r.Outcome, r.Err = outcomeError, err.Error()
			case q.Stale:
				r.Outcome, r.Rate, r.Age = outcomeStale, q.Rate, clk.Since(q.FetchedAt)
			default:
				r.Outcome, r.Rate = outcomeFresh, q.Rate
			}
			rec.call(r, cs)
		}
	}
	sum := rec.done(up)
	sum.print(w, cfg)
	return sum, nil
}

// callKey keys the *callStats of the call in progress in its context, so the observer can tell
// each call's events apart (every policy hands the observer the call's context).
type callKey struct{}

// callStats is what the observer saw during one call.
type callStats struct {
	attempts, retries, timeouts, rejected int
	exhausted                             bool
	lastErr                               error
}

// recorder is the Observer of every policy: it counts events into the summary, prints breaker
// state changes as they happen, and prints the call lines.
type recorder struct {
	mu    sync.Mutex
	w     io.Writer
	clk   clock.Clock
	start time.Time
	quiet bool
	sum   summary
	batch []callRecord // calls rejected by the open breaker, not printed yet
}

// Observe implements resilience.Observer.
func (r *recorder) Observe(ctx context.Context, e resilience.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	cs, _ := ctx.Value(callKey{}).(*callStats)
	if cs == nil {
		cs = &callStats{}
	}
	switch {
	case e.Kind == resilience.KindBreaker && e.Type == resilience.EventStateChange:
		at := r.clk.Since(r.start)
		r.sum.Transitions = append(r.sum.Transitions, transition{At: at, From: e.From, To: e.To})
		r.flushLocked()
		note := map[resilience.BreakerState]string{
			resilience.BreakerOpen:     "calls fail fast, the fallback answers",
			resilience.BreakerHalfOpen: "open duration over, this attempt is the probe",
			resilience.BreakerClosed:   "the probe succeeded",
		}[e.To]
		fmt.Fprintf(r.w, "%s  *** breaker %v → %v: %s\n", stamp(at), e.From, e.To, note)
	case e.Kind == resilience.KindBreaker && e.Type == resilience.EventRejected:
		r.sum.Rejected++
		cs.rejected++
		cs.lastErr = e.Err
	case e.Kind == resilience.KindBreaker && (e.Type == resilience.EventSuccess || e.Type == resilience.EventFailure || e.Type == resilience.EventIgnored):
		r.sum.Attempts++
		cs.attempts++
		if e.Err != nil {
			cs.lastErr = e.Err
		}
	case e.Type == resilience.EventRetry:
		r.sum.Retries++
		cs.retries++
	case e.Type == resilience.EventRetriesExhausted:
		cs.exhausted = true
	case e.Type == resilience.EventTimeout:
		r.sum.Timeouts++
		cs.timeouts++
	case e.Type == resilience.EventFallback:
		cs.lastErr = e.Err
	}
}

// phase prints the banner of a new phase of the script.
func (r *recorder) phase(ph phase) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.quiet {
		return
	}
	r.flushLocked()
	what := map[upstreamMode]string{
		modeHealthy:   "answers, with a rare 503 blip",
		modeFailing:   "answers 500, or 503 with Retry-After, or hangs past the timeout",
		modeRecovered: "answers every request again",
	}[ph.Mode]
	fmt.Fprintf(r.w, "%s  --- upstream %v (%d calls): %s\n", stamp(r.clk.Since(r.start)), ph.Mode, ph.Calls, what)
}

// call records a finished call and prints it (batching the calls the open breaker rejected).
func (r *recorder) call(c callRecord, cs *callStats) {
	r.mu.Lock()
	defer r.mu.Unlock()
	c.Attempts, c.Retries, c.Timeouts, c.Rejected, c.Exhausted = cs.attempts, cs.retries, cs.timeouts, cs.rejected, cs.exhausted
	if cs.lastErr != nil {
		c.LastErr = cs.lastErr.Error()
	}
	r.sum.Records = append(r.sum.Records, c)
	r.sum.Calls++
	switch c.Outcome {
	case outcomeFresh:
		r.sum.Fresh++
	case outcomeStale:
		r.sum.Fallbacks++
	default:
		r.sum.Errors++
	}
	if r.quiet {
		return
	}
	if c.rejectedOnly() && c.Outcome == outcomeStale {
		if len(r.batch) > 0 && r.batch[0].Phase != c.Phase {
			r.flushLocked()
		}
		r.batch = append(r.batch, c)
		return
	}
	r.flushLocked()
	// Stamped when the call returned, so the lines stay in time order with the state changes
	// that happened during the call.
	fmt.Fprintf(r.w, "%s  %-9s %-9v %-5s  %s  %s\n", stamp(c.End), fmt.Sprintf("#%d", c.N), c.Phase, c.Outcome, rateText(c), describe(c, cs))
}

// flushLocked prints the pending batch of rejected calls as one line.
func (r *recorder) flushLocked() {
	if len(r.batch) == 0 {
		return
	}
	first, last := r.batch[0], r.batch[len(r.batch)-1]
	id, what := fmt.Sprintf("#%d", first.N), "rejected by the open breaker, upstream not called"
	if len(r.batch) > 1 {
		id = fmt.Sprintf("#%d-%d", first.N, last.N)
		what = fmt.Sprintf("%d calls %s", len(r.batch), what)
	}
	fmt.Fprintf(r.w, "%s  %-9s %-9v %-5s  %s  %s → cached quote, up to %v old\n",
		stamp(first.End), id, first.Phase, first.Outcome, rateText(last), what, last.Age.Round(time.Millisecond))
	r.batch = r.batch[:0]
}

// done flushes the output and returns the summary, with the upstream's request count.
func (r *recorder) done(up *upstream) summary {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.flushLocked()
	r.sum.UpstreamRequests = up.Hits()
	return r.sum
}

func stamp(d time.Duration) string { return fmt.Sprintf("%+8.3fs", d.Seconds()) }

func rateText(c callRecord) string {
	if c.Outcome == outcomeError {
		return "     -"
	}
	return fmt.Sprintf("%.4f", c.Rate)
}

// describe says in a few words what happened during a call.
func describe(c callRecord, cs *callStats) string {
	var parts []string
	if c.Attempts > 0 {
		s := plural(c.Attempts, "attempt")
		if c.Timeouts > 0 {
			s += fmt.Sprintf(", %d timed out", c.Timeouts)
		}
		parts = append(parts, s)
	}
	switch {
	case c.rejectedOnly():
		parts = append(parts, "rejected by the open breaker, upstream not called")
	case c.Rejected > 0:
		parts = append(parts, "then the breaker opened and rejected the retry")
	case c.Outcome == outcomeFresh && c.Retries > 0:
		parts = append(parts, "retried after "+short(cs.lastErr))
	case c.Exhausted:
		parts = append(parts, "retries exhausted (last: "+short(cs.lastErr)+")")
	case c.Outcome != outcomeFresh && cs.lastErr != nil:
		parts = append(parts, short(cs.lastErr))
	}
	s := strings.Join(parts, ", ")
	switch c.Outcome {
	case outcomeStale:
		s += fmt.Sprintf(" → cached quote, %v old", c.Age.Round(time.Millisecond))
	case outcomeError:
		s += " → error: " + c.Err
	}
	return s
}

// short names an error in a couple of words.
func short(err error) string {
	var ue *UpstreamError
	switch {
	case errors.Is(err, resilience.ErrOpen):
		return "breaker open"
	case errors.Is(err, resilience.ErrTimeout):
		return "timeout"
	case errors.As(err, &ue):
		return fmt.Sprintf("HTTP %d", ue.Status)
	case err == nil:
		return "ok"
	}
	return err.Error()
}

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}

// print writes the summary table.
func (s summary) print(w io.Writer, cfg config) {
	fmt.Fprintln(w, "\nsummary")
	row := func(label string, v any) { fmt.Fprintf(w, "  %-40s %5v\n", label, v) }
	row("calls", s.Calls)
	row("answered fresh by the upstream", s.Fresh)
	row("fallbacks served (stale cache)", s.Fallbacks)
	row("errors (nothing cached)", s.Errors)
	row("requests that reached the upstream", s.UpstreamRequests)
	row("retries", s.Retries)
	row(fmt.Sprintf("attempts timed out (%v)", cfg.Timeout), s.Timeouts)
	row("attempts rejected by the open breaker", s.Rejected)
	fmt.Fprintf(w, "  breaker transitions (%d):\n", len(s.Transitions))
	for _, t := range s.Transitions {
		fmt.Fprintf(w, "    %s  %v → %v\n", stamp(t.At), t.From, t.To)
	}
}

package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/faultline-dev/faultline/clock"
	"github.com/faultline-dev/faultline/resilience"
)

// Quote is an exchange rate as the client hands it out.
type Quote struct {
	Pair string    `json:"pair"`
	Rate float64   `json:"rate"`
	AsOf time.Time `json:"as_of"`
	// FetchedAt is when the client got the quote from the upstream (client clock).
	FetchedAt time.Time `json:"-"`
	// Stale is true when the fallback answered with the last good quote instead of the upstream.
	Stale bool `json:"-"`
}

// UpstreamError is a non-200 answer from the upstream. It implements resilience.RetryAfterError,
// so a Retry-After header replaces the computed backoff (capped at Backoff.Max).
type UpstreamError struct {
	Status     int
	retryAfter time.Duration
}

func (e *UpstreamError) Error() string {
	return fmt.Sprintf("upstream: HTTP %d %s", e.Status, http.StatusText(e.Status))
}

// RetryAfter returns the wait the upstream asked for in Retry-After (zero when it did not).
func (e *UpstreamError) RetryAfter() time.Duration { return e.retryAfter }

// ClientConfig configures an ExternalServiceClient. Only BaseURL is required; the zero values of
// the other fields mean the defaults documented on them.
type ClientConfig struct {
	// BaseURL is the upstream's address, e.g. http://127.0.0.1:8080.
	BaseURL string
	// HTTPClient sends the requests. Nil means a client of its own. Do not set a client-wide
	// Timeout: the timeout policy bounds each attempt, and a retried call must not share one.
	HTTPClient *http.Client
	// Timeout bounds each attempt (default 100 ms).
	Timeout time.Duration
	// MaxAttempts is the total number of attempts per call, the first included (default 3).
	MaxAttempts int
	// Backoff is the wait between attempts (default 20 ms doubling up to 80 ms, full jitter).
	Backoff resilience.Backoff
	// FailuresToOpen opens the breaker after this many failed attempts in a row (default 5).
	FailuresToOpen int
	// OpenDuration is how long the open breaker rejects calls before one probe (default 500 ms).
	OpenDuration time.Duration
	// Seed seeds the retry jitter.
	Seed int64
	// Clock supplies time to every policy (default clock.Real()).
	Clock clock.Clock
	// Observer receives every policy's events (state changes, retries, timeouts, fallbacks).
	Observer resilience.Observer
}

// ExternalServiceClient calls the exchange-rate API through a fallback, a retry, a circuit breaker
// and a timeout: the Go version of the seed document's external-service-client.ts.
type ExternalServiceClient struct {
	base     string
	http     *http.Client
	ownHTTP  bool
	clk      clock.Clock
	obs      resilience.Observer
	retry    resilience.Policy[Quote]
	breakerP resilience.Policy[Quote]
	timeout  resilience.Policy[Quote]

	mu    sync.Mutex
	cache map[string]Quote // last good quote per pair
}

// clientName names every policy in the events the client emits.
const clientName = "exchange-rate"

// NewExternalServiceClient validates cfg and builds the policies.
func NewExternalServiceClient(cfg ClientConfig) (*ExternalServiceClient, error) {
	if cfg.BaseURL == "" {
		return nil, errors.New("circuitbreaker: ClientConfig.BaseURL is empty")
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 100 * time.Millisecond
	}
	if cfg.MaxAttempts == 0 {
		cfg.MaxAttempts = 3
	}
	if cfg.Backoff == (resilience.Backoff{}) {
		cfg.Backoff = resilience.Backoff{Base: 20 * time.Millisecond, Max: 80 * time.Millisecond, Jitter: resilience.JitterFull}
	}
	if cfg.FailuresToOpen == 0 {
		cfg.FailuresToOpen = 5
	}
	if cfg.OpenDuration == 0 {
		cfg.OpenDuration = 500 * time.Millisecond
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.Real()
	}
	c := &ExternalServiceClient{base: cfg.BaseURL, http: cfg.HTTPClient, clk: cfg.Clock, obs: cfg.Observer,
		cache: map[string]Quote{}}
	if c.http == nil {
		c.http = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
		c.ownHTTP = true
	}

	timeout, err := resilience.NewTimeout(resilience.TimeoutConfig{
		Duration: cfg.Timeout, Clock: cfg.Clock, Name: clientName, Observer: cfg.Observer,
	})
	if err != nil {
		return nil, err
	}
	breaker, err := resilience.NewBreaker(resilience.BreakerConfig{
		ConsecutiveFailures: cfg.FailuresToOpen,
		OpenDuration:        cfg.OpenDuration,
		HalfOpenProbes:      1,
		// A 4xx other than 408/429 is our bad request, not a sick upstream: it must not trip.
		IsFailure: upstreamUnavailable,
		Clock:     cfg.Clock,
		Name:      clientName,
		Observer:  cfg.Observer,
	})
	if err != nil {
		return nil, err
	}
	retry, err := resilience.NewRetry(resilience.RetryConfig{
		MaxAttempts: cfg.MaxAttempts,
		Backoff:     cfg.Backoff,
		Retryable:   retryable,
		Clock:       cfg.Clock,
		Seed:        cfg.Seed,
		Name:        clientName,
		Observer:    cfg.Observer,
	})
	if err != nil {
		return nil, err
	}
	c.timeout = resilience.WithTimeout[Quote](timeout)
	c.breakerP = resilience.WithBreaker[Quote](breaker)
	c.retry = resilience.WithRetry[Quote](retry)
	return c, nil
}

// GetRate returns the exchange rate for pair ("EUR-USD"): fresh from the upstream, or, when the
// upstream is unavailable, the last good quote marked Stale. It fails only when the upstream is
// unavailable and no quote for pair was ever fetched, or when the upstream rejects the request.
func (c *ExternalServiceClient) GetRate(ctx context.Context, pair string) (Quote, error) {
	// The order is the point of the example (Compose lists policies outermost first):
	//
	//   - fallback, outermost: sees only what every inner policy gave up on (retries exhausted,
	//     breaker open) and answers with the last good quote, so the caller degrades gracefully.
	//   - retry: makes up to MaxAttempts attempts, each going through the breaker below; it does not
	//     retry ErrOpen, so an open breaker ends the call at once instead of burning attempts.
	//   - breaker, per attempt: every attempt counts towards tripping it, and once it is open the
	//     attempts are rejected without touching the network.
	//   - timeout, innermost: bounds each attempt on its own (a hang costs one attempt, not the whole
	//     call) and its ErrTimeout is a failure the breaker counts.
	//
	// The fallback is built per call because it closes over pair; the other three are shared, so
	// the breaker sees every call the client makes.
	policy := resilience.Compose(c.fallback(pair), c.retry, c.breakerP, c.timeout)
	q, err := policy.Apply(func(ctx context.Context) (Quote, error) { return c.fetch(ctx, pair) })(ctx)
	if err == nil && !q.Stale {
		c.mu.Lock()
		c.cache[pair] = q
		c.mu.Unlock()
	}
	return q, err
}

// Close releases the idle connections of the client's own HTTP client.
func (c *ExternalServiceClient) Close() {
	if c.ownHTTP {
		c.http.CloseIdleConnections()
	}
}

// fallback answers an unavailable upstream with the last good quote for pair.
func (c *ExternalServiceClient) fallback(pair string) resilience.Policy[Quote] {
	return resilience.FallbackWith(resilience.FallbackConfig[Quote]{
		Func: func(_ context.Context, err error) (Quote, error) {
			c.mu.Lock()
			q, ok := c.cache[pair]
			c.mu.Unlock()
			if !ok {
				return Quote{}, fmt.Errorf("%w (no cached %s rate to fall back on)", err, pair)
			}
			q.Stale = true
			return q, nil
		},
		When:     upstreamUnavailable,
		Name:     clientName,
		Observer: c.obs,
	})
}

// fetch is one attempt: GET /v1/rates/{pair}.
func (c *ExternalServiceClient) fetch(ctx context.Context, pair string) (Quote, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+"/v1/rates/"+url.PathEscape(pair), nil)
	if err != nil {
		return Quote{}, resilience.Permanent(err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		// A transport error, or ctx ended: the timeout policy turns its own deadline into
		// ErrTimeout, and the caller's cancellation stays the caller's.
		return Quote{}, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return Quote{}, err
	}
	if resp.StatusCode != http.StatusOK {
		ue := &UpstreamError{Status: resp.StatusCode}
		if d, ok := resilience.ParseRetryAfter(resp.Header.Get("Retry-After"), c.clk.Now()); ok {
			ue.retryAfter = d
		}
		if !upstreamUnavailable(ue) {
			return Quote{}, resilience.Permanent(ue) // our request is wrong: retrying cannot help
		}
		return Quote{}, ue
	}
	var q Quote
	if err := json.Unmarshal(body, &q); err != nil {
		return Quote{}, fmt.Errorf("upstream: bad JSON: %w", err)
	}
	q.FetchedAt = c.clk.Now()
	return q, nil
}

// upstreamUnavailable reports whether err says the upstream is unavailable (5xx, 408, 425, 429, a
// timeout, a transport error, the breaker open), as opposed to rejecting our request (other 4xx).
// It decides what the breaker counts as a failure and what the fallback answers.
func upstreamUnavailable(err error) bool {
	var ue *UpstreamError
	if errors.As(err, &ue) {
		return ue.Status >= 500 || resilience.HTTPRetryable(ue.Status)
	}
	return true
}

// retryable decides which failed attempts are retried: timeouts, transport errors and the HTTP
// statuses resilience.HTTPRetryable names; not ErrOpen (the next attempt would be rejected too, so
// the fallback answers at once instead) and not errors marked Permanent (our bad request).
func retryable(err error) bool {
	if errors.Is(err, resilience.ErrOpen) || resilience.IsPermanent(err) {
		return false
	}
	var ue *UpstreamError
	if errors.As(err, &ue) {
		return resilience.HTTPRetryable(ue.Status)
	}
	return true
}

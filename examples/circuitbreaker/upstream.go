package main

import (
	"context"
	"encoding/json"
	"errors"
	"math/rand"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/faultline-dev/faultline/clock"
)

// upstreamMode is how the flaky exchange-rate API behaves; the run script switches it, the way a
// chaos tool would.
type upstreamMode int

const (
	// modeHealthy answers every request, with a rare transient 503 that a retry absorbs.
	modeHealthy upstreamMode = iota
	// modeFailing answers 500, or 503 with Retry-After, or hangs until the client gives up.
	modeFailing
	// modeRecovered answers every request.
	modeRecovered
)

func (m upstreamMode) String() string {
	switch m {
	case modeHealthy:
		return "healthy"
	case modeFailing:
		return "failing"
	case modeRecovered:
		return "recovered"
	}
	return "unknown"
}

// Odds of each answer, drawn from the seeded source.
const (
	healthyBlipRate = 0.10 // modeHealthy: a transient 503
	failing500Rate  = 0.40 // modeFailing: 500 Internal Server Error
	failing503Rate  = 0.30 // modeFailing: 503 with Retry-After: 1; the rest hang
)

// upstream is a flaky exchange-rate API in the same process, listening on 127.0.0.1:0:
// GET /v1/rates/EUR-USD answers {"pair":"EUR/USD","rate":1.0842,"as_of":"…"}.
type upstream struct {
	URL string

	srv    *http.Server
	served chan struct{} // closed when Serve has returned
	closed chan struct{} // closed by Close: ends every hang
	once   sync.Once
	clk    clock.Clock
	onHang func(context.Context) // test hook: called when a request starts to hang
	hits   atomic.Int64          // requests that reached the handler

	mu   sync.Mutex
	mode upstreamMode
	rnd  *rand.Rand
	rate float64
}

// startUpstream starts the API on a free port of 127.0.0.1. Close stops it.
func startUpstream(seed int64, clk clock.Clock, onHang func(context.Context)) (*upstream, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	u := &upstream{
		URL:    "http://" + ln.Addr().String(),
		served: make(chan struct{}),
		closed: make(chan struct{}),
		clk:    clk,
		onHang: onHang,
		rnd:    rand.New(rand.NewSource(seed)),
		rate:   1.0842,
	}
	u.srv = &http.Server{Handler: u, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		defer close(u.served)
		_ = u.srv.Serve(ln) // returns http.ErrServerClosed after Shutdown or Close
	}()
	return u, nil
}

// SetMode switches how the upstream answers from the next request on.
func (u *upstream) SetMode(m upstreamMode) {
	u.mu.Lock()
	u.mode = m
	u.mu.Unlock()
}

// Hits returns how many requests reached the upstream.
func (u *upstream) Hits() int64 { return u.hits.Load() }

// Close ends every hanging request, shuts the server down and waits for it. It is idempotent.
func (u *upstream) Close() error {
	var err error
	u.once.Do(func() {
		close(u.closed)
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if err = u.srv.Shutdown(ctx); err != nil {
			err = errors.Join(err, u.srv.Close())
		}
		<-u.served
	})
	return err
}

func (u *upstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	u.hits.Add(1)
	pair, ok := strings.CutPrefix(r.URL.Path, "/v1/rates/")
	switch {
	case r.Method != http.MethodGet:
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	case !ok || pair != "EUR-USD":
		http.Error(w, "unknown currency pair", http.StatusNotFound)
		return
	}

	// One draw per request, under the lock: requests arrive one at a time in this example, so a
	// seed replays the same answers.
	u.mu.Lock()
	mode, draw := u.mode, u.rnd.Float64()
	u.rate *= 1 + (u.rnd.Float64()-0.5)*0.002 // a small random walk
	rate := u.rate
	u.mu.Unlock()

	switch {
	case mode == modeHealthy && draw < healthyBlipRate,
		mode == modeFailing && draw >= failing500Rate && draw < failing500Rate+failing503Rate:
		w.Header().Set("Retry-After", "1")
		http.Error(w, "overloaded, try again later", http.StatusServiceUnavailable)
		return
	case mode == modeFailing && draw < failing500Rate:
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	case mode == modeFailing:
		// Hang: answer nothing until the client gives up (its timeout cancels the request, which
		// closes the connection and cancels r.Context()) or the upstream is closed.
		if u.onHang != nil {
			u.onHang(r.Context())
		}
		select {
		case <-r.Context().Done():
		case <-u.closed:
		}
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(Quote{Pair: "EUR/USD", Rate: rate, AsOf: u.clk.Now().UTC()})
}

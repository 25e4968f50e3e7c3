package chaos

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/faultline-dev/faultline/clock"
)

func newProxyTo(t testing.TB, s *Server, name, upstream string) *Proxy {
	t.Helper()
	p, err := s.CreateProxy(ProxyConfig{Name: name, Upstream: upstream})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestLatencyManualClock shows the time-based toxics waiting on the injected clock: no data
// passes until the test advances the clock by the latency.
func TestLatencyManualClock(t *testing.T) {
	clk := clock.NewManual(time.Time{})
	s := newTestServer(t, Config{Clock: clk})
	p := newProxyTo(t, s, "p", startEcho(t).addr())
	if _, err := p.AddToxic(Toxic{Type: "latency", Toxicity: 1, Attributes: &LatencyAttributes{Latency: 1000}}); err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp", p.Listen())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("hi")); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := clk.WaitForTimers(ctx, 1); err != nil {
		t.Fatal("latency toxic never waited on the clock")
	}
	_ = c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	if _, err := c.Read(make([]byte, 2)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("data passed before the clock moved: %v", err)
	}
	clk.Advance(999 * time.Millisecond)
	_ = c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	if _, err := c.Read(make([]byte, 2)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("data passed 1ms early: %v", err)
	}
	clk.Advance(time.Millisecond)
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	got := make([]byte, 2)
	if _, err := io.ReadFull(c, got); err != nil || string(got) != "hi" {
		t.Fatalf("after the latency: %q, %v", got, err)
	}
}

// TestTimeoutManualClock: a timeout toxic closes the connection when the clock reaches it.
func TestTimeoutManualClock(t *testing.T) {
	clk := clock.NewManual(time.Time{})
	s := newTestServer(t, Config{Clock: clk})
	p := newProxyTo(t, s, "p", startEcho(t).addr())
	c, err := net.Dial("tcp", p.Listen())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	roundTrip(t, c, []byte("before"))
	if _, err := p.AddToxic(Toxic{Type: "timeout", Toxicity: 1, Attributes: &TimeoutAttributes{Timeout: 30000}}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := clk.WaitForTimers(ctx, 1); err != nil {
		t.Fatal("timeout toxic never waited on the clock")
	}
	clk.Advance(30 * time.Second)
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("want EOF once the timeout passed, got %v", err)
	}
	found := false
	for _, e := range s.Events() {
		found = found || e.Decision == DecisionTimedOut
	}
	if !found {
		t.Fatal("fault log has no timeout decision")
	}
}

func TestEventLogRing(t *testing.T) {
	l := newEventLog(3)
	for i := range 5 {
		l.add(Event{Connection: uint64(i)})
	}
	got := l.snapshot()
	if len(got) != 3 || got[0].Connection != 2 || got[2].Connection != 4 {
		t.Fatalf("ring: %+v", got)
	}
}

func TestSliceSizes(t *testing.T) {
	rng := toxicRand(1, "p", 1, "s", 1)
	for n := range 200 {
		sizes := sliceSizes(n, &SlicerAttributes{AverageSize: 7, SizeVariation: 3}, rng)
		sum := 0
		for _, s := range sizes {
			if s < 1 || s > 10 {
				t.Fatalf("n=%d: piece %d", n, s)
			}
			sum += s
		}
		if sum != n {
			t.Fatalf("n=%d: pieces sum to %d", n, sum)
		}
	}
}

// runTraffic makes n sequential connections through a proxy with random toxics and returns the
// fault log with times stripped, grouped by connection and stream (the two directions of a
// connection decide concurrently, so only the order within a direction is defined).
func runTraffic(t *testing.T, seed int64, n int) []Event {
	s := newTestServer(t, Config{Seed: seed})
	p := newProxyTo(t, s, "p", startEcho(t).addr())
	for _, tx := range []Toxic{
		{Name: "jitter", Type: "latency", Stream: Upstream, Toxicity: 1, Attributes: &LatencyAttributes{Latency: 1, Jitter: 3}},
		{Name: "half", Type: "noop", Stream: Upstream, Toxicity: 0.5},
		{Name: "slices", Type: "slicer", Stream: Upstream, Toxicity: 0.7, Attributes: &SlicerAttributes{AverageSize: 8, SizeVariation: 4}},
		{Name: "down", Type: "latency", Stream: Downstream, Toxicity: 0.3},
	} {
		if _, err := p.AddToxic(tx); err != nil {
			t.Fatal(err)
		}
	}
	for range n {
		c, err := net.Dial("tcp", p.Listen())
		if err != nil {
			t.Fatal(err)
		}
		msg := bytes.Repeat([]byte("m"), 64)
		roundTrip(t, c, msg)
		c.Close()
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	events := s.Events()
	for i := range events {
		events[i].Time = time.Time{}
	}
	sort.SliceStable(events, func(i, j int) bool {
		a, b := events[i], events[j]
		if a.Connection != b.Connection {
			return a.Connection < b.Connection
		}
		return a.Stream < b.Stream
	})
	return events
}

func TestSameSeedSameFaultLog(t *testing.T) {
	const seed = 7
	a := runTraffic(t, seed, 20)
	b := runTraffic(t, seed, 20)
	if len(a) == 0 || len(a) != len(b) {
		t.Fatalf("seed %d: fault logs of %d and %d events", seed, len(a), len(b))
	}
	for i := range a {
		if fmt.Sprint(a[i]) != fmt.Sprint(b[i]) {
			t.Fatalf("seed %d: event %d differs:\n%+v\n%+v", seed, i, a[i], b[i])
		}
	}
	applied, skipped := 0, 0
	for _, e := range a {
		switch e.Decision {
		case DecisionApplied:
			applied++
		case DecisionSkipped:
			skipped++
		}
	}
	if applied == 0 || skipped == 0 {
		t.Fatalf("seed %d: want both applied and skipped toxics, got %d and %d", seed, applied, skipped)
	}
	if c := runTraffic(t, seed+1, 20); fmt.Sprint(a) == fmt.Sprint(c) {
		t.Fatalf("seeds %d and %d gave the same fault log", seed, seed+1)
	}
}

func TestRandomSeedReported(t *testing.T) {
	s, err := NewServer(Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.Seed() == 0 {
		t.Fatal("no seed chosen")
	}
}

// TestCloseLeaksNothing: closing the server closes open connections and ends every goroutine.
func TestCloseLeaksNothing(t *testing.T) {
	echo := startEcho(t)
	before, sockets := runtime.NumGoroutine(), openSockets()
	s, err := NewServer(Config{Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	p := newProxyTo(t, s, "p", echo.addr())
	if _, err := p.AddToxic(Toxic{Type: "timeout", Stream: Upstream, Toxicity: 1, Attributes: &TimeoutAttributes{}}); err != nil {
		t.Fatal(err)
	}
	var conns []net.Conn
	for range 20 {
		c, err := net.Dial("tcp", p.Listen())
		if err != nil {
			t.Fatal(err)
		}
		_, _ = c.Write([]byte("stalled"))
		conns = append(conns, c)
	}
	deadline := time.Now().Add(5 * time.Second)
	for p.Connections() < len(conns) && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal("second Close:", err)
	}
	for i, c := range conns {
		_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
		// EOF, or a reset when the proxy closed with the client's bytes still unread.
		if _, err := c.Read(make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("connection %d after Close: %v, want it closed", i, err)
		}
		c.Close()
	}
	if n := p.Connections(); n != 0 {
		t.Fatalf("%d connections left", n)
	}
	waitGoroutines(t, before)
	waitSockets(t, sockets)
}

// TestConcurrentTrafficWhileToxicsChange streams data over 200 connections (1,000 without the
// race detector, which caps goroutines at 8,128: concurrency_norace_test.go) while toxics are
// added, updated and removed in a loop, then closes: nothing deadlocks and nothing leaks.
func TestConcurrentTrafficWhileToxicsChange(t *testing.T) { testConcurrentTraffic(t, 200) }

func testConcurrentTraffic(t *testing.T, conns int) {
	echo := startEcho(t)
	before, sockets := runtime.NumGoroutine(), openSockets()
	s, err := NewServer(Config{Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	p := newProxyTo(t, s, "p", echo.addr())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	stop := make(chan struct{})
	var churn sync.WaitGroup
	churn.Add(1)
	go func() {
		defer churn.Done()
		toxics := []Toxic{
			{Name: "lat", Type: "latency", Stream: Downstream, Toxicity: 0.5, Attributes: &LatencyAttributes{Latency: 1, Jitter: 1}},
			{Name: "bw", Type: "bandwidth", Stream: Upstream, Toxicity: 1, Attributes: &BandwidthAttributes{Rate: 10000}},
			{Name: "slice", Type: "slicer", Stream: Downstream, Toxicity: 1, Attributes: &SlicerAttributes{AverageSize: 512, SizeVariation: 100, Delay: 10}},
			{Name: "noop", Type: "noop", Stream: Upstream, Toxicity: 1},
		}
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			tx := toxics[i%len(toxics)]
			if _, err := p.AddToxic(tx); err == nil {
				_, _ = p.UpdateToxic(Toxic{Name: tx.Name, Toxicity: 1, Attributes: cloneAttributes(tx.Attributes)})
			}
			if i%3 == 0 {
				_ = p.RemoveToxic(toxics[(i+1)%len(toxics)].Name)
			}
			time.Sleep(time.Millisecond)
		}
	}()

	var wg sync.WaitGroup
	errs := make(chan error, conns)
	payload := bytes.Repeat([]byte("0123456789abcdef"), 1024) // 16 KB each way
	for i := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := (&net.Dialer{}).DialContext(ctx, "tcp", p.Listen())
			if err != nil {
				errs <- fmt.Errorf("conn %d: %w", i, err)
				return
			}
			defer c.Close()
			dl, _ := ctx.Deadline()
			_ = c.SetDeadline(dl)
			for round := range 3 {
				go func() { _, _ = c.Write(payload) }()
				got := make([]byte, len(payload))
				if _, err := io.ReadFull(c, got); err != nil {
					errs <- fmt.Errorf("conn %d round %d: %w", i, round, err)
					return
				}
				if !bytes.Equal(got, payload) {
					errs <- fmt.Errorf("conn %d round %d: bytes changed", i, round)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(stop)
	churn.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	done := make(chan struct{})
	go func() { _ = s.Close(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		t.Fatal("Close deadlocked")
	}
	waitGoroutines(t, before)
	waitSockets(t, sockets)
}

// TestUpdateReleasesHeldData: data a latency toxic holds goes on when the toxic is updated or
// removed, without the clock moving (Toxiproxy restarts a toxic on update, releasing held data).
func TestUpdateReleasesHeldData(t *testing.T) {
	for _, change := range []string{"update", "remove"} {
		t.Run(change, func(t *testing.T) {
			clk := clock.NewManual(time.Time{})
			s := newTestServer(t, Config{Clock: clk})
			p := newProxyTo(t, s, "p", startEcho(t).addr())
			if _, err := p.AddToxic(Toxic{Name: "lat", Type: "latency", Toxicity: 1, Attributes: &LatencyAttributes{Latency: 60000}}); err != nil {
				t.Fatal(err)
			}
			c, err := net.Dial("tcp", p.Listen())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if _, err := c.Write([]byte("held")); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := clk.WaitForTimers(ctx, 1); err != nil {
				t.Fatal("latency toxic never waited on the clock")
			}
			if change == "update" {
				_, err = p.UpdateToxic(Toxic{Name: "lat", Toxicity: 1, Attributes: &LatencyAttributes{Latency: 0}})
			} else {
				err = p.RemoveToxic("lat")
			}
			if err != nil {
				t.Fatal(err)
			}
			_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
			got := make([]byte, 4)
			if _, err := io.ReadFull(c, got); err != nil || string(got) != "held" {
				t.Fatalf("after %s: %q, %v", change, got, err)
			}
		})
	}
}

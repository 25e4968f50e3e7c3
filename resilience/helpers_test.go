// Test helpers shared by every policy's tests: replayable seeds, long-run switches, leak checks and
// waiting for code to block on the manual clock.
package resilience

import (
	"context"
	"os"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/faultline-dev/faultline/clock"
)

// testSeed returns the seed for a randomized test: FAULTLINE_SEED when set, else a fresh one.
// It is logged so a failure can be replayed.
func testSeed(t testing.TB) int64 {
	t.Helper()
	seed := time.Now().UnixNano()
	if s := os.Getenv("FAULTLINE_SEED"); s != "" {
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			t.Fatalf("FAULTLINE_SEED=%q: %v", s, err)
		}
		seed = v
	}
	t.Logf("seed %d (replay with FAULTLINE_SEED=%d)", seed, seed)
	return seed
}

// testRounds returns short unless FAULTLINE_LONG=1.
func testRounds(short, long int) int {
	if os.Getenv("FAULTLINE_LONG") == "1" {
		return long
	}
	return short
}

// checkNoLeak fails the test when goroutines started during it are still running at its end.
// Goroutines that are finishing get a bounded chance to exit (yielding, not sleeping a fixed time).
func checkNoLeak(t *testing.T) {
	t.Helper()
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(2 * time.Second)
		for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
			runtime.Gosched()
		}
		if n := runtime.NumGoroutine(); n > before {
			buf := make([]byte, 1<<16)
			t.Errorf("goroutine leak: %d before, %d after\n%s", before, n, buf[:runtime.Stack(buf, true)])
		}
	})
}

// waitTimers waits until m has n pending timers, failing the test after a wall-clock bound.
func waitTimers(t *testing.T, m *clock.Manual, n int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := m.WaitForTimers(ctx, n); err != nil {
		t.Fatalf("waiting for %d timers (have %d): %v", n, m.Timers(), err)
	}
}

package resilience

import (
	"math"
	"math/rand"
	"strings"
	"testing"
	"time"
)

var budgetT0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func TestRetryBudgetAllowance(t *testing.T) {
	tests := []struct {
		name     string
		cfg      RetryBudgetConfig
		requests int
		want     int // retries granted in a row
	}{
		{"defaults reserve only", RetryBudgetConfig{}, 0, 100}, // 10/s · 10 s
		{"defaults with requests", RetryBudgetConfig{}, 1000, 200},
		{"ratio only", RetryBudgetConfig{Ratio: 0.2, MinRetriesPerSecond: -1}, 50, 10},
		{"ratio only rounds down", RetryBudgetConfig{Ratio: 0.1, MinRetriesPerSecond: -1}, 19, 1},
		{"reserve only", RetryBudgetConfig{Ratio: -1, MinRetriesPerSecond: 0.5, Window: 4 * time.Second}, 100, 2},
		{"none", RetryBudgetConfig{Ratio: -1, MinRetriesPerSecond: -1}, 100, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := NewRetryBudget(tt.cfg)
			if err != nil {
				t.Fatal(err)
			}
			for range tt.requests {
				b.RecordRequest(budgetT0)
			}
			if got := b.Available(budgetT0); got != tt.want {
				t.Errorf("Available = %d, want %d", got, tt.want)
			}
			got := 0
			for b.Acquire(budgetT0) {
				got++
				if got > 10*tt.want+10 {
					break
				}
			}
			if got != tt.want {
				t.Errorf("granted %d retries, want %d", got, tt.want)
			}
		})
	}
}

func TestRetryBudgetWindowSlides(t *testing.T) {
	b, err := NewRetryBudget(RetryBudgetConfig{Ratio: 0.5, MinRetriesPerSecond: -1, Window: 10 * time.Second, Buckets: 10})
	if err != nil {
		t.Fatal(err)
	}
	for range 10 {
		b.RecordRequest(budgetT0)
	}
	for range 5 {
		if !b.Acquire(budgetT0.Add(time.Second)) {
			t.Fatal("refused within the ratio")
		}
	}
	if b.Acquire(budgetT0.Add(2 * time.Second)) {
		t.Fatal("granted beyond the ratio")
	}
	// At 10 s the requests' bucket (0 s) has left the window; the retries (1 s) are still in it.
	for range 4 {
		b.RecordRequest(budgetT0.Add(10 * time.Second))
	}
	if b.Acquire(budgetT0.Add(10 * time.Second)) {
		t.Fatal("old requests still earn retries")
	}
	// At 11 s the retries left too: 4 requests earn 2.
	if got := b.Available(budgetT0.Add(11 * time.Second)); got != 2 {
		t.Errorf("Available at 11s = %d, want 2", got)
	}
	// Long idle: everything left.
	if got := b.Available(budgetT0.Add(time.Hour)); got != 0 {
		t.Errorf("Available after an hour = %d", got)
	}
}

func TestNewRetryBudgetErrors(t *testing.T) {
	tests := []struct {
		cfg   RetryBudgetConfig
		field string
	}{
		{RetryBudgetConfig{Ratio: math.NaN()}, "Ratio"},
		{RetryBudgetConfig{MinRetriesPerSecond: math.Inf(1)}, "MinRetriesPerSecond"},
		{RetryBudgetConfig{Window: -time.Second}, "Window"},
		{RetryBudgetConfig{Buckets: -1}, "Buckets"},
		{RetryBudgetConfig{Window: 5, Buckets: 10}, "Buckets"},
	}
	for _, tt := range tests {
		if _, err := NewRetryBudget(tt.cfg); err == nil || !strings.Contains(err.Error(), "RetryBudgetConfig."+tt.field) {
			t.Errorf("%+v: %v, want an error naming %s", tt.cfg, err, tt.field)
		}
	}
}

// TestRetryBudgetModel drives a budget and a plain reference model (a list of timestamped events,
// counted when their bucket is among the last Buckets) with the same random event sequence.
func TestRetryBudgetModel(t *testing.T) {
	seed := testSeed(t)
	rng := rand.New(rand.NewSource(seed))
	for round := range testRounds(50, 1000) {
		cfg := RetryBudgetConfig{
			Ratio:               []float64{-1, 0.05, 0.1, 0.5, 1.5}[rng.Intn(5)],
			MinRetriesPerSecond: []float64{-1, 0.3, 1, 10}[rng.Intn(4)],
			Window:              time.Duration(1+rng.Intn(20)) * time.Second,
			Buckets:             1 + rng.Intn(12),
		}
		b, err := NewRetryBudget(cfg)
		if err != nil {
			t.Fatal(err)
		}
		width := cfg.Window / time.Duration(cfg.Buckets)
		ratio, reserve := max(cfg.Ratio, 0), max(cfg.MinRetriesPerSecond, 0)*cfg.Window.Seconds()
		type ev struct {
			at    time.Time
			retry bool
		}
		var events []ev
		now := budgetT0.Add(time.Duration(rng.Int63n(int64(time.Hour))))
		for step := range 500 {
			now = now.Add(time.Duration(rng.ExpFloat64() * float64(width) / 4))
			if rng.Intn(3) == 0 {
				b.RecordRequest(now)
				events = append(events, ev{now, false})
				continue
			}
			var req, ret float64
			cur := now.UnixNano() / int64(width)
			for _, e := range events {
				if e.at.UnixNano()/int64(width) > cur-int64(cfg.Buckets) {
					if e.retry {
						ret++
					} else {
						req++
					}
				}
			}
			want := ret+1 <= ratio*req+reserve+1e-9
			if got := b.Acquire(now); got != want {
				t.Fatalf("round %d step %d (%+v): Acquire = %v, model says %v (requests %v, retries %v)", round, step, cfg, got, want, req, ret)
			}
			if want {
				events = append(events, ev{now, true})
			}
		}
	}
}

func BenchmarkRetryBudgetAcquire(b *testing.B) {
	bu, _ := NewRetryBudget(RetryBudgetConfig{})
	now := budgetT0
	for b.Loop() {
		now = now.Add(time.Millisecond)
		bu.RecordRequest(now)
		bu.Acquire(now)
	}
}

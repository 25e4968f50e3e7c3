package resilience

import (
	"math"
	"math/rand"
	"strings"
	"testing"
	"time"
)

func TestBackoffDelayTable(t *testing.T) {
	ms := time.Millisecond
	tests := []struct {
		name    string
		b       Backoff
		attempt int
		prev    time.Duration
		rnd     float64
		want    time.Duration
	}{
		{"defaults first", Backoff{}, 0, 0, 0.5, 100 * ms},
		{"defaults doubling", Backoff{}, 3, 0, 0.5, 800 * ms},
		{"capped", Backoff{}, 10, 0, 0.5, 10 * time.Second},
		{"huge attempt no overflow", Backoff{}, 1 << 30, 0, 0.5, 10 * time.Second},
		{"negative attempt is 0", Backoff{Base: 10 * ms}, -4, 0, 0, 10 * ms},
		{"multiplier 3", Backoff{Base: ms, Max: time.Second, Multiplier: 3}, 2, 0, 0, 9 * ms},
		{"multiplier 1 constant", Backoff{Base: 50 * ms, Multiplier: 1}, 7, 0, 0, 50 * ms},
		{"full 0", Backoff{Base: 100 * ms, Jitter: JitterFull}, 1, 0, 0, 0},
		{"full half", Backoff{Base: 100 * ms, Jitter: JitterFull}, 1, 0, 0.5, 100 * ms},
		{"full rnd>=1 clamps below d", Backoff{Base: 100 * ms, Jitter: JitterFull}, 0, 0, 7, 100*ms - 1},
		{"full NaN is 0", Backoff{Base: 100 * ms, Jitter: JitterFull}, 0, 0, math.NaN(), 0},
		{"equal low", Backoff{Base: 100 * ms, Jitter: JitterEqual}, 1, 0, 0, 100 * ms},
		{"equal mid", Backoff{Base: 100 * ms, Jitter: JitterEqual}, 1, 0, 0.5, 150 * ms},
		{"decorrelated first uses Base", Backoff{Base: 100 * ms, Jitter: JitterDecorrelated}, 0, 0, 0.5, 200 * ms},
		{"decorrelated from prev", Backoff{Base: 100 * ms, Jitter: JitterDecorrelated}, 5, time.Second, 0.5, 1550 * ms},
		{"decorrelated capped", Backoff{Base: 100 * ms, Max: 400 * ms, Jitter: JitterDecorrelated}, 5, time.Second, 0.5, 250 * ms},
		{"decorrelated Max==Base", Backoff{Base: 100 * ms, Max: 100 * ms, Jitter: JitterDecorrelated}, 5, time.Second, 0.9, 100 * ms},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.b.Delay(tt.attempt, tt.prev, tt.rnd); got != tt.want {
				t.Errorf("Delay(%d, %v, %v) = %v, want %v", tt.attempt, tt.prev, tt.rnd, got, tt.want)
			}
		})
	}
}

func TestBackoffValidate(t *testing.T) {
	tests := []struct {
		b     Backoff
		field string // "" = valid
	}{
		{Backoff{}, ""},
		{Backoff{Base: time.Second, Max: time.Minute, Multiplier: 1.5, Jitter: JitterDecorrelated}, ""},
		{Backoff{Base: -1}, "Base"},
		{Backoff{Max: -1}, "Max"},
		{Backoff{Multiplier: 0.5}, "Multiplier"},
		{Backoff{Multiplier: math.NaN()}, "Multiplier"},
		{Backoff{Multiplier: math.Inf(1)}, "Multiplier"},
		{Backoff{Jitter: 9}, "Jitter"},
		{Backoff{Base: time.Minute, Max: time.Second}, "Max"},
		{Backoff{Base: time.Minute}, "Max"}, // default Max 10s is below Base
	}
	for _, tt := range tests {
		err := tt.b.Validate()
		if tt.field == "" {
			if err != nil {
				t.Errorf("%+v: %v", tt.b, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), "Backoff."+tt.field) {
			t.Errorf("%+v: error %v, want one naming Backoff.%s", tt.b, err, tt.field)
		}
	}
}

// TestBackoffJitterDistributions checks the three jitter kinds of the AWS Architecture Blog's
// "Exponential Backoff And Jitter" against their stated ranges and uniform distribution: every
// draw in range, the mean within 4 standard errors, and a chi-square test over 10 equal bins.
func TestBackoffJitterDistributions(t *testing.T) {
	seed := testSeed(t)
	rng := rand.New(rand.NewSource(seed))
	n := testRounds(20000, 400000)
	base, maxd := 10*time.Millisecond, 5*time.Second
	type kase struct {
		name    string
		b       Backoff
		attempt int
		prev    time.Duration
		lo, hi  time.Duration
	}
	cases := []kase{
		{"full n=0", Backoff{Base: base, Max: maxd, Jitter: JitterFull}, 0, 0, 0, base},
		{"full n=4", Backoff{Base: base, Max: maxd, Jitter: JitterFull}, 4, 0, 0, base * 16},
		{"full capped", Backoff{Base: base, Max: maxd, Jitter: JitterFull}, 20, 0, 0, maxd},
		{"equal n=3", Backoff{Base: base, Max: maxd, Jitter: JitterEqual}, 3, 0, base * 4, base * 8},
		{"equal capped", Backoff{Base: base, Max: maxd, Jitter: JitterEqual}, 30, 0, maxd / 2, maxd},
		{"decorrelated", Backoff{Base: base, Max: maxd, Jitter: JitterDecorrelated}, 2, 40 * time.Millisecond, base, 120 * time.Millisecond},
		{"decorrelated capped", Backoff{Base: base, Max: maxd, Jitter: JitterDecorrelated}, 2, 4 * time.Second, base, maxd},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			const bins = 10
			var hist [bins]int
			var sum float64
			width := float64(c.hi - c.lo)
			for range n {
				d := c.b.Delay(c.attempt, c.prev, rng.Float64())
				if d < c.lo || d > c.hi {
					t.Fatalf("draw %v outside [%v, %v]", d, c.lo, c.hi)
				}
				sum += float64(d)
				k := int(float64(d-c.lo) / width * bins)
				hist[min(k, bins-1)]++
			}
			mean := sum / float64(n)
			wantMean := float64(c.lo+c.hi) / 2
			stderr := width / math.Sqrt(12) / math.Sqrt(float64(n))
			if math.Abs(mean-wantMean) > 4*stderr {
				t.Errorf("mean %v, want %v ± %v", time.Duration(mean), time.Duration(wantMean), time.Duration(4*stderr))
			}
			var chi2 float64
			exp := float64(n) / bins
			for _, h := range hist {
				chi2 += (float64(h) - exp) * (float64(h) - exp) / exp
			}
			// 9 degrees of freedom: P(chi2 > 27.88) = 0.001.
			if chi2 > 27.88 {
				t.Errorf("chi-square %.1f over %v: not uniform", chi2, hist)
			}
		})
	}
}

// TestBackoffDecorrelatedChain follows the AWS post's recurrence sleep = min(cap, rand(base,
// 3·sleep)): every delay stays within [Base, min(Max, 3·prev)].
func TestBackoffDecorrelatedChain(t *testing.T) {
	seed := testSeed(t)
	rng := rand.New(rand.NewSource(seed))
	b := Backoff{Base: 5 * time.Millisecond, Max: time.Second, Jitter: JitterDecorrelated}
	prev := time.Duration(0)
	for i := range testRounds(10000, 200000) {
		d := b.Delay(i, prev, rng.Float64())
		upper := min(b.Max, 3*max(prev, b.Base))
		if d < b.Base || d > upper {
			t.Fatalf("step %d: %v outside [%v, %v]", i, d, b.Base, upper)
		}
		prev = d
	}
}

func TestJitterString(t *testing.T) {
	for j, want := range map[Jitter]string{JitterNone: "none", JitterFull: "full", JitterEqual: "equal", JitterDecorrelated: "decorrelated", 7: "Jitter(7)"} {
		if j.String() != want {
			t.Errorf("%d: %q", int(j), j.String())
		}
	}
}

func BenchmarkBackoffDelay(b *testing.B) {
	bo := Backoff{Base: time.Millisecond, Max: time.Second, Jitter: JitterFull}
	for i := 0; b.Loop(); i++ {
		_ = bo.Delay(i&15, 0, 0.5)
	}
}

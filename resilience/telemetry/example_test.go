package telemetry_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/faultline-dev/faultline/resilience"
	"github.com/faultline-dev/faultline/resilience/telemetry"
)

// A retried call through a circuit breaker, observed by metrics, traces and logs.
func Example() {
	// Metrics go to a registry of your choosing (serve it with promhttp.HandlerFor).
	reg := prometheus.NewRegistry()
	metrics, err := telemetry.NewMetrics(reg)
	if err != nil {
		log.Fatal(err)
	}
	// Logs at Info and above (time left out to keep the output stable).
	logger := slog.New(slog.NewTextHandler(os.Stdout, &slog.HandlerOptions{
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		},
	}))
	obs := resilience.Observers(metrics, telemetry.Tracing(), telemetry.Logging(logger))

	breaker, err := resilience.NewBreaker(resilience.BreakerConfig{Name: "payments", ConsecutiveFailures: 2, Observer: obs})
	if err != nil {
		log.Fatal(err)
	}
	metrics.SetBreakerState("payments", resilience.BreakerClosed) // show the breaker before its first change
	retry, err := resilience.NewRetry(resilience.RetryConfig{
		Name: "payments", MaxAttempts: 3, Backoff: resilience.Backoff{Base: time.Millisecond}, Observer: obs,
	})
	if err != nil {
		log.Fatal(err)
	}

	charge := func(ctx context.Context) (string, error) { return "", errors.New("connection refused") }
	_, err = resilience.Execute(context.Background(), charge,
		resilience.WithRetry[string](retry), resilience.WithBreaker[string](breaker))
	fmt.Println("error:", err)

	printMetrics(reg, "calls_total", "rejections_total", "breaker_state", "retries")
	// Output:
	// level=WARN msg="resilience: circuit breaker state changed" policy=breaker name=payments event=state-change from=closed to=open
	// error: resilience: circuit breaker is open
	// faultline_resilience_breaker_state{name="payments",state="closed"} 0
	// faultline_resilience_breaker_state{name="payments",state="disabled"} 0
	// faultline_resilience_breaker_state{name="payments",state="forced-open"} 0
	// faultline_resilience_breaker_state{name="payments",state="half-open"} 0
	// faultline_resilience_breaker_state{name="payments",state="open"} 1
	// faultline_resilience_calls_total{name="payments",outcome="failure",policy="breaker"} 2
	// faultline_resilience_calls_total{name="payments",outcome="rejected",policy="breaker"} 1
	// faultline_resilience_rejections_total{name="payments",policy="breaker",reason="open"} 1
	// faultline_resilience_retries_total{name="payments"} 2
}

// printMetrics prints the counters and gauges whose names contain one of parts.
func printMetrics(g prometheus.Gatherer, parts ...string) {
	mfs, err := g.Gather()
	if err != nil {
		log.Fatal(err)
	}
	var lines []string
	for _, mf := range mfs {
		if !containsAny(mf.GetName(), parts) {
			continue
		}
		for _, m := range mf.GetMetric() {
			var labels []string
			for _, lp := range m.GetLabel() {
				labels = append(labels, fmt.Sprintf("%s=%q", lp.GetName(), lp.GetValue()))
			}
			v := m.GetCounter().GetValue() + m.GetGauge().GetValue()
			lines = append(lines, fmt.Sprintf("%s{%s} %v", mf.GetName(), strings.Join(labels, ","), v))
		}
	}
	sort.Strings(lines)
	fmt.Println(strings.Join(lines, "\n"))
}

func containsAny(s string, parts []string) bool {
	for _, p := range parts {
		if strings.Contains(s, p) {
			return true
		}
	}
	return false
}

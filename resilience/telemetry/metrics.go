package telemetry

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/faultline-dev/faultline/resilience"
)

// DefaultNamespace is the metric namespace used unless WithNamespace says otherwise.
const DefaultNamespace = "faultline"

// subsystem is the middle part of every metric name: faultline_resilience_calls_total.
const subsystem = "resilience"

// Metrics holds faultline's resilience metrics; it is a resilience.Observer. Create it with
// NewMetrics and pass it (alone or through resilience.Observers) as the Observer of each policy.
//
// Series appear when their first event arrives: a breaker that never changed state shows no
// breaker_state series until SetBreakerState seeds it or its first state change.
type Metrics struct {
	calls      *prometheus.CounterVec   // policy, name, outcome
	rejections *prometheus.CounterVec   // policy, name, reason
	retries    *prometheus.CounterVec   // name
	exhausted  *prometheus.CounterVec   // name
	timeouts   *prometheus.CounterVec   // policy, name
	hedges     *prometheus.CounterVec   // name
	fallbacks  *prometheus.CounterVec   // name
	duration   *prometheus.HistogramVec // policy, name, outcome
	queueWait  *prometheus.HistogramVec // policy, name
	state      *prometheus.GaugeVec     // name, state
	limit      *prometheus.GaugeVec     // name

	// series maps (kind, name) to that policy's metric children. It is copied on write (a new
	// policy name is rare, reads are on every event), so Observe reads it without a lock and
	// without allocating.
	series atomic.Pointer[map[seriesKey]*series]
	mu     sync.Mutex // serializes writers of series
}

// MetricsOption configures NewMetrics.
type MetricsOption func(*metricsConfig)

type metricsConfig struct {
	namespace   string
	buckets     []float64
	constLabels prometheus.Labels
}

// WithNamespace sets the metrics' namespace, the first part of their names (default
// DefaultNamespace, "faultline"). An empty namespace drops the prefix:
// resilience_calls_total.
func WithNamespace(ns string) MetricsOption {
	return func(c *metricsConfig) { c.namespace = ns }
}

// WithBuckets sets the histogram buckets, in seconds, of call_duration_seconds and
// queue_wait_seconds (default prometheus.DefBuckets, 5 ms to 10 s).
func WithBuckets(buckets []float64) MetricsOption {
	return func(c *metricsConfig) { c.buckets = append([]float64(nil), buckets...) }
}

// WithConstLabels adds labels with fixed values to every metric, e.g. {"service": "checkout"}.
func WithConstLabels(labels prometheus.Labels) MetricsOption {
	return func(c *metricsConfig) {
		c.constLabels = make(prometheus.Labels, len(labels))
		for k, v := range labels {
			c.constLabels[k] = v
		}
	}
}

// NewMetrics creates the resilience metrics and registers them on reg, and nowhere else. It
// fails when reg is nil or the registration fails (most often because metrics with the same
// namespace are already registered on reg: errors.As finds the prometheus.AlreadyRegisteredError).
// Registration is all or nothing.
func NewMetrics(reg prometheus.Registerer, opts ...MetricsOption) (*Metrics, error) {
	if reg == nil {
		return nil, errors.New("telemetry: NewMetrics: nil prometheus.Registerer (pass prometheus.DefaultRegisterer or a prometheus.NewRegistry())")
	}
	cfg := metricsConfig{namespace: DefaultNamespace, buckets: prometheus.DefBuckets}
	for _, o := range opts {
		o(&cfg)
	}
	counter := func(name, help string, labels ...string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: cfg.namespace, Subsystem: subsystem, Name: name, Help: help, ConstLabels: cfg.constLabels,
		}, labels)
	}
	gauge := func(name, help string, labels ...string) *prometheus.GaugeVec {
		return prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: cfg.namespace, Subsystem: subsystem, Name: name, Help: help, ConstLabels: cfg.constLabels,
		}, labels)
	}
	histogram := func(name, help string, labels ...string) *prometheus.HistogramVec {
		return prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: cfg.namespace, Subsystem: subsystem, Name: name, Help: help, ConstLabels: cfg.constLabels,
			Buckets: cfg.buckets,
		}, labels)
	}
	m := &Metrics{
		calls: counter("calls_total",
			"Calls that went through a resilience policy, by outcome (success, failure, ignored, rejected).",
			"policy", "name", "outcome"),
		rejections: counter("rejections_total",
			"Calls a resilience policy refused without running them, by reason.",
			"policy", "name", "reason"),
		retries: counter("retries_total",
			"Retries made: failed attempts followed by another attempt.", "name"),
		exhausted: counter("retries_exhausted_total",
			"Calls on which Retry gave up on a retryable error (attempts, elapsed time or budget used up).", "name"),
		timeouts: counter("timeouts_total",
			"Calls (or retry attempts) cancelled by the policy's own timeout.", "policy", "name"),
		hedges: counter("hedges_total",
			"Hedged attempts started.", "name"),
		fallbacks: counter("fallbacks_total",
			"Failed calls answered by a fallback.", "name"),
		duration: histogram("call_duration_seconds",
			"How long calls let through by a policy ran, by outcome (success, failure).",
			"policy", "name", "outcome"),
		queueWait: histogram("queue_wait_seconds",
			"How long calls waited for a slot or a token before they were admitted (only calls that waited).",
			"policy", "name"),
		state: gauge("breaker_state",
			"Circuit breaker state: 1 for the current state, 0 for the others.", "name", "state"),
		limit: gauge("limiter_limit",
			"The adaptive concurrency limiter's current limit.", "name"),
	}
	set := collectorSet{m.calls, m.rejections, m.retries, m.exhausted, m.timeouts, m.hedges, m.fallbacks,
		m.duration, m.queueWait, m.state, m.limit}
	if err := reg.Register(set); err != nil {
		return nil, fmt.Errorf("telemetry: registering resilience metrics (namespace %q): %w", cfg.namespace, err)
	}
	empty := make(map[seriesKey]*series)
	m.series.Store(&empty)
	return m, nil
}

// collectorSet registers several collectors as one, so that registration is all or nothing.
type collectorSet []prometheus.Collector

func (s collectorSet) Describe(ch chan<- *prometheus.Desc) {
	for _, c := range s {
		c.Describe(ch)
	}
}

func (s collectorSet) Collect(ch chan<- prometheus.Metric) {
	for _, c := range s {
		c.Collect(ch)
	}
}

// Outcomes of calls_total and call_duration_seconds.
const (
	outcomeSuccess = iota
	outcomeFailure
	outcomeIgnored
	outcomeRejected
	numOutcomes
)

var outcomeNames = [numOutcomes]string{"success", "failure", "ignored", "rejected"}

// Reasons of rejections_total.
const (
	reasonOpen = iota
	reasonBulkheadFull
	reasonRateLimited
	reasonBudgetExhausted
	reasonLimitExceeded
	reasonOther
	numReasons
)

var reasonNames = [numReasons]string{"open", "bulkhead_full", "rate_limited", "budget_exhausted", "limit_exceeded", "other"}

// rejectReason classifies a rejection's error. The budget comes first: a budget error wraps the
// error it stopped on, which may be another policy's.
func rejectReason(err error) int {
	switch {
	case errors.Is(err, resilience.ErrBudgetExhausted):
		return reasonBudgetExhausted
	case errors.Is(err, resilience.ErrOpen):
		return reasonOpen
	case errors.Is(err, resilience.ErrBulkheadFull):
		return reasonBulkheadFull
	case errors.Is(err, resilience.ErrRateLimited):
		return reasonRateLimited
	case errors.Is(err, resilience.ErrLimitExceeded):
		return reasonLimitExceeded
	}
	return reasonOther
}

// breakerStates are the states breaker_state reports, indexed by resilience.BreakerState.
var breakerStates = [...]resilience.BreakerState{
	resilience.BreakerClosed, resilience.BreakerOpen, resilience.BreakerHalfOpen,
	resilience.BreakerForcedOpen, resilience.BreakerDisabled,
}

type seriesKey struct {
	kind resilience.PolicyKind
	name string
}

// series holds one policy's metric children, each created on first use.
type series struct {
	policy, name string

	calls      [numOutcomes]lazy[prometheus.Counter]
	durations  [2]lazy[prometheus.Observer] // success, failure
	rejections [numReasons]lazy[prometheus.Counter]
	retries    lazy[prometheus.Counter]
	exhausted  lazy[prometheus.Counter]
	timeouts   lazy[prometheus.Counter]
	hedges     lazy[prometheus.Counter]
	fallbacks  lazy[prometheus.Counter]
	queueWait  lazy[prometheus.Observer]
	limit      lazy[prometheus.Gauge]

	stateMu sync.Mutex // orders breaker_state updates, so exactly one state shows 1
	states  [len(breakerStates)]prometheus.Gauge
}

// lazy is a metric child created on first use. Creating one twice is harmless (a vector returns
// the same child for the same labels), so racing creators need no lock.
type lazy[T any] struct{ p atomic.Pointer[T] }

func (l *lazy[T]) get(mk func() T) T {
	if p := l.p.Load(); p != nil {
		return *p
	}
	v := mk()
	l.p.Store(&v)
	return v
}

// seriesFor returns the children of the policy (kind, name), creating them on first use.
func (m *Metrics) seriesFor(kind resilience.PolicyKind, name string) *series {
	k := seriesKey{kind, name}
	if s, ok := (*m.series.Load())[k]; ok {
		return s
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	old := *m.series.Load()
	if s, ok := old[k]; ok {
		return s
	}
	s := &series{policy: kind.String(), name: name}
	next := make(map[seriesKey]*series, len(old)+1)
	for k, v := range old {
		next[k] = v
	}
	next[k] = s
	m.series.Store(&next)
	return s
}

// Observe updates the metrics for e. It is safe for concurrent use and does not allocate once the
// policy's series exist.
func (m *Metrics) Observe(_ context.Context, e resilience.Event) {
	s := m.seriesFor(e.Kind, e.Name)
	switch e.Type {
	case resilience.EventSuccess:
		m.call(s, outcomeSuccess, e)
	case resilience.EventFailure:
		m.call(s, outcomeFailure, e)
	case resilience.EventIgnored:
		m.call(s, outcomeIgnored, e)
	case resilience.EventRejected:
		m.call(s, outcomeRejected, e)
		r := rejectReason(e.Err)
		s.rejections[r].get(func() prometheus.Counter {
			return m.rejections.WithLabelValues(s.policy, s.name, reasonNames[r])
		}).Inc()
	case resilience.EventAdmitted:
		s.queueWait.get(func() prometheus.Observer {
			return m.queueWait.WithLabelValues(s.policy, s.name)
		}).Observe(e.Duration.Seconds())
	case resilience.EventStateChange:
		m.setState(s, e.To)
	case resilience.EventRetry:
		s.retries.get(func() prometheus.Counter { return m.retries.WithLabelValues(s.name) }).Inc()
	case resilience.EventRetriesExhausted:
		s.exhausted.get(func() prometheus.Counter { return m.exhausted.WithLabelValues(s.name) }).Inc()
	case resilience.EventTimeout:
		s.timeouts.get(func() prometheus.Counter { return m.timeouts.WithLabelValues(s.policy, s.name) }).Inc()
	case resilience.EventHedge:
		s.hedges.get(func() prometheus.Counter { return m.hedges.WithLabelValues(s.name) }).Inc()
	case resilience.EventFallback:
		s.fallbacks.get(func() prometheus.Counter { return m.fallbacks.WithLabelValues(s.name) }).Inc()
	case resilience.EventLimitChanged:
		s.limit.get(func() prometheus.Gauge { return m.limit.WithLabelValues(s.name) }).Set(float64(e.Limit))
	}
}

// call counts a call's outcome and, for successes and failures with a measured run time, observes
// its duration. Events without a duration (Throttle measures none) are counted but not observed.
func (m *Metrics) call(s *series, outcome int, e resilience.Event) {
	s.calls[outcome].get(func() prometheus.Counter {
		return m.calls.WithLabelValues(s.policy, s.name, outcomeNames[outcome])
	}).Inc()
	if outcome <= outcomeFailure && e.Duration > 0 {
		s.durations[outcome].get(func() prometheus.Observer {
			return m.duration.WithLabelValues(s.policy, s.name, outcomeNames[outcome])
		}).Observe(e.Duration.Seconds())
	}
}

// SetBreakerState sets the breaker_state series of the breaker named name to state, as a state
// change to it would. Breakers report only changes, so a new breaker shows nothing until its first
// one; seed it after creating the breaker:
//
//	m.SetBreakerState("payments", resilience.BreakerClosed)
func (m *Metrics) SetBreakerState(name string, state resilience.BreakerState) {
	m.setState(m.seriesFor(resilience.KindBreaker, name), state)
}

func (m *Metrics) setState(s *series, to resilience.BreakerState) {
	s.stateMu.Lock()
	defer s.stateMu.Unlock()
	for i, st := range breakerStates {
		if s.states[i] == nil {
			s.states[i] = m.state.WithLabelValues(s.name, st.String())
		}
		v := 0.0
		if st == to {
			v = 1
		}
		s.states[i].Set(v)
	}
}

// SetLimiterLimit sets the limiter_limit series of the adaptive limiter named name. Limiters report
// only changes, so seed the series with the initial limit after creating the limiter.
func (m *Metrics) SetLimiterLimit(name string, limit int) {
	s := m.seriesFor(resilience.KindLimiter, name)
	s.limit.get(func() prometheus.Gauge { return m.limit.WithLabelValues(s.name) }).Set(float64(limit))
}

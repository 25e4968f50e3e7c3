package review

// The observability family: the seed's "Prioritize Observability" and the Observability part of
// its Code Review Checklist (structured logs, metrics, distributed tracing, alerts), plus the
// health probes that let the platform act on an instance that fails.
//
// Every rule here looks at services of every role except sidecar (a sidecar is the auxiliary
// process that often provides the telemetry; its own is the platform's concern).
//
// Grouping. A model imported from compose files or Kubernetes manifests almost never says
// anything about logs, alerts or metrics, so one finding per service would bury an import of 20
// services under 100 warnings that all say the same thing. The family therefore reports:
//
//   - one finding per rule and cause when the cause is that the model does not declare something
//     (the field is absent): its subjects are every service concerned, in declaration order, and
//     its evidence has one entry per service;
//   - one finding per service when the model declares a bad value on purpose (tracing: none,
//     logs: unstructured, alerts: false): that is a decision about one service, with one owner.
//
// A team that accepts the gap for one service writes the value explicitly (tracing: none) and
// ignores the per-service finding that follows by its subject in .faultline.yaml; an ignore entry
// naming one subject of a grouped finding accepts the whole group.

import (
	"fmt"
	"strings"

	"github.com/faultline-dev/faultline/model"
)

func init() {
	register(&Rule{
		ID: "missing-tracing", Area: Observability, Severity: Warning,
		Title: "Service does not emit distributed traces",
		Rationale: "Without distributed tracing a request that crosses services cannot be followed from caller to " +
			"callee: which hop was slow, which failed first and which retried stay guesses pieced together from logs.",
		Fix: "Instrument the service with OpenTelemetry (or Jaeger/Zipkin), propagate the trace context on every " +
			"call and message, export spans to a collector, and declare it: observability.tracing: otel.",
		Check: checkMissingTracing,
	})
	register(&Rule{
		ID: "missing-metrics", Area: Observability, Severity: Warning,
		Title: "Service does not expose metrics",
		Rationale: "Without metrics nobody sees a service's request rate, errors, latency or saturation until users " +
			"complain, and alerts and autoscaling have nothing to act on.",
		Fix: "Expose request rate, errors and latency (and saturation: queue depth, pool use) to Prometheus or " +
			"OpenTelemetry, chart them, and declare it: observability.metrics: prometheus.",
		Check: checkMissingMetrics,
	})
	register(&Rule{
		ID: "unstructured-logs", Area: Observability, Severity: Warning,
		Title: "Service logs are unstructured, absent or undeclared",
		Rationale: "Free-text logs cannot be filtered by field or joined to a trace ID in a central store, so an " +
			"incident that spans services is read line by line; a service with no logs leaves nothing to read at all.",
		Fix: "Log one JSON object per event (log/slog, zap, logback's JSON encoder) with the trace and span IDs, " +
			"ship it to a central store (Loki, Elasticsearch), and declare it: observability.logs: structured.",
		Check: checkUnstructuredLogs,
	})
	register(&Rule{
		ID: "missing-health-probes", Area: Observability, Severity: Warning,
		Title: "Service lacks a liveness or readiness probe",
		Rationale: "Without a readiness probe the platform keeps routing requests to an instance that cannot serve " +
			"them and a rolling update counts a broken instance as ready; without a liveness probe a hung instance " +
			"is never restarted.",
		Fix: "Add a readiness probe that fails while the instance cannot serve (starting, draining, a required " +
			"dependency down) and a liveness probe that fails only when the process is stuck; declare them: " +
			"probes: {liveness: true, readiness: true}.",
		Check: checkMissingHealthProbes,
	})
	register(&Rule{
		ID: "missing-alerts", Area: Observability, Severity: Warning,
		Title: "No alerts are defined for the service",
		Rationale: "Without alerts on a service's errors, latency and availability its users notice an outage " +
			"before its owners do, and time to detect is added to every outage.",
		Fix: "Define alerts on the service's error rate, latency and availability (ideally as SLO burn-rate " +
			"alerts) that page its owner, and declare it: observability.alerts: true.",
		Check: checkMissingAlerts,
	})
}

// obsMaxNames is how many names a grouped message spells out before "and N more"; the subjects and
// the evidence always list every service.
const obsMaxNames = 10

// obsServices returns the services the observability family reviews: every role but sidecar, in
// declaration order.
func obsServices(sys *model.System) []model.Service {
	out := make([]model.Service, 0, len(sys.Services))
	for _, s := range sys.Services {
		if s.Role != "sidecar" {
			out = append(out, s)
		}
	}
	return out
}

// obsNone reports whether a declared metrics or tracing value turns the signal off.
func obsNone(v string) bool {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "none", "off", "disabled":
		return true
	}
	return false
}

// obsNames spells out names for a message, the first obsMaxNames of them.
func obsNames(names []string) string {
	if len(names) <= obsMaxNames {
		return strings.Join(names, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(names[:obsMaxNames], ", "), len(names)-obsMaxNames)
}

// obsWho names the services a grouped finding is about: "service web" or "3 services (a, b, c)".
func obsWho(names []string) string {
	if len(names) == 1 {
		return "service " + names[0]
	}
	return fmt.Sprintf("%d services (%s)", len(names), obsNames(names))
}

// obsVerb picks the singular or plural form of a verb for obsWho's subject.
func obsVerb(names []string, one, many string) string {
	if len(names) == 1 {
		return one
	}
	return many
}

// obsGroup collects the services that share one cause of a finding, with the evidence for each.
type obsGroup struct {
	names    []string
	evidence []Evidence
}

// add records a service; detail says what the model shows for it ("observability.tracing absent").
func (g *obsGroup) add(s model.Service, detail string) {
	g.names = append(g.names, s.Name)
	g.evidence = append(g.evidence, At(s.Source, "service "+s.Name+": "+detail))
}

// finding builds the group's finding, or returns nil when the group is empty. The format receives
// obsWho(names) and then args.
func (g *obsGroup) finding(c *Context, format string, args ...any) []Finding {
	if len(g.names) == 0 {
		return nil
	}
	f := c.Finding(g.names, g.evidence, format, append([]any{obsWho(g.names)}, args...)...)
	f.Grouped = true
	return []Finding{f}
}

// obsSyncDegree counts the distinct components a service calls synchronously and the distinct
// services that call it synchronously: how many hops a trace loses when it stops there.
func obsSyncDegree(c *Context, name string) (calls, callers int) {
	seen := map[string]bool{}
	for _, e := range c.Graph.Callees(name) {
		if e.IsSync() && !seen[e.To] {
			seen[e.To] = true
			calls++
		}
	}
	seen = map[string]bool{}
	for _, e := range c.Graph.Callers(name) {
		if !e.IsSync() || seen[e.From] {
			continue
		}
		if comp, ok := c.Graph.Component(e.From); ok && comp.Kind == model.KindService {
			seen[e.From] = true
			callers++
		}
	}
	return calls, callers
}

// obsPlural writes "1 service" or "3 services".
func obsPlural(n int, word string) string {
	if n == 1 {
		return fmt.Sprintf("1 %s", word)
	}
	return fmt.Sprintf("%d %ss", n, word)
}

// checkMissingTracing reports services whose tracing is absent (one finding for all of them) or
// declared none/off/disabled (one finding each).
func checkMissingTracing(c *Context) []Finding {
	var out []Finding
	var undeclared obsGroup
	for _, s := range obsServices(c.Sys) {
		v := ""
		if s.Observability != nil {
			v = s.Observability.Tracing
		}
		switch {
		case strings.TrimSpace(v) == "":
			undeclared.add(s, "observability.tracing absent")
		case obsNone(v):
			calls, callers := obsSyncDegree(c, s.Name)
			effect := "the requests it serves leave no spans"
			if calls+callers > 0 {
				effect = fmt.Sprintf("every trace through it breaks there (it is called synchronously by %s and calls %s)",
					obsPlural(callers, "service"), obsPlural(calls, "component"))
			}
			out = append(out, c.Finding([]string{s.Name},
				[]Evidence{At(s.Source, "service "+s.Name+": observability.tracing: "+v)},
				"service %s has tracing turned off (observability.tracing: %s): %s", s.Name, v, effect))
		}
	}
	out = append(out, undeclared.finding(c,
		"%s %s no tracing (observability.tracing absent): requests cannot be followed across service boundaries, so the slow or failing hop is guessed from logs",
		obsVerb(undeclared.names, "declares", "declare"))...)
	return out
}

// checkMissingMetrics reports services whose metrics are absent (one finding for all of them) or
// declared none/off/disabled (one finding each).
func checkMissingMetrics(c *Context) []Finding {
	var out []Finding
	var undeclared obsGroup
	for _, s := range obsServices(c.Sys) {
		v := ""
		if s.Observability != nil {
			v = s.Observability.Metrics
		}
		switch {
		case strings.TrimSpace(v) == "":
			undeclared.add(s, "observability.metrics absent")
		case obsNone(v):
			out = append(out, c.Finding([]string{s.Name},
				[]Evidence{At(s.Source, "service "+s.Name+": observability.metrics: "+v)},
				"service %s exposes no metrics (observability.metrics: %s): its request rate, errors, latency and saturation are unmeasured, so no alert or autoscaler can react to them",
				s.Name, v))
		}
	}
	out = append(out, undeclared.finding(c,
		"%s %s no metrics (observability.metrics absent): request rate, errors, latency and saturation go unmeasured, so alerts and autoscaling have nothing to act on",
		obsVerb(undeclared.names, "declares", "declare"))...)
	return out
}

// checkUnstructuredLogs reports services whose logs are unstructured or none (a warning each) and,
// as one info finding, the services that do not declare their log format.
func checkUnstructuredLogs(c *Context) []Finding {
	var out []Finding
	var undeclared obsGroup
	for _, s := range obsServices(c.Sys) {
		v := ""
		if s.Observability != nil {
			v = s.Observability.Logs
		}
		ev := []Evidence{At(s.Source, "service "+s.Name+": observability.logs: "+v)}
		switch v {
		case "":
			undeclared.add(s, "observability.logs absent")
		case "unstructured":
			out = append(out, c.Finding([]string{s.Name}, ev,
				"service %s writes unstructured logs (observability.logs: unstructured): they cannot be filtered by field or joined to a trace ID across services",
				s.Name))
		case "none":
			out = append(out, c.Finding([]string{s.Name}, ev,
				"service %s writes no logs (observability.logs: none): when it fails there is no record of what it was doing",
				s.Name))
		}
	}
	for _, f := range undeclared.finding(c,
		"%s %s not declare a log format (observability.logs absent): whether %s logs can be searched centrally and joined to traces is unknown",
		obsVerb(undeclared.names, "does", "do"), obsVerb(undeclared.names, "its", "their")) {
		f.Severity = Info
		out = append(out, f)
	}
	return out
}

// obsReceivesTraffic reports whether the platform routes requests to a service, so that readiness
// matters: every role but worker, and a worker that another service calls synchronously. A worker
// that only consumes messages pulls its work, and a readiness probe gates no traffic (kube-score's
// pod-probes check skips readiness for pods no Service targets, for the same reason).
func obsReceivesTraffic(c *Context, s model.Service) bool {
	if s.Role != "worker" {
		return true
	}
	_, callers := obsSyncDegree(c, s.Name)
	return callers > 0
}

// checkMissingHealthProbes reports, one finding per cause, the services with no liveness or
// readiness probe at all, those missing readiness, and those missing liveness.
func checkMissingHealthProbes(c *Context) []Finding {
	var none, noReadiness, noLiveness obsGroup
	for _, s := range obsServices(c.Sys) {
		p := model.Probes{}
		if s.Probes != nil {
			p = *s.Probes
		}
		switch {
		case !obsReceivesTraffic(c, s):
			if !p.Liveness {
				noLiveness.add(s, "probes.liveness not true (a worker that takes no sync calls needs no readiness)")
			}
		case !p.Liveness && !p.Readiness:
			detail := "probes absent"
			if s.Probes != nil {
				detail = "probes without liveness or readiness"
			}
			none.add(s, detail)
		case !p.Readiness:
			noReadiness.add(s, "probes.readiness not true")
		case !p.Liveness:
			noLiveness.add(s, "probes.liveness not true")
		}
	}
	var out []Finding
	out = append(out, none.finding(c,
		"%s %s no health probes (no liveness or readiness probe declared): the platform neither restarts an instance that hangs nor stops sending requests to one that cannot serve",
		obsVerb(none.names, "has", "have"))...)
	out = append(out, noReadiness.finding(c,
		"%s %s no readiness probe (probes.readiness not true): an instance keeps getting traffic while it cannot serve, and a rolling update counts a broken instance as ready",
		obsVerb(noReadiness.names, "has", "have"))...)
	out = append(out, noLiveness.finding(c,
		"%s %s no liveness probe (probes.liveness not true): an instance that hangs without exiting stays in place and is never restarted",
		obsVerb(noLiveness.names, "has", "have"))...)
	return out
}

// checkMissingAlerts reports services whose alerts are absent (one finding for all of them) or
// declared false (one finding each).
func checkMissingAlerts(c *Context) []Finding {
	var out []Finding
	var undeclared obsGroup
	for _, s := range obsServices(c.Sys) {
		var v *bool
		if s.Observability != nil {
			v = s.Observability.Alerts
		}
		switch {
		case v == nil:
			undeclared.add(s, "observability.alerts absent")
		case !*v:
			out = append(out, c.Finding([]string{s.Name},
				[]Evidence{At(s.Source, "service "+s.Name+": observability.alerts: false")},
				"service %s has no alerts (observability.alerts: false): its errors, latency and unavailability reach users before they reach its owners",
				s.Name))
		}
	}
	out = append(out, undeclared.finding(c,
		"%s %s no alerts (observability.alerts absent): nothing pages an owner on errors, latency or unavailability, so users notice an outage first",
		obsVerb(undeclared.names, "declares", "declare"))...)
	return out
}

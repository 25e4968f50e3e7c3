package review

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/faultline-dev/faultline/model"
)

// obsCase is one fixture of an observability or api rule: a model body and the findings it must
// give, each as subjects, severity and a fragment of the message.
type obsCase struct {
	name string
	body string
	want []obsWant
}

type obsWant struct {
	subjects string // joined by ","
	severity Severity
	message  string // a fragment the message must contain
}

// obsCheck runs a rule on each case and compares the findings, in the engine's order, with the
// expected ones; every finding must be complete and carry one located evidence per subject.
func obsCheck(t *testing.T, rule string, cases []obsCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := findings(t, system(t, tc.body), rule, nil)
			if len(got) != len(tc.want) {
				t.Fatalf("got %d findings %q, want %d:\n%s", len(got), subjectsOf(got), len(tc.want), obsDump(got))
			}
			for i, w := range tc.want {
				f := got[i]
				checkFinding(t, f)
				if s := strings.Join(f.Subjects, ","); s != w.subjects {
					t.Errorf("finding %d: subjects %q, want %q", i, s, w.subjects)
				}
				if f.Severity != w.severity {
					t.Errorf("finding %d: severity %s, want %s", i, f.Severity, w.severity)
				}
				if !strings.Contains(f.Message, w.message) {
					t.Errorf("finding %d: message %q lacks %q", i, f.Message, w.message)
				}
				if f.Area == "" || f.Rule != rule {
					t.Errorf("finding %d: rule %q area %q", i, f.Rule, f.Area)
				}
				if len(f.Evidence) != len(f.Subjects) {
					t.Errorf("finding %d: %d evidence for %d subjects", i, len(f.Evidence), len(f.Subjects))
				}
				for j, e := range f.Evidence {
					if e.File != "test.yaml" || e.Line <= 0 || !strings.Contains(e.What, f.Subjects[min(j, len(f.Subjects)-1)]) {
						t.Errorf("finding %d: evidence %d = %v, want a located line naming %s", i, j, e, f.Subjects[min(j, len(f.Subjects)-1)])
					}
				}
			}
		})
	}
}

func obsDump(fs []Finding) string {
	var b strings.Builder
	for _, f := range fs {
		fmt.Fprintf(&b, "  %s %s %v: %s\n", f.Severity, f.Rule, f.Subjects, f.Message)
	}
	return b.String()
}

func TestMissingTracing(t *testing.T) {
	obsCheck(t, "missing-tracing", []obsCase{
		{name: "declared everywhere", body: `
services:
  - name: a
    observability: {tracing: otel}
  - name: b
    role: worker
    observability: {tracing: jaeger}
`},
		{name: "absent: one finding for every service, sidecars left out", body: `
services:
  - name: a
  - name: b
    role: worker
    observability: {logs: structured}
  - name: c
    observability: {tracing: zipkin}
  - name: proxy
    role: sidecar
`, want: []obsWant{{"a,b", Warning, "2 services (a, b) declare no tracing (observability.tracing absent)"}}},
		{name: "none: one finding per service, with the calls the trace loses", body: `
services:
  - name: gw
    observability: {tracing: otel}
  - name: a
    observability: {tracing: none}
  - name: b
    observability: {tracing: "off"}
  - name: db-owner
edges:
  - {from: gw, to: a, protocol: http}
  - {from: a, to: b, protocol: http}
  - {from: a, to: db-owner, protocol: grpc}
`, want: []obsWant{
			{"a", Warning, "service a has tracing turned off (observability.tracing: none): every trace through it breaks there (it is called synchronously by 1 service and calls 2 components)"},
			{"b", Warning, "service b has tracing turned off (observability.tracing: off)"},
			{"db-owner", Warning, "service db-owner declares no tracing"},
		}},
	})
}

func TestMissingMetrics(t *testing.T) {
	obsCheck(t, "missing-metrics", []obsCase{
		{name: "declared", body: `
services:
  - name: a
    observability: {metrics: prometheus}
  - name: gw
    role: gateway
    observability: {metrics: otel}
`},
		{name: "absent and none", body: `
services:
  - name: a
  - name: b
    observability: {metrics: none}
  - name: c
    observability: {tracing: otel}
  - name: mesh
    role: sidecar
`, want: []obsWant{
			{"a,c", Warning, "2 services (a, c) declare no metrics (observability.metrics absent)"},
			{"b", Warning, "service b exposes no metrics (observability.metrics: none)"},
		}},
	})
}

func TestUnstructuredLogs(t *testing.T) {
	obsCheck(t, "unstructured-logs", []obsCase{
		{name: "structured", body: `
services:
  - name: a
    observability: {logs: structured}
`},
		{name: "unstructured and none warn per service, absent is one info", body: `
services:
  - name: a
    observability: {logs: unstructured}
  - name: b
    observability: {logs: none}
  - name: c
    observability: {logs: structured}
  - name: d
  - name: e
    role: worker
    observability: {metrics: prometheus}
  - name: envoy
    role: sidecar
    observability: {logs: unstructured}
`, want: []obsWant{
			{"a", Warning, "service a writes unstructured logs (observability.logs: unstructured)"},
			{"b", Warning, "service b writes no logs (observability.logs: none)"},
			{"d,e", Info, "2 services (d, e) do not declare a log format (observability.logs absent)"},
		}},
		{name: "one undeclared service", body: `
services:
  - name: d
`, want: []obsWant{{"d", Info, "service d does not declare a log format"}}},
	})
}

func TestMissingHealthProbes(t *testing.T) {
	obsCheck(t, "missing-health-probes", []obsCase{
		{name: "both probes", body: `
services:
  - name: a
    probes: {liveness: true, readiness: true}
`},
		{name: "a worker that only consumes needs liveness alone", body: `
services:
  - name: w
    role: worker
    probes: {liveness: true}
brokers:
  - {name: bus, kind: nats}
edges:
  - {from: bus, to: w, protocol: nats}
`},
		{name: "one finding per missing probe", body: `
services:
  - name: a
  - name: b
    probes: {startup: true}
  - name: c
    probes: {liveness: true}
  - name: d
    probes: {readiness: true}
  - name: w
    role: worker
  - name: called-worker
    role: worker
    probes: {liveness: true}
  - name: sc
    role: sidecar
edges:
  - {from: a, to: called-worker, protocol: http}
`, want: []obsWant{
			{"a,b", Warning, "2 services (a, b) have no health probes (no liveness or readiness probe declared)"},
			{"c,called-worker", Warning, "2 services (c, called-worker) have no readiness probe (probes.readiness not true): an instance keeps getting traffic while it cannot serve"},
			{"d,w", Warning, "2 services (d, w) have no liveness probe (probes.liveness not true)"},
		}},
		{name: "one service without readiness", body: `
services:
  - name: web
    role: gateway
    probes: {liveness: true}
`, want: []obsWant{{"web", Warning, "service web has no readiness probe"}}},
	})
}

func TestMissingAlerts(t *testing.T) {
	obsCheck(t, "missing-alerts", []obsCase{
		{name: "declared", body: `
services:
  - name: a
    observability: {alerts: true}
`},
		{name: "absent grouped, false per service", body: `
services:
  - name: a
  - name: b
    observability: {alerts: false}
  - name: c
    observability: {logs: structured}
  - name: s
    role: sidecar
`, want: []obsWant{
			{"a,c", Warning, "2 services (a, c) declare no alerts (observability.alerts absent)"},
			{"b", Warning, "service b has no alerts (observability.alerts: false)"},
		}},
	})
}

// An import of many services that declares no telemetry gets one finding per rule, not one per
// service: the message names the first ten and counts the rest; subjects and evidence list all.
func TestObservabilityGroupsImports(t *testing.T) {
	var b strings.Builder
	b.WriteString("services:\n")
	var names []string
	for i := range 25 {
		n := fmt.Sprintf("svc%02d", i)
		names = append(names, n)
		fmt.Fprintf(&b, "  - name: %s\n", n)
	}
	sys := system(t, b.String())
	for _, rule := range []string{"missing-tracing", "missing-metrics", "unstructured-logs", "missing-health-probes", "missing-alerts"} {
		got := findings(t, sys, rule, nil)
		if len(got) != 1 {
			t.Fatalf("%s: %d findings, want 1:\n%s", rule, len(got), obsDump(got))
		}
		f := got[0]
		checkFinding(t, f)
		if !reflect.DeepEqual(f.Subjects, names) || len(f.Evidence) != 25 {
			t.Errorf("%s: subjects %v, %d evidence", rule, f.Subjects, len(f.Evidence))
		}
		if !strings.Contains(f.Message, "25 services (svc00, svc01, svc02, svc03, svc04, svc05, svc06, svc07, svc08, svc09 and 15 more)") {
			t.Errorf("%s: message %q", rule, f.Message)
		}
	}
}

// obsLoadExample loads one of examples/models.
func obsLoadExample(t *testing.T, name string) *model.System {
	t.Helper()
	sys, err := model.LoadFile("../examples/models/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return sys
}

// obsExpectExample runs each rule on an example and compares "severity subjects" per finding.
func obsExpectExample(t *testing.T, file string, want map[string][]string) {
	t.Helper()
	sys := obsLoadExample(t, file)
	for rule, w := range want {
		got := findings(t, sys, rule, nil)
		var have []string
		for _, f := range got {
			checkFinding(t, f)
			have = append(have, f.Severity.String()+" "+strings.Join(f.Subjects, ","))
		}
		if !reflect.DeepEqual(have, w) {
			t.Errorf("%s on %s:\n got %q\nwant %q\n%s", rule, file, have, w, obsDump(got))
		}
	}
}

// The healthy shop declares telemetry, probes and alerts everywhere: the family says nothing.
// The legacy shop was written to show missing telemetry and probes.
func TestObservabilityExamples(t *testing.T) {
	obsExpectExample(t, "shop.yaml", map[string][]string{
		"missing-tracing": nil, "missing-metrics": nil, "unstructured-logs": nil, "missing-health-probes": nil, "missing-alerts": nil,
	})
	all := "web,order,pricing,inventory,warehouse,user,session,payment"
	obsExpectExample(t, "legacy-shop.yaml", map[string][]string{
		"missing-tracing":       {"warning " + all},
		"missing-metrics":       {"warning web,pricing,inventory,warehouse,user,session,payment"},
		"unstructured-logs":     {"warning order", "warning payment", "warning warehouse", "warning web"},
		"missing-health-probes": {"warning order,pricing,inventory,warehouse,user,session,payment", "warning web"},
		"missing-alerts":        {"warning " + all},
	})
}

// A per-service finding (a value declared on purpose) can be ignored by its subject without
// hiding the others.
func TestObservabilityIgnorePerService(t *testing.T) {
	sys := system(t, `
services:
  - name: a
    observability: {tracing: none}
  - name: b
    observability: {tracing: none}
`)
	cfg, err := ParseConfig("c.yaml", []byte(`ignore:
  - {rule: missing-tracing, subject: a, reason: "batch job, traced by its scheduler"}
`))
	if err != nil {
		t.Fatal(err)
	}
	rep, err := Review(t.Context(), sys, cfg)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, f := range rep.Findings {
		if f.Rule == "missing-tracing" {
			got = append(got, strings.Join(f.Subjects, ","))
		}
	}
	if !reflect.DeepEqual(got, []string{"b"}) || len(rep.Ignored) == 0 {
		t.Errorf("missing-tracing findings %v, ignored %d; want [b] and a ignored", got, len(rep.Ignored))
	}
}

// The observability and api families stay fast on a generated 1,000-service, 5,000-edge model
// with nothing declared (the benchmark size).
func TestObsAPIFastOnLargeModel(t *testing.T) {
	if testing.Short() {
		t.Skip("large model")
	}
	const n, m = 1000, 5000
	sys := &model.System{APIVersion: model.APIVersion, Kind: model.KindSystem, Metadata: model.Metadata{Name: "large"}}
	src := func(i int) model.Source { return model.Source{File: "large.yaml", Line: i + 1} }
	for i := range n {
		sys.Services = append(sys.Services, model.Service{Name: fmt.Sprintf("svc-%d", i), Source: src(i)})
	}
	sys.Brokers = []model.Broker{{Name: "bus", Kind: "kafka", Source: src(n)}}
	for k := 0; len(sys.Edges) < m; k++ {
		for i := 0; i < n-100 && len(sys.Edges) < m; i++ {
			to := (i/100+1)*100 + (i*7+k*13)%100
			sys.Edges = append(sys.Edges, model.Edge{From: fmt.Sprintf("svc-%d", i), To: fmt.Sprintf("svc-%d", to), Protocol: "http", Source: src(n + 1 + len(sys.Edges))})
		}
	}
	for i := 0; i < n; i += 10 {
		sys.Edges = append(sys.Edges, model.Edge{From: fmt.Sprintf("svc-%d", i), To: "bus", Protocol: "kafka", Source: src(n + 1 + len(sys.Edges))})
	}
	sys.ApplyDefaults()
	// Time the rules themselves, the way Review runs them, without the availability math the
	// engine does once for all families.
	start := time.Now()
	g := model.NewGraph(sys)
	base := Context{Sys: sys, Graph: g, Entrypoints: model.EffectiveEntrypoints(sys, g)}
	var got []Finding
	for _, id := range []string{"missing-tracing", "missing-metrics", "unstructured-logs", "missing-health-probes", "missing-alerts", "missing-api-contract", "unversioned-api"} {
		r, _ := RuleByID(id)
		c := base
		c.rule = r
		got = append(got, r.Check(&c)...)
	}
	d := time.Since(start)
	// One grouped finding per rule and cause: 5 observability + 2 api (sync and async gaps).
	if len(got) != 7 {
		t.Errorf("%d findings, want 7:\n%s", len(got), obsDump(got))
	}
	for _, f := range got {
		if len(f.Subjects) < 100 {
			t.Errorf("%s: %d subjects", f.Rule, len(f.Subjects))
		}
	}
	t.Logf("observability and api rules: %d findings in %v on %d services and %d edges (budget: BenchmarkReview)", len(got), d, n, len(sys.Edges))
}

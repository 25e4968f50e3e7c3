package review

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/faultline-dev/faultline/model"
)

// availFamilyRules are the rules of the availability, scalability and security families, the ones
// these test files cover.
var availFamilyRules = []string{
	"single-point-of-failure", "datastore-no-replication", "single-zone", "missing-pdb", "availability-below-slo",
	"stateful-service-scaled", "hard-coded-endpoint",
	"unencrypted-edge", "unauthenticated-edge", "plaintext-secret", "no-encryption-at-rest",
}

// availWant is an expected finding: its subjects joined by "," and its severity.
type availWant struct {
	subjects string
	severity Severity
}

// availExpect checks a rule's findings against the expected subjects and severities (in the
// order the engine reports them), that each is complete, and that each message holds the texts.
func availExpect(t *testing.T, fs []Finding, want []availWant, texts ...string) {
	t.Helper()
	got := make([]availWant, len(fs))
	for i, f := range fs {
		got[i] = availWant{strings.Join(f.Subjects, ","), f.Severity}
		checkFinding(t, f)
	}
	if len(want) == 0 && len(got) == 0 {
		return
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("findings = %v, want %v\n%s", got, want, availMessages(fs))
	}
	for _, f := range fs {
		for _, text := range texts {
			if !strings.Contains(f.Message, text) {
				t.Errorf("message of %v lacks %q:\n%s", f.Subjects, text, f.Message)
			}
		}
	}
}

func availMessages(fs []Finding) string {
	var b strings.Builder
	for _, f := range fs {
		fmt.Fprintf(&b, "  %s %v: %s\n", f.Severity, f.Subjects, f.Message)
	}
	return b.String()
}

// availReview runs the whole review on an example model and returns the findings of one rule.
func availReview(t *testing.T, path string) map[string][]Finding {
	t.Helper()
	sys, err := model.LoadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := Review(context.Background(), sys, nil)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]Finding{}
	for _, f := range rep.Findings {
		out[f.Rule] = append(out[f.Rule], f)
	}
	return out
}

// A front service with two entrypoints calls a one-replica service synchronously; what it reaches
// only asynchronously, through critical: false or a fallback is nobody's single point of failure.
const availSPOFModel = `
services:
  - {name: gw, replicas: 2}
  - {name: order, replicas: 1}
  - {name: optional, replicas: 1}
  - {name: cached, replicas: 1}
  - {name: worker, replicas: 1}
  - {name: agent, replicas: 1, workload: {platform: kubernetes, kind: DaemonSet}}
  - {name: lone, replicas: 1}
datastores:
  - {name: rds, kind: postgres, managed: true}
  - {name: orderdb, kind: postgres, replicas: 2}
brokers:
  - {name: bus, kind: nats}
externals:
  - {name: psp, host: api.psp.example.com}
edges:
  - {from: gw, to: order, protocol: http}
  - {from: gw, to: optional, protocol: http, critical: false}
  - {from: gw, to: cached, protocol: http, policy: {fallback: cached}}
  - {from: gw, to: agent, protocol: http}
  - {from: order, to: rds, protocol: sql}
  - {from: order, to: orderdb, protocol: sql}
  - {from: order, to: psp, protocol: http}
  - {from: order, to: bus, protocol: nats}
  - {from: bus, to: worker, protocol: nats}
entrypoints:
  - {name: checkout, service: gw}
  - {name: browse, service: gw}
  - {name: admin, service: lone}
`

func TestSinglePointOfFailure(t *testing.T) {
	sys := system(t, availSPOFModel)
	fs := findings(t, sys, "single-point-of-failure", nil)
	availExpect(t, fs, []availWant{{"order", Error}, {"lone", Warning}}, "runs 1 replica", "critical sync path of")
	if !strings.Contains(fs[0].Message, "2 entrypoints (browse, checkout)") {
		t.Errorf("order's message should name both entrypoints: %s", fs[0].Message)
	}
	if !strings.Contains(fs[1].Message, "1 entrypoint (admin)") {
		t.Errorf("lone's message should name its entrypoint: %s", fs[1].Message)
	}
	// Evidence: the component first, then each entrypoint that depends on it.
	if ev := fs[0].Evidence; len(ev) != 3 || ev[0].What != "service order" || ev[0].Line != 7 ||
		ev[1].What != "entrypoint checkout" || ev[2].What != "entrypoint browse" {
		t.Errorf("evidence = %+v", ev)
	}

	// The threshold moves the point where the severity rises.
	fs = findings(t, sys, "single-point-of-failure", map[string]float64{"errorAtEntrypoints": 3})
	availExpect(t, fs, []availWant{{"lone", Warning}, {"order", Warning}})
}

func TestSinglePointOfFailureWithoutEntrypoints(t *testing.T) {
	// No entrypoints declared: services nobody calls stand in for them, so the front service
	// and what it needs are still checked; a datastore is a SPOF like any component.
	sys := system(t, `
services:
  - {name: web, replicas: 3, datastores: [db]}
datastores:
  - {name: db, kind: mysql}
`)
	fs := findings(t, sys, "single-point-of-failure", nil)
	availExpect(t, fs, []availWant{{"db", Warning}}, "datastore db runs 1 replica", "1 entrypoint (web)")
}

func TestSinglePointOfFailureHealthy(t *testing.T) {
	sys := system(t, `
services:
  - {name: gw, replicas: 2, zones: [a, b]}
  - {name: order, replicas: 3}
datastores:
  - {name: db, kind: postgres, replicas: 2, replication: leader-follower}
edges:
  - {from: gw, to: order, protocol: http}
  - {from: order, to: db, protocol: sql}
entrypoints:
  - {name: checkout, service: gw}
`)
	availExpect(t, findings(t, sys, "single-point-of-failure", nil), nil)
}

func TestDatastoreNoReplication(t *testing.T) {
	sys := system(t, `
services:
  - {name: gw, replicas: 2, datastores: [orders]}
  - {name: worker, replicas: 2, datastores: [reports, archive]}
datastores:
  - {name: orders, kind: postgres}
  - {name: reports, kind: mysql, replication: none}
  - {name: archive, kind: mongo, replicas: 1, replication: leader-follower}
  - {name: managed, kind: postgres, managed: true}
  - {name: sessions, kind: memcached}
  - {name: copies, kind: postgres, replicas: 2}
brokers:
  - {name: bus, kind: kafka, replicas: 3}
edges:
  - {from: gw, to: bus, protocol: kafka}
  - {from: bus, to: worker, protocol: kafka}
  - {from: gw, to: managed, protocol: sql}
  - {from: gw, to: sessions, protocol: tcp}
  - {from: gw, to: copies, protocol: sql}
entrypoints:
  - {name: checkout, service: gw}
`)
	fs := findings(t, sys, "datastore-no-replication", nil)
	availExpect(t, fs, []availWant{{"orders", Error}, {"reports", Warning}}, "keeps 1 copy of its data")
	if !strings.Contains(fs[0].Message, "datastore orders (postgres)") || !strings.Contains(fs[0].Message, "no replication declared") ||
		!strings.Contains(fs[0].Message, "1 entrypoint (checkout)") {
		t.Errorf("orders: %s", fs[0].Message)
	}
	if !strings.Contains(fs[1].Message, "replication: none") || !strings.Contains(fs[1].Message, "no entrypoint needs it synchronously") {
		t.Errorf("reports: %s", fs[1].Message)
	}
}

func TestDatastoreNoReplicationHealthy(t *testing.T) {
	sys := system(t, `
services:
  - {name: gw, replicas: 2, datastores: [db, cache]}
datastores:
  - {name: db, kind: postgres, replicas: 3, replication: consensus}
  - {name: cache, kind: redis, managed: true}
entrypoints:
  - {name: checkout, service: gw}
`)
	availExpect(t, findings(t, sys, "datastore-no-replication", nil), nil)
}

func TestSingleZone(t *testing.T) {
	sys := system(t, `
services:
  - {name: gw, replicas: 2, zones: [a]}
  - {name: one, replicas: 1, zones: [a]}
  - {name: worker, replicas: 2, zones: [a]}
  - {name: unknown, replicas: 3}
datastores:
  - {name: db, kind: postgres, replicas: 3, zones: [a, a]}
brokers:
  - {name: bus, kind: kafka, replicas: 3, zones: [a]}
edges:
  - {from: gw, to: one, protocol: http}
  - {from: gw, to: unknown, protocol: http}
  - {from: gw, to: db, protocol: sql}
  - {from: gw, to: bus, protocol: kafka}
  - {from: bus, to: worker, protocol: kafka}
entrypoints:
  - {name: checkout, service: gw}
`)
	fs := findings(t, sys, "single-zone", nil)
	// gw and db are replicated within zone a on the checkout path; one has a single replica
	// (single-point-of-failure's finding), unknown declares no zones, worker and bus are only
	// reached asynchronously. Every component that declares zones declares zone a: the system
	// finding names them.
	availExpect(t, fs, []availWant{{"db", Warning}, {"gw", Warning}, {"t", Warning}})
	if !strings.Contains(fs[0].Message, "datastore db runs 3 replicas, all in zone a, on the critical sync path of 1 entrypoint (checkout)") {
		t.Errorf("db: %s", fs[0].Message)
	}
	if !strings.Contains(fs[2].Message, "system t runs in one zone: the 5 components that declare zones (gw, one, worker, db, bus) all declare only zone a; 1 other component declares no zones") {
		t.Errorf("system: %s", fs[2].Message)
	}
	if len(fs[2].Evidence) != 5 {
		t.Errorf("system evidence = %+v", fs[2].Evidence)
	}
}

func TestSingleZoneHealthy(t *testing.T) {
	for name, body := range map[string]string{
		"zones absent are unknown": `
services:
  - {name: gw, replicas: 3}
entrypoints:
  - {name: checkout, service: gw}
`,
		"two zones": `
services:
  - {name: gw, replicas: 2, zones: [a, b]}
  - {name: worker, replicas: 2, zones: [a]}
brokers:
  - {name: bus, kind: kafka, replicas: 3}
edges:
  - {from: gw, to: bus, protocol: kafka}
  - {from: bus, to: worker, protocol: kafka}
entrypoints:
  - {name: checkout, service: gw}
`,
		"one component declaring a zone is not a system": `
services:
  - {name: gw, replicas: 1, zones: [a]}
  - {name: order, replicas: 2}
edges:
  - {from: gw, to: order, protocol: http}
entrypoints:
  - {name: checkout, service: gw}
`,
	} {
		t.Run(name, func(t *testing.T) {
			availExpect(t, findings(t, system(t, body), "single-zone", nil), nil)
		})
	}
}

func TestMissingPDB(t *testing.T) {
	sys := system(t, `
services:
  - {name: cart, replicas: 3, workload: {platform: kubernetes, kind: Deployment, namespace: shop}}
  - {name: covered, replicas: 3, workload: {platform: kubernetes, kind: Deployment, disruptionBudget: {maxUnavailable: "1", name: covered}}}
  - {name: single, replicas: 1, workload: {platform: kubernetes, kind: Deployment}}
  - {name: composed, replicas: 3, workload: {platform: compose, kind: service}}
  - {name: handwritten, replicas: 3}
datastores:
  - {name: db, kind: postgres, replicas: 2, workload: {platform: kubernetes, kind: StatefulSet}}
`)
	fs := findings(t, sys, "missing-pdb", nil)
	availExpect(t, fs, []availWant{{"cart", Warning}, {"db", Warning}}, "with no PodDisruptionBudget")
	if !strings.Contains(fs[0].Message, "service cart runs 3 replicas on Kubernetes (Deployment in namespace shop)") ||
		!strings.Contains(fs[0].Message, "evict all 3 at once") {
		t.Errorf("cart: %s", fs[0].Message)
	}
	if !strings.Contains(fs[1].Message, "datastore db runs 2 replicas on Kubernetes (StatefulSet)") {
		t.Errorf("db: %s", fs[1].Message)
	}
}

func TestAvailabilityBelowSLO(t *testing.T) {
	// One replica of gw: 0.995 × zone 0.9995 = 0.9945025 (2.26 nines); with db (two copies, one
	// zone: (1−0.001²) × 0.9995 = 0.9994990005) in series it is 0.99400426.
	sys := system(t, `
slo: {availability: 0.9999}
services:
  - {name: gw, replicas: 1, datastores: [db]}
  - {name: relaxed, replicas: 1}
datastores:
  - {name: db, kind: postgres, replicas: 2}
entrypoints:
  - {name: checkout, service: gw}
  - {name: internal, service: relaxed, slo: {availability: 0.99}}
`)
	fs := findings(t, sys, "availability-below-slo", nil)
	availExpect(t, fs, []availWant{{"checkout", Error}},
		"entrypoint checkout (service gw) is predicted at 99.4004% (2.22 nines), below the system's target of 99.99% (4.00 nines)",
		"2 of the 2 components it needs are below the extra nine (99.999%)",
		"gw 92% of downtime (99.4503%, 1 replica)", "db 8% of downtime (99.9499%, 2 replicas)")
	ev := fs[0].Evidence
	if len(ev) != 4 || ev[0].What != "entrypoint checkout" || ev[1].What != "slo.availability" || ev[2].What != "service gw" || ev[3].What != "datastore db" {
		t.Errorf("evidence = %+v", ev)
	}

	// The components threshold limits how many are named.
	fs = findings(t, sys, "availability-below-slo", map[string]float64{"components": 1})
	availExpect(t, fs, []availWant{{"checkout", Error}}, "the costliest: gw 92% of downtime")
	if strings.Contains(fs[0].Message, "db ") {
		t.Errorf("components: 1 still names db: %s", fs[0].Message)
	}
}

func TestAvailabilityBelowSLOEntrypointTarget(t *testing.T) {
	sys := system(t, `
services:
  - {name: gw, replicas: 1, zones: [a]}
entrypoints:
  - {name: checkout, service: gw, slo: {availability: 0.999}}
`)
	fs := findings(t, sys, "availability-below-slo", nil)
	availExpect(t, fs, []availWant{{"checkout", Error}}, "below its target of 99.9% (3.00 nines)", "gw 100% of downtime (99.4503%, 1 replica in 1 zone)")
	if len(fs[0].Evidence) != 2 {
		t.Errorf("evidence = %+v (want the entrypoint and gw; no system SLO)", fs[0].Evidence)
	}
}

func TestAvailabilityBelowSLOHealthy(t *testing.T) {
	for name, body := range map[string]string{
		"no SLO": `
services:
  - {name: gw, replicas: 1}
entrypoints:
  - {name: checkout, service: gw}
`,
		"meets": `
slo: {availability: 0.999}
services:
  - {name: gw, replicas: 3, zones: [a, b, c]}
entrypoints:
  - {name: checkout, service: gw}
`,
	} {
		t.Run(name, func(t *testing.T) {
			availExpect(t, findings(t, system(t, body), "availability-below-slo", nil), nil)
		})
	}
}

// TestAvailScalSecOnHealthyShop: the healthy example gives no finding at all from these families.
func TestAvailScalSecOnHealthyShop(t *testing.T) {
	byRule := availReview(t, "../examples/models/shop.yaml")
	for _, id := range availFamilyRules {
		if fs := byRule[id]; len(fs) > 0 {
			t.Errorf("shop.yaml: %s reports\n%s", id, availMessages(fs))
		}
	}
}

// TestAvailabilityOnLegacyShop: legacy-shop.yaml shows its single points of failure (every
// one-replica component on the web entry's critical tree, needed by both entrypoints), its
// unreplicated databases, its one zone, and an availability far below its SLO.
func TestAvailabilityOnLegacyShop(t *testing.T) {
	byRule := availReview(t, "../examples/models/legacy-shop.yaml")
	availExpect(t, byRule["single-point-of-failure"], []availWant{
		{"inventory", Error}, {"order", Error}, {"payment", Error}, {"paymentdb", Error}, {"shopdb", Error}, {"warehouse", Error},
	}, "2 entrypoints (account, checkout)")
	availExpect(t, byRule["datastore-no-replication"], []availWant{{"paymentdb", Error}, {"shopdb", Error}})
	availExpect(t, byRule["single-zone"], []availWant{
		{"legacy-shop", Warning}, {"pricing", Warning}, {"session", Warning}, {"user", Warning}, {"web", Warning},
	})
	availExpect(t, byRule["missing-pdb"], nil)
	availExpect(t, byRule["availability-below-slo"], []availWant{{"account", Error}, {"checkout", Error}},
		"is predicted at 97.2264% (1.56 nines), below the system's target of 99.95% (3.30 nines)",
		"order 20% of downtime (99.4503%, 1 replica)")
}

// TestAvailScalSecFastOnLargeModel runs the eleven rules on a 1,000-service / 5,000-edge model, with
// and without declared entrypoints (without, every service of the first layer stands in for one),
// and checks they report at that scale. The time is logged; the budget is BenchmarkReview's, since
// timing goals belong in benchmarks, not in tests that a busy machine would fail.
func TestAvailScalSecFastOnLargeModel(t *testing.T) {
	if testing.Short() {
		t.Skip("large model")
	}
	for _, declared := range []bool{true, false} {
		sys := availLargeModel(1000, 5000, declared)
		g := model.NewGraph(sys)
		base := Context{Sys: sys, Graph: g, Entrypoints: model.EffectiveEntrypoints(sys, g)}
		// The fastest of three runs, so a machine busy with other tests does not fail it.
		n, best := 0, time.Duration(1<<62)
		for range 3 {
			n = 0
			start := time.Now()
			for _, id := range availFamilyRules {
				r, _ := RuleByID(id)
				c := base
				c.rule = r
				n += len(r.Check(&c))
			}
			best = min(best, time.Since(start))
		}
		t.Logf("declared entrypoints %v: %d findings in %v", declared, n, best)
		if n < 1000 {
			t.Errorf("large model gave %d findings, want its hard-coded addresses, secrets and edges", n)
		}
	}
}

// availLargeModel builds n services in ten layers, each calling services of the next layer, about
// m sync edges, one datastore per ten services, and optionally five entrypoints.
func availLargeModel(n, m int, entrypoints bool) *model.System {
	sys := &model.System{APIVersion: model.APIVersion, Kind: model.KindSystem, Metadata: model.Metadata{Name: "large"},
		SLO: &model.SLO{Availability: 0.999}}
	per := n / 10
	src := func(i int) model.Source { return model.Source{File: "large.yaml", Line: i + 1} }
	for i := 0; i < n; i++ {
		s := model.Service{Name: fmt.Sprintf("svc-%d", i), Replicas: 1 + i%3, Zones: []string{"a"}, Source: src(i)}
		if i%10 == 0 {
			s.Datastores = []string{fmt.Sprintf("db-%d", i/10)}
			s.Secrets = []model.Secret{{Name: "DB_PASSWORD", From: "literal", Source: src(i)}}
		}
		sys.Services = append(sys.Services, s)
	}
	for i := 0; i < n; i += 10 {
		sys.Datastores = append(sys.Datastores, model.Datastore{Name: fmt.Sprintf("db-%d", i/10), Kind: "postgres", Source: src(n + i)})
	}
	for k := 1; len(sys.Edges) < m; k++ {
		for i := 0; i < n-per && len(sys.Edges) < m; i++ {
			to := (i/per+1)*per + (i*7+k*13)%per
			sys.Edges = append(sys.Edges, model.Edge{From: fmt.Sprintf("svc-%d", i), To: fmt.Sprintf("svc-%d", to),
				Protocol: "http", Address: fmt.Sprintf("http://10.0.%d.%d:80", k%250, i%250), Source: src(2*n + len(sys.Edges))})
		}
	}
	if entrypoints {
		for i := 0; i < per; i += per / 5 {
			sys.Entrypoints = append(sys.Entrypoints, model.Entrypoint{Name: fmt.Sprintf("ep-%d", i), Service: fmt.Sprintf("svc-%d", i), Source: src(i)})
		}
	}
	sys.ApplyDefaults()
	return sys
}

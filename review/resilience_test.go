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

// resFamilyRules are the rules of the resilience, decoupling and consistency families.
var resFamilyRules = []string{
	"missing-timeout", "missing-circuit-breaker", "retry-without-backoff", "retry-amplification",
	"timeout-budget-inverted", "missing-bulkhead", "missing-fallback",
	"shared-datastore", "cyclic-dependency", "sync-chain-depth", "chatty-interaction", "no-api-gateway",
	"dual-write", "distributed-transaction-on-hot-path",
}

// resWant is what a test expects of one finding.
type resWant struct {
	subjects string
	severity Severity
	contains []string
}

// resExpect checks findings against wants, in order, and that each finding is complete.
func resExpect(t *testing.T, got []Finding, want ...resWant) {
	t.Helper()
	if len(got) != len(want) {
		var lines []string
		for _, f := range got {
			lines = append(lines, fmt.Sprintf("%s %v: %s", f.Severity, f.Subjects, f.Message))
		}
		t.Fatalf("got %d findings, want %d:\n%s", len(got), len(want), strings.Join(lines, "\n"))
	}
	for i, w := range want {
		f := got[i]
		checkFinding(t, f)
		if s := strings.Join(f.Subjects, ","); s != w.subjects {
			t.Errorf("finding %d subjects = %q, want %q", i, s, w.subjects)
		}
		if f.Severity != w.severity {
			t.Errorf("finding %d (%s) severity = %s, want %s", i, w.subjects, f.Severity, w.severity)
		}
		for _, c := range w.contains {
			if !strings.Contains(f.Message, c) {
				t.Errorf("finding %d (%s) message lacks %q:\n%s", i, w.subjects, c, f.Message)
			}
		}
	}
}

const resComponents = `services:
  - {name: a}
  - {name: b}
  - {name: c}
  - {name: d}
datastores:
  - {name: db}
brokers:
  - {name: bus}
externals:
  - {name: ext, host: api.example.com}
`

func TestMissingTimeout(t *testing.T) {
	sys := system(t, `services:
  - {name: a, datastores: [db]}
  - {name: b}
  - {name: c}
  - {name: d}
datastores:
  - {name: db}
  - {name: db2}
brokers:
  - {name: bus}
externals:
  - {name: ext, host: api.example.com}
edges:
  - {from: a, to: b, protocol: http}
  - {from: a, to: ext, protocol: http, policy: {retry: {attempts: 2, backoff: exponential, jitter: full}}}
  - {from: a, to: c, protocol: grpc, policy: {retry: {attempts: 2, perTryTimeout: 200ms}}}
  - {from: a, to: d, protocol: http, policy: {timeout: 1s}}
  - {from: a, to: bus, protocol: kafka}
  - {from: b, to: db2, protocol: sql, policy: {timeout: 50ms}}
`)
	resExpect(t, findings(t, sys, "missing-timeout", nil),
		resWant{"a → ext", Error, []string{"external ext", "no timeout", "neither policy.timeout nor retry.perTryTimeout", "outside the team's control"}},
		resWant{"a → b", Warning, []string{"service b", "a waits as long as b takes"}},
		resWant{"a → db", Warning, []string{"datastore db", "implicit edge from services[].datastores"}},
	)
	quiet := system(t, `services:
  - {name: a}
  - {name: b}
edges:
  - {from: a, to: b, protocol: http, policy: {timeout: 300ms}}
`)
	resExpect(t, findings(t, quiet, "missing-timeout", nil))
}

func TestMissingCircuitBreaker(t *testing.T) {
	sys := system(t, resComponents+`edges:
  - {from: a, to: b, protocol: http, policy: {timeout: 1s}}
  - {from: a, to: ext, protocol: http}
  - {from: a, to: db, protocol: sql}
  - {from: a, to: c, protocol: http, policy: {circuitBreaker: {failureRate: 0.5, window: 10s}}}
  - {from: a, to: bus, protocol: kafka}
`)
	resExpect(t, findings(t, sys, "missing-circuit-breaker", nil),
		resWant{"a → b", Warning, []string{"service b", "no circuit breaker"}},
		resWant{"a → ext", Warning, []string{"external ext"}},
		resWant{"a → db", Info, []string{"datastore db"}},
	)
}

func TestRetryWithoutBackoff(t *testing.T) {
	sys := system(t, resComponents+`edges:
  - {from: a, to: b, protocol: http, policy: {retry: {attempts: 3, backoff: none}}}
  - {from: a, to: c, protocol: http, policy: {retry: {attempts: 4, backoff: constant, baseDelay: 100ms}}}
  - {from: a, to: d, protocol: http, policy: {retry: {attempts: 2}}}
  - {from: b, to: c, protocol: http, policy: {retry: {attempts: 5, backoff: exponential, baseDelay: 10ms}}}
  - {from: b, to: d, protocol: http, policy: {retry: {attempts: 2, backoff: linear, baseDelay: 10ms, jitter: none}}}
  - {from: c, to: d, protocol: http, policy: {retry: {attempts: 3, backoff: exponential, jitter: full}}}
  - {from: c, to: ext, protocol: http, policy: {retry: {attempts: 1}}}
  - {from: d, to: ext, protocol: http, policy: {retry: {attempts: 1, backoff: none}}}
`)
	resExpect(t, findings(t, sys, "retry-without-backoff", nil),
		resWant{"a → b", Warning, []string{"3 attempts", "backoff: none", "2 retries"}},
		resWant{"a → c", Warning, []string{"4 attempts", "constant 100ms", "3 retries"}},
		resWant{"a → d", Warning, []string{"2 attempts", "backoff absent"}},
		resWant{"b → c", Info, []string{"5 attempts", "exponential backoff", "jitter absent", "in step"}},
		resWant{"b → d", Info, []string{"2 attempts", "linear backoff", "jitter: none"}},
	)
}

func TestRetryAmplification(t *testing.T) {
	chain := `services:
  - {name: web}
  - {name: order}
  - {name: pricing}
  - {name: inventory, datastores: [db]}
  - {name: search}
datastores:
  - {name: db}
edges:
  - {from: web, to: order, protocol: http, policy: {retry: {attempts: %d}}}
  - {from: order, to: pricing, protocol: http, policy: {retry: {attempts: %d%s}}}
  - {from: pricing, to: inventory, protocol: http, policy: {retry: {attempts: %d}}}
  - {from: web, to: search, protocol: http, policy: {retry: {attempts: 4}}}
  - {from: inventory, to: order, protocol: http, policy: {retry: {attempts: 5}}}
entrypoints:
  - {name: checkout, service: web}
  - {name: cart, service: web}
`
	sys := system(t, fmt.Sprintf(chain, 3, 3, "", 3))
	resExpect(t, findings(t, sys, "retry-amplification", nil),
		resWant{"web → order,order → pricing,pricing → inventory", Error, []string{
			"27 attempts at inventory", "entrypoints checkout, cart",
			"along web → order → pricing → inventory (3 × 3 × 3)", "more than 8"}},
	)
	// 2 × 2 × 2 = 8 is at the threshold, and the 4 retries into search are alone: quiet.
	resExpect(t, findings(t, system(t, fmt.Sprintf(chain, 2, 2, "", 2)), "retry-amplification", nil))
	// A retry budget caps an edge's factor at 1 + budget: 3 × 1.1 × 3 = 9.9.
	budget := system(t, fmt.Sprintf(chain, 3, 3, ", budget: 0.1", 3))
	resExpect(t, findings(t, budget, "retry-amplification", nil),
		resWant{"web → order,order → pricing,pricing → inventory", Error, []string{"9.9 attempts at inventory", "(3 × 1.1 (budget) × 3)"}})
	resExpect(t, findings(t, budget, "retry-amplification", map[string]float64{"max": 10}))
	// The threshold is configurable; the path ends at the last edge that multiplies.
	resExpect(t, findings(t, system(t, fmt.Sprintf(chain, 2, 1, "", 1)), "retry-amplification", map[string]float64{"max": 3}),
		resWant{"web → search", Error, []string{"4 attempts at search", "along web → search (4)", "more than 3"}})
}

func TestTimeoutBudgetInverted(t *testing.T) {
	sys := system(t, resComponents+`edges:
  - {from: a, to: b, protocol: http, policy: {timeout: 1s}}
  - {from: b, to: c, protocol: http, policy: {timeout: 3s}}
  - {from: b, to: db, protocol: sql, policy: {timeout: 200ms}}
  - {from: c, to: d, protocol: http, policy: {timeout: 2s, retry: {attempts: 3, perTryTimeout: 500ms, backoff: exponential, baseDelay: 100ms, jitter: full}}}
  - {from: d, to: ext, protocol: http, policy: {timeout: 400ms}}
`)
	resExpect(t, findings(t, sys, "timeout-budget-inverted", nil),
		resWant{"a → b", Warning, []string{"gives up after 1s (policy.timeout)", "b can keep waiting 3s", "b → c (timeout 3s)"}},
		// c → d: each attempt gives up after 500ms, d's own call can take 400ms: fine.
	)
	perTry := system(t, resComponents+`edges:
  - {from: a, to: b, protocol: http, policy: {timeout: 5s, retry: {attempts: 2, perTryTimeout: 500ms, backoff: exponential, baseDelay: 50ms, jitter: full}}}
  - {from: b, to: c, protocol: http, policy: {retry: {attempts: 2}}}
  - {from: c, to: d, protocol: http, policy: {timeout: 600ms}}
  - {from: d, to: ext, protocol: http}
`)
	resExpect(t, findings(t, perTry, "timeout-budget-inverted", nil),
		resWant{"a → b", Warning, []string{"gives up after 500ms (retry.perTryTimeout)", "b can keep waiting 1.2s", "b → c (no timeout, 2 attempts) → d (timeout 600ms)"}},
	)
	schedule := system(t, resComponents+`edges:
  - {from: a, to: b, protocol: http, policy: {timeout: 400ms, retry: {attempts: 3, perTryTimeout: 200ms, backoff: exponential, baseDelay: 100ms, maxDelay: 1s, jitter: full}}}
  - {from: a, to: c, protocol: http, policy: {timeout: 800ms, retry: {attempts: 3, perTryTimeout: 200ms, backoff: exponential, baseDelay: 50ms, jitter: full}}}
`)
	resExpect(t, findings(t, schedule, "timeout-budget-inverted", nil),
		resWant{"a → b", Info, []string{"3 attempts × 200ms perTryTimeout + 300ms backoff = 900ms", "its 400ms timeout"}},
	)
	healthy := system(t, resComponents+`edges:
  - {from: a, to: b, protocol: http, policy: {timeout: 2s}}
  - {from: b, to: c, protocol: http, policy: {timeout: 800ms, retry: {attempts: 2, perTryTimeout: 300ms}}}
  - {from: c, to: d, protocol: http}
  - {from: d, to: c, protocol: http}
`)
	resExpect(t, findings(t, healthy, "timeout-budget-inverted", nil))
}

func TestMissingBulkhead(t *testing.T) {
	sys := system(t, resComponents+`edges:
  - {from: a, to: b, protocol: http}
  - {from: a, to: ext, protocol: http}
  - {from: a, to: db, protocol: sql}
  - {from: b, to: c, protocol: http, policy: {bulkhead: {maxConcurrent: 10}}}
  - {from: b, to: d, protocol: http}
  - {from: c, to: d, protocol: http}
  - {from: c, to: db, protocol: sql}
  - {from: c, to: bus, protocol: kafka}
`)
	resExpect(t, findings(t, sys, "missing-bulkhead", nil),
		resWant{"a", Warning, []string{"a calls 2 dependencies synchronously (b, ext)", "no bulkhead", "threshold 2"}})
	resExpect(t, findings(t, sys, "missing-bulkhead", map[string]float64{"minDependencies": 3}))
}

func TestMissingFallback(t *testing.T) {
	sys := system(t, resComponents+`edges:
  - {from: a, to: b, protocol: http}
  - {from: a, to: c, protocol: http, critical: false}
  - {from: a, to: d, protocol: http, policy: {fallback: cached}}
  - {from: a, to: db, protocol: sql}
  - {from: b, to: ext, protocol: http, critical: true}
`)
	resExpect(t, findings(t, sys, "missing-fallback", nil),
		resWant{"a → b", Info, []string{"when b fails, a fails"}},
		resWant{"b → ext", Info, []string{"when ext fails, b fails"}},
	)
}

// TestHealthyShopFamilies: the healthy example gives no warning or error from these families; its
// only remarks are the three critical calls with no declared fallback.
func TestHealthyShopFamilies(t *testing.T) {
	sys, err := model.LoadFile("../examples/models/shop.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var infos []string
	for _, id := range resFamilyRules {
		for _, f := range findings(t, sys, id, nil) {
			checkFinding(t, f)
			if f.Severity > Info {
				t.Errorf("shop.yaml: %s %s %v: %s", f.Severity, f.Rule, f.Subjects, f.Message)
			}
			infos = append(infos, f.Rule+" "+strings.Join(f.Subjects, ","))
		}
	}
	want := []string{"missing-fallback gateway → order", "missing-fallback order → inventory", "missing-fallback order → payment", "missing-fallback payment → psp"}
	if !reflect.DeepEqual(infos, want) {
		t.Errorf("shop.yaml infos = %q, want %q", infos, want)
	}
}

// TestLegacyShopFamilies: the broken example gives the findings its header promises: missing
// timeouts and breakers, retries without backoff multiplying along a deep sync chain, a chatty call,
// a cycle, the shared database, a dual write and 2PC on the checkout path.
func TestLegacyShopFamilies(t *testing.T) {
	sys, err := model.LoadFile("../examples/models/legacy-shop.yaml")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{
		"missing-timeout": {"warehouse → supplier", "inventory → order", "inventory → shopdb", "inventory → warehouse",
			"order → shopdb", "payment → paymentdb", "payment → shopdb", "user → shopdb", "web → order", "web → session"},
		"missing-circuit-breaker": {"inventory → order", "inventory → warehouse", "order → payment", "order → pricing",
			"pricing → inventory", "warehouse → supplier", "web → order", "web → session", "web → user",
			"inventory → shopdb", "order → shopdb", "payment → paymentdb", "payment → shopdb", "user → shopdb"},
		"retry-without-backoff":   {"order → pricing", "pricing → inventory", "web → order"},
		"retry-amplification":     {"web → order,order → pricing,pricing → inventory"},
		"timeout-budget-inverted": {"order → pricing", "pricing → inventory"},
		"missing-bulkhead":        {"inventory", "order", "web"},
		"missing-fallback": {"inventory → order", "inventory → warehouse", "order → payment", "order → pricing",
			"pricing → inventory", "warehouse → supplier", "web → order", "web → session", "web → user"},
		"shared-datastore":                    {"shopdb,inventory,order,payment,user"},
		"cyclic-dependency":                   {"inventory,order,pricing"},
		"sync-chain-depth":                    {"web"},
		"chatty-interaction":                  {"web", "web → user"},
		"no-api-gateway":                      nil,
		"dual-write":                          {"order,order → bus"},
		"distributed-transaction-on-hot-path": {"order → payment", "payment → shopdb"},
	}
	for _, id := range resFamilyRules {
		fs := findings(t, sys, id, nil)
		for _, f := range fs {
			checkFinding(t, f)
		}
		if got := subjectsOf(fs); !reflect.DeepEqual(got, want[id]) && (len(got) > 0 || len(want[id]) > 0) {
			t.Errorf("%s: subjects = %q, want %q", id, got, want[id])
		}
	}
	// The headline numbers.
	for id, text := range map[string]string{
		"retry-amplification":                 "27 attempts at inventory for each request entering at web (entrypoints checkout, account) along web → order → pricing → inventory (3 × 3 × 3)",
		"sync-chain-depth":                    "5 sync hops from web (entrypoints checkout, account): web → order → pricing → inventory → warehouse → supplier",
		"shared-datastore":                    "shopdb is shared by 4 services (inventory, order, payment, user)",
		"cyclic-dependency":                   "sync cycle inventory → order → pricing → inventory",
		"dual-write":                          "order writes shopdb and publishes to bus (order.created) with no outbox",
		"distributed-transaction-on-hot-path": "order → payment takes part in a 2PC transaction on the sync path of entrypoints checkout, account (web → order → payment)",
	} {
		if fs := findings(t, sys, id, nil); len(fs) == 0 || !strings.Contains(fs[0].Message, text) {
			t.Errorf("%s: first message lacks %q: %v", id, text, fs)
		}
	}
}

// resGenerate builds a layered model of n services and about m sync edges with the shapes these
// families look at: policies of every kind and none, retries that multiply, back edges that close
// sync cycles, shared datastores, publishes with and without outbox, and 2PC edges.
func resGenerate(n, m int) []byte {
	var b strings.Builder
	b.WriteString("apiVersion: faultline/v1\nkind: System\nmetadata: {name: generated}\nservices:\n")
	const layers = 10
	per := n / layers
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, "  - name: svc-%d\n    replicas: 2\n", i)
		if i%5 == 0 {
			fmt.Fprintf(&b, "    datastores: [db-%d]\n", i/20)
		}
	}
	b.WriteString("datastores:\n")
	for i := 0; i < n; i += 20 {
		fmt.Fprintf(&b, "  - {name: db-%d, kind: postgres}\n", i/20)
	}
	b.WriteString("brokers:\n  - {name: bus, kind: kafka}\nexternals:\n  - {name: psp, host: psp.example.com}\nedges:\n")
	edges := 0
	seen := map[[2]int]bool{}
	for k := 1; edges < m && k <= m; k++ {
		for i := 0; i < n-per && edges < m; i++ {
			to := (i/per+1)*per + (i*7+k*13)%per
			if to >= n || seen[[2]int{i, to}] {
				continue
			}
			seen[[2]int{i, to}] = true
			switch k % 4 {
			case 0:
				fmt.Fprintf(&b, "  - {from: svc-%d, to: svc-%d, protocol: http}\n", i, to)
			case 1:
				fmt.Fprintf(&b, "  - {from: svc-%d, to: svc-%d, protocol: http, callsPerRequest: %d, policy: {timeout: %dms, retry: {attempts: %d, backoff: constant}}}\n", i, to, 1+k%7, 100+k*10, 1+k%3)
			case 2:
				fmt.Fprintf(&b, "  - {from: svc-%d, to: svc-%d, protocol: grpc, transaction: %s, policy: {retry: {attempts: 3, perTryTimeout: %dms, backoff: exponential, baseDelay: 10ms}, circuitBreaker: {failureRate: 0.5}}}\n", i, to, map[bool]string{true: "2pc", false: "saga"}[i%97 == 0], 50+k)
			default:
				fmt.Fprintf(&b, "  - {from: svc-%d, to: svc-%d, protocol: http, policy: {timeout: 1s, bulkhead: {maxConcurrent: 10}, fallback: cached}}\n", i, to)
			}
			edges++
		}
	}
	for i := per; i < n; i += 37 { // back edges: sync cycles across layers
		fmt.Fprintf(&b, "  - {from: svc-%d, to: svc-%d, protocol: http, operation: back}\n", i, i%per)
	}
	for i := 0; i < n; i += 3 {
		fmt.Fprintf(&b, "  - {from: svc-%d, to: bus, protocol: kafka, outbox: %t}\n", i, i%2 == 0)
	}
	for i := n - per; i < n; i += 11 {
		fmt.Fprintf(&b, "  - {from: svc-%d, to: psp, protocol: http}\n", i)
	}
	b.WriteString("entrypoints:\n")
	for i := 0; i < per; i += max(1, per/5) {
		fmt.Fprintf(&b, "  - {name: ep-%d, service: svc-%d, rps: 100}\n", i, i)
	}
	return []byte(b.String())
}

// resRunFamilies runs the fourteen rules' checks directly (no engine, no availability math) and
// returns their findings.
func resRunFamilies(t testing.TB, sys *model.System) []Finding {
	g := model.NewGraph(sys)
	base := Context{Sys: sys, Graph: g, Entrypoints: model.EffectiveEntrypoints(sys, g)}
	var out []Finding
	for _, id := range resFamilyRules {
		r, ok := RuleByID(id)
		if !ok {
			t.Fatalf("no rule %s", id)
		}
		c := base
		c.rule = r
		out = append(out, r.Check(&c)...)
	}
	return out
}

// TestFamiliesFastOnLargeModel: the fourteen rules together check a 1,000-service / 5,000-edge
// model (with sync cycles, shared stores, 2PC edges), with declared entrypoints and without (every
// uncalled service is then an entrypoint), and checks every rule still reports at that scale. The
// time is logged; the budget is BenchmarkReview's (timing goals belong in benchmarks).
func TestFamiliesFastOnLargeModel(t *testing.T) {
	data := string(resGenerate(1000, 5000))
	for name, doc := range map[string]string{"declared": data, "undeclared": data[:strings.Index(data, "entrypoints:")]} {
		sys, err := model.Load("gen.yaml", []byte(doc))
		if err != nil {
			t.Fatal(err)
		}
		if len(sys.Services) != 1000 || len(sys.Edges) < 5000 {
			t.Fatalf("generated %d services, %d edges", len(sys.Services), len(sys.Edges))
		}
		best := time.Duration(1 << 62)
		var fs []Finding
		for range 3 {
			start := time.Now()
			fs = resRunFamilies(t, sys)
			best = min(best, time.Since(start))
		}
		t.Logf("%s entrypoints: %d findings in %s (best of 3)", name, len(fs), best)
		byRule := map[string]int{}
		for _, f := range fs {
			byRule[f.Rule]++
		}
		for _, id := range resFamilyRules {
			if byRule[id] == 0 {
				t.Errorf("%s entrypoints: no %s finding; the test no longer exercises it", name, id)
			}
		}
	}
}

// BenchmarkFamiliesLargeModel measures the fourteen rules' checks on the generated 1,000-service /
// 5,000-edge model with declared entrypoints.
func BenchmarkFamiliesLargeModel(b *testing.B) {
	sys, err := model.Load("gen.yaml", resGenerate(1000, 5000))
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		resRunFamilies(b, sys)
	}
}

// TestFamiliesConfigurable: the .faultline.yaml snippets the rule docs show work: a threshold
// raised, a severity changed, a finding ignored by its edge subject written with "->".
func TestFamiliesConfigurable(t *testing.T) {
	sys, err := model.LoadFile("../examples/models/legacy-shop.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := ParseConfig(".faultline.yaml", []byte(`rules:
  retry-amplification:
    thresholds: {max: 27}
  sync-chain-depth:
    severity: error
ignore:
  - rule: missing-timeout
    subject: warehouse -> supplier
    reason: the supplier client enforces its own 2s deadline in code
`))
	if err != nil {
		t.Fatal(err)
	}
	rep, err := Review(context.Background(), sys, cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range rep.Findings {
		switch {
		case f.Rule == "retry-amplification":
			t.Errorf("retry-amplification at max 27 still reports %q", f.Message)
		case f.Rule == "sync-chain-depth" && f.Severity != Error:
			t.Errorf("sync-chain-depth severity %s, want error", f.Severity)
		case f.Rule == "missing-timeout" && strings.Join(f.Subjects, ",") == "warehouse → supplier":
			t.Errorf("ignored finding still reported")
		}
	}
	if len(rep.Ignored) != 1 || rep.Ignored[0].Rule != "missing-timeout" {
		t.Errorf("ignored = %+v, want the one missing-timeout finding", rep.Ignored)
	}
}

// TestRetryAmplificationCycleOrder: the worst product from an entry service must not depend on
// which entry service was searched first when a cycle is cut. Searching from a1 first visits c
// while b is on the stack, so c's memo (1, via d) leaves out c → b → e (3 × 3); from a2 the path
// a2 → c → b → e makes 9 attempts, above 8, and must be found.
func TestRetryAmplificationCycleOrder(t *testing.T) {
	r := func(n int) string {
		return fmt.Sprintf("policy: {timeout: 1s, retry: {attempts: %d, backoff: exponential, jitter: full}}", n)
	}
	sys := system(t, `services: [{name: a1}, {name: a2}, {name: b}, {name: c}, {name: d}, {name: e}]
edges:
  - {from: a1, to: b, `+r(1)+`}
  - {from: b, to: c, `+r(1)+`}
  - {from: c, to: b, `+r(3)+`}
  - {from: b, to: e, `+r(3)+`}
  - {from: c, to: d, `+r(1)+`}
  - {from: a2, to: c, `+r(1)+`}
entrypoints: [{name: one, service: a1}, {name: two, service: a2}]
`)
	fs := findings(t, sys, "retry-amplification", nil)
	if len(fs) != 1 || !strings.Contains(fs[0].Message, "9 attempts at e") || !strings.Contains(fs[0].Message, "entering at a2") {
		t.Errorf("findings %v", func() []string {
			var m []string
			for _, f := range fs {
				m = append(m, f.Message)
			}
			return m
		}())
	}
}

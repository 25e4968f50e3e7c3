package review

import (
	"strings"
	"testing"
)

func TestMissingAPIContract(t *testing.T) {
	obsCheck(t, "missing-api-contract", []obsCase{
		{name: "contracts declared", body: `
services:
  - name: gw
    role: gateway
    api: {openapi: api/gw.yaml}
  - name: order
    api: {openapi: api/order.yaml, asyncapi: api/order-events.yaml}
  - name: stock
    api: {grpc: proto/stock.proto}
brokers:
  - {name: bus, kind: kafka}
edges:
  - {from: gw, to: order, protocol: http}
  - {from: order, to: stock, protocol: grpc}
  - {from: order, to: bus, protocol: kafka}
entrypoints:
  - {name: checkout, service: gw}
`},
		{name: "sync callees and entrypoint services without a contract", body: `
services:
  - name: gw
    role: gateway
  - name: order
    api: {asyncapi: api/order-events.yaml}
  - name: stock
  - name: report
    role: worker
  - name: envoy
    role: sidecar
  - name: mailer
    role: worker
brokers:
  - {name: bus, kind: kafka}
edges:
  - {from: gw, to: order, protocol: http}
  - {from: order, to: stock, protocol: grpc}
  - {from: gw, to: report, protocol: http}
  - {from: gw, to: envoy, protocol: http}
  - {from: order, to: bus, protocol: kafka}
  - {from: bus, to: mailer, protocol: kafka}
entrypoints:
  - {name: checkout, service: gw}
`, want: []obsWant{{"gw,order,stock", Warning,
			"3 services (gw, order, stock) serve requests from other services or clients but declare no OpenAPI or gRPC contract"}}},
		{name: "publishers without AsyncAPI are one info", body: `
services:
  - name: order
    api: {openapi: api/order.yaml}
  - name: billing
    role: worker
  - name: mailer
    role: worker
brokers:
  - {name: bus, kind: nats}
edges:
  - {from: order, to: bus, protocol: nats, topics: [order.placed]}
  - {from: bus, to: billing, protocol: nats}
  - {from: billing, to: bus, protocol: nats, topics: [invoice.issued]}
  - {from: bus, to: mailer, protocol: nats}
entrypoints:
  - {name: checkout, service: order}
`, want: []obsWant{{"order,billing", Info,
			"2 services (order, billing) publish events to a broker but declare no AsyncAPI document (api.asyncapi absent)"}}},
		{name: "no entrypoints declared: uncalled APIs count, consumers do not", body: `
services:
  - name: front
    role: frontend
  - name: cart
  - name: consumer
brokers:
  - {name: bus, kind: kafka}
edges:
  - {from: front, to: cart, protocol: http}
  - {from: bus, to: consumer, protocol: kafka}
`, want: []obsWant{{"front,cart", Warning, "2 services (front, cart) serve requests"}}},
		{name: "one service", body: `
services:
  - name: gw
    role: bff
entrypoints:
  - {name: home, service: gw}
`, want: []obsWant{{"gw", Warning, "service gw serves requests from other services or clients but declares no OpenAPI or gRPC contract"}}},
	})
}

func TestUnversionedAPI(t *testing.T) {
	obsCheck(t, "unversioned-api", []obsCase{
		{name: "versioned or no contract", body: `
services:
  - name: a
    api: {openapi: api/a.yaml, version: v1}
  - name: b
  - name: c
    api: {version: v2}
`},
		{name: "contract without version", body: `
services:
  - name: a
    api: {openapi: api/a.yaml}
  - name: b
    api: {grpc: proto/b.proto, version: v1}
  - name: events
    role: worker
    api: {asyncapi: api/events.yaml}
`, want: []obsWant{{"a,events", Warning, "2 services (a, events) declare a contract but no version (api.version absent)"}}},
		{name: "one service", body: `
services:
  - name: a
    api: {grpc: proto/a.proto}
`, want: []obsWant{{"a", Warning, "service a declares a contract but no version"}}},
	})
}

// The healthy shop has a versioned contract on every API and AsyncAPI for its events; the legacy
// shop has one unversioned OpenAPI (order) and no contract anywhere else.
func TestAPIExamples(t *testing.T) {
	obsExpectExample(t, "shop.yaml", map[string][]string{"missing-api-contract": nil, "unversioned-api": nil})
	obsExpectExample(t, "legacy-shop.yaml", map[string][]string{
		"missing-api-contract": {"warning web,pricing,inventory,warehouse,user,session,payment", "info order"},
		"unversioned-api":      {"warning order"},
	})
}

// The evidence says, per service, why it needs a contract: the callers, or the entrypoint.
func TestMissingAPIContractEvidence(t *testing.T) {
	sys := system(t, `
services:
  - name: gw
    role: gateway
  - name: order
  - name: audit
    api: {openapi: api/audit.yaml}
brokers:
  - {name: bus, kind: kafka}
edges:
  - {from: gw, to: order, protocol: http}
  - {from: audit, to: order, protocol: http}
  - {from: order, to: bus, protocol: kafka, topics: [order.placed]}
entrypoints:
  - {name: checkout, service: gw}
  - {name: admin, service: gw}
`)
	got := findings(t, sys, "missing-api-contract", nil)
	if len(got) != 2 {
		t.Fatalf("%d findings:\n%s", len(got), obsDump(got))
	}
	want := []string{
		"test.yaml:6 (service gw: serves entrypoint checkout, admin; no api.openapi or api.grpc)",
		"test.yaml:8 (service order: called synchronously by gw, audit; no api.openapi or api.grpc)",
		"test.yaml:8 (service order: publishes to bus (order.placed); no api.asyncapi)",
	}
	var have []string
	for _, f := range got {
		for _, e := range f.Evidence {
			have = append(have, e.String())
		}
	}
	if strings.Join(have, "\n") != strings.Join(want, "\n") {
		t.Errorf("evidence:\n%s\nwant:\n%s", strings.Join(have, "\n"), strings.Join(want, "\n"))
	}
}

package review

import (
	"fmt"
	"testing"
)

func TestSharedDatastore(t *testing.T) {
	sys := system(t, `services:
  - {name: a, datastores: [db]}
  - {name: b, datastores: [db, cache]}
  - {name: c, datastores: [own]}
  - {name: d}
datastores:
  - {name: db}
  - {name: cache}
  - {name: own}
edges:
  - {from: d, to: db, protocol: sql}
  - {from: a, to: db, protocol: sql, policy: {timeout: 1s}}
`)
	resExpect(t, findings(t, sys, "shared-datastore", nil),
		resWant{"db,a,b,d", Error, []string{"db is shared by 3 services (a, b, d)", "distributed monolith"}})
	owned := system(t, `services:
  - {name: a, datastores: [adb]}
  - {name: b, datastores: [bdb]}
datastores:
  - {name: adb}
  - {name: bdb}
edges:
  - {from: a, to: b, protocol: http}
`)
	resExpect(t, findings(t, owned, "shared-datastore", nil))
}

func TestCyclicDependency(t *testing.T) {
	sys := system(t, `services:
  - {name: a}
  - {name: b}
  - {name: c}
  - {name: d}
  - {name: e}
brokers:
  - {name: bus}
edges:
  - {from: a, to: b, protocol: http}
  - {from: b, to: c, protocol: grpc}
  - {from: c, to: a, protocol: http}
  - {from: d, to: e, protocol: http}
  - {from: e, to: d, protocol: http, mode: async}
  - {from: e, to: bus, protocol: kafka}
  - {from: bus, to: d, protocol: kafka}
`)
	resExpect(t, findings(t, sys, "cyclic-dependency", nil),
		resWant{"a,b,c", Error, []string{"sync cycle a → b → c → a", "3 services wait on each other"}})
	fs := findings(t, sys, "cyclic-dependency", nil)
	if len(fs[0].Evidence) != 3 {
		t.Errorf("evidence = %v, want the cycle's 3 edges", fs[0].Evidence)
	}
}

func TestSyncChainDepth(t *testing.T) {
	chain := `services:
  - {name: web}
  - {name: a}
  - {name: b}
  - {name: c, datastores: [db]}
  - {name: d}
datastores:
  - {name: db}
edges:
  - {from: web, to: a, protocol: http}
  - {from: a, to: b, protocol: http}
  - {from: b, to: c, protocol: http}
  - {from: web, to: d, protocol: http}
%s
entrypoints:
  - {name: home, service: web}
`
	deep := system(t, fmt.Sprintf(chain, "  - {from: c, to: d, protocol: http}"))
	resExpect(t, findings(t, deep, "sync-chain-depth", nil),
		resWant{"web", Warning, []string{"4 sync hops from web (entrypoint home): web → a → b → c → d", "more than 3"}})
	resExpect(t, findings(t, deep, "sync-chain-depth", map[string]float64{"max": 4}))
	// web → a → b → c → db: the datastore hop does not count, 3 hops is within the default.
	resExpect(t, findings(t, system(t, fmt.Sprintf(chain, "")), "sync-chain-depth", nil))

	// A cycle met from one entry service must not shorten the chain seen from another (found by
	// the corpus case compose-ride-dev): from driver, trips is first reached while dispatch is on
	// the stack, so its chain was memoized as 0 hops and rider's 4-hop chain was missed.
	cyclic := system(t, `services:
  - {name: driver}
  - {name: rider}
  - {name: trips}
  - {name: dispatch}
  - {name: geo}
externals:
  - {name: maps, host: maps.example.com}
edges:
  - {from: driver, to: dispatch, protocol: http}
  - {from: rider, to: trips, protocol: http}
  - {from: trips, to: dispatch, protocol: http}
  - {from: dispatch, to: trips, protocol: http}
  - {from: dispatch, to: geo, protocol: http}
  - {from: geo, to: maps, protocol: http}
entrypoints:
  - {name: drive, service: driver}
  - {name: ride, service: rider}
`)
	resExpect(t, findings(t, cyclic, "sync-chain-depth", nil),
		resWant{"rider", Warning, []string{"4 sync hops from rider (entrypoint ride): rider → trips → dispatch → geo → maps"}})
}

func TestChattyInteraction(t *testing.T) {
	sys := system(t, `services:
  - {name: a, datastores: [db]}
  - {name: b}
  - {name: c}
  - {name: d}
datastores:
  - {name: db}
brokers:
  - {name: bus}
externals:
  - {name: ext, host: api.example.com}
edges:
  - {from: a, to: b, protocol: http, callsPerRequest: 8}
  - {from: a, to: c, protocol: http}
  - {from: a, to: db, protocol: sql, callsPerRequest: 40}
  - {from: a, to: bus, protocol: kafka, callsPerRequest: 20}
  - {from: c, to: d, protocol: http, callsPerRequest: 5}
  - {from: c, to: ext, protocol: http, callsPerRequest: 0.5}
`)
	resExpect(t, findings(t, sys, "chatty-interaction", nil),
		resWant{"a", Warning, []string{"a makes 9 sync calls per request to other services (b 8, c 1), more than 6"}},
		resWant{"a → b", Warning, []string{"a → b makes 8 sync calls per request", "more than 5"}},
	)
	resExpect(t, findings(t, sys, "chatty-interaction", map[string]float64{"maxCallsPerRequest": 4, "maxFanOut": 10}),
		resWant{"a → b", Warning, []string{"8 sync calls", "more than 4"}},
		resWant{"c → d", Warning, []string{"5 sync calls", "more than 4"}},
	)
	resExpect(t, findings(t, sys, "chatty-interaction", map[string]float64{"maxCallsPerRequest": 10, "maxFanOut": 5.4}),
		resWant{"a", Warning, []string{"9 sync calls"}},
		resWant{"c", Warning, []string{"c makes 5.5 sync calls per request to other services (d 5, ext 0.5), more than 5.4"}},
	)
}

func TestNoAPIGateway(t *testing.T) {
	body := `services:
  - {name: a%s}
  - {name: b}
  - {name: c}
  - {name: w, role: worker}
brokers:
  - {name: bus}
edges:
  - {from: a, to: c, protocol: http}
  - {from: b, to: c, protocol: http}
  - {from: a, to: bus, protocol: kafka}
  - {from: bus, to: w, protocol: kafka}
`
	declared := "entrypoints:\n  - {name: web, service: a}\n  - {name: mobile, service: b}\n  - {name: admin, service: b}\n"
	resExpect(t, findings(t, system(t, fmt.Sprintf(body, "")+declared), "no-api-gateway", nil),
		resWant{"t", Warning, []string{"t has 4 services and its entrypoints land on 2 of them (a, b)", "gateway or bff"}})
	// Without declared entrypoints, the uncalled services count, but not a worker fed by a broker.
	resExpect(t, findings(t, system(t, fmt.Sprintf(body, "")), "no-api-gateway", nil),
		resWant{"t", Warning, []string{"land on 2 of them (a, b)"}})
	resExpect(t, findings(t, system(t, fmt.Sprintf(body, ", role: bff")+declared), "no-api-gateway", nil))
	resExpect(t, findings(t, system(t, fmt.Sprintf(body, "")+declared), "no-api-gateway", map[string]float64{"minServices": 4}))
	one := "entrypoints:\n  - {name: web, service: a}\n  - {name: mobile, service: a}\n"
	resExpect(t, findings(t, system(t, fmt.Sprintf(body, "")+one), "no-api-gateway", nil))
}

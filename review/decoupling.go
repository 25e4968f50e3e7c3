package review

// The decoupling family: the seed's Decoupling & Autonomy checklist and its two named anti-patterns,
// the distributed monolith (shared database) and chattiness, plus the structural smells that make
// services impossible to deploy and scale independently: sync cycles, deep sync chains, and clients
// that must know the internal topology (no API gateway).

import (
	"fmt"
	"strings"

	"github.com/faultline-dev/faultline/model"
)

func init() {
	register(&Rule{
		ID:       "shared-datastore",
		Area:     Decoupling,
		Severity: Error,
		Title:    "Datastore shared by several services (distributed monolith)",
		Rationale: "Services that share a database share its schema, its locks and its capacity: none of them can " +
			"change its data, deploy or scale without the others, so they are one system split across processes.",
		Fix: "Give the data one owner: the owning service keeps the store, the others read through its API or keep " +
			"their own copy from its events. Migrate table by table (strangler), starting with the tables one service writes.",
		Check: checkSharedDatastore,
	})
	register(&Rule{
		ID:       "cyclic-dependency",
		Area:     Decoupling,
		Severity: Error,
		Title:    "Services call each other in a synchronous cycle",
		Rationale: "A sync cycle ties its services into one deployable unit: none can start, change its API or fail " +
			"alone, a slow member slows all of them, and a request can loop until its threads run out.",
		Fix: "Break the cycle: move the shared logic into one of the services, let the lower service receive the data " +
			"it needs in the request, or turn the back call into an event (async) the other side subscribes to.",
		Check: checkCyclicDependency,
	})
	register(&Rule{
		ID:       "sync-chain-depth",
		Area:     Decoupling,
		Severity: Warning,
		Title:    "Deep chain of synchronous calls",
		Rationale: "Every sync hop adds its latency, its tail latency and its failure rate to the request: a long " +
			"chain is slow at p99, fails when any member fails, and couples the release of every service on it.",
		Fix: "Shorten the chain: let the entry service call the services it needs directly (or through a BFF that " +
			"aggregates), keep read models close to their readers (replicated data, caches), and move steps that need " +
			"no answer to events.",
		Thresholds: map[string]float64{"max": 3},
		Check:      checkSyncChainDepth,
	})
	register(&Rule{
		ID:       "chatty-interaction",
		Area:     Decoupling,
		Severity: Warning,
		Title:    "Chatty synchronous communication",
		Rationale: "Many fine-grained sync calls per request pay the network round trip each time: latency grows with " +
			"the count, and the callee's load is the caller's rate times the count.",
		Fix: "Batch the calls (one call for many ids), add an aggregated endpoint or BFF, cache what changes rarely, or " +
			"replace the reads with data the caller keeps from the callee's events.",
		Thresholds: map[string]float64{"maxCallsPerRequest": 5, "maxFanOut": 6},
		Check:      checkChattyInteraction,
	})
	register(&Rule{
		ID:       "no-api-gateway",
		Area:     Decoupling,
		Severity: Warning,
		Title:    "Clients call several services directly (no API gateway)",
		Rationale: "Without a single entry point, clients know the internal services and their addresses; each " +
			"entry service repeats authentication, rate limiting and TLS, and no service can move or split without a client change.",
		Fix: "Put an API gateway or backend-for-frontend in front (a service with role: gateway or bff), route the " +
			"entrypoints to it, and let it handle authentication, rate limits and aggregation.",
		Thresholds: map[string]float64{"minServices": 3},
		Check:      checkNoAPIGateway,
	})
}

// checkSharedDatastore flags each datastore that two or more services use, through their
// services[].datastores list or an edge of either mode. Reads and writes are not told apart: the
// model does not say which, and a shared schema couples readers as much as writers.
func checkSharedDatastore(c *Context) []Finding {
	users := map[string]map[string]bool{}
	evidence := map[string][]Evidence{}
	use := func(svc, ds string, ev Evidence) {
		if resKind(c, ds) != model.KindDatastore {
			return
		}
		if users[ds] == nil {
			users[ds] = map[string]bool{}
		}
		if !users[ds][svc] {
			users[ds][svc] = true
			evidence[ds] = append(evidence[ds], ev)
		}
	}
	for _, svc := range c.Sys.Services {
		for _, ds := range svc.Datastores {
			use(svc.Name, ds, At(svc.Source, "service "+svc.Name+" lists datastore "+ds))
		}
	}
	for _, e := range c.Sys.Edges {
		if resKind(c, e.From) == model.KindService {
			use(e.From, e.To, EdgeEvidence(e))
		}
	}
	var out []Finding
	for _, ds := range c.Sys.Datastores {
		if len(users[ds.Name]) < 2 {
			continue
		}
		names := resSorted(users[ds.Name])
		ev := append([]Evidence{c.ComponentEvidence(ds.Name)}, evidence[ds.Name]...)
		out = append(out, c.Finding(append([]string{ds.Name}, names...), ev,
			"%s is shared by %d services (%s): a distributed monolith; none of them can change the schema, deploy or scale without the others",
			ds.Name, len(names), strings.Join(names, ", ")))
	}
	return out
}

// checkCyclicDependency reports each sync cycle (one per group of services that reach each other
// synchronously, as model.Graph.Cycles(true) finds them). Cycles closed only by async edges are a
// normal event flow and not flagged.
func checkCyclicDependency(c *Context) []Finding {
	var out []Finding
	for _, cyc := range c.Graph.Cycles(true) {
		var ev []Evidence
		for i := 0; i+1 < len(cyc); i++ {
			for _, e := range c.Graph.Callees(cyc[i]) {
				if e.IsSync() && e.To == cyc[i+1] {
					ev = append(ev, EdgeEvidence(e))
					break
				}
			}
		}
		members := cyc[:len(cyc)-1]
		msg := fmt.Sprintf("sync cycle %s: %d services wait on each other, so none can be deployed, changed or fail alone",
			strings.Join(cyc, " → "), len(members))
		if len(members) == 1 {
			msg = fmt.Sprintf("sync cycle %s: %s calls itself synchronously and waits on its own capacity", strings.Join(cyc, " → "), members[0])
		}
		out = append(out, c.Finding(append([]string(nil), members...), ev, "%s", msg))
	}
	return out
}

// checkSyncChainDepth finds, for each entry service, the sync chain with the most hops into
// services and externals (memoized DFS; edges closing a cycle are not followed; the first chain in
// declaration order wins ties). Hops into datastores and brokers do not count: they end a chain,
// and every service that owns its data has one. More than max hops is a warning.
func checkSyncChainDepth(c *Context) []Finding {
	limit := c.Threshold("max")
	counts := func(name string) bool {
		k := resKind(c, name)
		return k == model.KindService || k == model.KindExternal
	}
	search := newSyncBest(c.Graph, 0,
		func(e model.Edge, sub int) int {
			if counts(e.To) {
				return sub + 1
			}
			return sub
		},
		func(a, b int) bool { return a > b })
	var out []Finding
	for _, grp := range resEntryGroups(c) {
		hops := search.from(grp.service).val
		if float64(hops) <= limit {
			continue
		}
		chain := []string{grp.service}
		var ev []Evidence
		for _, e := range search.path(grp.service) {
			if !counts(e.To) {
				break
			}
			chain = append(chain, e.To)
			ev = append(ev, EdgeEvidence(e))
		}
		ev = append(ev, grp.evidence...)
		out = append(out, c.Finding([]string{grp.service}, ev,
			"%d sync hops from %s (%s): %s; more than %s, so every request waits on each hop and fails when any of them fails",
			hops, grp.service, grp.label(), resPath(chain), resNum(limit)))
	}
	return out
}

// checkChattyInteraction flags sync edges into a service or external with callsPerRequest above
// maxCallsPerRequest, and services whose sync calls per request into services and externals, summed
// over their edges, exceed maxFanOut. callsPerRequest absent is 1. Calls to a service's datastores
// and async publishes are not counted: the seed's chattiness is between services.
func checkChattyInteraction(c *Context) []Finding {
	maxCalls, maxFan := c.Threshold("maxCallsPerRequest"), c.Threshold("maxFanOut")
	var out []Finding
	for _, svc := range c.Sys.Services {
		var sum float64
		var parts []string
		var ev []Evidence
		for _, e := range c.Graph.Callees(svc.Name) {
			if !e.IsSync() {
				continue
			}
			if k := resKind(c, e.To); k != model.KindService && k != model.KindExternal {
				continue
			}
			calls := e.CallsPerRequest
			if calls == 0 {
				calls = 1
			}
			sum += calls
			parts = append(parts, e.To+" "+resNum(calls))
			ev = append(ev, EdgeEvidence(e))
			if calls > maxCalls {
				out = append(out, c.Finding([]string{e.String()}, []Evidence{EdgeEvidence(e)},
					"%s makes %s sync calls per request (callsPerRequest), more than %s: %s pays %s round trips and %s gets %s times %s's rate",
					e.String(), resNum(calls), resNum(maxCalls), e.From, resNum(calls), e.To, resNum(calls), e.From))
			}
		}
		if sum > maxFan {
			ev = append([]Evidence{c.ComponentEvidence(svc.Name)}, ev...)
			out = append(out, c.Finding([]string{svc.Name}, ev,
				"%s makes %s sync calls per request to other services (%s), more than %s: its latency and failure rate grow with every call",
				svc.Name, resNum(sum), strings.Join(parts, ", "), resNum(maxFan)))
		}
	}
	return out
}

// checkNoAPIGateway reports one finding for the system when it has more than minServices services,
// its entrypoints land on more than one service, and no service has role gateway or bff. Declared
// entrypoints are used; without them, the services nothing calls, leaving out workers, sidecars and
// services that only receive messages (they serve no client).
func checkNoAPIGateway(c *Context) []Finding {
	if float64(len(c.Sys.Services)) <= c.Threshold("minServices") {
		return nil
	}
	for _, svc := range c.Sys.Services {
		if svc.Role == "gateway" || svc.Role == "bff" {
			return nil
		}
	}
	landing := map[string]bool{}
	var ev []Evidence
	for _, g := range resClientEntryGroups(c) {
		landing[g.service] = true
		for i, name := range g.names {
			ev = append(ev, At(g.sources[i], "entrypoint "+name+" → "+g.service))
		}
	}
	if len(landing) < 2 {
		return nil
	}
	names := resSorted(landing)
	name := c.Sys.Metadata.Name
	return []Finding{c.Finding([]string{name}, ev,
		"%s has %d services and its entrypoints land on %d of them (%s) with no service of role gateway or bff: clients know the internal services, and each repeats authentication, rate limiting and TLS",
		name, len(c.Sys.Services), len(names), strings.Join(names, ", "))}
}

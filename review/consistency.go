package review

// The consistency family: the seed's Data Consistency checklist. It looks for the two ways a design
// loses consistency or availability when one business operation touches several places: writing a
// store and publishing an event as two independent steps (a dual write), and holding a distributed
// transaction (2PC/XA) open while a user request waits.

import (
	"slices"
	"strings"

	"github.com/faultline-dev/faultline/model"
)

func init() {
	register(&Rule{
		ID:       "dual-write",
		Area:     Consistency,
		Severity: Warning,
		Title:    "Writes a datastore and publishes events with no outbox",
		Rationale: "Writing the database and publishing to the broker are two operations with no common transaction: " +
			"a crash, timeout or broker outage between them commits the write without the event, or sends an event " +
			"for a write that rolled back, and consumers drift from the owner's data for good.",
		Fix: "Publish through a transactional outbox (write the event in the same local transaction, relay it to the " +
			"broker, consumers deduplicate) or from the database's change log (CDC), and declare outbox: true on the edge.",
		Check: checkDualWrite,
	})
	register(&Rule{
		ID:       "distributed-transaction-on-hot-path",
		Area:     Consistency,
		Severity: Error,
		Title:    "Two-phase commit (2PC/XA) in a distributed call",
		Rationale: "Two-phase commit holds locks in every participant until the coordinator decides, and blocks while " +
			"any participant or the coordinator is slow or down: on a request path, the request's latency and " +
			"availability become those of the slowest, least available participant.",
		Fix: "Replace the distributed transaction with a saga (local transactions with compensations, " +
			"transaction: saga) or an outbox-driven event flow, and design for eventual consistency with " +
			"idempotent steps and reconciliation.",
		Check: checkDistributedTransaction,
	})
}

// checkDualWrite flags a service that uses a datastore (services[].datastores, or an edge to it)
// and has an edge to a broker with outbox absent or false, unless that edge takes part in a 2PC/XA
// transaction (transactional publishing, which distributed-transaction-on-hot-path judges). The
// model does not tell reads from writes, so a listed datastore is taken as written.
func checkDualWrite(c *Context) []Finding {
	var out []Finding
	for _, svc := range c.Sys.Services {
		stores := map[string]bool{}
		for _, d := range svc.Datastores {
			if resKind(c, d) == model.KindDatastore {
				stores[d] = true
			}
		}
		var pubs []model.Edge
		for _, e := range c.Graph.Callees(svc.Name) {
			switch resKind(c, e.To) {
			case model.KindDatastore:
				stores[e.To] = true
			case model.KindBroker:
				if !e.Outbox && e.Transaction != "2pc" && e.Transaction != "xa" {
					pubs = append(pubs, e)
				}
			}
		}
		if len(stores) == 0 || len(pubs) == 0 {
			continue
		}
		names := resSorted(stores)
		subjects := []string{svc.Name}
		ev := []Evidence{}
		var targets []string
		for _, e := range pubs {
			subjects = append(subjects, e.String())
			ev = append(ev, EdgeEvidence(e))
			t := e.To
			if len(e.Topics) > 0 {
				t += " (" + strings.Join(e.Topics, ", ") + ")"
			}
			targets = append(targets, t)
		}
		ev = append(ev, c.ComponentEvidence(svc.Name))
		out = append(out, c.Finding(subjects, ev,
			"%s writes %s and publishes to %s with no outbox: one can happen without the other, so consumers miss events or see events for writes that rolled back",
			svc.Name, strings.Join(names, ", "), strings.Join(targets, ", ")))
	}
	return out
}

// checkDistributedTransaction flags edges with transaction 2pc or xa. When the caller is an entry
// service or sync-reachable from one, a user request waits on the commit protocol: error, naming
// the entrypoints and the shortest sync path. Elsewhere (a worker, a consumer) it is a warning. The
// edge's own mode does not matter: the commit blocks its caller either way. Without declared
// entrypoints, the services nobody calls that serve clients are the entry services (workers,
// sidecars and services that only receive messages are not).
func checkDistributedTransaction(c *Context) []Finding {
	var txs []model.Edge
	for _, e := range c.Graph.Edges() {
		if e.Transaction == "2pc" || e.Transaction == "xa" {
			txs = append(txs, e)
		}
	}
	if len(txs) == 0 {
		return nil
	}
	// Index the sync graph once; each entry service's breadth-first search then reuses one parent
	// array, so the rule costs O(entry services × edges) without allocating per node.
	index := map[string]int32{}
	var names []string
	id := func(n string) int32 {
		i, ok := index[n]
		if !ok {
			i = int32(len(names))
			index[n] = i
			names = append(names, n)
		}
		return i
	}
	var next [][]int32
	for _, e := range c.Graph.Edges() {
		if !e.IsSync() {
			continue
		}
		f, t := id(e.From), id(e.To)
		for int(f) >= len(next) || int(t) >= len(next) {
			next = append(next, nil)
		}
		next[f] = append(next[f], t)
	}
	for _, e := range txs {
		id(e.From)
	}
	groups := resClientEntryGroups(c)
	for _, grp := range groups {
		id(grp.service)
	}
	for len(next) < len(names) {
		next = append(next, nil)
	}
	const unseen, root = -2, -1
	parent := make([]int32, len(names))
	entries := make([][]string, len(txs))
	paths := make([][]string, len(txs))
	entryEvidence := make([][]Evidence, len(txs))
	for _, grp := range groups {
		for i := range parent {
			parent[i] = unseen
		}
		s := index[grp.service]
		parent[s] = root
		queue := []int32{s}
		for len(queue) > 0 {
			n := queue[0]
			queue = queue[1:]
			for _, t := range next[n] {
				if parent[t] == unseen {
					parent[t] = n
					queue = append(queue, t)
				}
			}
		}
		for k, e := range txs {
			from := index[e.From]
			if parent[from] == unseen {
				continue
			}
			entries[k] = append(entries[k], grp.names...)
			entryEvidence[k] = append(entryEvidence[k], grp.evidence...)
			if paths[k] == nil {
				p := []string{e.To}
				for n := from; n != root; n = parent[n] {
					p = append(p, names[n])
				}
				slices.Reverse(p)
				paths[k] = p
			}
		}
	}
	var out []Finding
	for k, e := range txs {
		ev := append([]Evidence{EdgeEvidence(e)}, entryEvidence[k]...)
		if len(entries[k]) == 0 {
			f := c.Finding([]string{e.String()}, ev,
				"%s takes part in %s transaction: every participant holds its locks until the coordinator decides, and blocks while any of them is down",
				e.String(), consTxName(e.Transaction))
			f.Severity = Warning
			out = append(out, f)
			continue
		}
		label := "entrypoint "
		if len(entries[k]) > 1 {
			label = "entrypoints "
		}
		out = append(out, c.Finding([]string{e.String()}, ev,
			"%s takes part in %s transaction on the sync path of %s%s (%s): each request holds locks in every participant and blocks while any of them is slow or down",
			e.String(), consTxName(e.Transaction), label, strings.Join(entries[k], ", "), resPath(paths[k])))
	}
	return out
}

// consTxName names a transaction protocol with its article: "a 2PC", "an XA".
func consTxName(tx string) string {
	if tx == "xa" {
		return "an XA"
	}
	return "a " + strings.ToUpper(tx)
}

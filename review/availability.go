package review

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/faultline-dev/faultline/model"
	"github.com/faultline-dev/faultline/sim/avail"
)

// The availability family: what takes a request down when one component, one zone or one
// voluntary disruption fails, and whether the design as a whole can meet its SLO. Each rule
// reasons from the entrypoints' critical sync trees (avail.Critical edges from the entry service),
// the same trees sim/avail multiplies into a predicted availability, so a finding and the
// availability report never disagree about what a request needs.

func init() {
	register(&Rule{
		ID:       "single-point-of-failure",
		Area:     Availability,
		Severity: Warning,
		Title:    "A component with one replica sits on the critical sync path of an entrypoint",
		Rationale: "Seed §4 (Never Recommend): a component whose failure can bring down the system without a " +
			"backup or failover. A request needs every component of its critical sync tree; one that runs a " +
			"single replica fails the request whenever that replica restarts, is redeployed or its node dies.",
		Fix: "Run at least two replicas (spread over zones) behind a load balancer, or give the datastore a " +
			"replica with automated failover; or take the component off the request path (an async edge, " +
			"a fallback, critical: false) when the request can succeed without it.",
		Thresholds: map[string]float64{"errorAtEntrypoints": 2},
		Check:      checkSinglePointOfFailure,
	})
	register(&Rule{
		ID:       "datastore-no-replication",
		Area:     Availability,
		Severity: Error,
		Title:    "A datastore keeps one copy of its data, with no replication or managed failover",
		Rationale: "Seed §3 (Design Patterns): replication maintains multiple copies of data for durability and " +
			"availability. With one unmanaged copy, a lost disk loses the data and a crashed node stops " +
			"every request that needs it until someone restores it by hand.",
		Fix: "Add a replica with automated failover (leader-follower, consensus), or use a managed offering " +
			"that handles failover (managed: true), and declare it in the model (replicas, replication).",
		Check: checkDatastoreNoReplication,
	})
	register(&Rule{
		ID:       "single-zone",
		Area:     Availability,
		Severity: Warning,
		Title:    "Replicas on a critical sync path all run in one availability zone",
		Rationale: "Seed §4 (Always Recommend): design for failure with redundancy and automated failover. " +
			"Replicas that share one zone share its failures: a zone outage takes all of them at once.",
		Fix: "Spread the replicas over at least two zones (topology spread constraints, a multi-AZ node " +
			"pool, a multi-AZ managed datastore) and list the zones in the model.",
		Check: checkSingleZone,
	})
	register(&Rule{
		ID:       "missing-pdb",
		Area:     Availability,
		Severity: Warning,
		Title:    "A replicated Kubernetes workload has no PodDisruptionBudget",
		Rationale: "Seed §4 (Always Recommend): design for failure with redundancy. Without a " +
			"PodDisruptionBudget a node drain or cluster upgrade may evict every replica at once, so the " +
			"redundancy the replicas buy disappears during routine maintenance.",
		Fix: "Add a PodDisruptionBudget selecting the workload's pods, with minAvailable or maxUnavailable " +
			"leaving enough replicas to serve (for example maxUnavailable: 1).",
		Check: checkMissingPDB,
	})
	register(&Rule{
		ID:       "availability-below-slo",
		Area:     Availability,
		Severity: Error,
		Title:    "An entrypoint's predicted availability is below its SLO",
		Rationale: "Seed §3 (Principles): high availability. You are only as available as the product of your " +
			"critical dependencies (Treynor et al., The Calculus of Service Availability, 2017); when the " +
			"design's own arithmetic misses the target, no amount of operations will meet it.",
		Fix: "Raise the availability of the costliest components first (more replicas, more zones), or take " +
			"them off the critical path with a fallback or an async edge; each critical dependency should be " +
			"one nine better than the target (the rule of the extra nine).",
		Thresholds: map[string]float64{"components": 3},
		Check:      checkAvailabilityBelowSLO,
	})
}

// availDependents maps each component to the names of the entrypoints whose critical sync tree
// contains it (sorted), the entry service included. It walks only edges avail.Critical accepts
// (sync, not critical: false, no fallback), so a component reached only asynchronously or only
// through a call the caller can do without is nobody's dependency. One breadth-first walk per
// distinct entry service over a prebuilt adjacency keeps it linear in edges per entry service.
func availDependents(c *Context) map[string][]string {
	comps := c.Sys.Components()
	index := make(map[string]int, len(comps))
	names := make([]string, 0, len(comps))
	for _, comp := range comps {
		if _, dup := index[comp.Name]; !dup {
			index[comp.Name] = len(names)
			names = append(names, comp.Name)
		}
	}
	next := make([][]int, len(names))
	for _, e := range c.Graph.Edges() {
		f, okF := index[e.From]
		t, okT := index[e.To]
		if okF && okT && avail.Critical(e) {
			next[f] = append(next[f], t)
		}
	}
	byService := map[string][]string{}
	var services []string
	for _, ep := range c.Entrypoints {
		if _, ok := byService[ep.Service]; !ok {
			services = append(services, ep.Service)
		}
		byService[ep.Service] = append(byService[ep.Service], ep.Name)
	}
	sort.Strings(services)
	out := map[string][]string{}
	stamp := make([]int, len(names))
	for round, svc := range services {
		start, ok := index[svc]
		if !ok {
			continue
		}
		mark := round + 1
		stamp[start] = mark
		queue := []int{start}
		for len(queue) > 0 {
			n := queue[0]
			queue = queue[1:]
			out[names[n]] = append(out[names[n]], byService[svc]...)
			for _, t := range next[n] {
				if stamp[t] != mark {
					stamp[t] = mark
					queue = append(queue, t)
				}
			}
		}
	}
	for name := range out {
		sort.Strings(out[name])
	}
	return out
}

// availList joins names for a message, naming at most limit of them and counting the rest.
func availList(names []string, limit int) string {
	if len(names) <= limit {
		return strings.Join(names, ", ")
	}
	return strings.Join(names[:limit], ", ") + fmt.Sprintf(" and %d more", len(names)-limit)
}

// availEntrypointEvidence points at the entrypoints' declarations (at most limit of them).
func availEntrypointEvidence(c *Context, names []string, limit int) []Evidence {
	want := map[string]bool{}
	for i, n := range names {
		if i >= limit {
			break
		}
		want[n] = true
	}
	var out []Evidence
	for _, ep := range c.Entrypoints {
		if want[ep.Name] {
			out = append(out, At(ep.Source, "entrypoint "+ep.Name))
		}
	}
	return out
}

// availPlural writes "1 replica", "3 replicas".
func availPlural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return strconv.Itoa(n) + " " + word + "s"
}

// availThem is the pronoun for n entrypoints.
func availThem(n int) string {
	if n == 1 {
		return "it"
	}
	return "them"
}

// availPct writes an availability as a percentage with up to four decimals: 0.9995 → 99.95%.
func availPct(a float64) string {
	s := strconv.FormatFloat(a*100, 'f', 4, 64)
	s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	return s + "%"
}

// availIsPureCache reports whether a datastore engine only caches in memory (memcached): it holds
// no data of record and writes nothing to disk, so replication and encryption at rest do not apply.
func availIsPureCache(kind string) bool { return strings.EqualFold(kind, "memcached") }

// availDistinctZones returns the different zones of a list, sorted.
func availDistinctZones(zones []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, z := range zones {
		if !seen[z] {
			seen[z] = true
			out = append(out, z)
		}
	}
	sort.Strings(out)
	return out
}

const availListLimit = 5

// checkSinglePointOfFailure reports services, datastores and brokers that run one replica and
// that at least one entrypoint needs: they are on its critical sync tree (the entry service, or
// reached over sync edges that are critical and have no fallback). Externals are left out: their
// redundancy is the provider's business and their availability is taken from its promise.
// DaemonSets are left out because they run one pod per node (the model's 1 replica is not one
// instance), and managed datastores because the provider handles failover. Absent replicas means
// 1 (the model default). One zone for several replicas is single-zone's finding, not this one.
// Severity is warning for one dependent entrypoint and error from errorAtEntrypoints (default 2).
func checkSinglePointOfFailure(c *Context) []Finding {
	deps := availDependents(c)
	errorAt := int(c.Threshold("errorAtEntrypoints"))
	var out []Finding
	for _, comp := range c.Sys.Components() {
		eps := deps[comp.Name]
		if len(eps) == 0 || comp.Kind == model.KindExternal || comp.Replicas > 1 {
			continue
		}
		var wl *model.Workload
		switch comp.Kind {
		case model.KindService:
			wl = c.Sys.Service(comp.Name).Workload
		case model.KindDatastore:
			d := c.Sys.Datastore(comp.Name)
			if d.Managed {
				continue
			}
			wl = d.Workload
		case model.KindBroker:
			wl = c.Sys.Broker(comp.Name).Workload
		}
		if wl != nil && wl.Kind == "DaemonSet" {
			continue
		}
		ev := append([]Evidence{c.ComponentEvidence(comp.Name)}, availEntrypointEvidence(c, eps, availListLimit)...)
		f := c.Finding([]string{comp.Name}, ev,
			"%s %s runs 1 replica and is on the critical sync path of %s (%s): while that replica is down, requests to %s fail",
			comp.Kind, comp.Name, availPlural(len(eps), "entrypoint"), availList(eps, availListLimit), availThem(len(eps)))
		f.Severity = Warning
		if errorAt > 0 && len(eps) >= errorAt {
			f.Severity = Error
		}
		out = append(out, f)
	}
	return out
}

// checkDatastoreNoReplication reports datastores with one copy of their data (replicas absent or
// 1), not managed: true, and replication absent or none. It is an error when an entrypoint needs
// the datastore on its critical sync path and a warning otherwise (the data can still be lost).
// memcached is left out: a pure in-memory cache holds no data of record.
func checkDatastoreNoReplication(c *Context) []Finding {
	deps := availDependents(c)
	var out []Finding
	for _, d := range c.Sys.Datastores {
		if d.Replicas > 1 || d.Managed || (d.Replication != "" && d.Replication != "none") || availIsPureCache(d.Kind) {
			continue
		}
		kind := ""
		if d.Kind != "" {
			kind = " (" + d.Kind + ")"
		}
		repl := "no replication declared"
		if d.Replication == "none" {
			repl = "replication: none"
		}
		eps := deps[d.Name]
		ev := append([]Evidence{c.ComponentEvidence(d.Name)}, availEntrypointEvidence(c, eps, availListLimit)...)
		if len(eps) > 0 {
			out = append(out, c.Finding([]string{d.Name}, ev,
				"datastore %s%s keeps 1 copy of its data (%s, not managed) and is on the critical sync path of %s (%s): a failed node stops %s and a lost disk loses the data",
				d.Name, kind, repl, availPlural(len(eps), "entrypoint"), availList(eps, availListLimit), availThem(len(eps))))
			continue
		}
		f := c.Finding([]string{d.Name}, ev,
			"datastore %s%s keeps 1 copy of its data (%s, not managed): no entrypoint needs it synchronously, but a lost disk loses the data",
			d.Name, kind, repl)
		f.Severity = Warning
		out = append(out, f)
	}
	return out
}

// checkSingleZone reports, per component, services, datastores and brokers with two or more
// replicas on an entrypoint's critical sync path whose declared zones name one zone; and, once
// for the system (subject: the system name), the case where at least two components declare
// zones and all of them declare the same single zone. Absent zones are unknown (compose files and
// most manifests do not say), so they give no finding; a single replica is necessarily in one zone
// and is single-point-of-failure's finding.
func checkSingleZone(c *Context) []Finding {
	deps := availDependents(c)
	var out []Finding
	var declaring []model.Component
	systemZone := ""
	sameZone := true
	for _, comp := range c.Sys.Components() {
		if comp.Kind == model.KindExternal || len(comp.Zones) == 0 {
			continue
		}
		zones := availDistinctZones(comp.Zones)
		declaring = append(declaring, comp)
		if len(zones) != 1 || (systemZone != "" && zones[0] != systemZone) {
			sameZone = false
		} else {
			systemZone = zones[0]
		}
		eps := deps[comp.Name]
		if len(zones) != 1 || comp.Replicas < 2 || len(eps) == 0 {
			continue
		}
		ev := append([]Evidence{c.ComponentEvidence(comp.Name)}, availEntrypointEvidence(c, eps, availListLimit)...)
		out = append(out, c.Finding([]string{comp.Name}, ev,
			"%s %s runs %d replicas, all in zone %s, on the critical sync path of %s (%s): one zone outage takes every replica",
			comp.Kind, comp.Name, comp.Replicas, zones[0], availPlural(len(eps), "entrypoint"), availList(eps, availListLimit)))
	}
	if sameZone && len(declaring) >= 2 {
		total := 0
		for _, comp := range c.Sys.Components() {
			if comp.Kind != model.KindExternal {
				total++
			}
		}
		var ev []Evidence
		names := make([]string, 0, len(declaring))
		for i, comp := range declaring {
			names = append(names, comp.Name)
			if i < 10 {
				ev = append(ev, c.ComponentEvidence(comp.Name))
			}
		}
		undeclared := ""
		switch n := total - len(declaring); {
		case n == 1:
			undeclared = "; 1 other component declares no zones"
		case n > 1:
			undeclared = fmt.Sprintf("; %d other components declare no zones", n)
		}
		out = append(out, c.Finding([]string{c.Sys.Metadata.Name}, ev,
			"system %s runs in one zone: the %d components that declare zones (%s) all declare only zone %s%s",
			c.Sys.Metadata.Name, len(declaring), availList(names, availListLimit), systemZone, undeclared))
	}
	return out
}

// checkMissingPDB reports services, datastores and brokers imported from Kubernetes
// (workload.platform: kubernetes) with two or more replicas and no workload.disruptionBudget.
// Models written by hand or imported from compose say nothing about disruption budgets, so they
// give no finding; a single replica cannot be protected by a budget (single-point-of-failure
// covers it when it matters).
func checkMissingPDB(c *Context) []Finding {
	type workload struct {
		comp model.Component
		wl   *model.Workload
	}
	var all []workload
	for _, s := range c.Sys.Services {
		all = append(all, workload{model.Component{Name: s.Name, Kind: model.KindService, Replicas: s.Replicas}, s.Workload})
	}
	for _, d := range c.Sys.Datastores {
		all = append(all, workload{model.Component{Name: d.Name, Kind: model.KindDatastore, Replicas: d.Replicas}, d.Workload})
	}
	for _, b := range c.Sys.Brokers {
		all = append(all, workload{model.Component{Name: b.Name, Kind: model.KindBroker, Replicas: b.Replicas}, b.Workload})
	}
	var out []Finding
	for _, w := range all {
		if w.wl == nil || w.wl.Platform != "kubernetes" || w.wl.DisruptionBudget != nil || w.comp.Replicas < 2 {
			continue
		}
		what := w.wl.Kind
		if what == "" {
			what = "workload"
		}
		if w.wl.Namespace != "" {
			what += " in namespace " + w.wl.Namespace
		}
		out = append(out, c.Finding([]string{w.comp.Name}, []Evidence{c.ComponentEvidence(w.comp.Name)},
			"%s %s runs %d replicas on Kubernetes (%s) with no PodDisruptionBudget: a node drain or cluster upgrade may evict all %d at once",
			w.comp.Kind, w.comp.Name, w.comp.Replicas, what, w.comp.Replicas))
	}
	return out
}

// checkAvailabilityBelowSLO reports each entrypoint whose predicted availability (sim/avail: the
// product of its critical sync dependencies, replicas in parallel, zones) is below its target
// (the entrypoint's SLO, else the system's). Without an availability SLO there is nothing to
// compare and no finding. The message names the components that cost the most downtime among
// those below the extra nine (at most the components threshold, default 3).
func checkAvailabilityBelowSLO(c *Context) []Finding {
	limit := int(c.Threshold("components"))
	if limit < 1 {
		limit = 1
	}
	var out []Finding
	for _, r := range c.Availability() {
		if r.Target <= 0 || r.Meets {
			continue
		}
		var ev []Evidence
		fromEntrypointSLO := false
		for _, ep := range c.Entrypoints {
			if ep.Name == r.Entrypoint {
				ev = append(ev, At(ep.Source, "entrypoint "+ep.Name))
				fromEntrypointSLO = ep.SLO != nil && ep.SLO.Availability > 0
				break
			}
		}
		targetOf := "its target"
		if !fromEntrypointSLO && c.Sys.SLO != nil {
			targetOf = "the system's target"
			ev = append(ev, At(c.Sys.SLO.Source, "slo.availability"))
		}
		var costly []string
		below := 0
		for _, comp := range r.Components { // costliest first
			if !comp.BelowExtraNine {
				continue
			}
			if below++; below > limit {
				continue
			}
			detail := availPlural(comp.Replicas, "replica")
			if gc, ok := c.Graph.Component(comp.Name); ok && comp.Kind != model.KindExternal {
				if z := len(availDistinctZones(gc.Zones)); z > 0 {
					detail += " in " + availPlural(z, "zone")
				}
			}
			if comp.Kind == model.KindExternal {
				detail = "external, as promised"
			}
			costly = append(costly, fmt.Sprintf("%s %.0f%% of downtime (%s, %s)", comp.Name, comp.Share*100, availPct(comp.Availability), detail))
			ev = append(ev, c.ComponentEvidence(comp.Name))
		}
		msg := fmt.Sprintf("entrypoint %s (service %s) is predicted at %s (%.2f nines), below %s of %s (%.2f nines)",
			r.Entrypoint, r.Service, availPct(r.Availability), r.Nines, targetOf, availPct(r.Target), avail.Nines(r.Target))
		if len(costly) > 0 {
			msg += fmt.Sprintf("; %d of the %d components it needs are below the extra nine (%s), the costliest: %s",
				below, len(r.Components), availPct(avail.ExtraNine(r.Target)), strings.Join(costly, "; "))
		}
		out = append(out, c.Finding([]string{r.Entrypoint}, ev, "%s", msg))
	}
	return out
}

package review

// The resilience family: the seed's Code Review Checklist, Resilience section. Each rule reads the
// policy a caller declares on its edges (timeouts, retries, breakers, bulkheads, fallbacks) and,
// for retry amplification and timeout budgets, how those policies combine along sync paths. Path
// questions are answered by memoized depth-first dynamic programming over the graph, with edges
// that close a cycle not followed (as model.Graph.LongestSyncChain does), so a review stays linear
// in the size of the model.

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/faultline-dev/faultline/model"
)

func init() {
	register(&Rule{
		ID:       "missing-timeout",
		Area:     Resilience,
		Severity: Warning,
		Title:    "Sync call without a timeout",
		Rationale: "A call with no deadline waits as long as the callee (or the network) takes: one slow dependency " +
			"holds the caller's threads and connections until the caller stops answering too.",
		Fix: "Set policy.timeout on the edge (the whole call, retries included), or retry.perTryTimeout, " +
			"a little above the callee's p99.9 latency and inside the caller's own deadline.",
		Check: checkMissingTimeout,
	})
	register(&Rule{
		ID:       "missing-circuit-breaker",
		Area:     Resilience,
		Severity: Warning,
		Title:    "Sync call into a service or external without a circuit breaker",
		Rationale: "Without a breaker, every request keeps calling a dependency that is already failing: callers " +
			"pile up on timeouts, and the failing service gets no room to recover.",
		Fix: "Add policy.circuitBreaker on the edge (failureRate with minCalls and a window, or consecutiveFailures, " +
			"and an openDuration), and decide what the caller answers while it is open (policy.fallback).",
		Check: checkMissingCircuitBreaker,
	})
	register(&Rule{
		ID:       "retry-without-backoff",
		Area:     Resilience,
		Severity: Warning,
		Title:    "Retries without exponential backoff or jitter",
		Rationale: "Retrying at once, or at a fixed interval, hammers a dependency exactly when it is struggling; " +
			"without jitter all clients retry in step and the load arrives in waves.",
		Fix: "Use retry.backoff: exponential with a baseDelay and maxDelay, and retry.jitter: full " +
			"(or equal/decorrelated), so retries spread out and slow down.",
		Check: checkRetryWithoutBackoff,
	})
	register(&Rule{
		ID:       "retry-amplification",
		Area:     Resilience,
		Severity: Error,
		Title:    "Retries multiply along a sync path",
		Rationale: "Each layer that retries multiplies the attempts of the layers above it: when the deepest service " +
			"slows down, it receives the product of every retry count on the path, a retry storm that keeps it down.",
		Fix: "Retry at one layer only (usually the one closest to the user, or the one closest to the failure), " +
			"set retry.attempts to 1 elsewhere, and cap retries with a retry budget (retry.budget: 0.1).",
		Thresholds: map[string]float64{"max": 8},
		Check:      checkRetryAmplification,
	})
	register(&Rule{
		ID:       "timeout-budget-inverted",
		Area:     Resilience,
		Severity: Warning,
		Title:    "Caller's timeout shorter than the callee's own downstream waits",
		Rationale: "When a caller gives up before its callee's own calls can time out, the callee keeps working for a " +
			"request nobody waits for; with retries, the caller adds new work on top of the abandoned work.",
		Fix: "Make deadlines shrink down the call chain: each callee's timeouts (× attempts) must fit inside its " +
			"caller's per-attempt timeout. Propagate the deadline (context/grpc-timeout) so callees stop when the caller gives up.",
		Check: checkTimeoutBudgetInverted,
	})
	register(&Rule{
		ID:       "missing-bulkhead",
		Area:     Resilience,
		Severity: Warning,
		Title:    "Several sync dependencies share one pool",
		Rationale: "A service that calls several dependencies from one shared pool of threads or connections lets a " +
			"single slow dependency take every slot, and then nothing else the service does works either.",
		Fix: "Give each dependency its own concurrency limit: policy.bulkhead {maxConcurrent, maxQueue} on the edges, " +
			"or separate client pools, sized from the dependency's rate × latency.",
		Thresholds: map[string]float64{"minDependencies": 2},
		Check:      checkMissingBulkhead,
	})
	register(&Rule{
		ID:       "missing-fallback",
		Area:     Resilience,
		Severity: Info,
		Title:    "Critical sync call with no fallback",
		Rationale: "When a dependency fails and the caller has no fallback, the caller fails too: the outage spreads " +
			"to every feature on the path instead of degrading one.",
		Fix: "Decide what the caller does without the dependency and declare it: policy.fallback (cached, default, " +
			"degrade, queue), or mark the edge critical: false when the caller already succeeds without it.",
		Check: checkMissingFallback,
	})
}

// checkMissingTimeout flags every sync edge from a service, into a service, external, datastore or
// broker, with neither policy.timeout nor retry.perTryTimeout. Calls to externals are errors: the
// team controls neither their latency nor their failures. Implicit datastore edges (a service's
// datastores list with no explicit edge) declare no policy and are flagged too.
func checkMissingTimeout(c *Context) []Finding {
	implicit := resImplicitEdges(c)
	var out []Finding
	for _, e := range c.Graph.Edges() {
		if !e.IsSync() || resKind(c, e.From) != model.KindService {
			continue
		}
		if _, _, ok := resAttemptDeadline(e); ok {
			continue
		}
		kind := resKind(c, e.To)
		why := "neither policy.timeout nor retry.perTryTimeout"
		if implicit[[2]string{e.From, e.To}] {
			why = "an implicit edge from services[].datastores, which declares no policy"
		}
		f := c.Finding([]string{e.String()}, []Evidence{EdgeEvidence(e)},
			"%s: sync call to %s %s with no timeout (%s); %s waits as long as %s takes",
			e.String(), kind, e.To, why, e.From, e.To)
		if kind == model.KindExternal {
			f.Severity = Error
			f.Message += ", and an external's latency is outside the team's control"
		}
		out = append(out, f)
	}
	return out
}

// checkMissingCircuitBreaker flags sync edges from a service into a service or external without
// policy.circuitBreaker (warning). Edges into a datastore or broker are reported as info: their
// timeouts and connection pools are the first guard, and a breaker there mainly sheds load while
// the store fails over.
func checkMissingCircuitBreaker(c *Context) []Finding {
	var out []Finding
	for _, e := range c.Graph.Edges() {
		if !e.IsSync() || resKind(c, e.From) != model.KindService {
			continue
		}
		if e.Policy != nil && e.Policy.CircuitBreaker != nil {
			continue
		}
		kind := resKind(c, e.To)
		f := c.Finding([]string{e.String()}, []Evidence{EdgeEvidence(e)},
			"%s: sync call to %s %s with no circuit breaker; while %s fails, every request still calls it and waits",
			e.String(), kind, e.To, e.To)
		if kind == model.KindDatastore || kind == model.KindBroker {
			f.Severity = Info
		}
		out = append(out, f)
	}
	return out
}

// checkRetryWithoutBackoff flags any edge retrying (retry.attempts > 1) with backoff absent, none or
// constant (warning), and retries that do back off (linear or exponential) but with jitter absent
// or none (info: clients retry in step).
func checkRetryWithoutBackoff(c *Context) []Finding {
	var out []Finding
	for _, e := range c.Graph.Edges() {
		if e.Policy == nil || e.Policy.Retry == nil || e.Policy.Retry.Attempts <= 1 {
			continue
		}
		r := e.Policy.Retry
		ev := []Evidence{EdgeEvidence(e)}
		switch r.Backoff {
		case "", "none", "constant":
			how := "no backoff (backoff absent)"
			switch {
			case r.Backoff == "none":
				how = "no backoff (backoff: none)"
			case r.Backoff == "constant" && r.BaseDelay > 0:
				how = "a constant " + resDur(r.BaseDelay.D()) + " wait (backoff: constant)"
			case r.Backoff == "constant":
				how = "a constant wait (backoff: constant)"
			}
			out = append(out, c.Finding([]string{e.String()}, ev,
				"%s retries %d attempts with %s: %s hit %s at once or at a fixed pace while it is struggling",
				e.String(), r.Attempts, how, resPlural(r.Attempts-1, "retry", "retries"), e.To))
		default:
			if r.Jitter == "" || r.Jitter == "none" {
				jit := "jitter absent"
				if r.Jitter == "none" {
					jit = "jitter: none"
				}
				f := c.Finding([]string{e.String()}, ev,
					"%s retries %d attempts with %s backoff but %s: every client retries %s in step, in waves",
					e.String(), r.Attempts, r.Backoff, jit, e.To)
				f.Severity = Info
				out = append(out, f)
			}
		}
	}
	return out
}

// resFactor is how many times an edge's caller may send one call: retry.attempts (1 when absent),
// capped at 1+budget when a retry budget is declared (retries are then at most that fraction of
// calls). Hedged copies are not counted.
func resFactor(e model.Edge) (float64, string) {
	if e.Policy == nil || e.Policy.Retry == nil || e.Policy.Retry.Attempts <= 1 {
		return 1, "1"
	}
	r := e.Policy.Retry
	f := float64(r.Attempts)
	if r.Budget > 0 && 1+r.Budget < f {
		return 1 + r.Budget, resNum(1+r.Budget) + " (budget)"
	}
	return f, strconv.Itoa(r.Attempts)
}

// resAmp is the worst retry product reachable from a node and the hops it takes.
type resAmp struct {
	product float64
	hops    int
}

// checkRetryAmplification computes, for each entry service, the sync path with the largest product
// of per-edge attempt factors (resFactor), by memoized DFS (edges closing a cycle are not followed),
// preferring the shorter path on ties so the path ends at the last edge that multiplies. A product
// above max is an error naming the path and the factors. Entrypoints on one service share a finding.
func checkRetryAmplification(c *Context) []Finding {
	limit := c.Threshold("max")
	search := newSyncBest(c.Graph, resAmp{product: 1},
		func(e model.Edge, sub resAmp) resAmp {
			f, _ := resFactor(e)
			return resAmp{product: f * sub.product, hops: sub.hops + 1}
		},
		func(a, b resAmp) bool {
			return a.product > b.product*(1+1e-9) || math.Abs(a.product-b.product) <= b.product*1e-9 && a.hops < b.hops
		})
	var out []Finding
	for _, grp := range resEntryGroups(c) {
		b := search.from(grp.service).val
		if b.product <= limit {
			continue
		}
		path := []string{grp.service}
		var factors, subjects []string
		var ev []Evidence
		for _, e := range search.path(grp.service) {
			f, text := resFactor(e)
			path = append(path, e.To)
			factors = append(factors, text)
			if f > 1 {
				subjects = append(subjects, e.String())
				ev = append(ev, EdgeEvidence(e))
			}
		}
		if len(subjects) == 0 {
			continue // a threshold below 1: nothing retries
		}
		ev = append(ev, grp.evidence...)
		out = append(out, c.Finding(subjects, ev,
			"%s attempts at %s for each request entering at %s (%s) along %s (%s); more than %s: when %s slows down, it gets %s times the load",
			resNum(b.product), path[len(path)-1], grp.service, grp.label(), resPath(path),
			resJoin(factors, " × "), resNum(limit), path[len(path)-1], resNum(b.product)))
	}
	return out
}

// resWorst is a lower bound of the longest a component can spend waiting on its own sync calls: the
// largest bound among its edges, reached through via.
type resWorst struct {
	d   time.Duration
	via *model.Edge
}

// checkTimeoutBudgetInverted compares each sync edge A → B whose caller has a per-attempt deadline
// (retry.perTryTimeout, else policy.timeout) with B's worst case: the largest time B can spend on
// one of its own sync calls. A call of B's with a timeout is bounded by it (policy.timeout, or
// perTryTimeout × attempts plus the backoff waits, whichever is smaller); a call with no timeout
// lasts at least attempts × the callee's own worst case, recursively; an unknown is 0, so the worst
// case is a lower bound and every finding is certain. B's calls are taken as parallel (the max, not
// the sum), again so findings stay certain. Edges with no deadline are left to missing-timeout.
//
// The rule also reports, as info, an edge whose perTryTimeout × attempts plus backoff waits exceed
// its overall policy.timeout: the last attempts can never run in full.
func checkTimeoutBudgetInverted(c *Context) []Finding {
	const (
		unvisited = iota
		active
		done
	)
	state := map[string]uint8{}
	worst := map[string]resWorst{}
	var visit func(n string)
	visit = func(n string) {
		state[n] = active
		var w resWorst
		for _, e := range c.Graph.Callees(n) {
			if !e.IsSync() {
				continue
			}
			d, ok := resEdgeBound(e)
			if !ok {
				if state[e.To] == active {
					continue
				}
				if state[e.To] == unvisited {
					visit(e.To)
				}
				d = time.Duration(resAttempts(e)) * worst[e.To].d
			}
			if d > w.d {
				w = resWorst{d: d, via: &e}
			}
		}
		worst[n] = w
		state[n] = done
	}
	explain := func(n string) string {
		var b strings.Builder
		b.WriteString(n)
		for i := 0; i <= c.Graph.Len(); i++ {
			e := worst[n].via
			if e == nil {
				break
			}
			if d, ok := resEdgeBound(*e); ok {
				fmt.Fprintf(&b, " → %s (%s)", e.To, resBoundText(*e, d))
				break
			}
			if a := resAttempts(*e); a > 1 {
				fmt.Fprintf(&b, " → %s (no timeout, %d attempts)", e.To, a)
			} else {
				fmt.Fprintf(&b, " → %s (no timeout)", e.To)
			}
			n = e.To
		}
		return b.String()
	}
	var out []Finding
	for _, e := range c.Graph.Edges() {
		if !e.IsSync() || resKind(c, e.From) != model.KindService {
			continue
		}
		p, what, ok := resAttemptDeadline(e)
		if !ok {
			continue
		}
		if state[e.To] == unvisited {
			visit(e.To)
		}
		if w := worst[e.To]; w.d > p {
			out = append(out, c.Finding([]string{e.String()}, []Evidence{EdgeEvidence(e), EdgeEvidence(*w.via)},
				"%s gives up after %s (%s) but %s can keep waiting %s on its own calls: %s; %s keeps working after %s gave up",
				e.String(), resDur(p), what, e.To, resDur(w.d), explain(e.To), e.To, e.From))
		}
		if pol := e.Policy; pol.Timeout > 0 && pol.Retry != nil && pol.Retry.PerTryTimeout > 0 && pol.Retry.Attempts > 1 {
			r := pol.Retry
			waits := resBackoffWaits(r)
			need := time.Duration(r.Attempts)*r.PerTryTimeout.D() + waits
			if need > pol.Timeout.D() {
				f := c.Finding([]string{e.String()}, []Evidence{EdgeEvidence(e)},
					"%s: %d attempts × %s perTryTimeout + %s backoff = %s, more than its %s timeout: the last attempts can never run in full",
					e.String(), r.Attempts, resDur(r.PerTryTimeout.D()), resDur(waits), resDur(need), resDur(pol.Timeout.D()))
				f.Severity = Info
				out = append(out, f)
			}
		}
	}
	return out
}

// checkMissingBulkhead flags a service with at least minDependencies distinct sync dependencies
// (services and externals; datastores are left out, their pools are per store already) when none
// of those edges declares policy.bulkhead.
func checkMissingBulkhead(c *Context) []Finding {
	minDeps := c.Threshold("minDependencies")
	var out []Finding
	for _, svc := range c.Sys.Services {
		deps := map[string]bool{}
		var ev []Evidence
		isolated := false
		for _, e := range c.Graph.Callees(svc.Name) {
			if !e.IsSync() {
				continue
			}
			if k := resKind(c, e.To); k != model.KindService && k != model.KindExternal {
				continue
			}
			if e.Policy != nil && e.Policy.Bulkhead != nil {
				isolated = true
				break
			}
			if !deps[e.To] {
				deps[e.To] = true
				ev = append(ev, EdgeEvidence(e))
			}
		}
		if isolated || float64(len(deps)) < minDeps || len(deps) == 0 {
			continue
		}
		names := resSorted(deps)
		ev = append([]Evidence{c.ComponentEvidence(svc.Name)}, ev...)
		out = append(out, c.Finding([]string{svc.Name}, ev,
			"%s calls %d dependencies synchronously (%s) with no bulkhead on any of them (threshold %s): one slow dependency can take every thread and connection %s has",
			svc.Name, len(names), strings.Join(names, ", "), resNum(minDeps), svc.Name))
	}
	return out
}

// checkMissingFallback reports, as info, sync edges from a service into a service or external with
// no policy.fallback whose critical field is absent (true by default) or true.
func checkMissingFallback(c *Context) []Finding {
	var out []Finding
	for _, e := range c.Graph.Edges() {
		if !e.IsSync() || resKind(c, e.From) != model.KindService {
			continue
		}
		if k := resKind(c, e.To); k != model.KindService && k != model.KindExternal {
			continue
		}
		if e.Critical != nil && !*e.Critical || e.Policy != nil && e.Policy.Fallback != "" {
			continue
		}
		out = append(out, c.Finding([]string{e.String()}, []Evidence{EdgeEvidence(e)},
			"%s is critical and has no fallback: when %s fails, %s fails with it instead of degrading",
			e.String(), e.To, e.From))
	}
	return out
}

// resKind returns a component's kind, "" for an unknown name.
func resKind(c *Context, name string) model.ComponentKind {
	if comp, ok := c.Graph.Component(name); ok {
		return comp.Kind
	}
	return ""
}

// resImplicitEdges lists the graph's implicit datastore edges (services[].datastores entries with
// no explicit edge), by from and to.
func resImplicitEdges(c *Context) map[[2]string]bool {
	explicit := make(map[[2]string]bool, len(c.Sys.Edges))
	for _, e := range c.Sys.Edges {
		explicit[[2]string{e.From, e.To}] = true
	}
	out := map[[2]string]bool{}
	for _, svc := range c.Sys.Services {
		for _, d := range svc.Datastores {
			if !explicit[[2]string{svc.Name, d}] {
				out[[2]string{svc.Name, d}] = true
			}
		}
	}
	return out
}

// resAttempts is an edge's retry.attempts, 1 when absent.
func resAttempts(e model.Edge) int {
	if e.Policy == nil || e.Policy.Retry == nil || e.Policy.Retry.Attempts < 1 {
		return 1
	}
	return e.Policy.Retry.Attempts
}

// resAttemptDeadline is how long the caller waits for one attempt: retry.perTryTimeout (never more
// than policy.timeout), else policy.timeout. ok is false when the edge declares neither.
func resAttemptDeadline(e model.Edge) (d time.Duration, what string, ok bool) {
	p := e.Policy
	if p == nil {
		return 0, "", false
	}
	if p.Retry != nil && p.Retry.PerTryTimeout > 0 && (p.Timeout == 0 || p.Retry.PerTryTimeout < p.Timeout) {
		return p.Retry.PerTryTimeout.D(), "retry.perTryTimeout", true
	}
	if p.Timeout > 0 {
		return p.Timeout.D(), "policy.timeout", true
	}
	return 0, "", false
}

// resEdgeBound is the longest the caller can spend on one call over e: policy.timeout, or
// perTryTimeout × attempts plus the backoff waits, whichever is smaller. ok is false when the edge
// has neither.
func resEdgeBound(e model.Edge) (time.Duration, bool) {
	p := e.Policy
	if p == nil {
		return 0, false
	}
	var d time.Duration
	ok := false
	if p.Retry != nil && p.Retry.PerTryTimeout > 0 {
		d, ok = time.Duration(resAttempts(e))*p.Retry.PerTryTimeout.D()+resBackoffWaits(p.Retry), true
	}
	if p.Timeout > 0 && (!ok || p.Timeout.D() < d) {
		d, ok = p.Timeout.D(), true
	}
	return d, ok
}

// resBoundText describes an edge's bound for messages.
func resBoundText(e model.Edge, d time.Duration) string {
	if e.Policy.Timeout > 0 && e.Policy.Timeout.D() == d {
		return "timeout " + resDur(d)
	}
	return fmt.Sprintf("%d × %s perTryTimeout", resAttempts(e), resDur(e.Policy.Retry.PerTryTimeout.D()))
}

// resBackoffWaits is the longest total wait between a retry policy's attempts, without jitter
// (jitter only shortens waits): attempts−1 waits growing from baseDelay as the backoff says, each
// capped at maxDelay when set. An absent baseDelay counts as no wait.
func resBackoffWaits(r *model.Retry) time.Duration {
	if r == nil || r.Attempts <= 1 || r.BaseDelay == 0 {
		return 0
	}
	var total time.Duration
	for i := 0; i < r.Attempts-1; i++ {
		w := r.BaseDelay.D()
		switch r.Backoff {
		case "none":
			w = 0
		case "linear":
			w *= time.Duration(i + 1)
		case "exponential":
			w <<= min(i, 30)
		}
		if r.MaxDelay > 0 && w > r.MaxDelay.D() {
			w = r.MaxDelay.D()
		}
		total += w
	}
	return total
}

// resEntryGroup is the entrypoints that land on one service.
type resEntryGroup struct {
	service  string
	names    []string
	evidence []Evidence
	sources  []model.Source
}

func (g resEntryGroup) label() string {
	if len(g.names) == 1 {
		return "entrypoint " + g.names[0]
	}
	return "entrypoints " + strings.Join(g.names, ", ")
}

// resEntryGroups groups the context's entrypoints by service, in order of first appearance.
func resEntryGroups(c *Context) []resEntryGroup {
	var out []resEntryGroup
	at := map[string]int{}
	for _, ep := range c.Entrypoints {
		i, ok := at[ep.Service]
		if !ok {
			i = len(out)
			at[ep.Service] = i
			out = append(out, resEntryGroup{service: ep.Service})
		}
		out[i].names = append(out[i].names, ep.Name)
		out[i].evidence = append(out[i].evidence, At(ep.Source, "entrypoint "+ep.Name))
		out[i].sources = append(out[i].sources, ep.Source)
	}
	return out
}

// resClientEntryGroups is resEntryGroups restricted to services that serve clients: with declared
// entrypoints, all of them; without, the services nobody calls synchronously minus workers,
// sidecars and services that only receive messages (something calls them, asynchronously).
func resClientEntryGroups(c *Context) []resEntryGroup {
	groups := resEntryGroups(c)
	if len(c.Sys.Entrypoints) > 0 {
		return groups
	}
	var out []resEntryGroup
	for _, g := range groups {
		svc := c.Sys.Service(g.service)
		if svc == nil || svc.Role == "worker" || svc.Role == "sidecar" || len(c.Graph.Callers(g.service)) > 0 {
			continue
		}
		out = append(out, g)
	}
	return out
}

// resSorted returns a set's members sorted.
func resSorted(set map[string]bool) []string {
	out := make([]string, 0, len(set))
	for k := range set {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// resNum formats a number for messages: integers without decimals, others with at most two, and
// numbers of a million or more in scientific notation (3.5e+12).
func resNum(f float64) string {
	if math.Abs(f) >= 1e6 {
		return strconv.FormatFloat(f, 'g', 3, 64)
	}
	if r := math.Round(f); math.Abs(f-r) < 1e-9 {
		return strconv.FormatFloat(r, 'f', -1, 64)
	}
	return strconv.FormatFloat(math.Round(f*100)/100, 'f', -1, 64)
}

// resPath joins path elements with " → ", eliding the middle of paths longer than 16 elements.
func resPath(p []string) string { return resJoin(p, " → ") }

// resJoin joins elements with sep, eliding the middle of lists longer than 16 elements.
func resJoin(p []string, sep string) string {
	if len(p) <= 16 {
		return strings.Join(p, sep)
	}
	return strings.Join(p[:6], sep) + sep + fmt.Sprintf("…(%d more)…", len(p)-12) + sep + strings.Join(p[len(p)-6:], sep)
}

// resDur formats a duration the way it is written in a model: 350ms, 1.5s, 2m.
func resDur(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// resPlural writes a count with the singular or plural noun.
func resPlural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return strconv.Itoa(n) + " " + many
}

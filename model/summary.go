package model

// Summary is what `faultline model show` prints: counts, and for each entrypoint what a request
// reaches synchronously.
type Summary struct {
	Name        string              `json:"name"`
	Services    int                 `json:"services"`
	Datastores  int                 `json:"datastores"`
	Brokers     int                 `json:"brokers"`
	Externals   int                 `json:"externals"`
	Edges       int                 `json:"edges"`
	SyncEdges   int                 `json:"syncEdges"`
	AsyncEdges  int                 `json:"asyncEdges"`
	Entrypoints []EntrypointSummary `json:"entrypoints"`
	// Cycles are the sync call cycles.
	Cycles [][]string `json:"cycles"`
}

// EntrypointSummary describes one entrypoint's sync dependency tree.
type EntrypointSummary struct {
	Name      string   `json:"name"`
	Service   string   `json:"service"`
	RPS       float64  `json:"rps,omitempty"`
	Path      string   `json:"path,omitempty"`
	Reachable []string `json:"reachable"`
	// LongestChain is the longest chain of sync calls, the entry service first.
	LongestChain []string  `json:"longestChain"`
	Tree         *TreeNode `json:"tree"`
}

// Summarize computes a system's summary. Without entrypoints, every service that nothing calls
// synchronously is treated as one, so the tree still shows how requests flow.
func Summarize(s *System) Summary {
	g := NewGraph(s)
	sum := Summary{
		Name: s.Metadata.Name, Services: len(s.Services), Datastores: len(s.Datastores),
		Brokers: len(s.Brokers), Externals: len(s.Externals), Cycles: g.Cycles(true),
	}
	for _, e := range g.Edges() {
		sum.Edges++
		if e.IsSync() {
			sum.SyncEdges++
		} else {
			sum.AsyncEdges++
		}
	}
	for _, ep := range EffectiveEntrypoints(s, g) {
		sum.Entrypoints = append(sum.Entrypoints, EntrypointSummary{
			Name: ep.Name, Service: ep.Service, RPS: ep.RPS, Path: ep.Path,
			Reachable:    g.SyncReachable(ep.Service),
			LongestChain: g.LongestSyncChain(ep.Service),
			Tree:         g.SyncTree(ep.Service),
		})
	}
	return sum
}

// EffectiveEntrypoints returns the declared entrypoints, or, when there are none, one per service
// that no other service calls synchronously (named after the service), so tools that reason per
// entrypoint still cover the system.
func EffectiveEntrypoints(s *System, g *Graph) []Entrypoint {
	if len(s.Entrypoints) > 0 {
		return s.Entrypoints
	}
	var out []Entrypoint
	for _, svc := range s.Services {
		called := false
		for _, e := range g.Callers(svc.Name) {
			if e.IsSync() {
				if c, ok := g.Component(e.From); ok && c.Kind == KindService {
					called = true
					break
				}
			}
		}
		if !called {
			out = append(out, Entrypoint{Name: svc.Name, Service: svc.Name, Source: svc.Source})
		}
	}
	return out
}

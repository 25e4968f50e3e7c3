package model

import (
	"sort"
)

// Graph answers the structural questions the review, the simulator and the diagrams ask of a
// system: who calls whom, what a request reaches synchronously, the sync paths and chains, and the
// cycles. Build it once with NewGraph; it does not change when the system does.
//
// A service that lists a datastore in services[].datastores without an explicit edge gets an
// implicit sync edge to it, so datastores take part in every sync query.
type Graph struct {
	nodes []Component
	index map[string]int
	edges []Edge
	out   [][]int // edge indexes leaving each node
	in    [][]int // edge indexes entering each node
}

// NewGraph indexes a system. Edges naming unknown components are left out (Validate reports them).
func NewGraph(s *System) *Graph {
	g := &Graph{index: map[string]int{}}
	for _, c := range s.Components() {
		if _, dup := g.index[c.Name]; dup {
			continue
		}
		g.index[c.Name] = len(g.nodes)
		g.nodes = append(g.nodes, c)
	}
	g.out = make([][]int, len(g.nodes))
	g.in = make([][]int, len(g.nodes))
	explicit := map[[2]string]bool{}
	add := func(e Edge) {
		f, okF := g.index[e.From]
		t, okT := g.index[e.To]
		if !okF || !okT {
			return
		}
		g.out[f] = append(g.out[f], len(g.edges))
		g.in[t] = append(g.in[t], len(g.edges))
		g.edges = append(g.edges, e)
	}
	for _, e := range s.Edges {
		explicit[[2]string{e.From, e.To}] = true
		add(e)
	}
	for _, svc := range s.Services {
		for _, d := range svc.Datastores {
			if !explicit[[2]string{svc.Name, d}] {
				explicit[[2]string{svc.Name, d}] = true
				add(Edge{From: svc.Name, To: d, Mode: ModeSync, CallsPerRequest: 1, Source: svc.Source})
			}
		}
	}
	return g
}

// Len returns the number of components.
func (g *Graph) Len() int { return len(g.nodes) }

// Edges returns every edge, implicit datastore edges included.
func (g *Graph) Edges() []Edge { return g.edges }

// Component returns the component with that name.
func (g *Graph) Component(name string) (Component, bool) {
	i, ok := g.index[name]
	if !ok {
		return Component{}, false
	}
	return g.nodes[i], true
}

// Callees returns the edges leaving name, in declaration order.
func (g *Graph) Callees(name string) []Edge { return g.pick(g.out, name) }

// Callers returns the edges entering name, in declaration order.
func (g *Graph) Callers(name string) []Edge { return g.pick(g.in, name) }

func (g *Graph) pick(adj [][]int, name string) []Edge {
	i, ok := g.index[name]
	if !ok {
		return nil
	}
	out := make([]Edge, len(adj[i]))
	for k, e := range adj[i] {
		out[k] = g.edges[e]
	}
	return out
}

// syncNext returns the nodes a node calls synchronously, without repeats, in declaration order.
func (g *Graph) syncNext(n int) []int {
	var out []int
	seen := map[int]bool{}
	for _, ei := range g.out[n] {
		e := g.edges[ei]
		if !e.IsSync() {
			continue
		}
		t := g.index[e.To]
		if !seen[t] {
			seen[t] = true
			out = append(out, t)
		}
	}
	return out
}

// SyncReachable returns, sorted, every component a request entering at from reaches through sync
// edges (from itself excluded unless a cycle leads back to it).
func (g *Graph) SyncReachable(from string) []string {
	start, ok := g.index[from]
	if !ok {
		return nil
	}
	seen := make([]bool, len(g.nodes))
	queue := []int{start}
	var out []string
	for len(queue) > 0 {
		n := queue[0]
		queue = queue[1:]
		for _, t := range g.syncNext(n) {
			if !seen[t] {
				seen[t] = true
				out = append(out, g.nodes[t].Name)
				queue = append(queue, t)
			}
		}
	}
	sort.Strings(out)
	return out
}

// SyncPaths returns the simple sync paths from `from` to each component where the path ends (no
// further sync calls, or only calls back into the path). It stops after limit paths and then
// reports truncated; limit <= 0 means 10,000. Paths include both ends.
func (g *Graph) SyncPaths(from string, limit int) (paths [][]string, truncated bool) {
	start, ok := g.index[from]
	if !ok {
		return nil, false
	}
	if limit <= 0 {
		limit = 10_000
	}
	onPath := make([]bool, len(g.nodes))
	var path []int
	var walk func(n int) bool
	walk = func(n int) bool {
		onPath[n] = true
		path = append(path, n)
		defer func() { onPath[n] = false; path = path[:len(path)-1] }()
		extended := false
		for _, t := range g.syncNext(n) {
			if onPath[t] {
				continue
			}
			extended = true
			if !walk(t) {
				return false
			}
		}
		if !extended {
			if len(paths) >= limit {
				truncated = true
				return false
			}
			p := make([]string, len(path))
			for i, x := range path {
				p[i] = g.nodes[x].Name
			}
			paths = append(paths, p)
		}
		return true
	}
	walk(start)
	return paths, truncated
}

// LongestSyncChain returns the longest chain of sync calls starting at from, as component names
// (from first). Edges that close a cycle are not followed; Cycles reports those. Among chains of
// equal length the one found first in declaration order wins.
func (g *Graph) LongestSyncChain(from string) []string {
	start, ok := g.index[from]
	if !ok {
		return nil
	}
	const (
		unvisited = iota
		active
		done
	)
	state := make([]uint8, len(g.nodes))
	next := make([]int, len(g.nodes)) // best successor, -1 at the end of a chain
	length := make([]int, len(g.nodes))
	var visit func(n int)
	visit = func(n int) {
		state[n] = active
		next[n], length[n] = -1, 1
		for _, t := range g.syncNext(n) {
			if state[t] == active {
				continue // closes a cycle
			}
			if state[t] == unvisited {
				visit(t)
			}
			if length[t]+1 > length[n] {
				length[n], next[n] = length[t]+1, t
			}
		}
		state[n] = done
	}
	visit(start)
	var chain []string
	for n := start; n >= 0; n = next[n] {
		chain = append(chain, g.nodes[n].Name)
		if len(chain) > len(g.nodes) {
			break
		}
	}
	return chain
}

// Cycles returns one cycle for each group of components that can reach each other (each strongly
// connected component with more than one member, or a component calling itself). With syncOnly,
// only sync edges count. Each cycle starts at its alphabetically first member and repeats it at
// the end: [a b c a].
func (g *Graph) Cycles(syncOnly bool) [][]string {
	next := func(n int) []int {
		if syncOnly {
			return g.syncNext(n)
		}
		var out []int
		seen := map[int]bool{}
		for _, ei := range g.out[n] {
			t := g.index[g.edges[ei].To]
			if !seen[t] {
				seen[t] = true
				out = append(out, t)
			}
		}
		return out
	}
	var cycles [][]string
	for _, scc := range g.sccs(next) {
		in := map[int]bool{}
		for _, n := range scc {
			in[n] = true
		}
		if len(scc) == 1 {
			self := false
			for _, t := range next(scc[0]) {
				self = self || t == scc[0]
			}
			if !self {
				continue
			}
			name := g.nodes[scc[0]].Name
			cycles = append(cycles, []string{name, name})
			continue
		}
		first := scc[0]
		for _, n := range scc {
			if g.nodes[n].Name < g.nodes[first].Name {
				first = n
			}
		}
		cycles = append(cycles, g.shortestCycle(first, in, next))
	}
	sort.Slice(cycles, func(i, j int) bool { return cycles[i][0] < cycles[j][0] })
	return cycles
}

// shortestCycle finds, by breadth-first search inside one strongly connected component, the
// shortest way from start back to itself.
func (g *Graph) shortestCycle(start int, in map[int]bool, next func(int) []int) []string {
	prev := map[int]int{}
	queue := []int{start}
	for len(queue) > 0 {
		n := queue[0]
		queue = queue[1:]
		for _, t := range next(n) {
			if !in[t] {
				continue
			}
			if t == start {
				var rev []string
				for x := n; x != start; x = prev[x] {
					rev = append(rev, g.nodes[x].Name)
				}
				out := []string{g.nodes[start].Name}
				for i := len(rev) - 1; i >= 0; i-- {
					out = append(out, rev[i])
				}
				return append(out, g.nodes[start].Name)
			}
			if _, seen := prev[t]; !seen {
				prev[t] = n
				queue = append(queue, t)
			}
		}
	}
	return nil
}

// sccs returns the strongly connected components (Tarjan, 1972), iteratively so deep graphs do
// not exhaust the stack.
func (g *Graph) sccs(next func(int) []int) [][]int {
	n := len(g.nodes)
	index := make([]int, n)
	low := make([]int, n)
	onStack := make([]bool, n)
	for i := range index {
		index[i] = -1
	}
	var out [][]int
	var s []int
	counter := 0
	type frame struct {
		v    int
		succ []int
		i    int
	}
	for root := 0; root < n; root++ {
		if index[root] >= 0 {
			continue
		}
		call := []frame{{v: root, succ: next(root)}}
		index[root], low[root] = counter, counter
		counter++
		s = append(s, root)
		onStack[root] = true
		for len(call) > 0 {
			f := &call[len(call)-1]
			if f.i < len(f.succ) {
				w := f.succ[f.i]
				f.i++
				if index[w] < 0 {
					index[w], low[w] = counter, counter
					counter++
					s = append(s, w)
					onStack[w] = true
					call = append(call, frame{v: w, succ: next(w)})
				} else if onStack[w] {
					low[f.v] = min(low[f.v], index[w])
				}
				continue
			}
			v := f.v
			call = call[:len(call)-1]
			if len(call) > 0 {
				p := call[len(call)-1].v
				low[p] = min(low[p], low[v])
			}
			if low[v] == index[v] {
				var comp []int
				for {
					w := s[len(s)-1]
					s = s[:len(s)-1]
					onStack[w] = false
					comp = append(comp, w)
					if w == v {
						break
					}
				}
				out = append(out, comp)
			}
		}
	}
	return out
}

// TreeNode is one call in a sync call tree: the edge taken to reach it and what it calls.
type TreeNode struct {
	Name     string        `json:"name"`
	Kind     ComponentKind `json:"kind"`
	Edge     *Edge         `json:"edge,omitempty"` // nil at the root
	Children []*TreeNode   `json:"children,omitempty"`
	// Cycle is true when the call leads back into the path above it; it has no children.
	Cycle bool `json:"cycle,omitempty"`
	// Repeat is true when the component's calls were already shown earlier in the tree.
	Repeat bool `json:"repeat,omitempty"`
}

// SyncTree returns the tree of sync calls a request entering at from makes. A component whose calls
// already appear earlier in the tree is marked Repeat and not expanded again, so the tree stays
// linear in the size of the graph.
func (g *Graph) SyncTree(from string) *TreeNode {
	start, ok := g.index[from]
	if !ok {
		return nil
	}
	expanded := make([]bool, len(g.nodes))
	onPath := make([]bool, len(g.nodes))
	var build func(n int, via *Edge) *TreeNode
	build = func(n int, via *Edge) *TreeNode {
		t := &TreeNode{Name: g.nodes[n].Name, Kind: g.nodes[n].Kind, Edge: via}
		if expanded[n] {
			t.Repeat = len(g.syncNext(n)) > 0
			return t
		}
		expanded[n], onPath[n] = true, true
		seen := map[int]bool{}
		for _, ei := range g.out[n] {
			e := g.edges[ei]
			tgt := g.index[e.To]
			if !e.IsSync() || seen[tgt] {
				continue
			}
			seen[tgt] = true
			if onPath[tgt] {
				t.Children = append(t.Children, &TreeNode{Name: e.To, Kind: g.nodes[tgt].Kind, Edge: &g.edges[ei], Cycle: true})
				continue
			}
			t.Children = append(t.Children, build(tgt, &g.edges[ei]))
		}
		onPath[n] = false
		return t
	}
	return build(start, nil)
}

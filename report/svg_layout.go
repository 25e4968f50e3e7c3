package report

import (
	"math"
	"sort"
)

// This file lays out a directed graph left to right in layers, the way Graphviz's dot does
// (Sugiyama, Tagawa and Toda, "Methods for Visual Understanding of Hierarchical System
// Structures", IEEE SMC 11(2), 1981), in four steps:
//
//  1. cycles are broken by reversing edges that close them: those closing a cycle of sync calls,
//     then async edges that lead back upstream (reversed edges are drawn as back edges);
//  2. layers come from the longest path from the sources, entrypoints first;
//  3. edges spanning several layers get a dummy node in each layer they cross, and the order within
//     each layer is improved by the barycenter heuristic, keeping the order with fewest crossings;
//  4. each node is placed vertically as close as it can to the mean of its neighbours (isotonic
//     regression keeps the order and the spacing), and edges are routed through their dummies.
//
// Everything is deterministic: the same input gives the same coordinates.

// layoutBox is a node to place: its size, and whether it is an entrypoint (kept in the first
// layer).
type layoutBox struct {
	w, h  float64
	entry bool
}

// layoutEdge is an edge to route, from one node index to another.
type layoutEdge struct {
	from, to int
	async    bool
}

// point is a position in the drawing.
type point struct{ x, y float64 }

// placedNode is a node's box: top-left corner and size, with its layer and rank in the layer.
type placedNode struct {
	x, y, w, h float64
	layer      int
	rank       int
}

// route is an edge's path through the drawing, from the caller's side to the callee's. Back edges
// (reversed to break a cycle) run right to left; a self edge loops over its node.
type route struct {
	points []point
	back   bool
	self   bool
}

// graphLayout is the result of layoutGraph.
type graphLayout struct {
	nodes         []placedNode
	routes        []route // one per input edge, same order
	width, height float64
	layers        int
	crossings     int
}

// Layout spacing, in SVG pixels.
const (
	layoutMargin   = 16.0
	layerGap       = 84.0 // between the widest boxes of adjacent layers, where edges bend
	nodeGap        = 22.0 // between boxes in a layer
	dummyGap       = 10.0 // between an edge passing through a layer and its neighbours
	orderingSweeps = 12
	placingRounds  = 8
)

// layoutGraph places the boxes and routes the edges.
func layoutGraph(boxes []layoutBox, edges []layoutEdge) graphLayout {
	n := len(boxes)
	out := graphLayout{nodes: make([]placedNode, n), routes: make([]route, len(edges))}
	if n == 0 {
		return out
	}
	reversed := backEdges(boxes, edges)
	layer := assignLayers(boxes, edges, reversed)

	// Chains: each non-self edge as the nodes it passes in the layered (acyclic) direction.
	type vnode struct {
		layer int
		h     float64
		real  bool
		key   float64 // initial order
	}
	vs := make([]vnode, n, n*2)
	order := discoveryOrder(boxes, edges)
	for i := range boxes {
		vs[i] = vnode{layer: layer[i], h: boxes[i].h, real: true, key: float64(order[i])}
	}
	chains := make([][]int, len(edges))
	for ei, e := range edges {
		if e.from == e.to {
			continue
		}
		u, v := e.from, e.to
		if reversed[ei] {
			u, v = v, u
		}
		chain := []int{u}
		for l := layer[u] + 1; l < layer[v]; l++ {
			vs = append(vs, vnode{layer: l, key: float64(order[u]) + 0.5})
			chain = append(chain, len(vs)-1)
		}
		chains[ei] = append(chain, v)
	}

	// Segments between adjacent layers, as neighbour lists.
	up := make([][]int, len(vs))   // neighbours in the layer to the left
	down := make([][]int, len(vs)) // neighbours in the layer to the right
	for _, c := range chains {
		for i := 0; i+1 < len(c); i++ {
			down[c[i]] = append(down[c[i]], c[i+1])
			up[c[i+1]] = append(up[c[i+1]], c[i])
		}
	}

	layers := 0
	for _, v := range vs {
		layers = max(layers, v.layer+1)
	}
	rows := make([][]int, layers)
	for i, v := range vs {
		rows[v.layer] = append(rows[v.layer], i)
	}
	for _, r := range rows {
		sort.SliceStable(r, func(a, b int) bool { return vs[r[a]].key < vs[r[b]].key })
	}
	pos := make([]int, len(vs))
	setPos := func() {
		for _, r := range rows {
			for i, v := range r {
				pos[v] = i
			}
		}
	}
	setPos()
	crossings := func() int {
		total := 0
		for l := 0; l+1 < layers; l++ {
			var segs [][2]int
			for _, u := range rows[l] {
				for _, v := range down[u] {
					segs = append(segs, [2]int{pos[u], pos[v]})
				}
			}
			for i := range segs {
				for j := i + 1; j < len(segs); j++ {
					if (segs[i][0]-segs[j][0])*(segs[i][1]-segs[j][1]) < 0 {
						total++
					}
				}
			}
		}
		return total
	}
	best := crossings()
	bestRows := cloneRows(rows)
	for sweep := 0; sweep < orderingSweeps && best > 0; sweep++ {
		downward := sweep%2 == 0
		for k := 1; k < layers; k++ {
			l, nb := k, up
			if !downward {
				l, nb = layers-1-k, down
			}
			r := rows[l]
			bary := make(map[int]float64, len(r))
			for _, v := range r {
				if len(nb[v]) == 0 {
					bary[v] = float64(pos[v])
					continue
				}
				s := 0.0
				for _, w := range nb[v] {
					s += float64(pos[w])
				}
				bary[v] = s / float64(len(nb[v]))
			}
			sort.SliceStable(r, func(a, b int) bool { return bary[r[a]] < bary[r[b]] })
			for i, v := range r {
				pos[v] = i
			}
		}
		if c := crossings(); c < best {
			best, bestRows = c, cloneRows(rows)
		}
	}
	rows = bestRows
	setPos()
	out.crossings = best
	out.layers = layers

	// Horizontal: layers as bands as wide as their widest box; boxes centred in their band.
	bandX := make([]float64, layers)
	bandW := make([]float64, layers)
	for i := range boxes {
		bandW[layer[i]] = max(bandW[layer[i]], boxes[i].w)
	}
	x := layoutMargin
	for l := range bandX {
		bandX[l] = x
		x += bandW[l] + layerGap
	}
	out.width = x - layerGap + layoutMargin

	// Vertical: centres, stacked, then pulled towards their neighbours.
	cy := make([]float64, len(vs))
	sep := func(a, b int) float64 {
		g := nodeGap
		if !vs[a].real || !vs[b].real {
			g = dummyGap
		}
		return (vs[a].h+vs[b].h)/2 + g
	}
	for _, r := range rows {
		y := 0.0
		for i, v := range r {
			if i > 0 {
				y += sep(r[i-1], v)
			}
			cy[v] = y
		}
		for _, v := range r {
			cy[v] -= y / 2
		}
	}
	place := func(l int, nbs ...[][]int) {
		r := rows[l]
		want := make([]float64, len(r))
		for i, v := range r {
			s, c := 0.0, 0
			for _, nb := range nbs {
				for _, w := range nb[v] {
					s += cy[w]
					c++
				}
			}
			if c == 0 {
				want[i] = cy[v]
			} else {
				want[i] = s / float64(c)
			}
		}
		gaps := make([]float64, len(r))
		for i := 1; i < len(r); i++ {
			gaps[i] = sep(r[i-1], r[i])
		}
		for i, y := range spacedFit(want, gaps) {
			cy[r[i]] = y
		}
	}
	for round := 0; round < placingRounds; round++ {
		if round%2 == 0 {
			for l := 1; l < layers; l++ {
				place(l, up)
			}
		} else {
			for l := layers - 2; l >= 0; l-- {
				place(l, down)
			}
		}
	}
	for l := 0; l < layers; l++ {
		place(l, up, down)
	}

	top, bottom := math.Inf(1), math.Inf(-1)
	for i, v := range vs {
		top = min(top, cy[i]-v.h/2)
		bottom = max(bottom, cy[i]+v.h/2)
	}
	// Self loops rise above their node; leave room for them.
	selfRoom := 0.0
	for _, e := range edges {
		if e.from == e.to {
			selfRoom = selfLoopRise
		}
	}
	shift := layoutMargin + selfRoom - top
	for i := range cy {
		cy[i] = round1(cy[i] + shift)
	}
	out.height = round1(bottom - top + 2*layoutMargin + selfRoom)

	for i, b := range boxes {
		l := layer[i]
		out.nodes[i] = placedNode{x: round1(bandX[l] + (bandW[l]-b.w)/2), y: round1(cy[i] - b.h/2), w: b.w, h: b.h,
			layer: l, rank: pos[i]}
	}

	// Routes: through each dummy as a straight run across its band. Ends attach to the boxes' sides
	// at ports spread over the middle of the side, ordered by where the edge comes from, so
	// parallel and opposite edges between the same boxes stay apart.
	type end struct {
		edge   int
		first  bool    // the route's first point
		toward float64 // y of the neighbouring route point, for ordering
	}
	sides := map[[2]int][]end{} // [node, 0 left | 1 right]
	for ei, e := range edges {
		if e.from == e.to {
			continue
		}
		c := chains[ei]
		var pts []point
		for _, v := range c {
			if v >= n {
				l := vs[v].layer
				pts = append(pts, point{round1(bandX[l]), cy[v]}, point{round1(bandX[l] + bandW[l]), cy[v]})
			} else {
				nd := out.nodes[v]
				pts = append(pts, point{nd.x, nd.y + nd.h/2}, point{nd.x + nd.w, nd.y + nd.h/2})
			}
		}
		// Drop the left side of the first box and the right side of the last: the chain runs
		// from the right side of its left end to the left side of its right end.
		pts = pts[1 : len(pts)-1]
		r := route{points: pts, back: reversed[ei]}
		if r.back {
			for i, j := 0, len(pts)-1; i < j; i, j = i+1, j-1 {
				pts[i], pts[j] = pts[j], pts[i]
			}
		}
		out.routes[ei] = r
		leftEnd, rightEnd := c[0], c[len(c)-1] // in layer order
		// The route's first point is on the caller: the right side of the left end, unless reversed.
		firstNode, firstSide, lastNode, lastSide := leftEnd, 1, rightEnd, 0
		if r.back {
			firstNode, firstSide, lastNode, lastSide = rightEnd, 0, leftEnd, 1
		}
		sides[[2]int{firstNode, firstSide}] = append(sides[[2]int{firstNode, firstSide}], end{ei, true, pts[1].y})
		sides[[2]int{lastNode, lastSide}] = append(sides[[2]int{lastNode, lastSide}], end{ei, false, pts[len(pts)-2].y})
	}
	keys := make([][2]int, 0, len(sides))
	for k := range sides {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(a, b int) bool {
		if keys[a][0] != keys[b][0] {
			return keys[a][0] < keys[b][0]
		}
		return keys[a][1] < keys[b][1]
	})
	for _, k := range keys {
		ends := sides[k]
		sort.SliceStable(ends, func(a, b int) bool { return ends[a].toward < ends[b].toward })
		nd := out.nodes[k[0]]
		span := nd.h * 0.5
		for i, e := range ends {
			y := nd.y + nd.h/2
			if len(ends) > 1 {
				y = nd.y + (nd.h-span)/2 + span*float64(i)/float64(len(ends)-1)
			}
			pts := out.routes[e.edge].points
			if e.first {
				pts[0].y = round1(y)
			} else {
				pts[len(pts)-1].y = round1(y)
			}
		}
	}
	for ei, e := range edges {
		if e.from != e.to {
			continue
		}
		nd := out.nodes[e.from]
		out.routes[ei] = route{self: true, points: []point{{nd.x + nd.w*0.75, nd.y}, {nd.x + nd.w*0.25, nd.y}}}
	}
	return out
}

// selfLoopRise is how far a self edge's loop rises above its node.
const selfLoopRise = 24.0

func cloneRows(rows [][]int) [][]int {
	out := make([][]int, len(rows))
	for i, r := range rows {
		out[i] = append([]int(nil), r...)
	}
	return out
}

func round1(v float64) float64 { return math.Round(v*10) / 10 }

// roots lists where searches start: entrypoints, then nodes nothing points at, then the rest, each
// in index order.
func roots(boxes []layoutBox, edges []layoutEdge) []int {
	in := make([]int, len(boxes))
	for _, e := range edges {
		if e.from != e.to {
			in[e.to]++
		}
	}
	var out []int
	for pass := 0; pass < 3; pass++ {
		for i, b := range boxes {
			if pass == 0 && b.entry || pass == 1 && !b.entry && in[i] == 0 || pass == 2 && !b.entry && in[i] > 0 {
				out = append(out, i)
			}
		}
	}
	return out
}

// outEdges lists each node's edge indexes, sync edges first, each kind in input order.
func outEdges(n int, edges []layoutEdge) [][]int {
	out := make([][]int, n)
	for _, async := range []bool{false, true} {
		for ei, e := range edges {
			if e.async == async {
				out[e.from] = append(out[e.from], ei)
			}
		}
	}
	return out
}

// backEdges marks the edges to reverse so the graph has no cycle. Sync edges come first: a
// depth-first search over them alone marks those closing a sync cycle (a real cyclic dependency,
// which the drawing shows as back edges). Then each async edge is kept forward unless its target
// already reaches its source, so a message flowing back upstream, not a call, is what runs right to
// left. The search runs without recursion, so deep graphs do not exhaust the stack.
func backEdges(boxes []layoutBox, edges []layoutEdge) []bool {
	const (
		white = iota
		grey
		black
	)
	n := len(boxes)
	syncAdj := make([][]int, n)
	for ei, e := range edges {
		if !e.async {
			syncAdj[e.from] = append(syncAdj[e.from], ei)
		}
	}
	state := make([]uint8, n)
	back := make([]bool, len(edges))
	type frame struct{ v, i int }
	for _, r := range roots(boxes, edges) {
		if state[r] != white {
			continue
		}
		stack := []frame{{v: r}}
		state[r] = grey
		for len(stack) > 0 {
			f := &stack[len(stack)-1]
			if f.i == len(syncAdj[f.v]) {
				state[f.v] = black
				stack = stack[:len(stack)-1]
				continue
			}
			ei := syncAdj[f.v][f.i]
			f.i++
			t := edges[ei].to
			switch state[t] {
			case grey:
				back[ei] = t != f.v // a self edge is drawn as a loop, not reversed
			case white:
				state[t] = grey
				stack = append(stack, frame{v: t})
			}
		}
	}
	kept := make([][]int, n) // the acyclic graph so far, as successor lists
	for ei, e := range edges {
		if !e.async && !back[ei] && e.from != e.to {
			kept[e.from] = append(kept[e.from], e.to)
		}
	}
	seen := make([]int, n) // visit marks, by search number, so nothing is cleared between searches
	search := 0
	reaches := func(from, to int) bool {
		search++
		queue := []int{from}
		seen[from] = search
		for len(queue) > 0 {
			v := queue[0]
			queue = queue[1:]
			if v == to {
				return true
			}
			for _, t := range kept[v] {
				if seen[t] != search {
					seen[t] = search
					queue = append(queue, t)
				}
			}
		}
		return false
	}
	for ei, e := range edges {
		if !e.async || e.from == e.to {
			continue
		}
		if reaches(e.to, e.from) {
			back[ei] = true
		} else {
			kept[e.from] = append(kept[e.from], e.to)
		}
	}
	return back
}

// discoveryOrder numbers the nodes in depth-first preorder from the roots, so a node's callees
// start out next to each other.
func discoveryOrder(boxes []layoutBox, edges []layoutEdge) []int {
	adj := outEdges(len(boxes), edges)
	order := make([]int, len(boxes))
	for i := range order {
		order[i] = -1
	}
	next := 0
	for _, r := range roots(boxes, edges) {
		if order[r] >= 0 {
			continue
		}
		stack := []int{r}
		for len(stack) > 0 {
			v := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			if order[v] >= 0 {
				continue
			}
			order[v] = next
			next++
			for i := len(adj[v]) - 1; i >= 0; i-- {
				if t := edges[adj[v][i]].to; order[t] < 0 {
					stack = append(stack, t)
				}
			}
		}
	}
	return order
}

// assignLayers gives each node its layer: the length of the longest path to it from a source,
// with reversed edges turned around so the graph is acyclic. Entrypoints are layer 0; when there
// are entrypoints, other sources start at layer 1 and are then pulled right to just before their
// first callee, so a lone worker sits next to what it calls.
func assignLayers(boxes []layoutBox, edges []layoutEdge, reversed []bool) []int {
	n := len(boxes)
	succ := make([][]int, n)
	indeg := make([]int, n)
	pred := make([]int, n)
	anyEntry := false
	for _, b := range boxes {
		anyEntry = anyEntry || b.entry
	}
	for ei, e := range edges {
		if e.from == e.to {
			continue
		}
		u, v := e.from, e.to
		if reversed[ei] {
			u, v = v, u
		}
		succ[u] = append(succ[u], v)
		indeg[v]++
		pred[v]++
	}
	layer := make([]int, n)
	for i, b := range boxes {
		if anyEntry && !b.entry {
			layer[i] = 1
		}
	}
	// Kahn's algorithm, taking ready nodes in index order.
	var topo []int
	ready := []int{}
	for i := 0; i < n; i++ {
		if indeg[i] == 0 {
			ready = append(ready, i)
		}
	}
	for len(ready) > 0 {
		u := ready[0]
		ready = ready[1:]
		topo = append(topo, u)
		for _, v := range succ[u] {
			layer[v] = max(layer[v], layer[u]+1)
			indeg[v]--
			if indeg[v] == 0 {
				ready = append(ready, v)
			}
		}
	}
	if len(topo) < n {
		// Unreachable when backEdges did its job; keep every node placed regardless.
		for i := 0; i < n; i++ {
			if indeg[i] > 0 {
				topo = append(topo, i)
			}
		}
	}
	for k := len(topo) - 1; k >= 0; k-- {
		u := topo[k]
		if pred[u] > 0 || boxes[u].entry || len(succ[u]) == 0 {
			continue
		}
		first := math.MaxInt
		for _, v := range succ[u] {
			first = min(first, layer[v])
		}
		layer[u] = max(layer[u], first-1)
	}
	return layer
}

// spacedFit returns positions as close as possible (least squares) to want, in the same order,
// with position i at least gaps[i] after position i-1: isotonic regression by pool adjacent
// violators (Barlow et al., "Statistical Inference under Order Restrictions", 1972) on the
// positions less their minimum offsets.
func spacedFit(want, gaps []float64) []float64 {
	n := len(want)
	off := make([]float64, n)
	for i := 1; i < n; i++ {
		off[i] = off[i-1] + gaps[i]
	}
	type block struct {
		sum   float64
		count int
	}
	var blocks []block
	for i := 0; i < n; i++ {
		blocks = append(blocks, block{want[i] - off[i], 1})
		for len(blocks) > 1 {
			a, b := blocks[len(blocks)-2], blocks[len(blocks)-1]
			if a.sum/float64(a.count) <= b.sum/float64(b.count) {
				break
			}
			blocks = append(blocks[:len(blocks)-2], block{a.sum + b.sum, a.count + b.count})
		}
	}
	out := make([]float64, 0, n)
	for _, b := range blocks {
		for k := 0; k < b.count; k++ {
			out = append(out, b.sum/float64(b.count)+off[len(out)])
		}
	}
	return out
}

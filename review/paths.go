package review

import "github.com/faultline-dev/faultline/model"

// bestStep is the best value a sync path leaving a component reaches, and the first edge of that
// path (nil when the path ends there).
type bestStep[T any] struct {
	val  T
	next *model.Edge
}

// syncBest finds, for entry services, the best-scoring sync path by memoized depth-first search:
// a component's best is the best over its sync edges of extend(edge, best of the callee). Edges
// that close a cycle are not followed. A value memoized while one of the component's callers was
// on the search stack was cut at that caller, so it holds only for that search's entry service:
// after a search that cut a cycle, the next entry service starts from a clean memo (an acyclic
// graph shares the memo, so the work stays linear in its size).
type syncBest[T any] struct {
	g      *model.Graph
	zero   T
	extend func(e model.Edge, sub T) T
	better func(a, b T) bool

	state map[string]uint8
	memo  map[string]bestStep[T]
	cut   bool
}

const (
	searchUnvisited = iota
	searchActive
	searchDone
)

func newSyncBest[T any](g *model.Graph, zero T, extend func(e model.Edge, sub T) T, better func(a, b T) bool) *syncBest[T] {
	return &syncBest[T]{g: g, zero: zero, extend: extend, better: better}
}

// from returns the best path value from an entry service.
func (s *syncBest[T]) from(entry string) bestStep[T] {
	if s.state == nil || s.cut {
		s.state, s.memo, s.cut = map[string]uint8{}, map[string]bestStep[T]{}, false
	}
	if s.state[entry] == searchUnvisited {
		s.visit(entry)
	}
	return s.memo[entry]
}

func (s *syncBest[T]) visit(n string) {
	s.state[n] = searchActive
	b := bestStep[T]{val: s.zero}
	for _, e := range s.g.Callees(n) {
		if !e.IsSync() {
			continue
		}
		if s.state[e.To] == searchActive {
			s.cut = true
			continue
		}
		if s.state[e.To] == searchUnvisited {
			s.visit(e.To)
		}
		if v := s.extend(e, s.memo[e.To].val); s.better(v, b.val) {
			b = bestStep[T]{val: v, next: &e}
		}
	}
	s.memo[n] = b
	s.state[n] = searchDone
}

// path returns the edges of the best path found from entry by the last call to from(entry).
func (s *syncBest[T]) path(entry string) []model.Edge {
	var out []model.Edge
	for at, n := s.memo[entry].next, 0; at != nil && n <= s.g.Len(); at, n = s.memo[at.To].next, n+1 {
		out = append(out, *at)
	}
	return out
}

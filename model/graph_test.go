package model

import (
	"reflect"
	"strings"
	"testing"

	"github.com/faultline-dev/faultline/internal/testkit"
)

func mustLoad(t testing.TB, doc string) *System {
	t.Helper()
	sys, err := Load("test.yaml", []byte("apiVersion: faultline/v1\nkind: System\nmetadata: {name: t}\n"+doc))
	if err != nil {
		t.Fatal(err)
	}
	return sys
}

// diamond: a calls b and c synchronously, both call d; d uses db; a publishes to q, q feeds e.
const diamond = `services: [{name: a}, {name: b}, {name: c}, {name: d, datastores: [db]}, {name: e}]
datastores: [{name: db, kind: postgres}]
brokers: [{name: q, kind: kafka}]
edges:
  - {from: a, to: b}
  - {from: a, to: c}
  - {from: b, to: d}
  - {from: c, to: d}
  - {from: a, to: q}
  - {from: q, to: e}
entrypoints: [{name: main, service: a}]
`

func TestCallersCallees(t *testing.T) {
	g := NewGraph(mustLoad(t, diamond))
	names := func(es []Edge, to bool) []string {
		var out []string
		for _, e := range es {
			if to {
				out = append(out, e.To)
			} else {
				out = append(out, e.From)
			}
		}
		return out
	}
	if got := names(g.Callees("a"), true); !reflect.DeepEqual(got, []string{"b", "c", "q"}) {
		t.Errorf("callees(a) = %v", got)
	}
	if got := names(g.Callers("d"), false); !reflect.DeepEqual(got, []string{"b", "c"}) {
		t.Errorf("callers(d) = %v", got)
	}
	if got := names(g.Callees("d"), true); !reflect.DeepEqual(got, []string{"db"}) {
		t.Errorf("implicit datastore edge missing: callees(d) = %v", got)
	}
	if g.Callees("nope") != nil {
		t.Error("unknown component has callees")
	}
}

func TestSyncReachableSkipsAsync(t *testing.T) {
	g := NewGraph(mustLoad(t, diamond))
	if got := g.SyncReachable("a"); !reflect.DeepEqual(got, []string{"b", "c", "d", "db"}) {
		t.Errorf("SyncReachable(a) = %v", got)
	}
	if got := g.SyncReachable("e"); len(got) != 0 {
		t.Errorf("SyncReachable(e) = %v", got)
	}
}

func TestSyncPaths(t *testing.T) {
	g := NewGraph(mustLoad(t, diamond))
	paths, trunc := g.SyncPaths("a", 0)
	want := [][]string{{"a", "b", "d", "db"}, {"a", "c", "d", "db"}}
	if trunc || !reflect.DeepEqual(paths, want) {
		t.Errorf("SyncPaths = %v %v", paths, trunc)
	}
	paths, trunc = g.SyncPaths("a", 1)
	if !trunc || len(paths) != 1 {
		t.Errorf("limit 1: %v %v", paths, trunc)
	}
}

func TestLongestChainAndCycles(t *testing.T) {
	sys := mustLoad(t, `services: [{name: a}, {name: b}, {name: c}, {name: d}, {name: x}]
edges:
  - {from: a, to: b}
  - {from: b, to: c}
  - {from: c, to: a}
  - {from: c, to: d}
  - {from: a, to: x}
  - {from: x, to: x}
  - {from: d, to: a, mode: async}
`)
	g := NewGraph(sys)
	if got := g.LongestSyncChain("a"); !reflect.DeepEqual(got, []string{"a", "b", "c", "d"}) {
		t.Errorf("LongestSyncChain = %v", got)
	}
	if got := g.Cycles(true); !reflect.DeepEqual(got, [][]string{{"a", "b", "c", "a"}, {"x", "x"}}) {
		t.Errorf("Cycles(sync) = %v", got)
	}
	// With the async d→a edge, d joins the a-b-c group; the shortest cycle from a is unchanged.
	if got := g.Cycles(false); len(got) != 2 || got[0][0] != "a" {
		t.Errorf("Cycles(all) = %v", got)
	}
}

func TestSyncTreeMarksCyclesAndRepeats(t *testing.T) {
	g := NewGraph(mustLoad(t, strings.Replace(diamond, "entrypoints:", "  - {from: d, to: a}\nentrypoints:", 1)))
	tree := g.SyncTree("a")
	var lines []string
	var walk func(n *TreeNode, depth int)
	walk = func(n *TreeNode, depth int) {
		mark := ""
		if n.Cycle {
			mark = " cycle"
		}
		if n.Repeat {
			mark = " repeat"
		}
		lines = append(lines, strings.Repeat(" ", depth)+n.Name+mark)
		for _, c := range n.Children {
			walk(c, depth+1)
		}
	}
	walk(tree, 0)
	want := "a\n b\n  d\n   a cycle\n   db\n c\n  d repeat"
	if got := strings.Join(lines, "\n"); got != want {
		t.Errorf("tree:\n%s\nwant:\n%s", got, want)
	}
}

// TestEffectiveEntrypoints: without declared entrypoints, services nobody calls are entrypoints.
func TestEffectiveEntrypoints(t *testing.T) {
	sys := mustLoad(t, strings.Replace(diamond, "entrypoints: [{name: main, service: a}]\n", "", 1))
	var got []string
	for _, ep := range EffectiveEntrypoints(sys, NewGraph(sys)) {
		got = append(got, ep.Service)
	}
	if !reflect.DeepEqual(got, []string{"a", "e"}) {
		t.Errorf("EffectiveEntrypoints = %v", got)
	}
}

func TestGeneratedModelLoads(t *testing.T) {
	sys, err := Load("gen.yaml", testkit.LayeredSystem(200, 1000))
	if err != nil {
		t.Fatal(err)
	}
	if len(sys.Services) != 200 || len(sys.Edges) < 900 {
		t.Fatalf("generated %d services, %d edges", len(sys.Services), len(sys.Edges))
	}
}

package model

import (
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/faultline-dev/faultline/internal/testkit"
)

// BenchmarkLoadValidateQuery is the foundation's budget: load, validate and run the graph queries
// the review needs on a 1,000-service / 5,000-edge model (target: under 200 ms on a 2-core box).
func BenchmarkLoadValidateQuery(b *testing.B) {
	data := testkit.LayeredSystem(1000, 5000)
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for b.Loop() {
		sys, err := Load("gen.yaml", data)
		if err != nil {
			b.Fatal(err)
		}
		queryAll(sys)
	}
}

// BenchmarkYAMLDecodeOnly is the reference the load figure is compared with: a plain yaml.v3
// decode of the same document into the same types, with no schema, locations or validation.
func BenchmarkYAMLDecodeOnly(b *testing.B) {
	data := testkit.LayeredSystem(1000, 5000)
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		var s System
		if err := yaml.Unmarshal(data, &s); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkGraphQueries measures the graph queries alone on the 1,000-service model.
func BenchmarkGraphQueries(b *testing.B) {
	sys, err := Load("gen.yaml", testkit.LayeredSystem(1000, 5000))
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		queryAll(sys)
	}
}

// queryAll runs every graph query the review and the simulator ask: per entrypoint reachability,
// longest chain, paths and tree; cycles; callers and callees of every service.
func queryAll(sys *System) {
	g := NewGraph(sys)
	for _, ep := range sys.Entrypoints {
		g.SyncReachable(ep.Service)
		g.LongestSyncChain(ep.Service)
		g.SyncPaths(ep.Service, 1000)
		g.SyncTree(ep.Service)
	}
	g.Cycles(true)
	for _, s := range sys.Services {
		g.Callers(s.Name)
		g.Callees(s.Name)
	}
}

package model

import (
	"fmt"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// GenerateLayered builds a layered system of n services and about m sync edges (each service calls
// services in the next layers), plus a datastore per ten services. Tests and benchmarks use it.
func GenerateLayered(n, m int) []byte {
	var b strings.Builder
	b.WriteString("apiVersion: faultline/v1\nkind: System\nmetadata: {name: generated}\nslo: {availability: 0.999}\nservices:\n")
	const layers = 10
	per := n / layers
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, "  - name: svc-%d\n    replicas: %d\n    zones: [a, b]\n", i, 1+i%3)
		if i%10 == 0 {
			fmt.Fprintf(&b, "    datastores: [db-%d]\n", i/10)
		}
	}
	b.WriteString("datastores:\n")
	for i := 0; i < n; i += 10 {
		fmt.Fprintf(&b, "  - {name: db-%d, kind: postgres, replicas: 2}\n", i/10)
	}
	b.WriteString("edges:\n")
	edges := 0
	for k := 1; edges < m; k++ {
		for i := 0; i < n-per && edges < m; i++ {
			to := (i/per+1)*per + (i*7+k*13)%per
			if to >= n {
				continue
			}
			fmt.Fprintf(&b, "  - from: svc-%d\n    to: svc-%d\n    protocol: http\n    policy: {timeout: %dms, retry: {attempts: %d, backoff: exponential}}\n", i, to, 100+k, 1+k%3)
			edges++
		}
		if k > m {
			break
		}
	}
	b.WriteString("entrypoints:\n")
	for i := 0; i < per; i += max(1, per/5) {
		fmt.Fprintf(&b, "  - {name: ep-%d, service: svc-%d, rps: 100}\n", i, i)
	}
	return []byte(b.String())
}

func TestGeneratedModelLoads(t *testing.T) {
	sys, err := Load("gen.yaml", GenerateLayered(200, 1000))
	if err != nil {
		t.Fatal(err)
	}
	if len(sys.Services) != 200 || len(sys.Edges) < 900 {
		t.Fatalf("generated %d services, %d edges", len(sys.Services), len(sys.Edges))
	}
}

// BenchmarkLoadValidateQuery is the foundation's budget: load, validate and run the graph queries
// the review needs on a 1,000-service / 5,000-edge model (target: under 200 ms on a 2-core box).
func BenchmarkLoadValidateQuery(b *testing.B) {
	data := GenerateLayered(1000, 5000)
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
	data := GenerateLayered(1000, 5000)
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
	sys, err := Load("gen.yaml", GenerateLayered(1000, 5000))
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

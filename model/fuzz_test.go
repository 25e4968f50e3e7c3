package model

import (
	"errors"
	"os"
	"testing"
)

// FuzzLoad feeds arbitrary bytes to the model loader: it must never panic, and every failure must
// be a list of located problems.
func FuzzLoad(f *testing.F) {
	for _, p := range []string{"../examples/models/shop.yaml", "../examples/models/legacy-shop.yaml", "testdata/bad/types.yaml", "testdata/bad/references.yaml"} {
		if data, err := os.ReadFile(p); err == nil {
			f.Add(data)
		}
	}
	f.Add([]byte("apiVersion: faultline/v1\nkind: System\nmetadata: {name: a}\nservices: [{name: a, replicas: 1e400}]\n"))
	f.Add([]byte("apiVersion: faultline/v1\nkind: System\nmetadata: &m {name: a}\nx: *m\n<<: *m\n"))
	f.Add([]byte("apiVersion: faultline/v1\nedges: [{from: a, to: a, policy: {timeout: -1s}}]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		sys, err := Load("fuzz.yaml", data)
		if err != nil {
			var probs Problems
			if !errors.As(err, &probs) || len(probs) == 0 {
				t.Fatalf("error is not Problems: %T %v", err, err)
			}
			return
		}
		g := NewGraph(sys)
		for _, ep := range sys.Entrypoints {
			g.LongestSyncChain(ep.Service)
			g.SyncTree(ep.Service)
			g.SyncPaths(ep.Service, 100)
		}
		g.Cycles(false)
		if _, err := MarshalYAML(sys, true); err != nil {
			t.Fatalf("marshal: %v", err)
		}
	})
}

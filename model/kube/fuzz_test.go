package kube

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/faultline-dev/faultline/model"
)

// FuzzImport feeds arbitrary bytes to the importer as a manifest file. It must never panic, must
// answer bad input with model.Problems, and what it accepts must be a valid model.
func FuzzImport(f *testing.F) {
	entries, err := os.ReadDir(shopDir)
	if err != nil {
		f.Fatal(err)
	}
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(shopDir, e.Name()))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	// One file per worker process, rewritten for each input: a directory per input would make
	// each run (and so the minimization of every interesting input) several times slower.
	dir := f.TempDir()
	for _, s := range []string{
		"",
		"apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Service\n  metadata: {name: a}\n  spec: {type: LoadBalancer, selector: {app: a}}\n",
		`{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"a"},"spec":{"replicas":"x"}}`,
		"apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: &s {containers: [{name: c, image: c}], x: *s}\n",
		"apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {{ .Release.Name }}\n",
		"a: &a [*a]\n",
		"apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: v}\nspec: {hosts: ['*'], gateways: [g], http: [{route: [{destination: {host: x}}]}]}\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		p := filepath.Join(dir, "in.yaml")
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		type result struct {
			sys     *model.System
			skipped []Skipped
			err     error
		}
		done := make(chan result, 1)
		go func() {
			sys, skipped, err := Import(context.Background(), []string{p}, Options{})
			LooksLikeKubernetes(data)
			done <- result{sys, skipped, err}
		}()
		var r result
		select {
		case r = <-done:
		case <-time.After(20 * time.Second):
			t.Fatalf("import of %d bytes did not finish in 20s", len(data))
		}
		sys, skipped, err := r.sys, r.skipped, r.err
		if err != nil {
			var ps model.Problems
			if !errors.As(err, &ps) || len(ps) == 0 {
				t.Fatalf("error is not model.Problems: %v (%T)", err, err)
			}
			if sys != nil || skipped != nil {
				t.Fatal("results returned with an error")
			}
			return
		}
		if ps := model.Validate(sys); len(ps) > 0 {
			t.Fatalf("imported system does not validate:\n%v", ps)
		}
	})
}

// generated returns n Deployments with Services, each calling the next over gRPC and all sharing
// a database, as one multi-document manifest.
func generated(n int) []byte {
	var b strings.Builder
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, `apiVersion: apps/v1
kind: Deployment
metadata:
  name: svc-%[1]d
  namespace: bench
spec:
  replicas: 2
  selector:
    matchLabels: {app: svc-%[1]d}
  template:
    metadata:
      labels: {app: svc-%[1]d, tier: backend}
    spec:
      containers:
      - name: app
        image: example/svc-%[1]d:1.0
        resources:
          requests: {cpu: 100m, memory: 64Mi}
        readinessProbe: {httpGet: {path: /ready, port: 8080}}
        env:
        - name: NEXT_ADDR
          value: svc-%[2]d:9090
        - name: DATABASE_URL
          value: postgres://app@db:5432/app
        - name: API_TOKEN
          value: t
---
apiVersion: v1
kind: Service
metadata:
  name: svc-%[1]d
  namespace: bench
spec:
  selector: {app: svc-%[1]d}
  ports:
  - {name: grpc, port: 9090}
---
`, i, (i+1)%n)
	}
	b.WriteString(`apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db, namespace: bench}
spec:
  replicas: 3
  template:
    metadata: {labels: {app: db}}
    spec: {containers: [{name: db, image: postgres:16}]}
---
apiVersion: v1
kind: Service
metadata: {name: db, namespace: bench}
spec: {selector: {app: db}, ports: [{port: 5432}]}
`)
	return []byte(b.String())
}

func TestImportThousandDeployments(t *testing.T) {
	dir := writeFiles(t, map[string]string{"big.yaml": string(generated(1000))})
	start := time.Now()
	sys, _, err := Import(context.Background(), []string{dir}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("imported 1,000 Deployments and Services in %v", time.Since(start))
	if len(sys.Services) != 1000 || len(sys.Datastores) != 1 || len(sys.Edges) != 2000 {
		t.Errorf("services %d datastores %d edges %d, want 1000, 1, 2000", len(sys.Services), len(sys.Datastores), len(sys.Edges))
	}
	if e := findEdge(sys, "svc-999", "svc-0"); e == nil || e.Protocol != "grpc" {
		t.Errorf("svc-999→svc-0 = %+v", e)
	}
}

func BenchmarkImport(b *testing.B) {
	dir := writeFiles(b, map[string]string{"big.yaml": string(generated(1000))})
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := Import(context.Background(), []string{dir}, Options{}); err != nil {
			b.Fatal(err)
		}
	}
}

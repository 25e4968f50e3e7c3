package compose

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// bigCompose writes a project of n services, each calling the next over HTTP, a PostgreSQL
// database and a Redis cache, with 10 databases and 5 caches.
func bigCompose(tb testing.TB, n int) string {
	tb.Helper()
	var b strings.Builder
	b.WriteString("services:\n")
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, "  svc%d:\n    image: example/svc%d:1.0\n    environment:\n      NEXT_URL: http://svc%d:8080\n      DB_URL: postgres://u:p@db%d:5432/x\n      CACHE_ADDR: redis%d:6379\n      API_TOKEN: t%d\n    depends_on: [db%d]\n    healthcheck:\n      test: [\"CMD\", \"true\"]\n    deploy:\n      replicas: 2\n", i, i, (i+1)%n, i%10, i%5, i, i%10)
	}
	for i := 0; i < 10; i++ {
		fmt.Fprintf(&b, "  db%d:\n    image: postgres:16\n", i)
	}
	for i := 0; i < 5; i++ {
		fmt.Fprintf(&b, "  redis%d:\n    image: redis:7\n", i)
	}
	p := filepath.Join(tb.TempDir(), "compose.yaml")
	if err := os.WriteFile(p, []byte(b.String()), 0o644); err != nil {
		tb.Fatal(err)
	}
	return p
}

func TestImportHundredServicesIsFast(t *testing.T) {
	p := bigCompose(t, 100)
	start := time.Now()
	sys, err := Import(context.Background(), []string{p}, Options{Env: map[string]string{}})
	elapsed := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	if len(sys.Services) != 100 || len(sys.Datastores) != 15 || len(sys.Edges) != 300 {
		t.Errorf("got %d services, %d datastores, %d edges", len(sys.Services), len(sys.Datastores), len(sys.Edges))
	}
	limit := time.Second
	if raceEnabled {
		limit = 10 * time.Second
	}
	if elapsed > limit {
		t.Errorf("importing 100 services took %v, want under %v", elapsed, limit)
	}
}

func BenchmarkImport100(b *testing.B) {
	p := bigCompose(b, 100)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Import(ctx, []string{p}, Options{Env: map[string]string{}}); err != nil {
			b.Fatal(err)
		}
	}
}

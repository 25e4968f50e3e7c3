package compose

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

// TestDatastoreSecrets: a database container's literal root password is recorded on the datastore
// (by name, never by value), so the review can flag it like a service's.
func TestDatastoreSecrets(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "compose.yaml")
	os.WriteFile(p, []byte(`services:
  api:
    image: example/api
    environment:
      DATABASE_URL: postgres://db:5432/app
  db:
    image: postgres:16
    environment:
      POSTGRES_PASSWORD: devpass
  queue:
    image: rabbitmq:3
    environment:
      RABBITMQ_DEFAULT_PASS: guest
`), 0o644)
	sys, err := Import(context.Background(), []string{p}, Options{Env: map[string]string{}})
	if err != nil {
		t.Fatal(err)
	}
	db := sys.Datastore("db")
	if db == nil || len(db.Secrets) != 1 || db.Secrets[0].Name != "POSTGRES_PASSWORD" || db.Secrets[0].From != "literal" || db.Secrets[0].Source.Line == 0 {
		t.Fatalf("db secrets = %+v", db)
	}
	q := sys.Broker("queue")
	if q == nil || len(q.Secrets) != 1 || q.Secrets[0].Name != "RABBITMQ_DEFAULT_PASS" {
		t.Fatalf("queue secrets = %+v", q)
	}
}

package kube

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

// TestDatastoreSecrets: a database workload's literal password is recorded on the datastore.
func TestDatastoreSecrets(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "db.yaml")
	os.WriteFile(p, []byte(`apiVersion: apps/v1
kind: StatefulSet
metadata: {name: postgres, namespace: shop}
spec:
  replicas: 1
  selector: {matchLabels: {app: postgres}}
  template:
    metadata: {labels: {app: postgres}}
    spec:
      containers:
        - name: postgres
          image: postgres:16
          env:
            - {name: POSTGRES_PASSWORD, value: hunter2}
`), 0o644)
	sys, _, err := Import(context.Background(), []string{p}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	db := sys.Datastore("postgres")
	if db == nil || len(db.Secrets) != 1 || db.Secrets[0].Name != "POSTGRES_PASSWORD" || db.Secrets[0].From != "literal" {
		t.Fatalf("postgres secrets = %+v", db)
	}
}

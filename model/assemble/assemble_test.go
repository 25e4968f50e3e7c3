package assemble

import (
	"testing"

	"github.com/faultline-dev/faultline/model"
	"github.com/faultline-dev/faultline/model/hostref"
)

func TestBuilder(t *testing.T) {
	b := New("t")
	src := model.Source{File: "c.yaml", Line: 3}
	if k := b.AddComponent("api", "example/api:1", 2, nil, src); k != model.KindService {
		t.Fatalf("api is a %s", k)
	}
	if k := b.AddComponent("db", "postgres:16", 1, nil, src); k != model.KindDatastore {
		t.Fatalf("db is a %s", k)
	}
	if k := b.AddComponent("db-backup", "postgres:16", 1, nil, src); k != model.KindService {
		t.Fatalf("db-backup is a %s, want a service (a tool around postgres)", k)
	}
	if k := b.AddComponent("bus", "bitnami/kafka:3", 3, nil, src); k != model.KindBroker {
		t.Fatalf("bus is a %s", k)
	}
	b.AddComponent("api", "other", 1, nil, model.Source{File: "c.yaml", Line: 9})

	resolve := func(host string) (string, bool) {
		_, ok := b.Kind(host)
		return host, ok
	}
	for _, r := range hostref.Find("DATABASE_URL", "postgres://u:p@db:5432/app") {
		b.EdgeFromRef("api", r, resolve, src)
	}
	for _, r := range hostref.Find("PSP_URL", "https://api.psp.example.com/v1") {
		b.EdgeFromRef("api", r, resolve, src)
	}
	b.AddEdge(model.Edge{From: "api", To: "bus", Source: src})
	b.AddEdge(model.Edge{From: "api", To: "db", Protocol: "tcp", Source: src}) // merged into the first
	b.AddEdge(model.Edge{From: "api", To: "api", Source: src})                 // self edges dropped
	b.AddEntrypoint(model.Entrypoint{Name: "main", Service: "api"})
	b.AddEntrypoint(model.Entrypoint{Name: "main", Service: "api"})

	sys := b.System([]string{"c.yaml"})
	if probs := model.Validate(sys); len(probs) > 0 {
		t.Fatalf("invalid: %v", probs)
	}
	if len(sys.Edges) != 3 || len(sys.Externals) != 1 || sys.Externals[0].Name != "api.psp.example.com" {
		t.Fatalf("edges %+v externals %+v", sys.Edges, sys.Externals)
	}
	db := b.Edge("api", "db")
	if db == nil || db.Protocol != "sql" || db.Address != "postgres://db:5432/app" {
		t.Errorf("api→db = %+v", db)
	}
	if ext := b.Edge("api", "api.psp.example.com"); ext == nil || ext.TLS == nil || !*ext.TLS || ext.Protocol != "http" {
		t.Errorf("api→psp = %+v", ext)
	}
	if bus := b.Edge("api", "bus"); bus == nil || bus.Protocol != "kafka" {
		t.Errorf("api→bus = %+v", bus)
	}
	if api := sys.Service("api"); api == nil || api.Replicas != 2 || len(api.Datastores) != 1 {
		t.Errorf("api = %+v", api)
	}
	if len(b.EdgesInto("db")) != 1 || len(sys.Entrypoints) != 1 || len(sys.Warnings) != 2 {
		t.Errorf("edges into db %d, entrypoints %d, warnings %v", len(b.EdgesInto("db")), len(sys.Entrypoints), sys.Warnings)
	}
	for _, e := range sys.Edges {
		if e.Mode == "" || e.CallsPerRequest != 1 {
			t.Errorf("defaults not applied: %+v", e)
		}
	}
}

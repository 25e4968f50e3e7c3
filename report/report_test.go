package report

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/faultline-dev/faultline/model"
)

var update = flag.Bool("update", false, "rewrite golden files")

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs:\n%s", path, got)
	}
}

func TestDiagramsAndSummary(t *testing.T) {
	for _, name := range []string{"shop", "legacy-shop"} {
		sys, err := model.LoadFile("../examples/models/" + name + ".yaml")
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range DiagramFormats {
			var b bytes.Buffer
			if err := Diagram(&b, sys, f); err != nil {
				t.Fatal(err)
			}
			golden(t, name+"."+f, b.Bytes())
		}
		var b bytes.Buffer
		if err := Summary(&b, model.Summarize(sys)); err != nil {
			t.Fatal(err)
		}
		golden(t, name+".summary.txt", b.Bytes())
	}
}

// TestDiagramStyles checks what a reader relies on: async edges dashed, sync solid, datastores as
// cylinders, brokers as queues, and identifiers that survive odd names.
func TestDiagramStyles(t *testing.T) {
	sys, err := model.Load("m.yaml", []byte(`apiVersion: faultline/v1
kind: System
metadata: {name: "odd \"names\""}
services: [{name: end}, {name: 1st-svc}, {name: a.b}]
datastores: [{name: db, kind: postgres}]
brokers: [{name: bus, kind: kafka}]
edges:
  - {from: end, to: 1st-svc}
  - {from: end, to: bus}
  - {from: 1st-svc, to: db}
  - {from: bus, to: a.b}
`))
	if err != nil {
		t.Fatal(err)
	}
	var m, d bytes.Buffer
	Mermaid(&m, sys)
	DOT(&d, sys)
	for _, want := range []string{"n_end --> n_1st_svc", "n_end -.-> bus", "db[(", "bus{{", "bus -.-> a_b"} {
		if !strings.Contains(m.String(), want) {
			t.Errorf("mermaid lacks %q:\n%s", want, m.String())
		}
	}
	for _, want := range []string{`digraph "odd \"names\""`, "n_end -> bus [style=dashed]", "shape=cylinder", "n_1st_svc -> db;"} {
		if !strings.Contains(d.String(), want) {
			t.Errorf("dot lacks %q:\n%s", want, d.String())
		}
	}
}

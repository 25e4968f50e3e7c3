package model

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite golden files")

func TestLoadExamples(t *testing.T) {
	for _, f := range []string{"../examples/models/shop.yaml", "../examples/models/legacy-shop.yaml"} {
		sys, err := LoadFile(f)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if len(sys.Services) == 0 || len(sys.Edges) == 0 || len(sys.Entrypoints) == 0 {
			t.Errorf("%s: empty parts: %d services, %d edges, %d entrypoints", f, len(sys.Services), len(sys.Edges), len(sys.Entrypoints))
		}
		for _, s := range sys.Services {
			if s.Source.File != f || s.Source.Line == 0 {
				t.Errorf("%s: service %s has no source: %+v", f, s.Name, s.Source)
			}
		}
		for _, e := range sys.Edges {
			if e.Source.Line == 0 {
				t.Errorf("%s: edge %s has no source line", f, e)
			}
		}
	}
}

func TestLoadValues(t *testing.T) {
	sys, err := LoadFile("../examples/models/shop.yaml")
	if err != nil {
		t.Fatal(err)
	}
	order := sys.Service("order")
	if order == nil || order.Replicas != 3 || len(order.Zones) != 3 || order.Stateless == nil || !*order.Stateless {
		t.Fatalf("order = %+v", order)
	}
	if sys.SLO == nil || sys.SLO.Availability != 0.999 || sys.SLO.LatencyP99.D() != 400*time.Millisecond {
		t.Fatalf("slo = %+v", sys.SLO)
	}
	var inv *Edge
	for i := range sys.Edges {
		if sys.Edges[i].From == "order" && sys.Edges[i].To == "inventory" {
			inv = &sys.Edges[i]
		}
	}
	if inv == nil || inv.Policy == nil || inv.Policy.Timeout.D() != 400*time.Millisecond || inv.Policy.Retry.Attempts != 2 ||
		inv.Policy.Retry.PerTryTimeout.D() != 180*time.Millisecond || inv.Policy.CircuitBreaker.FailureRate != 0.5 || inv.Mode != ModeSync {
		t.Fatalf("order→inventory = %+v", inv)
	}
	for _, e := range sys.Edges {
		if e.To == "events" && e.Mode != ModeAsync {
			t.Errorf("edge to broker should be async: %+v", e)
		}
	}
}

func TestDefaults(t *testing.T) {
	sys, err := Load("m.yaml", []byte(`apiVersion: faultline/v1
kind: System
metadata: {name: d}
services: [{name: a}, {name: b}]
brokers: [{name: q}]
edges:
  - {from: a, to: b}
  - {from: a, to: q}
  - {from: a, to: b, protocol: kafka}
`))
	if err != nil {
		t.Fatal(err)
	}
	if sys.Services[0].Replicas != 1 || sys.Brokers[0].Replicas != 1 {
		t.Errorf("replicas default: %+v", sys.Services[0])
	}
	want := []string{ModeSync, ModeAsync, ModeAsync}
	for i, e := range sys.Edges {
		if e.Mode != want[i] || e.CallsPerRequest != 1 {
			t.Errorf("edge %d: mode %q calls %v, want %q 1", i, e.Mode, e.CallsPerRequest, want[i])
		}
	}
}

// TestLoadBadInput checks each kind of bad input against a golden list of problems: every problem
// reported at once, one per line, each with file:line and the field.
func TestLoadBadInput(t *testing.T) {
	files, _ := filepath.Glob("testdata/bad/*.yaml")
	if len(files) == 0 {
		t.Fatal("no fixtures")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			_, err := LoadFile(f)
			var probs Problems
			if !errors.As(err, &probs) {
				t.Fatalf("error %v is not Problems", err)
			}
			for _, p := range probs {
				if p.File != f || p.Line == 0 {
					t.Errorf("problem without place: %+v", p)
				}
			}
			got := err.Error() + "\n"
			golden := strings.TrimSuffix(f, ".yaml") + ".golden"
			if *update {
				os.WriteFile(golden, []byte(got), 0o644)
			}
			want, _ := os.ReadFile(golden)
			if got != string(want) {
				t.Errorf("problems differ from %s:\n--- got\n%s--- want\n%s", golden, got, want)
			}
		})
	}
}

func TestLoadGarbage(t *testing.T) {
	dir := t.TempDir()
	cases := map[string][]byte{
		"empty.yaml":     nil,
		"nul.yaml":       []byte("apiVersion: faultline/v1\x00\x01\x02"),
		"latin1.yaml":    []byte("name: caf\xe9\n"),
		"list.yaml":      []byte("- a\n- b\n"),
		"scalar.yaml":    []byte("hello\n"),
		"two-docs.yaml":  []byte("apiVersion: faultline/v1\nkind: System\nmetadata: {name: a}\n---\nkind: System\n"),
		"tabs.yaml":      []byte("apiVersion: faultline/v1\n\tkind: System\n"),
		"dupkey.yaml":    []byte("apiVersion: faultline/v1\nkind: System\nkind: System\nmetadata: {name: a}\n"),
		"bomb.yaml":      []byte("a: &a [x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\nf: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]\ng: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]\nh: [*g,*g,*g,*g,*g,*g,*g,*g,*g]\n"),
		"compose.yaml":   []byte("services:\n  web:\n    image: nginx\n"),
		"selfmerge.yaml": []byte("apiVersion: faultline/v1\nkind: System\nmetadata: &a {name: x, <<: *a}\n"),
		"selfseq.yaml":   []byte("apiVersion: faultline/v1\nkind: System\nmetadata: {name: x}\nservices: &s [{name: a, x: *s}]\n"),
	}
	for name, data := range cases {
		p := filepath.Join(dir, name)
		os.WriteFile(p, data, 0o644)
		_, err := LoadFile(p)
		var probs Problems
		if !errors.As(err, &probs) || len(probs) == 0 {
			t.Errorf("%s: want Problems, got %v", name, err)
			continue
		}
		for _, pr := range probs {
			if pr.File != p || strings.Contains(pr.String(), "\n") {
				t.Errorf("%s: bad problem %q", name, pr.String())
			}
		}
	}
	big := filepath.Join(dir, "big.yaml")
	os.WriteFile(big, bytes.Repeat([]byte("# padding line for a big file\n"), 50<<20/30), 0o644)
	_, err := LoadFile(big)
	if err == nil || !strings.Contains(err.Error(), "limit") {
		t.Errorf("50 MB file: %v", err)
	}
	if _, err := LoadFile(filepath.Join(dir, "missing.yaml")); err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Errorf("missing file: %v", err)
	}
	if _, err := LoadFile(dir); err == nil || !strings.Contains(err.Error(), "directory") {
		t.Errorf("directory: %v", err)
	}
}

// TestSchemaMatchesCommittedCopy keeps docs/faultline.schema.json (what editors use) equal to the
// schema generated from the Go types. Run with -update after changing the types.
func TestSchemaMatchesCommittedCopy(t *testing.T) {
	const path = "../docs/faultline.schema.json"
	if *update {
		os.WriteFile(path, Schema(), 0o644)
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, Schema()) {
		t.Fatalf("%s is out of date: run go test ./model -run TestSchema -update", path)
	}
}

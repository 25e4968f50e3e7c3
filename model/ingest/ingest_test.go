package ingest

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/faultline-dev/faultline/model"
)

func write(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

const composeFile = `services:
  web:
    image: example/web
    environment:
      API_URL: http://api:8080
  api:
    image: example/api
    environment:
      DATABASE_URL: postgres://db:5432/app
  db:
    image: postgres:16
`

const manifest = `apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: example/web}]
`

func TestOpenDetectsEachFormat(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		paths    []string
		format   Format
		services int
	}{
		{[]string{"../../examples/models/shop.yaml"}, Model, 6},
		{[]string{write(t, dir, "c/compose.yaml", composeFile)}, Compose, 2},
		{[]string{write(t, dir, "k/deploy.yaml", manifest)}, Kube, 1},
		{[]string{filepath.Join(dir, "k")}, Kube, 1},
		{[]string{"../../model/kube/testdata/shop"}, Kube, 0},
	}
	for _, c := range cases {
		res, err := Open(context.Background(), c.paths, Options{})
		if err != nil {
			t.Fatalf("%v: %v", c.paths, err)
		}
		if res.Format != c.format || c.services > 0 && len(res.System.Services) != c.services {
			t.Errorf("%v: format %s with %d services, want %s with %d", c.paths, res.Format, len(res.System.Services), c.format, c.services)
		}
	}
}

// TestOpenComposeOverrideOrder: files keep the order given (later overrides earlier), and an empty
// override file is accepted among compose files.
func TestOpenComposeOverrideOrder(t *testing.T) {
	dir := t.TempDir()
	base := write(t, dir, "compose.yaml", composeFile)
	over := write(t, dir, "compose.prod.yaml", "services:\n  api:\n    deploy: {replicas: 4}\n")
	empty := write(t, dir, "compose.extras.yaml", "# nothing here yet\n")
	res, err := Open(context.Background(), []string{base, over, empty}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Format != Compose || len(res.Files) != 3 || res.Files[1] != over {
		t.Fatalf("files %v", res.Files)
	}
	if api := res.System.Service("api"); api == nil || api.Replicas != 4 {
		t.Errorf("override not applied: %+v", api)
	}
}

// TestOpenComposeDirectory: a project directory is read as docker compose reads it: compose.yaml
// then compose.override.yaml, and not the other YAML files beside them (extends targets).
func TestOpenComposeDirectory(t *testing.T) {
	res, err := Open(context.Background(), []string{"../../model/compose/testdata/shop"}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"../../model/compose/testdata/shop/compose.yaml", "../../model/compose/testdata/shop/compose.override.yaml"}
	if strings.Join(res.Files, ",") != strings.Join(want, ",") {
		t.Fatalf("files %v, want %v", res.Files, want)
	}
	explicit, err := Open(context.Background(), want, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.System.Services) != len(explicit.System.Services) || len(res.System.Edges) != len(explicit.System.Edges) {
		t.Errorf("directory import differs from the explicit files: %d/%d services, %d/%d edges",
			len(res.System.Services), len(explicit.System.Services), len(res.System.Edges), len(explicit.System.Edges))
	}
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	cfile := write(t, dir, "compose.yaml", composeFile)
	kfile := write(t, dir, "deploy.yaml", manifest)
	other := write(t, dir, "notes.yaml", "title: not an architecture\n")
	write(t, dir, "empty/README.md", "nothing")
	cases := []struct {
		paths []string
		opts  Options
		want  string
	}{
		{nil, Options{}, "no input"},
		{[]string{cfile, kfile}, Options{}, "inputs mix formats"},
		{[]string{other}, Options{}, "notes.yaml:1: not a faultline model"},
		{[]string{write(t, dir, "broken.yaml", "services:\n  web:\n    ports: [80\n")}, Options{}, "broken.yaml:2: invalid YAML: did not find expected ',' or ']'"},
		{[]string{filepath.Join(dir, "empty")}, Options{}, "directory holds no files"},
		{[]string{"../../examples/models/shop.yaml", "../../examples/models/legacy-shop.yaml"}, Options{}, "2 model files given"},
		{[]string{filepath.Join(dir, "missing.yaml")}, Options{}, "no such file"},
	}
	for _, c := range cases {
		_, err := Open(context.Background(), c.paths, c.opts)
		var probs model.Problems
		if err == nil || !errors.As(err, &probs) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: got %v, want problems containing %q", c.paths, err, c.want)
		}
	}
	if _, err := ParseFormat("helm"); err == nil {
		t.Error("ParseFormat accepted helm")
	}
	if f, _ := ParseFormat("k8s"); f != Kube {
		t.Error("k8s is an alias of kube")
	}
}

// TestOpenForcedFormat: --from skips detection, so a compose file read as a manifest fails
// cleanly rather than being guessed.
func TestOpenForcedFormat(t *testing.T) {
	dir := t.TempDir()
	cfile := write(t, dir, "compose.yaml", composeFile)
	res, err := Open(context.Background(), []string{cfile}, Options{From: Compose, Name: "forced"})
	if err != nil || res.System.Metadata.Name != "forced" {
		t.Fatalf("forced compose: %v", err)
	}
	if _, err := Open(context.Background(), []string{cfile}, Options{From: Model}); err == nil {
		t.Error("compose file loaded as a model")
	}
}

// TestImportedModelsRoundTrip: what an importer produces, written as YAML, is a model that loads
// back without a problem and with the same content, so `faultline model import > model.yaml` is a
// starting point users can edit and validate.
func TestImportedModelsRoundTrip(t *testing.T) {
	for _, p := range []string{"../../model/kube/testdata/shop", "../../model/compose/testdata/shop"} {
		res, err := Open(context.Background(), []string{p}, Options{})
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		out, err := model.MarshalYAML(res.System, true)
		if err != nil {
			t.Fatal(err)
		}
		back, err := model.Load("imported.yaml", out)
		if err != nil {
			t.Fatalf("%s: imported model does not load back:\n%v", p, err)
		}
		if len(back.Services) != len(res.System.Services) || len(back.Edges) != len(res.System.Edges) ||
			len(back.Datastores) != len(res.System.Datastores) || len(back.Entrypoints) != len(res.System.Entrypoints) {
			t.Errorf("%s: round trip lost elements", p)
		}
	}
}

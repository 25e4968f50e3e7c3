package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/faultline-dev/faultline/model"
)

// cli runs the command line in-process and returns its exit code, stdout and stderr.
func cli(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

const (
	healthy = "../../examples/models/shop.yaml"
	broken  = "../../examples/models/legacy-shop.yaml"
)

func TestVersion(t *testing.T) {
	code, out, _ := cli(t, "version")
	if code != 0 || !strings.HasPrefix(out, "faultline v") {
		t.Fatalf("version: %d %q", code, out)
	}
	code, out, _ = cli(t, "version", "-o", "json")
	var v versionInfo
	if code != 0 || json.Unmarshal([]byte(out), &v) != nil || v.Version == "" || v.Go == "" {
		t.Fatalf("version json: %d %q", code, out)
	}
}

func TestExitCodes(t *testing.T) {
	cases := []struct {
		args []string
		code int
		err  string
	}{
		{[]string{"model", "validate", healthy, broken}, 0, ""},
		{[]string{"model", "validate", "../../model/testdata/bad/types.yaml"}, 2, "types.yaml:7:15: services[0].replicas: expected integer"},
		{[]string{"model", "validate", "no-such.yaml"}, 2, "no-such.yaml: no such file"},
		{[]string{"model", "validate"}, 2, "requires at least 1 arg"},
		{[]string{"model", "bogus"}, 2, `unknown command "bogus"`},
		{[]string{"bogus"}, 2, `unknown command "bogus"`},
		{[]string{"-o", "xml", "version"}, 2, `unknown output format "xml"`},
		{[]string{"--fail-on", "fatal", "version"}, 2, `unknown --fail-on level`},
		{[]string{"model", "show", "--from", "helm", healthy}, 2, `unknown input format "helm"`},
		{[]string{"model", "diagram", "--format", "png", healthy}, 2, `unknown diagram format "png"`},
		{[]string{"model", "show", "--nope", healthy}, 2, "unknown flag: --nope"},
		{[]string{"model", "show", "../../docs"}, 2, "no model, compose file or Kubernetes manifest"},
	}
	for _, c := range cases {
		code, _, errOut := cli(t, c.args...)
		if code != c.code || !strings.Contains(errOut, c.err) {
			t.Errorf("%v: exit %d, stderr %q; want exit %d containing %q", c.args, code, errOut, c.code, c.err)
		}
	}
}

func TestValidateJSON(t *testing.T) {
	code, out, _ := cli(t, "-o", "json", "model", "validate", "../../model/testdata/bad/references.yaml", healthy)
	var res []validateResult
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if code != 2 || len(res) != 2 || res[0].Valid || len(res[0].Problems) != 5 || !res[1].Valid || res[1].Problems == nil {
		t.Fatalf("exit %d, %+v", code, res)
	}
	if p := res[0].Problems[0]; p.Line != 6 || p.Field != "services[1].name" {
		t.Errorf("first problem %+v", p)
	}
}

// TestImportJSONStableFields checks the documented JSON field names of the model output.
func TestImportJSONStableFields(t *testing.T) {
	code, out, errOut := cli(t, "-o", "json", "model", "import", broken)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var doc struct {
		Services []struct {
			Name     string `json:"name"`
			Replicas int    `json:"replicas"`
		} `json:"services"`
		Datastores []struct{ Name string } `json:"datastores"`
		Brokers    []struct{ Name string } `json:"brokers"`
		Edges      []struct {
			From, To, Mode, Protocol string
		} `json:"edges"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Services) != 8 || doc.Services[1].Name != "order" || doc.Services[1].Replicas != 1 ||
		len(doc.Datastores) != 2 || doc.Brokers[0].Name != "bus" || len(doc.Edges) != 12 {
		t.Fatalf("unexpected: %+v", doc)
	}
	for _, e := range doc.Edges {
		if e.From == "" || e.To == "" || (e.Mode != "sync" && e.Mode != "async") {
			t.Errorf("edge %+v", e)
		}
	}
}

// TestImportRoundTrip: what import prints is a valid model equal to its input.
func TestImportRoundTrip(t *testing.T) {
	for _, f := range []string{healthy, broken} {
		code, out, errOut := cli(t, "model", "import", f)
		if code != 0 {
			t.Fatalf("%s: exit %d %s", f, code, errOut)
		}
		if !strings.Contains(out, "# from "+f+":") {
			t.Errorf("%s: no source comments", f)
		}
		again, err := model.Load("roundtrip.yaml", []byte(out))
		if err != nil {
			t.Fatalf("%s: re-load: %v", f, err)
		}
		orig, _ := model.LoadFile(f)
		a, _ := json.Marshal(orig)
		b, _ := json.Marshal(again)
		if !bytes.Equal(a, b) {
			t.Errorf("%s: round trip changed the model:\n%s\n%s", f, a, b)
		}
	}
}

func TestShow(t *testing.T) {
	code, out, _ := cli(t, "model", "show", broken)
	for _, want := range []string{
		"System legacy-shop: 8 services, 2 datastores, 1 broker, 1 external; 16 edges (14 sync, 2 async)",
		"inventory → order → pricing → inventory",
		"longest sync chain 5: web → order → pricing → inventory → warehouse → supplier",
		"same sync call tree as entrypoint checkout",
	} {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("show lacks %q (exit %d):\n%s", want, code, out)
		}
	}
	code, out, _ = cli(t, "-o", "json", "model", "show", healthy)
	var sum model.Summary
	if code != 0 || json.Unmarshal([]byte(out), &sum) != nil || len(sum.Entrypoints) != 2 || sum.Entrypoints[0].Tree == nil {
		t.Fatalf("show json: %d %s", code, out)
	}
}

func TestSchemaCommand(t *testing.T) {
	code, out, _ := cli(t, "model", "schema")
	var v map[string]any
	if code != 0 || json.Unmarshal([]byte(out), &v) != nil || v["$id"] != model.SchemaID {
		t.Fatalf("schema: %d", code)
	}
}

// TestDiagramRendersWithGraphviz feeds the DOT output to Graphviz when it is installed, so a
// syntax slip in the writer fails here rather than in a user's pipeline.
func TestDiagramRendersWithGraphviz(t *testing.T) {
	dot, err := exec.LookPath("dot")
	if err != nil {
		if os.Getenv("FAULTLINE_REQUIRE_SERVICES") == "1" {
			t.Fatal("graphviz (dot) is required in CI; .ci/run installs it")
		}
		t.Skip("graphviz not installed")
	}
	for _, f := range []string{healthy, broken} {
		code, out, _ := cli(t, "model", "diagram", "--format", "dot", f)
		if code != 0 {
			t.Fatalf("exit %d", code)
		}
		svg := filepath.Join(t.TempDir(), "d.svg")
		cmd := exec.Command(dot, "-Tsvg", "-o", svg)
		cmd.Stdin = strings.NewReader(out)
		if msg, err := cmd.CombinedOutput(); err != nil || len(msg) > 0 {
			t.Errorf("%s: dot: %v %s", f, err, msg)
		}
	}
	code, out, _ := cli(t, "model", "diagram", healthy)
	if code != 0 || !strings.HasPrefix(out, "flowchart LR") {
		t.Errorf("mermaid: %d %q", code, out)
	}
}

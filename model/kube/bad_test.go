package kube

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/faultline-dev/faultline/model"
)

// wantProblem is a problem a bad input must produce: the file (base name), line, field and a
// piece of the message.
type wantProblem struct {
	file  string
	line  int
	field string
	msg   string
}

func problemsOf(t *testing.T, err error) model.Problems {
	t.Helper()
	var ps model.Problems
	if !errors.As(err, &ps) {
		t.Fatalf("error %v (%T) is not model.Problems", err, err)
	}
	for _, p := range ps {
		if p.Message == "" {
			t.Errorf("problem without a message: %+v", p)
		}
	}
	return ps
}

func hasProblem(ps model.Problems, w wantProblem) bool {
	for _, p := range ps {
		if (w.file == "" || filepath.Base(p.File) == w.file) && (w.line == 0 || p.Line == w.line) && p.Field == w.field && strings.Contains(p.Message, w.msg) {
			return true
		}
	}
	return false
}

const goodDeployment = `apiVersion: apps/v1
kind: Deployment
metadata: {name: ok}
spec:
  template:
    metadata: {labels: {app: ok}}
    spec: {containers: [{name: ok, image: ok}]}
`

func TestBadInput(t *testing.T) {
	cases := []struct {
		name  string
		files map[string]string
		want  []wantProblem
	}{
		{
			name:  "broken yaml",
			files: map[string]string{"a.yaml": "apiVersion: v1\nkind: Service\nmetadata:\n  name: [x\n  labels: {}\n"},
			want:  []wantProblem{{file: "a.yaml", msg: "invalid YAML: did not find expected ',' or ']'"}},
		},
		{
			name: "replicas not a number",
			files: map[string]string{"a.yaml": `apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: three
  template:
    spec: {containers: [{name: web, image: web}]}
`},
			want: []wantProblem{{file: "a.yaml", line: 5, field: "spec.replicas", msg: `Deployment web: expected an integer, got string "three"`}},
		},
		{
			name: "negative replicas, env a mapping, probes fine",
			files: map[string]string{"a.yaml": `apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db}
spec:
  replicas: -2
  template:
    spec:
      containers:
      - name: db
        image: postgres
        env: {A: b}
`},
			want: []wantProblem{
				{file: "a.yaml", line: 5, field: "spec.replicas", msg: "must not be negative"},
				{file: "a.yaml", line: 11, field: "spec.template.spec.containers[0].env", msg: "expected a list, got a mapping"},
			},
		},
		{
			name:  "containers not a list",
			files: map[string]string{"a.yaml": "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers: nginx\n"},
			want:  []wantProblem{{file: "a.yaml", line: 5, field: "spec.containers", msg: "expected a list"}},
		},
		{
			name:  "no pod template",
			files: map[string]string{"a.yaml": "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\nspec:\n  replicas: 2\n"},
			want:  []wantProblem{{file: "a.yaml", line: 5, field: "spec.template", msg: "has no pod template"}},
		},
		{
			name:  "no name",
			files: map[string]string{"a.yaml": "apiVersion: apps/v1\nkind: Deployment\nmetadata: {labels: {a: b}}\nspec:\n  template:\n    spec: {containers: [{name: a, image: a}]}\n"},
			want:  []wantProblem{{file: "a.yaml", line: 3, field: "metadata", msg: "metadata.name is missing"}},
		},
		{
			name: "bad duration in a DestinationRule",
			files: map[string]string{"a.yaml": goodDeployment + `---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: ok}
spec:
  host: ok
  trafficPolicy:
    outlierDetection:
      interval: 5 seconds
`},
			want: []wantProblem{{file: "a.yaml", line: 16, field: "spec.trafficPolicy.outlierDetection.interval", msg: `DestinationRule ok: invalid duration "5 seconds"`}},
		},
		{
			name:  "error inside a List item",
			files: map[string]string{"a.yaml": "apiVersion: v1\nkind: List\nitems:\n- apiVersion: apps/v1\n  kind: Deployment\n  metadata: {name: x}\n  spec:\n    replicas: {}\n    template: {spec: {containers: [{name: x, image: x}]}}\n"},
			want:  []wantProblem{{file: "a.yaml", line: 8, field: "items[0].spec.replicas", msg: "expected an integer, got a mapping"}},
		},
		{
			name:  "helm template",
			files: map[string]string{"deployment.yaml": "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {{ include \"app.fullname\" . }}\nspec:\n  replicas: {{ .Values.replicaCount }}\n"},
			want:  []wantProblem{{file: "deployment.yaml", line: 4, msg: "looks like a Helm template"}},
		},
		{
			name:  "helm template that parses as YAML",
			files: map[string]string{"svc.yaml": "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\n  labels:\n    chart: \"{{ .Chart.Name }}\"\n"},
			want:  []wantProblem{{file: "svc.yaml", line: 6, msg: "render it with `helm template` first"}},
		},
		{
			name:  "binary garbage",
			files: map[string]string{"blob.yaml": "apiVersion: v1\nkind: Service\n\x00\x01\x02garbage"},
			want:  []wantProblem{{file: "blob.yaml", line: 3, msg: "binary data"}},
		},
		{
			name:  "invalid utf-8",
			files: map[string]string{"latin1.yaml": "apiVersion: v1\nkind: ConfigMap\ndata: {a: caf\xe9}\n"},
			want:  []wantProblem{{file: "latin1.yaml", line: 3, msg: "invalid UTF-8"}},
		},
		{
			name:  "a faultline model",
			files: map[string]string{"model.yaml": "apiVersion: faultline/v1\nkind: System\nmetadata: {name: x}\n"},
			want:  []wantProblem{{file: "model.yaml", line: 1, msg: "this is a faultline model"}},
		},
		{
			name:  "nothing but comments",
			files: map[string]string{"empty.yaml": "# nothing here\n---\n"},
			want:  []wantProblem{{msg: "no Kubernetes objects found"}},
		},
		{
			name: "problems in several files are reported together",
			files: map[string]string{
				"a.yaml": "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: a}\nspec:\n  replicas: x\n  template: {spec: {containers: [{name: a, image: a}]}}\n",
				"b.yaml": "kind: [\n",
				"c.yaml": "apiVersion: policy/v1\nkind: PodDisruptionBudget\nmetadata: {name: p}\nspec:\n  minAvailable: [1]\n",
			},
			want: []wantProblem{
				{file: "a.yaml", line: 5, field: "spec.replicas", msg: "expected an integer"},
				{file: "b.yaml", msg: "invalid YAML"},
				{file: "c.yaml", line: 5, field: "spec.minAvailable", msg: "expected an integer or a percentage"},
			},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := writeFiles(t, c.files)
			sys, _, err := Import(context.Background(), []string{dir}, Options{})
			if err == nil {
				t.Fatalf("no error; system %+v", sys)
			}
			if sys != nil {
				t.Errorf("a system came back with the error")
			}
			ps := problemsOf(t, err)
			for _, w := range c.want {
				if !hasProblem(ps, w) {
					t.Errorf("missing problem %+v; got:\n%v", w, ps)
				}
			}
			for _, p := range ps {
				if p.File == "" && !strings.Contains(p.Message, "no Kubernetes objects") {
					t.Errorf("problem without a file: %+v", p)
				}
			}
		})
	}
}

func TestDocumentWithoutKindIsSkippedWithAWarning(t *testing.T) {
	dir := writeFiles(t, map[string]string{"a.yaml": goodDeployment + "---\nname: chart\nversion: 1.0.0\n---\n- just\n- a list\n"})
	sys, _, err := Import(context.Background(), []string{dir}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, w := range sys.Warnings {
		got = append(got, filepath.Base(w.File)+":"+strconv.Itoa(w.Line)+": "+w.Message)
	}
	all := strings.Join(got, "\n")
	for _, want := range []string{"a.yaml:9: document has no apiVersion and kind", "a.yaml:12: document is a list, not a Kubernetes object"} {
		if !strings.Contains(all, want) {
			t.Errorf("warnings lack %q:\n%s", want, all)
		}
	}
}

func TestInputFiles(t *testing.T) {
	t.Run("directory without manifests", func(t *testing.T) {
		dir := writeFiles(t, map[string]string{"README.md": "# docs\n", "notes.txt": "x"})
		_, _, err := Import(context.Background(), []string{dir}, Options{})
		ps := problemsOf(t, err)
		if len(ps) != 1 || ps[0].File != dir || !strings.Contains(ps[0].Message, "directory holds no files") {
			t.Errorf("problems = %v", ps)
		}
	})
	t.Run("missing file", func(t *testing.T) {
		_, _, err := Import(context.Background(), []string{"testdata/nope.yaml"}, Options{})
		ps := problemsOf(t, err)
		if len(ps) != 1 || ps[0].File != "testdata/nope.yaml" || !strings.Contains(ps[0].Message, "no such file") {
			t.Errorf("problems = %v", ps)
		}
	})
	t.Run("no paths", func(t *testing.T) {
		_, _, err := Import(context.Background(), nil, Options{})
		problemsOf(t, err)
	})
	t.Run("20 MB file", func(t *testing.T) {
		dir := t.TempDir()
		p := filepath.Join(dir, "huge.yaml")
		f, err := os.Create(p)
		if err != nil {
			t.Fatal(err)
		}
		line := []byte("# " + strings.Repeat("x", 1021) + "\n")
		for i := 0; i < 20*1024; i++ {
			if _, err := f.Write(line); err != nil {
				t.Fatal(err)
			}
		}
		f.Close()
		start := time.Now()
		_, _, err = Import(context.Background(), []string{p}, Options{})
		ps := problemsOf(t, err)
		if len(ps) != 1 || ps[0].File != p || !strings.Contains(ps[0].Message, "larger than the") {
			t.Errorf("problems = %v", ps)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("refusing a large file took %v", d)
		}
	})
}

func TestAliasBombIsRefused(t *testing.T) {
	cases := map[string]string{
		// Nine levels of ten aliases each: a billion env entries if followed naively.
		"laughs": func() string {
			var b strings.Builder
			b.WriteString("apiVersion: v1\nkind: Pod\nmetadata: {name: bomb}\nx0: &e0 {name: A, value: \"db:5432\"}\n")
			for i := 1; i <= 9; i++ {
				b.WriteString("x" + strconv.Itoa(i) + ": &e" + strconv.Itoa(i) + " [" + strings.TrimSuffix(strings.Repeat("*e"+strconv.Itoa(i-1)+", ", 10), ", ") + "]\n")
			}
			b.WriteString("spec: {containers: [{name: c, image: c, env: *e9}]}\n")
			return b.String()
		}(),
		// Wide and flat: 100k containers aliasing one whose env aliases 100k entries.
		"wide": func() string {
			var b strings.Builder
			b.WriteString("apiVersion: v1\nkind: Pod\nmetadata: {name: wide}\nenv: &env [&v {name: A, value: \"db:5432\"}" + strings.Repeat(", *v", 100_000) + "]\n")
			b.WriteString("spec:\n  containers: [&c {name: c, image: c, env: *env}" + strings.Repeat(", *c", 100_000) + "]\n")
			return b.String()
		}(),
		// An anchor whose value refers to itself.
		"cycle": "apiVersion: v1\nkind: Pod\nmetadata: {name: loop}\nspec: &s {containers: [{name: c, image: c}], more: *s}\n",
	}
	for name, body := range cases {
		t.Run(name, func(t *testing.T) {
			dir := writeFiles(t, map[string]string{"bomb.yaml": body})
			start := time.Now()
			_, _, err := Import(context.Background(), []string{dir}, Options{})
			if d := time.Since(start); d > 3*time.Second {
				t.Errorf("import took %v", d)
			}
			ps := problemsOf(t, err)
			if !hasProblem(ps, wantProblem{file: "bomb.yaml", msg: "refusing to read it"}) && !hasProblem(ps, wantProblem{file: "bomb.yaml", msg: "invalid YAML"}) {
				t.Errorf("problems = %v", ps)
			}
		})
	}
}

func TestRenderedTemplatesInConfigMapsAreNotHelm(t *testing.T) {
	cm := `apiVersion: v1
kind: ConfigMap
metadata: {name: alertmanager-templates}
data:
  slack.tmpl: |
    {{ define "slack.title" }}{{- range .Alerts }}{{ .Labels.alertname }}{{- end }}{{ end }}
---
` + goodDeployment
	sys, _ := mustImport(t, map[string]string{"a.yaml": cm}, Options{})
	if len(sys.Services) != 1 {
		t.Errorf("services = %d", len(sys.Services))
	}
}

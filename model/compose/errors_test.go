package compose

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/faultline-dev/faultline/model"
)

// problemsOf imports files and returns the problems, failing the test when the error is anything
// but model.Problems or names no file.
func problemsOf(t *testing.T, files []string, opts Options) model.Problems {
	t.Helper()
	if opts.Env == nil {
		opts.Env = map[string]string{}
	}
	sys, err := Import(context.Background(), files, opts)
	if err == nil {
		t.Fatalf("want an error, got a system with %d services", len(sys.Services))
	}
	var ps model.Problems
	if !errors.As(err, &ps) {
		t.Fatalf("error %T %v is not model.Problems", err, err)
	}
	if len(ps) == 0 {
		t.Fatal("empty Problems")
	}
	for _, p := range ps {
		if p.File == "" {
			t.Errorf("problem without a file: %v", p)
		}
	}
	return ps
}

func TestImportBadInput(t *testing.T) {
	cases := []struct {
		name    string
		content string
		line    int    // 0: any line, or none
		field   string // "" : not checked
		message string // substring of the message
	}{
		{"broken YAML", "services:\n  web:\n    image: nginx\n    ports: [ 1, 2\n", 3, "", "invalid YAML"},
		{"tab indentation", "services:\n\tweb:\n", 2, "", "invalid YAML"},
		{"wrong type", "services:\n  web:\n    image: nginx\n    deploy:\n      replicas: three\n", 5, "services.web.deploy.replicas", `expected an integer, got "three"`},
		{"wrong type from schema", "services:\n  web:\n    image: nginx\n    environment: 5\n", 4, "services.web.environment", "must be a mapping"},
		{"unknown top-level field", "services:\n  web:\n    image: nginx\nvolumez: {}\n", 4, "volumez", `unknown top-level attribute "volumez"; did you mean "volumes"?`},
		{"unknown service field", "services:\n  web:\n    image: nginx\n    deploy:\n      replica: 2\n", 5, "services.web.deploy.replica", `did you mean "replicas"?`},
		{"misspelt service attribute", "services:\n  web:\n    imag: nginx\n", 3, "services.web.imag", `unknown attribute "imag"; did you mean "image"?`},
		{"misspelt services", "servces:\n  web:\n    image: nginx\n", 1, "servces", `did you mean "services"?`},
		{"not compose: kubernetes", "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\n", 1, "apiVersion", "not a compose file"},
		{"not compose: no services", "name: x\nx-note: hello\n", 1, "services", "does not look like a compose file"},
		{"not compose: a list", "- a\n- b\n", 1, "", "expected a mapping"},
		{"empty file", "", 1, "", "empty file"},
		{"only comments", "# nothing here\n", 1, "", "empty file"},
		{"duplicate key", "services:\n  web:\n    image: nginx\n    image: redis\n", 4, "", `duplicate key "image"`},
		{"undefined dependency", "services:\n  web:\n    image: nginx\n    depends_on: [db]\n", 4, "services.web.depends_on", `undefined service "db"`},
		{"no image", "services:\n  web:\n    restart: always\n", 2, "", "neither an image nor a build"},
		{"required variable", "services:\n  web:\n    image: nginx\n    environment:\n      KEY: ${KEY:?set KEY}\n", 5, "services.web.environment.KEY", "required variable KEY"},
		{"bad interpolation", "services:\n  web:\n    image: nginx\n    environment:\n      A: ${B\n", 5, "services.web.environment.A", "invalid interpolation"},
		{"bad extends", "services:\n  web:\n    extends: base\n", 3, "services.web.extends", `"base" not found`},
		{"missing env_file", "services:\n  web:\n    image: nginx\n    env_file: nope.env\n", 4, "", "nope.env not found"},
		{"device env_file", "services:\n  web:\n    image: nginx\n    env_file: /dev/zero\n", 4, "services.web.env_file", "not a regular file"},
		{"undefined network", "services:\n  web:\n    image: nginx\n    networks: [back]\n", 4, "services.web.networks", "undefined network"},
		{"value compose cannot decode", "services:\n  web:\n    image: nginx\n    deploy:\n      resources:\n        limits:\n          cpus: abc\n", 7, "services.web.deploy.resources.limits.cpus", `expected a number, got "abc"`},
		{"conflicting attributes", "services:\n  web:\n    image: nginx\n    network_mode: host\n    networks: [default]\n", 2, "", "mutually exclusive"},
		{"empty service name", "services:\n  \"\":\n    image: nginx\n", 2, "services", "must not be empty"},
		{"extends cycle", "services:\n  web:\n    image: nginx\n    extends: web\n", 4, "services.web.extends", "Circular reference: web in"},
		{"dependency cycle", "services:\n  web:\n    image: nginx\n    depends_on: [web]\n", 4, "services.web.depends_on", "dependency cycle"},
		{"bad port", "services:\n  web:\n    image: nginx\n    ports: [\"99999:80\"]\n", 4, "", "Invalid hostPort: 99999"},
		{"non-string key", "services:\n  web:\n    image: nginx\n    environment:\n      [a]: b\n", 5, "", "plain string"},
		{"alias bomb", aliasBomb(), 0, "", "more than"},
		{"alias to its own mapping", "services: &s\n  web:\n    <<: *s\n    image: x\n", 0, "", ""},
		{"merge of itself", "x: &a\n  <<: *a\nservices:\n  web:\n    <<: *a\n", 0, "", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := writeFile(t, "compose.yaml", c.content)
			ps := problemsOf(t, []string{p}, Options{})
			got := ps[0]
			if got.File != p {
				t.Errorf("file = %q, want %q", got.File, p)
			}
			if c.line > 0 && got.Line != c.line {
				t.Errorf("line = %d, want %d (%v)", got.Line, c.line, got)
			}
			if got.Line <= 0 {
				t.Errorf("no line: %v", got)
			}
			if c.field != "" && got.Field != c.field {
				t.Errorf("field = %q, want %q (%v)", got.Field, c.field, got)
			}
			if !strings.Contains(got.Message, c.message) {
				t.Errorf("message = %q, want it to contain %q", got.Message, c.message)
			}
		})
	}
}

// aliasBomb is a "billion laughs" document: a few lines whose aliases expand to billions of nodes.
func aliasBomb() string {
	var b strings.Builder
	b.WriteString("x-a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n")
	prev := "a"
	for _, n := range []string{"b", "c", "d", "e", "f", "g", "h", "i"} {
		b.WriteString("x-" + n + ": &" + n + " [")
		for i := 0; i < 9; i++ {
			if i > 0 {
				b.WriteString(",")
			}
			b.WriteString("*" + prev)
		}
		b.WriteString("]\n")
		prev = n
	}
	b.WriteString("services:\n  web:\n    image: nginx\n")
	return b.String()
}

func TestImportFileProblems(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "nope.yaml")
	ps := problemsOf(t, []string{missing}, Options{})
	if ps[0].File != missing || !strings.Contains(ps[0].Message, "no such file") {
		t.Errorf("missing file: %v", ps)
	}

	binary := filepath.Join(dir, "garbage.yaml")
	os.WriteFile(binary, []byte("services:\n\x00\x01\x02\xff"), 0o644)
	ps = problemsOf(t, []string{binary}, Options{})
	if ps[0].File != binary || ps[0].Line != 2 || !strings.Contains(ps[0].Message, "binary") {
		t.Errorf("binary file: %v", ps)
	}

	big := filepath.Join(dir, "big.yaml")
	f, err := os.Create(big)
	if err != nil {
		t.Fatal(err)
	}
	line := []byte("# " + strings.Repeat("x", 1021) + "\n")
	for written := 0; written < 20<<20; written += len(line) {
		f.Write(line)
	}
	f.Close()
	ps = problemsOf(t, []string{big}, Options{})
	if ps[0].File != big || !strings.Contains(ps[0].Message, "larger than") {
		t.Errorf("20 MB file: %v", ps)
	}

	ps = problemsOf(t, []string{dir}, Options{})
	if !strings.Contains(ps[0].Message, "directory") {
		t.Errorf("directory: %v", ps)
	}

	// Problems in several files come back together.
	good := writeFile(t, "compose.yaml", "services:\n  web:\n    image: nginx\n")
	ps = problemsOf(t, []string{good, missing, binary}, Options{})
	if len(ps) != 2 || ps[0].File != missing || ps[1].File != binary {
		t.Errorf("several files: %v", ps)
	}

	if _, err := Import(context.Background(), nil, Options{}); err == nil {
		t.Error("no files: want an error")
	}
}

func TestImportOverrideProblemNamesTheOverride(t *testing.T) {
	dir := t.TempDir()
	base := filepath.Join(dir, "compose.yaml")
	over := filepath.Join(dir, "compose.override.yaml")
	os.WriteFile(base, []byte("services:\n  web:\n    image: nginx\n"), 0o644)
	os.WriteFile(over, []byte("services:\n  web:\n    deploy:\n      replicas: many\n"), 0o644)
	ps := problemsOf(t, []string{base, over}, Options{})
	if ps[0].File != over || ps[0].Line != 4 || ps[0].Field != "services.web.deploy.replicas" {
		t.Errorf("override problem = %v, want %s:4", ps[0], over)
	}
	os.WriteFile(over, []byte("services:\n  web:\n    deploy:\n      replicas: 2\n    bogus: 1\n"), 0o644)
	ps = problemsOf(t, []string{base, over}, Options{})
	if ps[0].File != over || ps[0].Line != 5 || !strings.Contains(ps[0].Message, `unknown attribute "bogus"`) {
		t.Errorf("override schema problem = %v, want %s:5", ps[0], over)
	}
}

func TestImportBadExtendsFile(t *testing.T) {
	dir := t.TempDir()
	compose := filepath.Join(dir, "compose.yaml")
	os.WriteFile(compose, []byte("services:\n  web:\n    extends:\n      file: notes.txt\n      service: base\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("just some notes\n"), 0o644)
	ps := problemsOf(t, []string{compose}, Options{})
	if ps[0].File != compose || ps[0].Line != 4 || ps[0].Field != "services.web.extends.file" || !strings.Contains(ps[0].Message, "expected a mapping") {
		t.Errorf("problem = %v, want it at the extends file: line", ps[0])
	}
}

func TestImportBadDotEnv(t *testing.T) {
	dir := t.TempDir()
	compose := filepath.Join(dir, "compose.yaml")
	os.WriteFile(compose, []byte("services:\n  web:\n    image: nginx\n"), 0o644)
	os.WriteFile(filepath.Join(dir, ".env"), []byte("GOOD=1\nBAD LINE WITHOUT EQUALS\n"), 0o644)
	sys, err := Import(context.Background(), []string{compose}, Options{})
	if err == nil {
		t.Fatalf("want an error for the .env file, got %+v", sys.Warnings)
	}
	var ps model.Problems
	if !errors.As(err, &ps) || ps[0].File != filepath.Join(dir, ".env") {
		t.Errorf("err = %v, want a problem in .env", err)
	}
}

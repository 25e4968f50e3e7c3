package yamlx

import (
	"testing"

	"go.yaml.in/yaml/v3"
)

func parse(t *testing.T, s string) *yaml.Node {
	t.Helper()
	var n yaml.Node
	if err := yaml.Unmarshal([]byte(s), &n); err != nil {
		t.Fatal(err)
	}
	return &n
}

// TestSelfReferenceIsRefused: an alias or merge inside its own anchor makes a cyclic tree; every
// walk must stop on it instead of recursing until the stack overflows.
func TestSelfReferenceIsRefused(t *testing.T) {
	for _, doc := range []string{"m: &a {name: x, <<: *a}\n", "s: &s [a, *s]\n", "m: &a {k: *a}\n"} {
		n := parse(t, doc)
		if size, limit := ExpandedSize(n); size <= limit {
			t.Errorf("%q: ExpandedSize %d within limit %d", doc, size, limit)
		}
		if _, issues := ToValue(n); len(issues) == 0 {
			t.Errorf("%q: ToValue reported nothing", doc)
		}
		Find(n, []string{"m", "name"})
		Get(Get(n, "m"), "missing")
	}
}

func TestToValueMergesAndDuplicates(t *testing.T) {
	v, issues := ToValue(parse(t, "base: &b {a: 1, b: 2}\nx:\n  <<: *b\n  b: 3\n"))
	if len(issues) != 0 {
		t.Fatal(issues)
	}
	x := v.(map[string]any)["x"].(map[string]any)
	if x["a"].(interface{ String() string }).String() != "1" || x["b"].(interface{ String() string }).String() != "3" {
		t.Errorf("merge: %v", x)
	}
	_, issues = ToValue(parse(t, "a: 1\na: 2\n"))
	if len(issues) != 1 || issues[0].Line != 2 {
		t.Errorf("duplicate key: %+v", issues)
	}
}

func TestFindLines(t *testing.T) {
	n := parse(t, "services:\n  - name: a\n    replicas: 2\n")
	v, k := Find(n, []string{"services", "0", "replicas"})
	if v.Line != 3 || k == nil || k.Value != "replicas" {
		t.Errorf("Find: %+v %+v", v, k)
	}
	if FormatPath([]string{"services", "0", "replicas"}) != "services[0].replicas" {
		t.Error("FormatPath")
	}
}

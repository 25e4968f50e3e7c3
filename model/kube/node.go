package kube

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/faultline-dev/faultline/internal/yamlx"
	"github.com/faultline-dev/faultline/model"
)

// doc is the per-document state shared by the nodes read from it: where problems go, which
// object they belong to, and which nodes were already reported.
type doc struct {
	file     string
	what     string // "Deployment web", prefixed to type errors
	probs    *model.Problems
	reported map[*yaml.Node]bool
}

// node is a YAML value and the field path it was reached by (spec.template.spec.containers[0]).
// A missing value is a node with n == nil; every accessor treats it (and YAML null) as absent,
// and it keeps the line of the nearest value that is there, so a problem about it has a line.
type node struct {
	n    *yaml.Node
	path string
	d    *doc
	at   int
}

func resolve(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && i < 100; i++ {
		n = n.Alias
	}
	if n != nil && n.Kind == yaml.AliasNode {
		return nil
	}
	return n
}

func (v node) with(n *yaml.Node, path string) node {
	return node{n: resolve(n), path: path, d: v.d, at: v.line()}
}

// absent is the missing value at path under v.
func (v node) absent(path string) node { return node{path: path, d: v.d, at: v.line()} }

// present reports whether the value is written and not null.
func (v node) present() bool {
	return v.n != nil && !(v.n.Kind == yaml.ScalarNode && v.n.ShortTag() == "!!null")
}

func (v node) line() int {
	if v.n == nil {
		return v.at
	}
	return v.n.Line
}

func (v node) src() model.Source { return model.Source{File: v.d.file, Line: v.line()} }

func (v node) isMap() bool { return v.n != nil && v.n.Kind == yaml.MappingNode }

// fail records a problem at v. A node is reported once, however often it is read.
func (v node) fail(format string, args ...any) {
	if v.d == nil || v.d.probs == nil {
		return
	}
	if v.n != nil {
		if v.d.reported == nil {
			v.d.reported = map[*yaml.Node]bool{}
		}
		if v.d.reported[v.n] {
			return
		}
		v.d.reported[v.n] = true
	}
	msg := fmt.Sprintf(format, args...)
	if v.d.what != "" {
		msg = v.d.what + ": " + msg
	}
	*v.d.probs = append(*v.d.probs, model.Problem{File: v.d.file, Line: v.line(), Column: v.column(), Field: v.path, Message: msg})
}

func (v node) column() int {
	if v.n == nil {
		return 0
	}
	return v.n.Column
}

func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// get returns the value under key in a mapping. Reading a key of something that is not a mapping
// reports the mismatch once and yields an absent node.
func (v node) get(key string) node {
	p := joinPath(v.path, key)
	if !v.present() {
		return v.absent(p)
	}
	if v.n.Kind != yaml.MappingNode {
		v.fail("expected a mapping, got %s", yamlx.Describe(v.n))
		return v.absent(p)
	}
	return v.with(lookup(v.n, key), p)
}

// lookup finds key in mapping m; explicit keys win over merged (<<) ones, as in yaml.v3. Each
// merged mapping is searched once, so merge keys that refer back to their own mapping cannot make
// the search loop or multiply.
func lookup(m *yaml.Node, key string) *yaml.Node {
	seen := map[*yaml.Node]bool{}
	queue := []*yaml.Node{m}
	for len(queue) > 0 {
		cur := queue[0]
		queue = queue[1:]
		if seen[cur] {
			continue
		}
		seen[cur] = true
		for i := 0; i+1 < len(cur.Content); i += 2 {
			k := cur.Content[i]
			if k.Kind == yaml.ScalarNode && k.Value == key && k.Tag != "!!merge" {
				return cur.Content[i+1]
			}
		}
		queue = append(queue, mergeSources(cur)...)
	}
	return nil
}

// mergeSources returns the mappings a mapping merges in with <<, in order.
func mergeSources(m *yaml.Node) []*yaml.Node {
	var out []*yaml.Node
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Tag != "!!merge" {
			continue
		}
		src := resolve(m.Content[i+1])
		srcs := []*yaml.Node{src}
		if src != nil && src.Kind == yaml.SequenceNode {
			srcs = src.Content
		}
		for _, s := range srcs {
			if s = resolve(s); s != nil && s.Kind == yaml.MappingNode {
				out = append(out, s)
			}
		}
	}
	return out
}

// str reads a scalar as text. Kubernetes wants strings in most of the fields the importer reads;
// a number or boolean is accepted as written, a mapping or list is a problem.
func (v node) str() string {
	if !v.present() {
		return ""
	}
	if v.n.Kind != yaml.ScalarNode {
		v.fail("expected a string, got %s", yamlx.Describe(v.n))
		return ""
	}
	return v.n.Value
}

// integer reads a whole number; ok is false when the value is absent or wrong (wrong is reported).
func (v node) integer() (int, bool) {
	if !v.present() {
		return 0, false
	}
	if v.n.Kind != yaml.ScalarNode || v.n.ShortTag() != "!!int" {
		v.fail("expected an integer, got %s", yamlx.Describe(v.n))
		return 0, false
	}
	var i int64
	if err := v.n.Decode(&i); err != nil || i > math.MaxInt32 || i < math.MinInt32 {
		v.fail("integer %s is out of range", clip(v.n.Value))
		return 0, false
	}
	return int(i), true
}

// count reads a non-negative integer.
func (v node) count() (int, bool) {
	i, ok := v.integer()
	if ok && i < 0 {
		v.fail("must not be negative, got %d", i)
		return 0, false
	}
	return i, ok
}

// intOrString reads a Kubernetes IntOrString (a count or a percentage) as text.
func (v node) intOrString() string {
	if !v.present() {
		return ""
	}
	if v.n.Kind != yaml.ScalarNode || v.n.ShortTag() != "!!int" && v.n.ShortTag() != "!!str" {
		v.fail("expected an integer or a percentage, got %s", yamlx.Describe(v.n))
		return ""
	}
	return v.n.Value
}

// duration reads an Istio duration ("5s", "1.5s", "100ms").
func (v node) duration() model.Duration {
	s := v.str()
	if s == "" {
		return 0
	}
	d, err := model.ParseDuration(s)
	if err != nil {
		v.fail("%s", err.Error())
		return 0
	}
	return d
}

// number reads an integer or a decimal.
func (v node) number() (float64, bool) {
	if !v.present() {
		return 0, false
	}
	if v.n.Kind != yaml.ScalarNode || v.n.ShortTag() != "!!int" && v.n.ShortTag() != "!!float" {
		v.fail("expected a number, got %s", yamlx.Describe(v.n))
		return 0, false
	}
	f, err := strconv.ParseFloat(strings.ReplaceAll(v.n.Value, "_", ""), 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		v.fail("expected a finite number, got %s", clip(v.n.Value))
		return 0, false
	}
	return f, true
}

// list returns the items of a sequence.
func (v node) list() []node {
	if !v.present() {
		return nil
	}
	if v.n.Kind != yaml.SequenceNode {
		v.fail("expected a list, got %s", yamlx.Describe(v.n))
		return nil
	}
	out := make([]node, 0, len(v.n.Content))
	for i, it := range v.n.Content {
		out = append(out, v.with(it, v.path+"["+strconv.Itoa(i)+"]"))
	}
	return out
}

// strings reads a list of strings.
func (v node) strings() []string {
	var out []string
	for _, it := range v.list() {
		if s := it.str(); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// pair is one entry of a mapping.
type pair struct {
	key string
	val node
}

// pairs returns the entries of a mapping in document order, merged (<<) entries after explicit
// ones; each merged mapping is read once.
func (v node) pairs() []pair {
	if !v.present() {
		return nil
	}
	if v.n.Kind != yaml.MappingNode {
		v.fail("expected a mapping, got %s", yamlx.Describe(v.n))
		return nil
	}
	var out []pair
	seenKey := map[string]bool{}
	seen := map[*yaml.Node]bool{}
	queue := []*yaml.Node{v.n}
	for len(queue) > 0 {
		m := queue[0]
		queue = queue[1:]
		if seen[m] {
			continue
		}
		seen[m] = true
		for i := 0; i+1 < len(m.Content); i += 2 {
			k := m.Content[i]
			if k.Tag == "!!merge" || k.Kind != yaml.ScalarNode || seenKey[k.Value] {
				continue
			}
			seenKey[k.Value] = true
			out = append(out, pair{key: k.Value, val: v.with(m.Content[i+1], joinPath(v.path, k.Value))})
		}
		queue = append(queue, mergeSources(m)...)
	}
	return out
}

// strMap reads a mapping of strings (labels, selectors, ConfigMap data).
func (v node) strMap() map[string]string {
	ps := v.pairs()
	if len(ps) == 0 {
		return nil
	}
	out := make(map[string]string, len(ps))
	for _, p := range ps {
		out[p.key] = p.val.str()
	}
	return out
}

// Package yamlx holds the YAML plumbing faultline's readers share: turning yaml.v3 errors into
// located problems, converting a node tree to JSON-compatible values (for schema validation) with
// duplicate-key and alias-bomb protection, and finding the node at a JSON pointer path.
package yamlx

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// MaxNodes bounds how many nodes a conversion visits, aliases expanded; it defeats
// "billion laughs" documents whose aliases multiply a small file into a huge tree.
const MaxNodes = 2_000_000

// Issue is a problem found in a YAML tree, at a line and column.
type Issue struct {
	Line, Column int
	Path         string
	Message      string
}

var lineRE = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)

// ErrorIssues converts an error from yaml.v3 into issues with line numbers where the error has them.
func ErrorIssues(err error) []Issue {
	var te *yaml.TypeError
	if errors.As(err, &te) {
		out := make([]Issue, 0, len(te.Errors))
		for _, e := range te.Errors {
			out = append(out, lineIssue(e))
		}
		return out
	}
	return []Issue{lineIssue(err.Error())}
}

func lineIssue(msg string) Issue {
	msg = strings.TrimPrefix(msg, "yaml: ")
	if m := lineRE.FindStringSubmatch(msg); m != nil {
		n, _ := strconv.Atoi(m[1])
		return Issue{Line: n, Message: m[2]}
	}
	return Issue{Message: msg}
}

// ToValue converts a node into the values encoding/json would produce (map[string]any, []any,
// string, json.Number, bool, nil), so a JSON Schema validator can check it. It reports duplicate
// keys, non-string keys and non-finite numbers as issues, and stops at MaxNodes.
func ToValue(n *yaml.Node) (any, []Issue) {
	c := &converter{}
	v := c.value(n, "")
	return v, c.issues
}

type converter struct {
	active  map[*yaml.Node]bool // mappings being converted: meeting one again means a cycle
	visited int
	issues  []Issue
	tooBig  bool
	depth   int
}

func (c *converter) add(n *yaml.Node, path, format string, args ...any) {
	c.issues = append(c.issues, Issue{Line: n.Line, Column: n.Column, Path: path, Message: fmt.Sprintf(format, args...)})
}

func (c *converter) value(n *yaml.Node, path string) any {
	if c.tooBig {
		return nil
	}
	c.visited++
	if c.visited > MaxNodes {
		c.tooBig = true
		c.add(n, path, "document expands to more than %d nodes (aliases?); refusing to read it", MaxNodes)
		return nil
	}
	c.depth++
	defer func() { c.depth-- }()
	if c.depth > 200 {
		c.tooBig = true
		c.add(n, path, "document is nested more than 200 levels deep")
		return nil
	}
	switch n.Kind {
	case yaml.DocumentNode:
		if len(n.Content) == 0 {
			return nil
		}
		return c.value(n.Content[0], path)
	case yaml.AliasNode:
		return c.value(n.Alias, path)
	case yaml.SequenceNode:
		out := make([]any, 0, len(n.Content))
		for i, item := range n.Content {
			out = append(out, c.value(item, fmt.Sprintf("%s[%d]", path, i)))
		}
		return out
	case yaml.MappingNode:
		out := make(map[string]any, len(n.Content)/2)
		if !c.enter(n, path) {
			return out
		}
		c.mapping(n, path, out, map[string]int{})
		delete(c.active, n)
		return out
	case yaml.ScalarNode:
		return c.scalar(n, path)
	}
	return nil
}

// mapping fills out with n's pairs, expanding YAML merge keys (<<) the way yaml.v3 does: explicit
// keys win over merged ones.
func (c *converter) mapping(n *yaml.Node, path string, out map[string]any, seen map[string]int) {
	var merges []*yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind == yaml.ScalarNode && k.Tag == "!!merge" {
			merges = append(merges, v)
			continue
		}
		if k.Kind != yaml.ScalarNode {
			c.add(k, path, "mapping key must be a plain string")
			continue
		}
		key := k.Value
		if line, dup := seen[key]; dup {
			c.add(k, join(path, key), "duplicate key %q (first defined at line %d)", key, line)
			continue
		}
		seen[key] = k.Line
		out[key] = c.value(v, join(path, key))
	}
	for _, m := range merges {
		for m.Kind == yaml.AliasNode {
			m = m.Alias
		}
		srcs := []*yaml.Node{m}
		if m.Kind == yaml.SequenceNode {
			srcs = m.Content
		}
		for _, s := range srcs {
			for s.Kind == yaml.AliasNode {
				s = s.Alias
			}
			if s.Kind != yaml.MappingNode {
				c.add(s, path, "merge key (<<) needs a mapping")
				continue
			}
			tmp := map[string]any{}
			if !c.enter(s, path) {
				continue
			}
			c.mapping(s, path, tmp, map[string]int{})
			delete(c.active, s)
			for k, v := range tmp {
				if _, ok := out[k]; !ok {
					out[k] = v
				}
			}
		}
	}
}

// enter marks a mapping as being converted; it reports false (and an issue) when the mapping is
// already being converted, which only an alias or merge referring to its own anchor can cause.
func (c *converter) enter(n *yaml.Node, path string) bool {
	if c.active == nil {
		c.active = map[*yaml.Node]bool{}
	}
	if c.active[n] {
		c.tooBig = true
		c.add(n, path, "an alias or merge key refers to the mapping that contains it")
		return false
	}
	c.active[n] = true
	return true
}

func (c *converter) scalar(n *yaml.Node, path string) any {
	switch n.ShortTag() {
	case "!!null":
		return nil
	case "!!bool":
		var b bool
		if err := n.Decode(&b); err != nil {
			c.add(n, path, "invalid boolean %q", n.Value)
		}
		return b
	case "!!int":
		var i int64
		if err := n.Decode(&i); err != nil {
			var u uint64
			if err2 := n.Decode(&u); err2 != nil {
				c.add(n, path, "integer %s is out of range", n.Value)
				return nil
			}
			return json.Number(strconv.FormatUint(u, 10))
		}
		return json.Number(strconv.FormatInt(i, 10))
	case "!!float":
		var f float64
		if err := n.Decode(&f); err != nil || f != f || f > 1e308 || f < -1e308 {
			c.add(n, path, "number %s is not a finite number", n.Value)
			return nil
		}
		return json.Number(strconv.FormatFloat(f, 'g', -1, 64))
	}
	return n.Value
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// Find returns the value node at a JSON-pointer-like path of keys and indexes, and the key node of
// its last step when that step was a mapping key (nil otherwise). It returns the deepest node it
// reached when the path leaves the tree, so errors still get a line.
func Find(n *yaml.Node, path []string) (value, key *yaml.Node) {
	cur := n
	if cur.Kind == yaml.DocumentNode && len(cur.Content) > 0 {
		cur = cur.Content[0]
	}
	for _, step := range path {
		for cur.Kind == yaml.AliasNode {
			cur = cur.Alias
		}
		switch cur.Kind {
		case yaml.MappingNode:
			k, v := lookupKey(cur, step)
			if v == nil {
				return cur, key
			}
			cur, key = v, k
		case yaml.SequenceNode:
			i, err := strconv.Atoi(step)
			if err != nil || i < 0 || i >= len(cur.Content) {
				return cur, key
			}
			cur, key = cur.Content[i], nil
		default:
			return cur, key
		}
	}
	return cur, key
}

func lookupKey(m *yaml.Node, name string) (k, v *yaml.Node) {
	return lookupKeyDepth(m, name, 0)
}

// lookupKeyDepth follows merge keys at most 32 deep, so a merge that refers back to its own
// mapping cannot recurse forever.
func lookupKeyDepth(m *yaml.Node, name string, depth int) (k, v *yaml.Node) {
	if depth > 32 {
		return nil, nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == name && m.Content[i].Tag != "!!merge" {
			return m.Content[i], m.Content[i+1]
		}
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Tag == "!!merge" {
			src := m.Content[i+1]
			for src.Kind == yaml.AliasNode {
				src = src.Alias
			}
			if src.Kind == yaml.MappingNode {
				if k, v := lookupKeyDepth(src, name, depth+1); v != nil {
					return k, v
				}
			}
		}
	}
	return nil, nil
}

// KeyNode returns the key node for name in mapping m, or nil.
func KeyNode(m *yaml.Node, name string) *yaml.Node {
	k, _ := lookupKey(m, name)
	return k
}

// Get returns the value node for name in mapping m, or nil.
func Get(m *yaml.Node, name string) *yaml.Node {
	if m == nil {
		return nil
	}
	if m.Kind == yaml.DocumentNode && len(m.Content) > 0 {
		m = m.Content[0]
	}
	for m.Kind == yaml.AliasNode {
		m = m.Alias
	}
	if m.Kind != yaml.MappingNode {
		return nil
	}
	_, v := lookupKey(m, name)
	return v
}

// FormatPath renders a JSON pointer path as a field reference: services[2].policy.timeout.
func FormatPath(path []string) string {
	var b strings.Builder
	for _, s := range path {
		if _, err := strconv.Atoi(s); err == nil {
			b.WriteString("[" + s + "]")
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('.')
		}
		b.WriteString(s)
	}
	return b.String()
}

// ExpandedSize counts the nodes of a document with every alias expanded, stopping past the limit
// it returns: MaxNodes, or twice the document's own size for a large honest one. Every walk
// a reader makes is bounded by this count, so a "billion laughs" document, or an alias that
// refers to its own anchor, is refused before anything reads it.
func ExpandedSize(root *yaml.Node) (size, limit int) {
	distinct, aliases := 0, 0
	var count func(n *yaml.Node)
	count = func(n *yaml.Node) {
		distinct++
		if n.Kind == yaml.AliasNode {
			aliases++
		}
		for _, c := range n.Content {
			count(c)
		}
	}
	count(root)
	limit = max(MaxNodes, 2*distinct)
	if aliases == 0 {
		return distinct, limit
	}
	memo := map[*yaml.Node]int{}
	open := map[*yaml.Node]bool{}
	var walk func(n *yaml.Node) int
	walk = func(n *yaml.Node) int {
		if n == nil {
			return 0
		}
		if v, ok := memo[n]; ok {
			return v
		}
		if open[n] {
			return limit + 1 // an alias inside its own anchor
		}
		open[n] = true
		total := 1
		if n.Kind == yaml.AliasNode {
			total += walk(n.Alias)
		}
		for _, c := range n.Content {
			if total += walk(c); total > limit {
				total = limit + 1
				break
			}
		}
		delete(open, n)
		memo[n] = total
		return total
	}
	return walk(root), limit
}

// Describe names what a node holds for an error message: "a mapping", "a list", "null",
// `string "three"`, "integer 5". Long values are clipped.
func Describe(n *yaml.Node) string {
	if n == nil {
		return "nothing"
	}
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		v := n.Value
		if len(v) > 40 {
			v = v[:40] + "…"
		}
		switch tag := n.ShortTag(); tag {
		case "!!null":
			return "null"
		case "!!str":
			return "string " + strconv.Quote(v)
		default:
			if name, ok := tagNames[tag]; ok {
				return name + " " + v
			}
			return v
		}
	}
	return "something else"
}

var tagNames = map[string]string{"!!int": "integer", "!!float": "number", "!!bool": "boolean", "!!timestamp": "timestamp", "!!binary": "binary data"}

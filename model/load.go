package model

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"sort"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"
	"go.yaml.in/yaml/v3"
	"golang.org/x/text/language"
	"golang.org/x/text/message"

	"github.com/faultline-dev/faultline/internal/suggest"
	"github.com/faultline-dev/faultline/internal/yamlx"
)

// LoadFile reads, checks and validates a model file. Every problem found is returned at once as
// Problems, each with the file, line and field.
func LoadFile(path string) (*System, error) {
	data, err := ReadInput(path)
	if err != nil {
		return nil, err
	}
	return Load(path, data)
}

// Load parses a model document (YAML or JSON), checks it against the model's JSON Schema, decodes
// it, applies defaults and validates references between elements. file names the input in errors.
func Load(file string, data []byte) (*System, error) {
	doc, probs := parseDocument(file, data)
	if doc == nil {
		return nil, probs
	}
	sys, err := decode(file, doc)
	if err != nil && len(probs) == 0 {
		return nil, err
	}
	// With schema problems the decode is partial, but the reference checks still run on what was
	// read, so one run reports everything; a check repeating a schema problem's place is dropped.
	sys.ApplyDefaults()
	probs = mergeProblems(probs, Validate(sys))
	if len(probs) > 0 {
		return sys, probs
	}
	return sys, nil
}

func mergeProblems(schema, semantic Problems) Problems {
	taken := map[string]bool{}
	for _, p := range schema {
		taken[fmt.Sprintf("%s:%d:%s", p.File, p.Line, p.Field)] = true
	}
	out := schema
	for _, p := range semantic {
		if !taken[fmt.Sprintf("%s:%d:%s", p.File, p.Line, p.Field)] {
			out = append(out, p)
		}
	}
	sortProblems(out)
	return out
}

// IsModelDocument reports whether data looks like a faultline model (apiVersion faultline/v1),
// without validating it. Importers use it to tell models from compose files and manifests.
func IsModelDocument(data []byte) bool {
	var head struct {
		APIVersion string `yaml:"apiVersion"`
	}
	if err := yaml.Unmarshal(data, &head); err != nil {
		return bytes.Contains(data, []byte(APIVersion))
	}
	return head.APIVersion == APIVersion
}

func parseDocument(file string, data []byte) (*yaml.Node, Problems) {
	if p, ok := CheckText(file, data); !ok {
		return nil, Problems{p}
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, Problems{{File: file, Message: "empty document; expected a model with apiVersion: faultline/v1 and kind: System"}}
		}
		return nil, issuesToProblems(file, yamlx.ErrorIssues(err), "invalid YAML: ")
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		return nil, Problems{{File: file, Line: extra.Line, Message: "a second YAML document; a model file holds exactly one System"}}
	} else if !errors.Is(err, io.EOF) {
		return nil, issuesToProblems(file, yamlx.ErrorIssues(err), "invalid YAML: ")
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return nil, Problems{{File: file, Line: root.Line, Message: "expected a mapping with apiVersion, kind, metadata and services"}}
	}
	if yamlx.Get(root, "apiVersion") == nil {
		return nil, Problems{{File: file, Line: root.Line, Message: "no apiVersion: this is not a faultline model (apiVersion: faultline/v1); to read docker-compose files or Kubernetes manifests use `faultline model import`"}}
	}
	if n, limit := yamlx.ExpandedSize(&doc); n > limit {
		return nil, Problems{{File: file, Line: root.Line, Message: fmt.Sprintf("document expands to more than %d nodes through aliases (or an alias refers to itself); refusing to read it", limit)}}
	}
	value, issues := yamlx.ToValue(&doc)
	if len(issues) > 0 {
		return nil, issuesToProblems(file, issues, "")
	}
	return &doc, schemaProblems(file, &doc, value)
}

func issuesToProblems(file string, issues []yamlx.Issue, prefix string) Problems {
	out := make(Problems, 0, len(issues))
	for _, is := range issues {
		out = append(out, Problem{File: file, Line: is.Line, Column: is.Column, Field: is.Path, Message: prefix + is.Message})
	}
	return out
}

// schemaProblems validates the document against the JSON Schema and turns every leaf error into a
// problem located on the offending YAML node.
func schemaProblems(file string, doc *yaml.Node, value any) Problems {
	schema, err := compiledSchema()
	if err != nil {
		return Problems{{File: file, Message: err.Error()}}
	}
	err = schema.Validate(value)
	if err == nil {
		return nil
	}
	var ve *jsonschema.ValidationError
	if !errors.As(err, &ve) {
		return Problems{{File: file, Message: err.Error()}}
	}
	var probs Problems
	for _, leaf := range leaves(ve) {
		probs = append(probs, describeSchemaError(file, doc, leaf)...)
	}
	sortProblems(probs)
	return dedupe(probs)
}

func leaves(ve *jsonschema.ValidationError) []*jsonschema.ValidationError {
	if len(ve.Causes) == 0 {
		return []*jsonschema.ValidationError{ve}
	}
	var out []*jsonschema.ValidationError
	for _, c := range ve.Causes {
		out = append(out, leaves(c)...)
	}
	return out
}

var printer = message.NewPrinter(language.English)

func describeSchemaError(file string, doc *yaml.Node, ve *jsonschema.ValidationError) Problems {
	node, _ := yamlx.Find(doc, ve.InstanceLocation)
	at := func(n *yaml.Node, field, msg string) Problem {
		return Problem{File: file, Line: n.Line, Column: n.Column, Field: field, Message: msg}
	}
	field := yamlx.FormatPath(ve.InstanceLocation)
	switch k := ve.ErrorKind.(type) {
	case *kind.AdditionalProperties:
		var out Problems
		known := knownFields(ve.InstanceLocation)
		for _, name := range k.Properties {
			kn := yamlx.KeyNode(node, name)
			if kn == nil {
				kn = node
			}
			msg := fmt.Sprintf("unknown field %q%s", name, suggest.Hint(name, known))
			if len(known) > 0 && suggest.Closest(name, known) == "" {
				msg += "; expected one of " + strings.Join(known, ", ")
			}
			out = append(out, at(kn, joinField(field, name), msg))
		}
		return out
	case *kind.Required:
		var out Problems
		for _, name := range k.Missing {
			out = append(out, at(node, field, fmt.Sprintf("missing required field %q", name)))
		}
		return out
	case *kind.Type:
		if sub := schemaAt(ve.InstanceLocation); sub["pattern"] == durationPattern {
			return Problems{at(node, field, fmt.Sprintf("expected a duration such as 500ms or 2s, got %s", yamlx.Describe(node)))}
		}
		return Problems{at(node, field, fmt.Sprintf("expected %s, got %s", strings.Join(k.Want, " or "), yamlx.Describe(node)))}
	case *kind.Enum:
		want := make([]string, len(k.Want))
		for i, w := range k.Want {
			want[i] = fmt.Sprint(w)
		}
		msg := fmt.Sprintf("%q is not allowed; expected one of %s", fmt.Sprint(k.Got), strings.Join(want, ", "))
		if c := suggest.Closest(fmt.Sprint(k.Got), want); c != "" {
			msg += fmt.Sprintf(" (did you mean %q?)", c)
		}
		return Problems{at(node, field, msg)}
	case *kind.Pattern:
		if k.Want == durationPattern {
			return Problems{at(node, field, fmt.Sprintf("invalid duration %q; expected a number with a unit, such as 500ms, 2s or 1m30s", k.Got))}
		}
		return Problems{at(node, field, fmt.Sprintf("%q does not match %s", k.Got, k.Want))}
	case *kind.Minimum:
		return Problems{at(node, field, fmt.Sprintf("must be at least %s, got %s", ratString(k.Want), ratString(k.Got)))}
	case *kind.Maximum:
		return Problems{at(node, field, fmt.Sprintf("must be at most %s, got %s", ratString(k.Want), ratString(k.Got)))}
	case *kind.ExclusiveMinimum:
		return Problems{at(node, field, fmt.Sprintf("must be greater than %s, got %s", ratString(k.Want), ratString(k.Got)))}
	case *kind.MinLength:
		return Problems{at(node, field, "must not be empty")}
	}
	return Problems{at(node, field, ve.ErrorKind.LocalizedString(printer))}
}

func ratString(r *big.Rat) string {
	if r == nil {
		return "?"
	}
	if r.IsInt() {
		return r.Num().String()
	}
	f, _ := r.Float64()
	return fmt.Sprint(f)
}

func joinField(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

// knownFields lists the schema's property names for the object at an instance location.
func knownFields(loc []string) []string {
	props, _ := schemaAt(loc)["properties"].(map[string]any)
	names := make([]string, 0, len(props))
	for n := range props {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// schemaAt returns the (generated) schema of the value at an instance location, as plain JSON.
func schemaAt(loc []string) map[string]any {
	var schema map[string]any
	if err := json.Unmarshal(Schema(), &schema); err != nil {
		return nil
	}
	defs, _ := schema["$defs"].(map[string]any)
	cur := schema
	for _, step := range loc {
		cur = resolveRef(defs, cur)
		if props, ok := cur["properties"].(map[string]any); ok {
			if next, ok := props[step].(map[string]any); ok {
				cur = next
				continue
			}
		}
		if items, ok := cur["items"].(map[string]any); ok {
			cur = items
			continue
		}
		return nil
	}
	return resolveRef(defs, cur)
}

func resolveRef(defs, s map[string]any) map[string]any {
	for i := 0; i < 8; i++ {
		ref, ok := s["$ref"].(string)
		if !ok {
			return s
		}
		next, ok := defs[strings.TrimPrefix(ref, "#/$defs/")].(map[string]any)
		if !ok {
			return s
		}
		s = next
	}
	return s
}

func decode(file string, doc *yaml.Node) (*System, error) {
	var sys System
	err := doc.Decode(&sys)
	sys.Sources = []string{file}
	attachSources(file, doc.Content[0], &sys)
	if err != nil {
		return &sys, issuesToProblems(file, yamlx.ErrorIssues(err), "")
	}
	return &sys, nil
}

// attachSources records, for every element, the line where it is written.
func attachSources(file string, root *yaml.Node, sys *System) {
	src := func(n *yaml.Node) Source { return Source{File: file, Line: n.Line, Column: n.Column} }
	// each calls set for the i-th item of the list under key in n, for i < count.
	each := func(n *yaml.Node, key string, count int, set func(i int, item *yaml.Node)) {
		list := yamlx.Get(n, key)
		if list == nil || list.Kind != yaml.SequenceNode {
			return
		}
		for i, item := range list.Content {
			if i < count {
				set(i, item)
			}
		}
	}
	if n := yamlx.Get(root, "slo"); n != nil && sys.SLO != nil {
		sys.SLO.Source = src(n)
	}
	each(root, "services", len(sys.Services), func(i int, n *yaml.Node) {
		svc := &sys.Services[i]
		svc.Source = src(n)
		each(n, "secrets", len(svc.Secrets), func(j int, s *yaml.Node) { svc.Secrets[j].Source = src(s) })
	})
	each(root, "datastores", len(sys.Datastores), func(i int, n *yaml.Node) {
		d := &sys.Datastores[i]
		d.Source = src(n)
		each(n, "secrets", len(d.Secrets), func(j int, s *yaml.Node) { d.Secrets[j].Source = src(s) })
	})
	each(root, "brokers", len(sys.Brokers), func(i int, n *yaml.Node) {
		br := &sys.Brokers[i]
		br.Source = src(n)
		each(n, "secrets", len(br.Secrets), func(j int, s *yaml.Node) { br.Secrets[j].Source = src(s) })
	})
	each(root, "externals", len(sys.Externals), func(i int, n *yaml.Node) { sys.Externals[i].Source = src(n) })
	each(root, "edges", len(sys.Edges), func(i int, n *yaml.Node) { sys.Edges[i].Source = src(n) })
	each(root, "entrypoints", len(sys.Entrypoints), func(i int, n *yaml.Node) { sys.Entrypoints[i].Source = src(n) })
}

func sortProblems(ps Problems) {
	sort.SliceStable(ps, func(i, j int) bool {
		if ps[i].File != ps[j].File {
			return ps[i].File < ps[j].File
		}
		if ps[i].Line != ps[j].Line {
			return ps[i].Line < ps[j].Line
		}
		return ps[i].Column < ps[j].Column
	})
}

func dedupe(ps Problems) Problems {
	seen := map[string]bool{}
	out := ps[:0]
	for _, p := range ps {
		k := p.String()
		if !seen[k] {
			seen[k] = true
			out = append(out, p)
		}
	}
	return out
}

package kube

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/faultline-dev/faultline/internal/yamlx"
	"github.com/faultline-dev/faultline/model"
)

// object is one Kubernetes object read from a manifest.
type object struct {
	apiVersion string
	group      string // API group: "" for core, "apps", "networking.istio.io"...
	kind       string
	name       string
	namespace  string // as written, or the default
	nsWritten  bool
	labels     map[string]string
	root       node
	src        model.Source
	owned      bool // has an ownerReference to a workload (a cluster dump's ReplicaSets and Pods)
}

func (o *object) String() string { return o.kind + " " + o.name }

// spec returns the object's spec.
func (o *object) spec() node { return o.root.get("spec") }

// maxDocuments bounds the documents read from one file; a real manifest has dozens.
const maxDocuments = 100_000

// helmRE finds template actions that only Helm charts write (.Values, .Release, include,
// toYaml...). A rendered manifest may still hold other {{ }} text, such as alerting templates in
// a ConfigMap, which must not be mistaken for an unrendered chart.
var helmRE = regexp.MustCompile(`\{\{[^}]*(?:\.Values\b|\.Release\b|\.Chart\b|\.Capabilities\b|\.Files\b|\binclude\s|\btoYaml\b|\btpl\s|\bnindent\s)`)

// readFile parses one file into objects. Problems go to probs; warnings to warn.
func (im *importer) readFile(file string, data []byte) {
	if p, ok := model.CheckText(file, data); !ok {
		im.probs = append(im.probs, p)
		return
	}
	// The cheap Contains spares most files the slower template scan.
	if bytes.Contains(data, []byte("{{")) {
		if loc := helmRE.FindIndex(data); loc != nil {
			im.probs = append(im.probs, model.Problem{File: file, Line: lineOf(data, loc[0]),
				Message: "looks like a Helm template ({{ }} actions are not YAML); render it with `helm template` first"})
			return
		}
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for i := 0; ; i++ {
		if i >= maxDocuments {
			im.probs = append(im.probs, model.Problem{File: file, Message: fmt.Sprintf("more than %d YAML documents; refusing to read further", maxDocuments)})
			return
		}
		var root yaml.Node
		err := decodeSafely(dec, &root)
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			ps := issueProblems(file, yamlx.ErrorIssues(err))
			if i := bytes.Index(data, []byte("{{")); i >= 0 {
				ps = append(model.Problems{{File: file, Line: lineOf(data, i), Message: "looks like a Helm template ({{ }} is not YAML); render it with `helm template` first"}}, ps...)
			}
			im.probs = append(im.probs, ps...)
			return
		}
		if len(root.Content) == 0 {
			continue
		}
		if n, limit := yamlx.ExpandedSize(&root); n > limit {
			im.probs = append(im.probs, model.Problem{File: file, Line: root.Content[0].Line,
				Message: fmt.Sprintf("document expands to more than %d nodes through aliases (or an alias refers to itself); refusing to read it", limit)})
			continue
		}
		d := &doc{file: file, probs: &im.probs}
		im.readDocument(node{n: resolve(root.Content[0]), d: d}, 0)
	}
}

// decodeSafely decodes the next document, turning a panic in the YAML library into an error so a
// hostile file cannot crash the caller.
func decodeSafely(dec *yaml.Decoder, n *yaml.Node) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("invalid YAML: the parser failed (%v)", r)
		}
	}()
	return dec.Decode(n)
}

func issueProblems(file string, issues []yamlx.Issue) model.Problems {
	out := make(model.Problems, 0, len(issues))
	for _, is := range issues {
		out = append(out, model.Problem{File: file, Line: is.Line, Column: is.Column, Message: "invalid YAML: " + is.Message})
	}
	return out
}

func lineOf(data []byte, off int) int { return 1 + bytes.Count(data[:off], []byte{'\n'}) }

// readDocument reads one document (or one item of a List) into im.objects.
func (im *importer) readDocument(root node, depth int) {
	if !root.present() {
		return
	}
	if !root.isMap() {
		im.warnf(root.src(), "document is %s, not a Kubernetes object; skipped", yamlx.Describe(root.n))
		return
	}
	apiVersion := root.get("apiVersion").str()
	kind := root.get("kind").str()
	if apiVersion == model.APIVersion {
		root.fail("this is a faultline model (apiVersion %s), not a Kubernetes manifest; use it directly instead of importing it", model.APIVersion)
		return
	}
	if isListKind(kind) && root.get("items").present() {
		if depth > 2 {
			root.fail("%s nested more than 2 levels deep", kind)
			return
		}
		for _, it := range root.get("items").list() {
			it.d = &doc{file: root.d.file, probs: root.d.probs, reported: root.d.reported}
			im.readDocument(it, depth+1)
		}
		return
	}
	if apiVersion == "" || kind == "" {
		missing := "apiVersion and kind"
		if apiVersion != "" {
			missing = "kind"
		} else if kind != "" {
			missing = "apiVersion"
		}
		im.warnf(root.src(), "document has no %s; not a Kubernetes object, skipped", missing)
		return
	}
	meta := root.get("metadata")
	o := &object{apiVersion: apiVersion, kind: kind, root: root, src: root.src()}
	if g, _, ok := strings.Cut(apiVersion, "/"); ok {
		o.group = g
	}
	o.name = meta.get("name").str()
	o.namespace = meta.get("namespace").str()
	o.nsWritten = o.namespace != ""
	if o.namespace == "" {
		o.namespace = im.opts.Namespace
	}
	o.labels = meta.get("labels").strMap()
	for _, ref := range meta.get("ownerReferences").list() {
		if workloadKinds[ref.get("kind").str()] {
			o.owned = true
		}
	}
	root.d.what = o.String()
	if o.name == "" {
		if g := meta.get("generateName").str(); g != "" {
			o.name = strings.TrimRight(g, "-")
		}
	}
	im.objects = append(im.objects, o)
}

func isListKind(kind string) bool { return kind == "List" || strings.HasSuffix(kind, "List") }

// LooksLikeKubernetes reports whether data holds at least one document with apiVersion and kind
// whose apiVersion is not faultline/v1: a Kubernetes manifest rather than a faultline model or a
// compose file. It reads Helm templates too (by their top-level keys), so the importer can say
// they need rendering.
func LooksLikeKubernetes(data []byte) (found bool) {
	defer func() {
		if recover() != nil {
			found = false
		}
	}()
	if _, ok := model.CheckText("", data); !ok {
		return false
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for i := 0; i < 1000; i++ {
		var n yaml.Node
		err := dec.Decode(&n)
		if errors.Is(err, io.EOF) {
			return false
		}
		if err != nil {
			return looksLikeByLines(data)
		}
		if len(n.Content) == 0 {
			continue
		}
		root := resolve(n.Content[0])
		if root == nil || root.Kind != yaml.MappingNode {
			continue
		}
		av, k := scalarAt(root, "apiVersion"), scalarAt(root, "kind")
		if av != "" && k != "" && av != model.APIVersion {
			return true
		}
	}
	return false
}

func scalarAt(m *yaml.Node, key string) string {
	v := resolve(lookup(m, key))
	if v == nil || v.Kind != yaml.ScalarNode {
		return ""
	}
	return v.Value
}

var (
	apiVersionLine = regexp.MustCompile(`(?m)^apiVersion:[ \t]*["']?([^\s"'#]+)`)
	kindLine       = regexp.MustCompile(`(?m)^kind:[ \t]*["']?[A-Za-z]`)
)

// looksLikeByLines answers for text that is not YAML (a Helm template) from its top-level keys.
func looksLikeByLines(data []byte) bool {
	if !kindLine.Match(data) {
		return false
	}
	for _, m := range apiVersionLine.FindAllSubmatch(data, -1) {
		if string(m[1]) != model.APIVersion {
			return true
		}
	}
	return false
}

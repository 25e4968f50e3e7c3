package compose

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/compose-spec/compose-go/v2/template"
	"go.yaml.in/yaml/v3"

	"github.com/faultline-dev/faultline/internal/suggest"
	"github.com/faultline-dev/faultline/internal/yamlx"
	"github.com/faultline-dev/faultline/model"
)

// file is one compose file as given, with its parsed YAML documents for locating elements.
type file struct {
	path string // as the caller wrote it; problems and sources use it
	abs  string // what compose-go sees and names in its errors
	data []byte
	docs []*yaml.Node // the root mapping of each non-empty document

	// probs are the problems found reading a file named by extends: or include:, reported
	// where it is named.
	probs model.Problems
}

// fileSet is the compose files of one import, in override order.
type fileSet struct {
	files []*file

	envLines map[string]map[string]int // env_file path → variable → line
	extra    map[string]*file          // files named by extends: file: or include:, parsed on demand
	included []*file                   // the files include: names, once computed
}

// readFiles reads and parses every file, reporting the problems of all of them at once.
func readFiles(paths []string) (*fileSet, model.Problems) {
	s := &fileSet{}
	var probs model.Problems
	defines := false
	for _, p := range paths {
		data, err := model.ReadInput(p)
		if err != nil {
			probs = append(probs, asProblems(p, err)...)
			continue
		}
		abs, err := filepath.Abs(p)
		if err != nil {
			abs = p
		}
		f := &file{path: p, abs: abs, data: data}
		probs = append(probs, f.parse()...)
		for _, d := range f.docs {
			if yamlx.Get(d, "services") != nil || yamlx.Get(d, "include") != nil {
				defines = true
			}
		}
		s.files = append(s.files, f)
	}
	empty := true
	for _, f := range s.files {
		empty = empty && len(f.docs) == 0
	}
	// An empty override is fine (docker compose merges nothing from it); an empty project is not.
	if len(probs) == 0 && empty {
		probs = append(probs, model.Problem{File: paths[0], Line: 1, Message: "empty file; expected a compose file with a top-level services: mapping"})
	}
	if len(probs) == 0 && !defines {
		p := model.Problem{File: paths[0], Line: 1, Field: "services", Message: "no top-level services: mapping; this does not look like a compose file"}
		// A misspelt services: is the likely cause when the file otherwise looks like one.
		for _, f := range s.files {
			for _, d := range f.docs {
				for i := 0; i+1 < len(d.Content); i += 2 {
					k := d.Content[i]
					if suggest.Closest(k.Value, []string{"services"}) != "" {
						p = model.Problem{File: f.path, Line: k.Line, Column: k.Column, Field: k.Value, Message: fmt.Sprintf("unknown top-level attribute %q; did you mean \"services\"?", k.Value)}
					}
				}
			}
		}
		probs = append(probs, p)
	}
	return s, probs
}

// parse reads the YAML documents of f, checking what compose-go would otherwise report without a
// line: syntax, duplicate keys, alias bombs, a root that is not a mapping, and files that are
// Kubernetes manifests or faultline models rather than compose files.
func (f *file) parse() model.Problems {
	dec := yaml.NewDecoder(bytes.NewReader(f.data))
	var probs model.Problems
	for {
		var doc yaml.Node
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			for _, is := range yamlx.ErrorIssues(err) {
				probs = append(probs, model.Problem{File: f.path, Line: max(is.Line, 1), Column: is.Column, Message: "invalid YAML: " + is.Message})
			}
			return probs
		}
		if len(doc.Content) == 0 {
			continue
		}
		root := deref(doc.Content[0])
		if root == nil || root.Kind == yaml.ScalarNode && root.ShortTag() == "!!null" {
			continue
		}
		if root.Kind != yaml.MappingNode {
			probs = append(probs, model.Problem{File: f.path, Line: root.Line, Column: root.Column, Message: "expected a mapping with a top-level services: key, found " + describeKind(root)})
			continue
		}
		if _, issues := yamlx.ToValue(&doc); len(issues) > 0 {
			for _, is := range issues {
				probs = append(probs, model.Problem{File: f.path, Line: is.Line, Column: is.Column, Field: is.Path, Message: is.Message})
			}
			continue
		}
		for _, k := range []string{"apiVersion", "kind"} {
			if key := yamlx.KeyNode(root, k); key != nil {
				probs = append(probs, model.Problem{File: f.path, Line: key.Line, Column: key.Column, Field: k, Message: "this is a Kubernetes manifest or a faultline model, not a compose file (compose files have no " + k + ")"})
				break
			}
		}
		f.docs = append(f.docs, root)
	}
	return probs
}

func describeKind(n *yaml.Node) string {
	switch n.Kind {
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return "the value " + strconv.Quote(truncate(n.Value, 40))
	}
	return "something else"
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// asProblems returns err as Problems, naming file when err is something else.
func asProblems(file string, err error) model.Problems {
	var ps model.Problems
	if errors.As(err, &ps) {
		return ps
	}
	return model.Problems{{File: file, Message: err.Error()}}
}

// deref follows aliases.
func deref(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && i < 100; i++ {
		n = n.Alias
	}
	return n
}

// get returns the key and value nodes for name in mapping m (merge keys included), or nils.
func get(m *yaml.Node, name string) (key, value *yaml.Node) {
	m = deref(m)
	if m == nil || m.Kind != yaml.MappingNode {
		return nil, nil
	}
	v := yamlx.Get(m, name)
	if v == nil {
		return nil, nil
	}
	return yamlx.KeyNode(m, name), deref(v)
}

// component returns the key and value nodes of a service (section "services") or job ("jobs")
// in one document.
func component(doc *yaml.Node, section, name string) (key, value *yaml.Node) {
	_, sec := get(doc, section)
	return get(sec, name)
}

// where is a located node: the file it is in and the node.
type where struct {
	f *file
	n *yaml.Node
}

func (w where) source() model.Source {
	if w.f == nil {
		return model.Source{}
	}
	src := model.Source{File: w.f.path}
	if w.n != nil {
		src.Line, src.Column = w.n.Line, w.n.Column
	}
	return src
}

// definition returns the key node of a component in the first file that defines it, which is
// where docker compose users look for it.
func (s *fileSet) definition(section, name string) where {
	for _, f := range s.files {
		for _, d := range f.docs {
			if k, _ := component(d, section, name); k != nil {
				return where{f, k}
			}
		}
	}
	for _, f := range s.includedFiles() {
		for _, d := range f.docs {
			if k, _ := component(d, section, name); k != nil {
				return where{f, k}
			}
		}
	}
	// Defined in an included file faultline could not read: point at the include.
	for _, f := range s.files {
		for _, d := range f.docs {
			if k, _ := get(d, "include"); k != nil {
				return where{f, k}
			}
		}
	}
	return where{f: s.files[0]}
}

// find looks for something in the definition of a component, from the last file to the first (the
// last override wins) and through extends, and returns the first node match reports.
func (s *fileSet) find(section, name string, match func(svc *yaml.Node) *yaml.Node) (where, bool) {
	for i := len(s.files) - 1; i >= 0; i-- {
		if w, ok := s.search(s.files[i], section, name, match, 0); ok {
			return w, true
		}
	}
	for _, f := range s.includedFiles() {
		if w, ok := s.search(f, section, name, match, 0); ok {
			return w, true
		}
	}
	return where{}, false
}

// includedFiles returns the files named by include: (and their own includes), parsed on demand.
func (s *fileSet) includedFiles() []*file {
	if s.included != nil {
		return s.included
	}
	s.included = []*file{}
	seen := map[*file]bool{}
	var visit func(f *file, depth int)
	visit = func(f *file, depth int) {
		if depth > 5 {
			return
		}
		for _, d := range f.docs {
			_, inc := get(d, "include")
			if inc == nil || inc.Kind != yaml.SequenceNode {
				continue
			}
			for _, item := range inc.Content {
				for _, p := range includePaths(deref(item)) {
					if g := s.extendsFile(f, p); g != nil && !seen[g] {
						seen[g] = true
						s.included = append(s.included, g)
						visit(g, depth+1)
					}
				}
			}
		}
	}
	for _, f := range s.files {
		visit(f, 0)
	}
	return s.included
}

// includePaths reads an include entry: a path, or a mapping whose path is a string or a list.
func includePaths(item *yaml.Node) []string {
	if item == nil {
		return nil
	}
	if item.Kind == yaml.ScalarNode {
		return []string{item.Value}
	}
	_, p := get(item, "path")
	if p == nil {
		return nil
	}
	if p.Kind == yaml.ScalarNode {
		return []string{p.Value}
	}
	var out []string
	for _, c := range p.Content {
		if c = deref(c); c != nil && c.Kind == yaml.ScalarNode {
			out = append(out, c.Value)
		}
	}
	return out
}

func (s *fileSet) search(f *file, section, name string, match func(svc *yaml.Node) *yaml.Node, depth int) (where, bool) {
	if f == nil || depth > 10 {
		return where{}, false
	}
	for j := len(f.docs) - 1; j >= 0; j-- {
		_, svc := component(f.docs[j], section, name)
		if svc == nil {
			continue
		}
		if n := match(svc); n != nil {
			return where{f, n}, true
		}
		base, other := extendsOf(svc)
		if base == "" {
			continue
		}
		target := f
		if other != "" {
			target = s.extendsFile(f, other)
		}
		if w, ok := s.search(target, section, base, match, depth+1); ok {
			return w, true
		}
	}
	return where{}, false
}

// extendsOf returns the service a service extends and the file it is in ("" for the same file).
func extendsOf(svc *yaml.Node) (service, file string) {
	_, ext := get(svc, "extends")
	if ext == nil {
		return "", ""
	}
	if ext.Kind == yaml.ScalarNode {
		return ext.Value, ""
	}
	if _, f := get(ext, "file"); f != nil && f.Kind == yaml.ScalarNode {
		file = f.Value
	}
	if _, base := get(ext, "service"); base != nil && base.Kind == yaml.ScalarNode {
		service = base.Value
	}
	return service, file
}

// extendsFile returns the parsed file an extends: file: names, relative to the file that names it;
// nil when it cannot be read (compose-go has reported that already).
func (s *fileSet) extendsFile(from *file, name string) *file {
	if strings.Contains(name, "$") {
		return nil
	}
	abs := name
	if !filepath.IsAbs(abs) {
		abs = filepath.Join(filepath.Dir(from.abs), name)
	}
	for _, f := range s.files {
		if f.abs == abs {
			return f
		}
	}
	if f, ok := s.extra[abs]; ok {
		return f
	}
	if s.extra == nil {
		s.extra = map[string]*file{}
	}
	var f *file
	if data, err := model.ReadInput(abs); err == nil {
		f = &file{path: s.display(abs), abs: abs, data: data}
		if f.probs = f.parse(); len(f.probs) > 0 {
			f.docs = nil
		}
	} else {
		f = &file{path: s.display(abs), abs: abs, probs: asProblems(abs, err)}
	}
	s.extra[abs] = f
	return f
}

// allFiles returns the compose files and the extends and include files read so far.
func (s *fileSet) allFiles() []*file {
	out := append([]*file(nil), s.files...)
	for _, f := range s.extra {
		if f != nil {
			out = append(out, f)
		}
	}
	return out
}

// path returns the node at a path of keys (and list indexes) below a component, with the key node
// of the last step; nil when absent.
func path(svc *yaml.Node, keys ...string) (key, value *yaml.Node) {
	value = svc
	for _, k := range keys {
		value = deref(value)
		if value == nil {
			return nil, nil
		}
		if value.Kind == yaml.SequenceNode {
			i, err := strconv.Atoi(k)
			if err != nil || i < 0 || i >= len(value.Content) {
				return nil, nil
			}
			key, value = value.Content[i], value.Content[i]
			continue
		}
		key, value = get(value, k)
		if value == nil {
			return nil, nil
		}
	}
	return key, value
}

// envEntry finds variable name in a service's environment: in a mapping, its key; in a list, the
// NAME=value or NAME item. raw is the value as written (before interpolation); inline is false for
// a bare NAME taken from the shell.
type envEntry struct {
	node   *yaml.Node
	raw    string
	inline bool
}

func findEnv(svc *yaml.Node, name string) (envEntry, bool) {
	_, env := get(svc, "environment")
	if env == nil {
		return envEntry{}, false
	}
	switch env.Kind {
	case yaml.MappingNode:
		k, v := get(env, name)
		if k == nil {
			return envEntry{}, false
		}
		if v.Kind == yaml.ScalarNode && v.ShortTag() == "!!null" {
			return envEntry{node: k}, true
		}
		return envEntry{node: k, raw: v.Value, inline: true}, true
	case yaml.SequenceNode:
		for _, item := range env.Content {
			item = deref(item)
			if item == nil || item.Kind != yaml.ScalarNode {
				continue
			}
			if item.Value == name {
				return envEntry{node: item}, true
			}
			if rest, ok := strings.CutPrefix(item.Value, name+"="); ok {
				return envEntry{node: item, raw: rest, inline: true}, true
			}
		}
	}
	return envEntry{}, false
}

// listEntry finds an item of a list-or-mapping attribute (depends_on, links, secrets, networks)
// that names target.
func listEntry(svc *yaml.Node, attr string, names func(item *yaml.Node) []string, target string) *yaml.Node {
	_, list := get(svc, attr)
	if list == nil {
		return nil
	}
	switch list.Kind {
	case yaml.MappingNode:
		if k, _ := get(list, target); k != nil {
			return k
		}
	case yaml.SequenceNode:
		for _, item := range list.Content {
			for _, n := range names(deref(item)) {
				if n == target {
					return item
				}
			}
		}
	}
	return nil
}

// envFileLine returns the line that sets name in an env file, or 0.
func (s *fileSet) envFileLine(path, name string) int {
	if s.envLines == nil {
		s.envLines = map[string]map[string]int{}
	}
	lines, ok := s.envLines[path]
	if !ok {
		lines = map[string]int{}
		if data, err := model.ReadInput(path); err == nil {
			sc := bufio.NewScanner(bytes.NewReader(data))
			sc.Buffer(make([]byte, 64<<10), model.MaxInputSize)
			for n := 1; sc.Scan(); n++ {
				line := strings.TrimSpace(sc.Text())
				line = strings.TrimPrefix(line, "export ")
				if k, _, ok := strings.Cut(line, "="); ok && !strings.HasPrefix(line, "#") {
					lines[strings.TrimSpace(k)] = n
				}
			}
		}
		s.envLines[path] = lines
	}
	return lines[name]
}

// display turns a path compose-go reports (absolute) into one relative to how the caller named the
// first file, so sources read the same way as the compose file's own.
func (s *fileSet) display(p string) string {
	for _, f := range s.files {
		if f.abs == p {
			return f.path
		}
	}
	base := filepath.Dir(s.files[0].abs)
	if rel, err := filepath.Rel(base, p); err == nil && !strings.HasPrefix(rel, "..") {
		return filepath.Join(filepath.Dir(s.files[0].path), rel)
	}
	return p
}

// checkReferences looks at the files the compose files make compose-go read (env_file, label_file,
// extends: file:, include:) before it reads them: a device, a pipe or an oversized file would make
// it block or exhaust memory. Missing files are left to compose-go, which knows which are optional.
func (s *fileSet) checkReferences(env map[string]string) model.Problems {
	lookup := func(k string) (string, bool) {
		v, ok := env[k]
		return v, ok
	}
	var probs model.Problems
	queue := append([]*file(nil), s.files...)
	seen := map[*file]bool{}
	project := filepath.Dir(s.files[0].abs)
	for len(queue) > 0 && len(seen) < 100 {
		f := queue[0]
		queue = queue[1:]
		if f == nil || seen[f] {
			continue
		}
		seen[f] = true
		check := func(n *yaml.Node, base, field string, follow bool) string {
			if n == nil || n.Kind != yaml.ScalarNode || n.Value == "" {
				return ""
			}
			p := n.Value
			if expanded, err := template.SubstituteWithOptions(p, lookup, template.WithoutLogging); err == nil {
				p = expanded
			}
			if p == "" {
				return ""
			}
			if !filepath.IsAbs(p) {
				p = filepath.Join(base, p)
			}
			st, err := os.Stat(p)
			if err != nil {
				return ""
			}
			real, err := filepath.EvalSymlinks(p)
			if err != nil {
				real = p
			}
			switch {
			case st.IsDir():
				return ""
			case !st.Mode().IsRegular() || specialFile(real):
				probs = append(probs, model.Problem{File: f.path, Line: n.Line, Column: n.Column, Field: field, Message: fmt.Sprintf("%s is not a regular file", n.Value)})
			case st.Size() > model.MaxInputSize:
				probs = append(probs, model.Problem{File: f.path, Line: n.Line, Column: n.Column, Field: field, Message: fmt.Sprintf("%s is larger than the %d MiB limit for an input file", n.Value, model.MaxInputSize>>20)})
			case follow:
				g := s.extendsFile(f, p)
				if g != nil && len(g.probs) > 0 {
					probs = append(probs, model.Problem{File: f.path, Line: n.Line, Column: n.Column, Field: field, Message: fmt.Sprintf("%s: %s", n.Value, g.probs[0].String())})
				}
				queue = append(queue, g)
			}
			return p
		}
		// An included project reads the .env next to its first file.
		checkDotEnv := func(n *yaml.Node, included string) {
			if included == "" {
				return
			}
			env := filepath.Join(filepath.Dir(included), ".env")
			if st, err := os.Stat(env); err == nil && !st.IsDir() && (!st.Mode().IsRegular() || st.Size() > model.MaxInputSize) {
				probs = append(probs, model.Problem{File: f.path, Line: n.Line, Column: n.Column, Field: "include", Message: env + " is not a regular file of a readable size"})
			}
		}
		dir := filepath.Dir(f.abs)
		for _, d := range f.docs {
			for _, section := range []string{"services", "jobs"} {
				_, sec := get(d, section)
				if sec == nil || sec.Kind != yaml.MappingNode {
					continue
				}
				for i := 0; i+1 < len(sec.Content); i += 2 {
					name := sec.Content[i].Value
					svc := deref(sec.Content[i+1])
					for _, attr := range []string{"env_file", "label_file"} {
						_, v := get(svc, attr)
						field := section + "." + name + "." + attr
						for _, n := range pathNodes(v) {
							check(n, project, field, false)
						}
					}
					if _, ext := get(svc, "extends"); ext != nil {
						_, file := get(ext, "file")
						check(file, dir, section+"."+name+".extends.file", true)
					}
				}
			}
			_, inc := get(d, "include")
			if inc != nil && inc.Kind == yaml.SequenceNode {
				for _, item := range inc.Content {
					item = deref(item)
					if item != nil && item.Kind == yaml.ScalarNode {
						checkDotEnv(item, check(item, dir, "include", true))
						continue
					}
					_, p := get(item, "path")
					for _, n := range pathNodes(p) {
						checkDotEnv(n, check(n, dir, "include.path", true))
					}
					_, e := get(item, "env_file")
					for _, n := range pathNodes(e) {
						check(n, project, "include.env_file", false)
					}
				}
			}
		}
	}
	return probs
}

// specialFile reports paths in the kernel's pseudo-filesystems, whose "regular" files can block a
// reader (/proc/kmsg) or never end.
func specialFile(p string) bool {
	for _, dir := range []string{"/proc/", "/sys/", "/dev/"} {
		if strings.HasPrefix(p, dir) {
			return true
		}
	}
	return false
}

// pathNodes returns the path scalars of an attribute that is a path, a list of paths, or a list of
// {path: ...} mappings.
func pathNodes(v *yaml.Node) []*yaml.Node {
	v = deref(v)
	if v == nil {
		return nil
	}
	if v.Kind == yaml.ScalarNode {
		return []*yaml.Node{v}
	}
	var out []*yaml.Node
	if v.Kind == yaml.SequenceNode {
		for _, item := range v.Content {
			item = deref(item)
			if item == nil {
				continue
			}
			if item.Kind == yaml.ScalarNode {
				out = append(out, item)
			} else if _, p := get(item, "path"); p != nil {
				out = append(out, p)
			}
		}
	}
	return out
}

package compose

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/compose-spec/compose-go/v2/schema"
	"go.yaml.in/yaml/v3"

	"github.com/faultline-dev/faultline/internal/suggest"
	"github.com/faultline-dev/faultline/model"
)

var (
	lineRE       = regexp.MustCompile(`\bline (\d+)\b`)
	pathRE       = regexp.MustCompile(`(?:^|[\s'"(])((?:services|jobs|networks|volumes|secrets|configs|models|include)(?:\.[^\s'"():,]+)*)`)
	cycleRE      = regexp.MustCompile(`(?:Circular reference:\s+(\S+) in |dependency cycle detected: (\S+) ->)`)
	serviceRE    = regexp.MustCompile(`\bservice (?:"([^"]+)"|([a-zA-Z0-9._-]+) (?:declares|refers|not found))`)
	decodeRE     = regexp.MustCompile(`'([a-z_]+)\[([^\]]+)\]((?:\.[a-zA-Z0-9_]+)*)'`)
	additionalRE = regexp.MustCompile(`additional propert(?:y|ies) '([^']*)'`)
	dependsRE    = regexp.MustCompile(`service "([^"]+)" depends on undefined service "([^"]+)"`)
	referRE      = regexp.MustCompile(`service "([^"]+)" refers to undefined (network|volume|secret|config|model|build secret) `)
	extendRE     = regexp.MustCompile(`cannot extend service "([^"]+)"`)
	envFileRE    = regexp.MustCompile(`(?:env|label) file (\S+) not found`)
	castRE       = regexp.MustCompile(`(?:failed to cast to expected type: )?strconv\.(Atoi|ParseInt|ParseUint|ParseFloat|ParseBool): parsing ("[^"]*"): invalid syntax`)
)

// problems turns an error from compose-go into located problems. compose-go names the file for
// schema and syntax errors but not for interpolation or consistency errors, and gives a dotted path
// (services.web.deploy.replicas) rather than a line; the path is looked up in the parsed files.
func (s *fileSet) problems(err error) model.Problems {
	var out model.Problems
	for _, e := range leaves(err) {
		out = append(out, s.problem(e.Error()))
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].File != out[j].File {
			return out[i].File < out[j].File
		}
		return out[i].Line < out[j].Line
	})
	return out
}

// leaves splits errors.Join trees; wrapped errors keep their full message.
func leaves(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			if e != nil {
				out = append(out, leaves(e)...)
			}
		}
		return out
	}
	return []error{err}
}

func (s *fileSet) problem(msg string) model.Problem {
	// Which file: the one the message names, if any (longest path first: a.yaml vs a.yaml.bak).
	var named *file
	for _, f := range s.allFiles() {
		if strings.Contains(msg, f.abs) && (named == nil || len(f.abs) > len(named.abs)) {
			named = f
		}
	}
	msg = tidy(msg, s)

	p := model.Problem{File: s.files[0].path}
	if named != nil {
		p.File = named.path
	}

	// A YAML error that slipped past our own parse carries a line.
	if n := lineInMessage(msg); n > 0 {
		p.Line = n
		p.Message = msg
		return p
	}

	field := ""
	var segs []string
	if m := cycleRE.FindStringSubmatch(msg); m != nil {
		attr := "extends"
		if m[2] != "" {
			attr = "depends_on"
		}
		field = "services." + m[1] + m[2] + "." + attr
		segs = []string{"services", m[1] + m[2], attr}
	} else if m := decodeRE.FindStringSubmatch(msg); m != nil {
		// mapstructure: "decoding failed due to the following error(s):\n\n'services[web].cpus' ..."
		field = m[1] + "." + m[2] + m[3]
		segs = splitPath(field)
		msg = field + ": " + strings.TrimSpace(msg[strings.Index(msg, m[0])+len(m[0]):])
	} else if m := pathRE.FindStringSubmatch(msg); m != nil {
		field = strings.TrimRight(m[1], ".")
		segs = splitPath(field)
	} else if m := serviceRE.FindStringSubmatch(msg); m != nil {
		segs = []string{"services", m[1] + m[2]}
	}
	p.Message = describe(msg, field)
	switch {
	case additionalRE.MatchString(msg) || strings.HasSuffix(msg, "false schema") && len(segs) > 0:
		// compose-go reports an unknown attribute as "additional properties 'x' not allowed" on its
		// parent, or as "false schema" on the attribute itself.
		parent := segs
		name := ""
		if m := additionalRE.FindStringSubmatch(msg); m != nil {
			name = m[1]
			segs = append(segs, name)
		} else {
			name, parent = segs[len(segs)-1], segs[:len(segs)-1]
		}
		where := "attribute"
		if len(parent) == 0 {
			where = "top-level attribute"
		}
		p.Message = fmt.Sprintf("unknown %s %q%s", where, name, suggest.Hint(name, knownAttributes(parent)))
		if name == "" {
			p.Message = "a name must not be empty"
		}
		field = strings.Join(segs, ".")
	case dependsRE.MatchString(msg):
		m := dependsRE.FindStringSubmatch(msg)
		segs = []string{"services", m[1], "depends_on", m[2]}
		field = "services." + m[1] + ".depends_on"
	case referRE.MatchString(msg):
		m := referRE.FindStringSubmatch(msg)
		segs = []string{"services", m[1], m[2] + "s"}
		field = strings.Join(segs, ".")
	case extendRE.MatchString(msg):
		m := extendRE.FindStringSubmatch(msg)
		segs = []string{"services", m[1], "extends"}
		field = strings.Join(segs, ".")
	case envFileRE.MatchString(msg):
		if w := s.findPathValue(envFileRE.FindStringSubmatch(msg)[1]); w.f != nil {
			p.File, p.Line, p.Column = w.f.path, w.n.Line, w.n.Column
			return p
		}
	}
	p.Field = strings.TrimSuffix(strings.ReplaceAll(field, ".[]", ""), ".")

	if len(segs) > 0 {
		w := s.locate(named, segs)
		if w.f != nil {
			p.File = w.f.path
			if w.n != nil {
				p.Line, p.Column = w.n.Line, w.n.Column
			}
		}
	}
	if p.Line == 0 {
		// A message about a value ("Invalid hostPort: 99999") names the value: find it.
		if w := s.findValueIn(msg); w.f != nil {
			p.File, p.Line, p.Column = w.f.path, w.n.Line, w.n.Column
			return p
		}
		p.Line = 1
		if len(s.files[0].docs) > 0 && p.File == s.files[0].path {
			p.Line = s.files[0].docs[0].Line
		}
	}
	return p
}

// tidy drops the file names compose-go puts in front of messages (the problem carries the file)
// and shortens the other absolute paths it mentions.
func tidy(msg string, s *fileSet) string {
	for _, prefix := range []string{"validating ", "failed to parse "} {
		for _, f := range s.files {
			if rest, ok := strings.CutPrefix(msg, prefix+f.abs+": "); ok {
				msg = rest
				if prefix == "failed to parse " {
					msg = "invalid YAML: " + strings.TrimPrefix(msg, "yaml: ")
				}
			}
		}
	}
	for _, f := range s.files {
		msg = strings.ReplaceAll(msg, f.abs, f.path)
	}
	// Other files compose-go names (env files, extends files) are shown relative the same way.
	if dir := filepath.Dir(s.files[0].abs) + string(filepath.Separator); dir != "/" {
		rel := filepath.Dir(s.files[0].path) + string(filepath.Separator)
		if rel == "."+string(filepath.Separator) {
			rel = ""
		}
		msg = strings.ReplaceAll(msg, dir, rel)
	}
	if i := strings.Index(msg, ": stat "); i > 0 {
		msg = msg[:i]
	}
	msg = strings.TrimSpace(msg)
	msg = strings.ReplaceAll(msg, "\nYou may need to escape any $ with another $.\n", " (write $$ for a literal $): ")
	msg = strings.ReplaceAll(msg, "decoding failed due to the following error(s):\n\n", "")
	// One line: "Circular reference:\n  a in x.yaml\n  extends b" reads "Circular reference: a in
	// x.yaml; extends b".
	var b strings.Builder
	for _, line := range strings.Split(msg, "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		if b.Len() > 0 {
			if strings.HasSuffix(b.String(), ":") {
				b.WriteString(" ")
			} else {
				b.WriteString("; ")
			}
		}
		b.WriteString(line)
	}
	return b.String()
}

// describe rewrites compose-go's message for a problem whose Field already names the path.
func describe(msg, field string) string {
	if field != "" {
		for _, prefix := range []string{"error while interpolating " + field + ": ", field + ": ", field + " "} {
			if rest, ok := strings.CutPrefix(msg, prefix); ok && rest != "" {
				msg = rest
				break
			}
		}
	}
	if m := castRE.FindStringSubmatch(msg); m != nil {
		want := "an integer"
		switch m[1] {
		case "ParseFloat":
			want = "a number"
		case "ParseBool":
			want = "a boolean (true or false)"
		}
		msg = strings.Replace(msg, m[0], "expected "+want+", got "+m[2], 1)
	}
	msg = strings.ReplaceAll(msg, "must be a integer", "must be an integer")
	msg = strings.ReplaceAll(msg, ": invalid compose project", "")
	return msg
}

// splitPath splits services.web.ports.[] into keys; list markers become "".
func splitPath(p string) []string {
	var out []string
	for _, s := range strings.Split(p, ".") {
		if s == "[]" {
			s = ""
		}
		out = append(out, s)
	}
	return out
}

// locate finds the deepest node a path reaches, preferring the named file, then the files in
// order. Keys may themselves contain dots (a service named api.v2), so each step tries the longest
// run of segments that is a key.
func (s *fileSet) locate(named *file, segs []string) where {
	best, bestDepth := where{}, -1
	try := func(f *file) {
		for _, d := range f.docs {
			n, depth := walkPath(d, segs)
			if depth > bestDepth {
				best, bestDepth = where{f, n}, depth
			}
		}
	}
	if named != nil {
		try(named)
		if bestDepth == len(segs) {
			return best
		}
	}
	for _, f := range s.allFiles() {
		if f != named {
			try(f)
		}
	}
	if bestDepth <= 0 {
		return where{f: named}
	}
	return best
}

// walkPath follows segs from root and returns the last key node reached and how many segments
// were consumed.
func walkPath(root *yaml.Node, segs []string) (*yaml.Node, int) {
	cur, last, used := deref(root), (*yaml.Node)(nil), 0
	for used < len(segs) {
		cur = deref(cur)
		if cur == nil {
			break
		}
		if cur.Kind == yaml.SequenceNode {
			i, err := strconv.Atoi(strings.Trim(segs[used], "[]"))
			if err != nil {
				// A list of names (depends_on: [db]): the item that is the name.
				i = -1
				for j, item := range cur.Content {
					if item.Kind == yaml.ScalarNode && item.Value == segs[used] {
						i = j
						break
					}
				}
			}
			if i < 0 || i >= len(cur.Content) {
				break
			}
			cur = cur.Content[i]
			last = cur
			used++
			continue
		}
		found := false
		for j := len(segs); j > used; j-- {
			if k, v := get(cur, strings.Join(segs[used:j], ".")); k != nil {
				last, cur, used, found = k, v, j, true
				break
			}
		}
		if !found {
			break
		}
	}
	return last, used
}

// findPathValue finds a scalar that names a file path, relative to the compose file it is in.
func (s *fileSet) findPathValue(target string) where {
	var found where
	for _, f := range s.files {
		for _, d := range f.docs {
			walkScalars(d, 0, func(n *yaml.Node) bool {
				p := n.Value
				if !filepath.IsAbs(p) {
					p = filepath.Join(filepath.Dir(f.abs), p)
				}
				if filepath.Clean(p) == filepath.Clean(target) {
					found = where{f, n}
					return true
				}
				return false
			})
			if found.f != nil {
				return found
			}
		}
	}
	return found
}

// findValueIn finds the scalar a message quotes after a colon, exactly or as part of a longer
// value (the "99999" of ports: ["99999:80"]).
func (s *fileSet) findValueIn(msg string) where {
	parts := strings.Split(msg, ": ")
	for _, exact := range []bool{true, false} {
		for _, cand := range parts[1:] {
			cand = strings.Trim(strings.TrimSpace(cand), `"'`)
			if len(cand) < 3 || strings.ContainsAny(cand, " \t") {
				continue
			}
			var found where
			for _, f := range s.files {
				for _, d := range f.docs {
					walkScalars(d, 0, func(n *yaml.Node) bool {
						if n.Value == cand || !exact && strings.Contains(n.Value, cand) {
							found = where{f, n}
							return true
						}
						return false
					})
					if found.f != nil {
						return found
					}
				}
			}
		}
	}
	return where{}
}

// walkScalars calls fn on every scalar below n until it returns true.
func walkScalars(n *yaml.Node, depth int, fn func(*yaml.Node) bool) bool {
	if n == nil || depth > 100 {
		return false
	}
	if n.Kind == yaml.ScalarNode {
		return fn(n)
	}
	for _, c := range n.Content {
		if walkScalars(c, depth+1, fn) {
			return true
		}
	}
	return false
}

var (
	schemaOnce sync.Once
	schemaDoc  map[string]any
)

// knownAttributes lists the attributes the compose schema allows at a path, for "did you mean"
// hints.
func knownAttributes(segs []string) []string {
	schemaOnce.Do(func() {
		_ = json.Unmarshal([]byte(schema.Schema), &schemaDoc)
	})
	node := schemaNode(schemaDoc)
	for _, seg := range segs {
		if node == nil {
			return nil
		}
		next := propertyOf(node, seg)
		node = schemaNode(next)
	}
	var out []string
	if node != nil {
		for _, alt := range objectForms(node) {
			if props, ok := alt["properties"].(map[string]any); ok {
				for k := range props {
					out = append(out, k)
				}
			}
		}
	}
	sort.Strings(out)
	return slices.Compact(out)
}

// schemaNode follows a $ref.
func schemaNode(v any) map[string]any {
	m, _ := v.(map[string]any)
	for i := 0; m != nil && i < 10; i++ {
		ref, ok := m["$ref"].(string)
		if !ok {
			break
		}
		name, ok := strings.CutPrefix(ref, "#/$defs/")
		if !ok {
			return nil
		}
		defs, _ := schemaDoc["$defs"].(map[string]any)
		m, _ = defs[name].(map[string]any)
	}
	return m
}

// objectForms returns the mapping forms of a schema node: itself, its oneOf/anyOf alternatives and
// its allOf parts, recursively.
func objectForms(m map[string]any) []map[string]any {
	var out []map[string]any
	var visit func(m map[string]any, depth int)
	visit = func(m map[string]any, depth int) {
		if m == nil || depth > 5 {
			return
		}
		out = append(out, m)
		for _, k := range []string{"oneOf", "anyOf", "allOf"} {
			alts, _ := m[k].([]any)
			for _, a := range alts {
				visit(schemaNode(a), depth+1)
			}
		}
	}
	visit(m, 0)
	return out
}

// propertyOf returns the schema of a key below a mapping node.
func propertyOf(m map[string]any, key string) any {
	for _, form := range objectForms(m) {
		if props, ok := form["properties"].(map[string]any); ok {
			if p, ok := props[key]; ok {
				return p
			}
		}
		if pats, ok := form["patternProperties"].(map[string]any); ok {
			for pat, p := range pats {
				if strings.HasPrefix(pat, "^x-") {
					continue
				}
				return p
			}
		}
	}
	return nil
}

func lineInMessage(msg string) int {
	if m := lineRE.FindStringSubmatch(msg); m != nil {
		n, _ := strconv.Atoi(m[1])
		return n
	}
	return 0
}

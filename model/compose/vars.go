package compose

import (
	"fmt"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/faultline-dev/faultline/model"
)

// missingVariables finds the ${VAR} and $VAR references that env does not set and that have no
// default, which docker compose replaces with an empty string after a warning. Each becomes a
// warning at the first line that uses the variable, per file. References with a default
// (${VAR:-x}, ${VAR-x}) or an alternative (${VAR:+x}) are fine; required ones (${VAR:?msg}) make
// compose-go fail, which Import reports as an error.
func (s *fileSet) missingVariables(env map[string]string) []model.Problem {
	var out []model.Problem
	for _, f := range s.files {
		seen := map[string]bool{}
		for _, d := range f.docs {
			walkValues(d, "", 0, func(n *yaml.Node, field string) {
				for _, name := range unsetRefs(n.Value, env) {
					if seen[name] {
						continue
					}
					seen[name] = true
					out = append(out, model.Problem{File: f.path, Line: n.Line, Column: n.Column, Field: field,
						Message: fmt.Sprintf("variable %s is not set; compose substitutes an empty string", name)})
				}
			})
		}
	}
	return out
}

// walkValues calls fn for every scalar value (not mapping keys) that contains a $, with its path.
func walkValues(n *yaml.Node, field string, depth int, fn func(*yaml.Node, string)) {
	if n == nil || depth > 100 {
		return
	}
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i].Value
			if n.Content[i].Tag == "!!merge" {
				// Values reached through merge keys are checked where the anchor is defined.
				continue
			}
			walkValues(n.Content[i+1], joinField(field, k), depth+1, fn)
		}
	case yaml.SequenceNode:
		for i, item := range n.Content {
			walkValues(item, field+"["+strconv.Itoa(i)+"]", depth+1, fn)
		}
	case yaml.ScalarNode:
		if strings.Contains(n.Value, "$") {
			fn(n, field)
		}
	}
}

func joinField(field, key string) string {
	if field == "" {
		return key
	}
	return field + "." + key
}

// unsetRefs returns the variables s uses without a default that env does not set.
func unsetRefs(s string, env map[string]string) []string {
	var out []string
	for _, name := range plainRefs(s, 0) {
		if _, ok := env[name]; !ok {
			out = append(out, name)
		}
	}
	return out
}

// plainRefs returns the variables referenced in s as $NAME or ${NAME}, following compose's
// template syntax: $$ escapes, ${NAME:-default} and friends name NAME with a fallback (their
// default text is searched in turn).
func plainRefs(s string, depth int) []string {
	if depth > 10 {
		return nil
	}
	var out []string
	for i := 0; i+1 < len(s); i++ {
		if s[i] != '$' {
			continue
		}
		c := s[i+1]
		switch {
		case c == '$':
			i++
		case c == '{':
			end := closingBrace(s, i+1)
			if end < 0 {
				return out
			}
			inner := s[i+2 : end]
			n := nameLen(inner)
			name, rest := inner[:n], inner[n:]
			switch {
			case name == "":
			case rest == "":
				out = append(out, name)
			case strings.HasPrefix(rest, ":-"), strings.HasPrefix(rest, ":+"):
				out = append(out, plainRefs(rest[2:], depth+1)...)
			case strings.HasPrefix(rest, "-"), strings.HasPrefix(rest, "+"):
				out = append(out, plainRefs(rest[1:], depth+1)...)
			}
			i = end
		case isNameStart(c):
			j := i + 1
			for j < len(s) && isNameChar(s[j]) {
				j++
			}
			out = append(out, s[i+1:j])
			i = j - 1
		}
	}
	return out
}

// closingBrace returns the index of the } that closes the { at open, or -1.
func closingBrace(s string, open int) int {
	depth := 0
	for i := open; i < len(s); i++ {
		switch s[i] {
		case '{':
			depth++
		case '}':
			depth--
			if depth == 0 {
				return i
			}
		}
	}
	return -1
}

func nameLen(s string) int {
	if s == "" || !isNameStart(s[0]) {
		return 0
	}
	i := 1
	for i < len(s) && isNameChar(s[i]) {
		i++
	}
	return i
}

func isNameStart(c byte) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

func isNameChar(c byte) bool { return isNameStart(c) || c >= '0' && c <= '9' }

// missingInEnvFile finds the variables an env_file uses (NAME=${OTHER}) that neither the file
// itself (above the line) nor env sets. Single-quoted values are literal, as in compose.
func missingInEnvFile(display, path string, env map[string]string) []model.Problem {
	data, err := model.ReadInput(path)
	if err != nil {
		return nil
	}
	var out []model.Problem
	defined := map[string]bool{}
	seen := map[string]bool{}
	for i, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(line), "export "))
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		key, value, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		key = strings.TrimSpace(key)
		value = strings.TrimSpace(value)
		if !strings.HasPrefix(value, "'") {
			for _, name := range plainRefs(value, 0) {
				if _, set := env[name]; set || defined[name] || seen[name] {
					continue
				}
				seen[name] = true
				out = append(out, model.Problem{File: display, Line: i + 1, Field: key,
					Message: fmt.Sprintf("variable %s is not set; compose substitutes an empty string", name)})
			}
		}
		defined[key] = true
	}
	return out
}

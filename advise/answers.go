package advise

import (
	"fmt"

	"go.yaml.in/yaml/v3"

	"github.com/faultline-dev/faultline/internal/yamlx"
)

// ParseAnswers reads an answers file: a YAML (or JSON) mapping of question ID to answer, such as
//
//	team-size: 6
//	domain-understood: no
//	independent-scaling: yes
//
// It returns the answers as written (Recommend and Validate check them) and the line each one is
// on, so a caller can point at it. A file that is not such a mapping, a key given twice, or a value
// that is a list or mapping gives AnswerErrors with the line; when only some entries are bad, the
// answers read from the others are returned with the error, so that a caller can validate them
// and report every problem in one run.
func ParseAnswers(data []byte) (Answers, map[string]int, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		var errs AnswerErrors
		for _, is := range yamlx.ErrorIssues(err) {
			errs = append(errs, AnswerError{Line: is.Line, Problem: "invalid YAML: " + is.Message})
		}
		return nil, nil, errs
	}
	if len(doc.Content) == 0 {
		return nil, nil, AnswerErrors{{Problem: "no answers; expected a mapping of question ID to answer"}}
	}
	root := doc.Content[0]
	if root.Kind == yaml.AliasNode && root.Alias != nil {
		root = root.Alias
	}
	if root.Kind != yaml.MappingNode {
		return nil, nil, AnswerErrors{{Line: root.Line, Problem: "expected a mapping of question ID to answer, found " + kindName(root)}}
	}
	answers, lines := Answers{}, map[string]int{}
	var errs AnswerErrors
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		if v.Kind == yaml.AliasNode && v.Alias != nil {
			v = v.Alias
		}
		if k.Kind != yaml.ScalarNode {
			errs = append(errs, AnswerError{Line: k.Line, Problem: "expected a question ID as key, found " + kindName(k)})
			continue
		}
		if first, dup := lines[k.Value]; dup {
			errs = append(errs, AnswerError{Question: k.Value, Line: k.Line, Problem: fmt.Sprintf("answered twice (first on line %d)", first)})
			continue
		}
		lines[k.Value] = k.Line
		switch {
		case v.Kind != yaml.ScalarNode:
			errs = append(errs, AnswerError{Question: k.Value, Line: v.Line, Problem: "expected one answer, found " + kindName(v)})
		case v.Tag == "!!null":
			answers[k.Value] = "" // Validate reports it as "no answer" with what is expected
		default:
			answers[k.Value] = v.Value
		}
	}
	if len(errs) > 0 {
		return answers, lines, errs
	}
	return answers, lines, nil
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.SequenceNode:
		return "a list"
	case yaml.MappingNode:
		return "a mapping"
	case yaml.ScalarNode:
		return fmt.Sprintf("%q", n.Value)
	}
	return "nothing"
}

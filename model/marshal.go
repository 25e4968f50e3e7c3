package model

import (
	"bytes"
	"fmt"

	"go.yaml.in/yaml/v3"

	"github.com/faultline-dev/faultline/internal/yamlx"
)

// MarshalYAML writes a system as a model document. With sources, each element carries a comment
// saying which file and line it came from, so an imported model can be traced back to the compose
// file or manifest that produced it.
func MarshalYAML(s *System, sources bool) ([]byte, error) {
	var doc yaml.Node
	if err := doc.Encode(s); err != nil {
		return nil, fmt.Errorf("encode model: %w", err)
	}
	if sources {
		annotate(&doc, s)
	}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(&doc); err != nil {
		return nil, fmt.Errorf("write model: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func annotate(doc *yaml.Node, s *System) {
	comment := func(n *yaml.Node, src Source) {
		if str := src.String(); str != "" {
			n.HeadComment = "from " + str
		}
	}
	items := func(key string, n int, src func(i int) Source) {
		seq := yamlx.Get(doc, key)
		if seq == nil || seq.Kind != yaml.SequenceNode {
			return
		}
		for i, item := range seq.Content {
			if i < n {
				comment(item, src(i))
			}
		}
	}
	items("services", len(s.Services), func(i int) Source { return s.Services[i].Source })
	items("datastores", len(s.Datastores), func(i int) Source { return s.Datastores[i].Source })
	items("brokers", len(s.Brokers), func(i int) Source { return s.Brokers[i].Source })
	items("externals", len(s.Externals), func(i int) Source { return s.Externals[i].Source })
	items("edges", len(s.Edges), func(i int) Source { return s.Edges[i].Source })
	items("entrypoints", len(s.Entrypoints), func(i int) Source { return s.Entrypoints[i].Source })
}

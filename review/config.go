package review

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"

	"go.yaml.in/yaml/v3"

	"github.com/faultline-dev/faultline/internal/suggest"
	"github.com/faultline-dev/faultline/internal/yamlx"
	"github.com/faultline-dev/faultline/model"
	"github.com/faultline-dev/faultline/sim/avail"
)

// ConfigFile is the name faultline looks for next to the inputs and in the working directory.
const ConfigFile = ".faultline.yaml"

// Config tunes a review: which rules run, at what severity and thresholds, which findings are
// accepted (with a reason), and the availability assumptions.
type Config struct {
	Rules        map[string]RuleConfig `yaml:"rules,omitempty"`
	Ignore       []Ignore              `yaml:"ignore,omitempty"`
	Availability *avail.Defaults       `yaml:"availability,omitempty"`
}

// RuleConfig changes one rule.
type RuleConfig struct {
	Disabled   bool               `yaml:"disabled,omitempty"`
	Severity   string             `yaml:"severity,omitempty"`
	Thresholds map[string]float64 `yaml:"thresholds,omitempty"`
}

// Ignore accepts a rule's findings about a subject; the reason is required so the decision stays
// explained where the team reads it.
type Ignore struct {
	Rule    string `yaml:"rule"`
	Subject string `yaml:"subject"`
	Reason  string `yaml:"reason"`

	line int
}

// LoadConfig reads a configuration file and checks every rule ID, threshold, severity and ignore
// entry, reporting all problems at once with their lines.
func LoadConfig(path string) (*Config, error) {
	data, err := model.ReadInput(path)
	if err != nil {
		return nil, err
	}
	return ParseConfig(path, data)
}

// ParseConfig reads configuration text; file names it in errors.
func ParseConfig(file string, data []byte) (*Config, error) {
	var cfg Config
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, located(file, err)
	}
	if len(doc.Content) == 0 {
		return &cfg, nil
	}
	if n, limit := yamlx.ExpandedSize(&doc); n > limit {
		return nil, model.Problems{{File: file, Line: 1, Message: "document expands to too many nodes through aliases; refusing to read it"}}
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil && !errors.Is(err, io.EOF) {
		return nil, located(file, err)
	}
	var probs model.Problems
	ids := make([]string, 0, len(registry))
	for id := range registry {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	rulesNode := yamlx.Get(&doc, "rules")
	lineOf := func(n *yaml.Node, key string) int {
		if k := yamlx.KeyNode(n, key); k != nil {
			return k.Line
		}
		if n != nil {
			return n.Line
		}
		return 1
	}
	for id, rc := range cfg.Rules {
		r, ok := registry[id]
		if !ok {
			probs = append(probs, model.Problem{File: file, Line: lineOf(rulesNode, id), Field: "rules." + id,
				Message: fmt.Sprintf("unknown rule %q%s (faultline review --list-rules lists them)", id, suggest.Hint(id, ids))})
			continue
		}
		if rc.Severity != "" {
			if _, err := ParseSeverity(rc.Severity); err != nil {
				probs = append(probs, model.Problem{File: file, Line: lineOf(yamlx.Get(rulesNode, id), "severity"), Field: "rules." + id + ".severity", Message: err.Error()})
			}
		}
		for name := range rc.Thresholds {
			if _, ok := r.Thresholds[name]; !ok {
				known := make([]string, 0, len(r.Thresholds))
				for k := range r.Thresholds {
					known = append(known, k)
				}
				sort.Strings(known)
				msg := fmt.Sprintf("rule %s has no threshold %q", id, name)
				if len(known) > 0 {
					msg += "; it has " + fmt.Sprint(known)
				}
				probs = append(probs, model.Problem{File: file, Line: lineOf(yamlx.Get(yamlx.Get(rulesNode, id), "thresholds"), name), Field: "rules." + id + ".thresholds." + name, Message: msg + suggest.Hint(name, known)})
			}
		}
	}
	ignoreNode := yamlx.Get(&doc, "ignore")
	for i := range cfg.Ignore {
		ig := &cfg.Ignore[i]
		line := 1
		if ignoreNode != nil && i < len(ignoreNode.Content) {
			line = ignoreNode.Content[i].Line
		}
		ig.line = line
		field := fmt.Sprintf("ignore[%d]", i)
		if _, ok := registry[ig.Rule]; !ok {
			probs = append(probs, model.Problem{File: file, Line: line, Field: field + ".rule", Message: fmt.Sprintf("unknown rule %q%s", ig.Rule, suggest.Hint(ig.Rule, ids))})
		}
		if ig.Subject == "" {
			probs = append(probs, model.Problem{File: file, Line: line, Field: field + ".subject", Message: "missing subject: name the component or edge (from→to) the finding is about"})
		}
		if ig.Reason == "" {
			probs = append(probs, model.Problem{File: file, Line: line, Field: field + ".reason", Message: "missing reason: say why this finding is accepted"})
		}
	}
	if a := cfg.Availability; a != nil {
		for name, v := range map[string]float64{"service": a.Service, "datastore": a.Datastore, "broker": a.Broker, "external": a.External, "zone": a.Zone} {
			if v != 0 && (v <= 0 || v > 1) {
				probs = append(probs, model.Problem{File: file, Line: lineOf(yamlx.Get(&doc, "availability"), name), Field: "availability." + name, Message: fmt.Sprintf("must be a fraction in (0, 1], got %v", v)})
			}
		}
	}
	if len(probs) > 0 {
		sort.SliceStable(probs, func(i, j int) bool { return probs[i].Line < probs[j].Line })
		return nil, probs
	}
	return &cfg, nil
}

func located(file string, err error) error {
	var probs model.Problems
	for _, is := range yamlx.ErrorIssues(err) {
		probs = append(probs, model.Problem{File: file, Line: is.Line, Message: is.Message})
	}
	return probs
}

// defaults returns the availability assumptions with the configuration's overrides.
func (c *Config) defaults() avail.Defaults {
	d := avail.DefaultAssumptions
	if c == nil || c.Availability == nil {
		return d
	}
	o := c.Availability
	for _, p := range []struct {
		v   float64
		dst *float64
	}{{o.Service, &d.Service}, {o.Datastore, &d.Datastore}, {o.Broker, &d.Broker}, {o.External, &d.External}, {o.Zone, &d.Zone}} {
		if p.v > 0 {
			*p.dst = p.v
		}
	}
	return d
}

// FindConfig returns the path of the configuration that applies: explicit if given, else
// .faultline.yaml in the working directory, else "" (defaults).
func FindConfig(explicit string) string {
	if explicit != "" {
		return explicit
	}
	if _, err := os.Stat(ConfigFile); err == nil {
		return ConfigFile
	}
	return ""
}

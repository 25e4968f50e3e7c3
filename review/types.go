package review

import (
	"fmt"
	"sort"
	"strings"

	"github.com/faultline-dev/faultline/model"
	"github.com/faultline-dev/faultline/sim/avail"
)

// Severity ranks a finding.
type Severity int

// Severities, least to most serious.
const (
	Info Severity = iota + 1
	Warning
	Error
)

var severityNames = map[Severity]string{Info: "info", Warning: "warning", Error: "error"}

// String returns info, warning or error.
func (s Severity) String() string {
	if n, ok := severityNames[s]; ok {
		return n
	}
	return fmt.Sprintf("severity(%d)", int(s))
}

// ParseSeverity reads info, warning or error.
func ParseSeverity(s string) (Severity, error) {
	for k, v := range severityNames {
		if v == strings.ToLower(s) {
			return k, nil
		}
	}
	return 0, fmt.Errorf("unknown severity %q; expected error, warning or info", s)
}

// MarshalText writes the severity's name.
func (s Severity) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText reads a severity's name.
func (s *Severity) UnmarshalText(b []byte) error {
	v, err := ParseSeverity(string(b))
	if err != nil {
		return err
	}
	*s = v
	return nil
}

// Area is the checklist area a rule belongs to (the seed's Code Review Checklist, plus availability).
type Area string

// The areas.
const (
	Availability  Area = "availability"
	Resilience    Area = "resilience"
	Observability Area = "observability"
	Decoupling    Area = "decoupling"
	Consistency   Area = "consistency"
	API           Area = "api"
	Scalability   Area = "scalability"
	Security      Area = "security"
)

// Areas lists the areas in report order.
var Areas = []Area{Availability, Resilience, Decoupling, Consistency, Observability, API, Scalability, Security}

// Evidence is a place in the user's files that backs a finding.
type Evidence struct {
	File string `json:"file,omitempty"`
	Line int    `json:"line,omitempty"`
	// What says what is at that place ("edge order → payment", "service order").
	What string `json:"what,omitempty"`
}

// String formats the evidence as file:line (what).
func (e Evidence) String() string {
	loc := e.File
	if e.Line > 0 {
		loc = fmt.Sprintf("%s:%d", e.File, e.Line)
	}
	switch {
	case loc == "":
		return e.What
	case e.What == "":
		return loc
	}
	return loc + " (" + e.What + ")"
}

// Finding is one thing the review reports.
type Finding struct {
	Rule     string     `json:"rule"`
	Severity Severity   `json:"severity"`
	Area     Area       `json:"area"`
	Subjects []string   `json:"subjects"`
	Message  string     `json:"message"`
	Evidence []Evidence `json:"evidence"`
	Fix      string     `json:"fix"`
	// Grouped marks a finding that lists many subjects for one shared cause, with one evidence
	// per subject in the same order; an ignore entry then removes just its subject.
	Grouped bool `json:"-"`
}

// Rule is one check of the review.
type Rule struct {
	// ID is stable: configuration, suppressions and SARIF use it.
	ID       string
	Area     Area
	Severity Severity
	// Title is a one-line summary; Rationale says why it matters; Fix says what to do.
	Title     string
	Rationale string
	Fix       string
	// Thresholds are the rule's tunable numbers with their defaults; Config can override them.
	Thresholds map[string]float64
	// Check returns the rule's findings for a system.
	Check func(c *Context) []Finding
}

var registry = map[string]*Rule{}

// register adds a rule to the set Review runs; rule files call it from init.
func register(r *Rule) {
	if _, dup := registry[r.ID]; dup {
		panic("review: duplicate rule " + r.ID)
	}
	registry[r.ID] = r
}

// Rules returns every rule, ordered by area then ID.
func Rules() []*Rule {
	out := make([]*Rule, 0, len(registry))
	for _, r := range registry {
		out = append(out, r)
	}
	order := map[Area]int{}
	for i, a := range Areas {
		order[a] = i
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Area != out[j].Area {
			return order[out[i].Area] < order[out[j].Area]
		}
		return out[i].ID < out[j].ID
	})
	return out
}

// RuleByID returns a rule.
func RuleByID(id string) (*Rule, bool) {
	r, ok := registry[id]
	return r, ok
}

// Context is what a rule's Check sees: the system, its graph, the entrypoints to reason from, and
// the rule's effective thresholds.
type Context struct {
	Sys   *model.System
	Graph *model.Graph
	// Entrypoints are the declared entrypoints, or services nobody calls when none are declared.
	Entrypoints []model.Entrypoint

	rule         *Rule
	thresholds   map[string]float64
	availability []avail.Result
}

// Availability returns each entrypoint's predicted availability.
func (c *Context) Availability() []avail.Result { return c.availability }

// Threshold returns the effective value of one of the rule's thresholds.
func (c *Context) Threshold(name string) float64 {
	if v, ok := c.thresholds[name]; ok {
		return v
	}
	return c.rule.Thresholds[name]
}

// Finding builds a finding of the current rule with its default severity and fix.
func (c *Context) Finding(subjects []string, evidence []Evidence, format string, args ...any) Finding {
	// Empty lists stay lists in JSON ("subjects": []), as the output format promises.
	if subjects == nil {
		subjects = []string{}
	}
	if evidence == nil {
		evidence = []Evidence{}
	}
	return Finding{
		Rule: c.rule.ID, Severity: c.rule.Severity, Area: c.rule.Area, Subjects: subjects,
		Message: fmt.Sprintf(format, args...), Evidence: evidence, Fix: c.rule.Fix,
	}
}

// At turns a model source into evidence.
func At(src model.Source, what string) Evidence {
	return Evidence{File: src.File, Line: src.Line, What: what}
}

// EdgeEvidence is the evidence for an edge.
func EdgeEvidence(e model.Edge) Evidence { return At(e.Source, "edge "+e.From+" → "+e.To) }

// ComponentEvidence is the evidence for a component, by name.
func (c *Context) ComponentEvidence(name string) Evidence {
	if comp, ok := c.Graph.Component(name); ok {
		return At(comp.Source, string(comp.Kind)+" "+name)
	}
	return Evidence{What: name}
}

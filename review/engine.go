package review

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/faultline-dev/faultline/model"
	"github.com/faultline-dev/faultline/sim/avail"
)

// Report is the result of a review.
type Report struct {
	System       string         `json:"system"`
	Findings     []Finding      `json:"findings"`
	Availability []avail.Result `json:"availability"`
	Summary      Summary        `json:"summary"`
	// Ignored are findings the configuration accepted, with its reason.
	Ignored []IgnoredFinding `json:"ignored,omitempty"`
}

// IgnoredFinding is a finding accepted by an ignore entry.
type IgnoredFinding struct {
	Finding
	Reason string `json:"reason"`
}

// Summary counts the findings.
type Summary struct {
	Findings int          `json:"findings"`
	Errors   int          `json:"errors"`
	Warnings int          `json:"warnings"`
	Infos    int          `json:"infos"`
	ByArea   map[Area]int `json:"byArea"`
	Rules    int          `json:"rules"`
	Ignored  int          `json:"ignored"`
	// AvailabilityBelowSLO counts entrypoints whose predicted availability misses the SLO.
	AvailabilityBelowSLO int `json:"availabilityBelowSLO"`
}

// Review runs every enabled rule on a system and computes each entrypoint's availability. cfg may
// be nil. It honours ctx between rules.
func Review(ctx context.Context, sys *model.System, cfg *Config) (*Report, error) {
	if cfg == nil {
		cfg = &Config{}
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("review: %w", err)
	}
	g := model.NewGraph(sys)
	base := Context{Sys: sys, Graph: g, Entrypoints: model.EffectiveEntrypoints(sys, g)}
	defaults := cfg.defaults()
	rep := &Report{System: sys.Metadata.Name, Findings: []Finding{}, Summary: Summary{ByArea: map[Area]int{}}}
	rep.Availability = avail.Entrypoints(sys, defaults)
	for _, r := range Rules() {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("review: %w", err)
		}
		rc := cfg.Rules[r.ID]
		if rc.Disabled {
			continue
		}
		rep.Summary.Rules++
		c := base
		c.rule, c.thresholds = r, rc.Thresholds
		c.availability = rep.Availability
		sev := Severity(0)
		if rc.Severity != "" {
			sev, _ = ParseSeverity(rc.Severity)
		}
		for _, f := range r.Check(&c) {
			if sev != 0 {
				f.Severity = sev
			}
			kept, dropped := cfg.applyIgnores(f)
			rep.Ignored = append(rep.Ignored, dropped...)
			if kept != nil {
				rep.Findings = append(rep.Findings, *kept)
			}
		}
	}
	sortFindings(rep.Findings)
	for _, f := range rep.Findings {
		rep.Summary.Findings++
		rep.Summary.ByArea[f.Area]++
		switch f.Severity {
		case Error:
			rep.Summary.Errors++
		case Warning:
			rep.Summary.Warnings++
		case Info:
			rep.Summary.Infos++
		}
	}
	rep.Summary.Ignored = len(rep.Ignored)
	for _, a := range rep.Availability {
		if !a.Meets {
			rep.Summary.AvailabilityBelowSLO++
		}
	}
	return rep, nil
}

// ignoreReason returns the reason of the ignore entry that accepts rule's finding about subject
// (a component, or an edge written "from → to" or from->to).
func (c *Config) ignoreReason(rule, subject string) (string, bool) {
	for _, ig := range c.Ignore {
		if ig.Rule != rule {
			continue
		}
		want := strings.ReplaceAll(strings.ReplaceAll(ig.Subject, " ", ""), "->", "→")
		if strings.ReplaceAll(subject, " ", "") == want {
			return ig.Reason, true
		}
	}
	return "", false
}

// applyIgnores splits a finding by the ignore entries. A finding about one thing is ignored whole
// when any of its subjects is ignored. A grouped finding (one cause, many subjects) loses only the
// ignored subjects and their evidence, and is dropped when none remain.
func (c *Config) applyIgnores(f Finding) (kept *Finding, dropped []IgnoredFinding) {
	if !f.Grouped || len(f.Evidence) != len(f.Subjects) {
		for _, s := range f.Subjects {
			if reason, ok := c.ignoreReason(f.Rule, s); ok {
				return nil, []IgnoredFinding{{Finding: f, Reason: reason}}
			}
		}
		return &f, nil
	}
	rest := f
	rest.Subjects, rest.Evidence = nil, nil
	for i, s := range f.Subjects {
		if reason, ok := c.ignoreReason(f.Rule, s); ok {
			one := f
			one.Subjects, one.Evidence = []string{s}, []Evidence{f.Evidence[i]}
			dropped = append(dropped, IgnoredFinding{Finding: one, Reason: reason})
			continue
		}
		rest.Subjects = append(rest.Subjects, s)
		rest.Evidence = append(rest.Evidence, f.Evidence[i])
	}
	if len(rest.Subjects) == 0 {
		return nil, dropped
	}
	return &rest, dropped
}

// sortFindings orders findings by severity (most serious first), area, rule, then subjects.
func sortFindings(fs []Finding) {
	order := map[Area]int{}
	for i, a := range Areas {
		order[a] = i
	}
	sort.SliceStable(fs, func(i, j int) bool {
		a, b := fs[i], fs[j]
		if a.Severity != b.Severity {
			return a.Severity > b.Severity
		}
		if a.Area != b.Area {
			return order[a.Area] < order[b.Area]
		}
		if a.Rule != b.Rule {
			return a.Rule < b.Rule
		}
		return strings.Join(a.Subjects, ",") < strings.Join(b.Subjects, ",")
	})
}

// AtOrAbove reports whether the report has a finding at or above a severity (the --fail-on test).
func (r *Report) AtOrAbove(s Severity) bool {
	for _, f := range r.Findings {
		if f.Severity >= s {
			return true
		}
	}
	return false
}

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
			if reason, ok := cfg.ignored(f); ok {
				rep.Ignored = append(rep.Ignored, IgnoredFinding{Finding: f, Reason: reason})
				continue
			}
			rep.Findings = append(rep.Findings, f)
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

// ignored reports whether an ignore entry accepts the finding: same rule, and the subject names
// one of the finding's subjects (a component, or an edge written from→to or "from → to").
func (c *Config) ignored(f Finding) (string, bool) {
	for _, ig := range c.Ignore {
		if ig.Rule != f.Rule {
			continue
		}
		want := strings.ReplaceAll(strings.ReplaceAll(ig.Subject, " ", ""), "->", "→")
		for _, s := range f.Subjects {
			if strings.ReplaceAll(s, " ", "") == want {
				return ig.Reason, true
			}
		}
	}
	return "", false
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

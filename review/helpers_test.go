package review

import (
	"context"
	"strings"
	"testing"

	"github.com/faultline-dev/faultline/model"
)

// system loads a model written in a test: the apiVersion/kind/metadata header is added.
func system(t *testing.T, body string) *model.System {
	t.Helper()
	sys, err := model.Load("test.yaml", []byte("apiVersion: faultline/v1\nkind: System\nmetadata: {name: t}\n"+body))
	if err != nil {
		t.Fatalf("test model: %v", err)
	}
	return sys
}

// findings runs one rule (with optional threshold overrides) and returns its findings.
func findings(t *testing.T, sys *model.System, ruleID string, thresholds map[string]float64) []Finding {
	t.Helper()
	if _, ok := RuleByID(ruleID); !ok {
		t.Fatalf("no rule %s", ruleID)
	}
	cfg := &Config{Rules: map[string]RuleConfig{}}
	for _, r := range Rules() {
		if r.ID != ruleID {
			cfg.Rules[r.ID] = RuleConfig{Disabled: true}
		}
	}
	cfg.Rules[ruleID] = RuleConfig{Thresholds: thresholds}
	rep, err := Review(context.Background(), sys, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return rep.Findings
}

// subjectsOf lists each finding's subjects joined by ",", for compact assertions.
func subjectsOf(fs []Finding) []string {
	out := make([]string, len(fs))
	for i, f := range fs {
		out[i] = strings.Join(f.Subjects, ",")
	}
	return out
}

// checkFinding asserts a finding is complete: rule metadata, a message, evidence with a line, a fix.
func checkFinding(t *testing.T, f Finding) {
	t.Helper()
	if f.Rule == "" || f.Severity == 0 || f.Area == "" || f.Message == "" || f.Fix == "" || len(f.Subjects) == 0 {
		t.Errorf("incomplete finding %+v", f)
	}
	if len(f.Evidence) == 0 || f.Evidence[0].Line == 0 {
		t.Errorf("finding without located evidence: %+v", f)
	}
}

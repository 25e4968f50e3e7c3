package review

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/faultline-dev/faultline/model"
)

func TestConfigProblems(t *testing.T) {
	_, err := ParseConfig("c.yaml", []byte(`rules:
  no-such-rule: {disabled: true}
ignore:
  - {rule: nope, subject: ""}
availability: {service: 2}
`))
	var probs model.Problems
	if !errors.As(err, &probs) {
		t.Fatalf("want problems, got %v", err)
	}
	text := err.Error()
	for _, want := range []string{`c.yaml:2: rules.no-such-rule: unknown rule "no-such-rule"`, "ignore[0].subject: missing subject", "ignore[0].reason: missing reason", "availability.service: must be a fraction"} {
		if !strings.Contains(text, want) {
			t.Errorf("problems lack %q:\n%s", want, text)
		}
	}
	if _, err := ParseConfig("c.yaml", []byte("rulez: {}\n")); err == nil || !strings.Contains(err.Error(), "c.yaml:1") {
		t.Errorf("unknown top-level field: %v", err)
	}
	if _, err := ParseConfig("c.yaml", []byte("")); err != nil {
		t.Errorf("empty config: %v", err)
	}
}

func TestReviewHonoursCancellation(t *testing.T) {
	sys, err := model.LoadFile("../examples/models/shop.yaml")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Review(ctx, sys, nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
}

// TestIgnoreGroupedFinding: ignoring one service of a grouped finding removes only that service.
func TestIgnoreGroupedFinding(t *testing.T) {
	cfg := &Config{Ignore: []Ignore{{Rule: "r", Subject: "b", Reason: "accepted"}, {Rule: "r", Subject: "x -> y", Reason: "edge ok"}}}
	grouped := Finding{Rule: "r", Subjects: []string{"a", "b", "c"}, Evidence: []Evidence{{What: "a"}, {What: "b"}, {What: "c"}}, Grouped: true}
	kept, dropped := cfg.applyIgnores(grouped)
	if kept == nil || strings.Join(kept.Subjects, ",") != "a,c" || len(kept.Evidence) != 2 || kept.Evidence[1].What != "c" {
		t.Fatalf("kept %+v", kept)
	}
	if len(dropped) != 1 || dropped[0].Subjects[0] != "b" || dropped[0].Reason != "accepted" {
		t.Fatalf("dropped %+v", dropped)
	}
	single := Finding{Rule: "r", Subjects: []string{"x → y"}}
	if kept, dropped := cfg.applyIgnores(single); kept != nil || len(dropped) != 1 {
		t.Fatalf("edge ignore: kept %+v dropped %+v", kept, dropped)
	}
	other := Finding{Rule: "other", Subjects: []string{"b"}}
	if kept, _ := cfg.applyIgnores(other); kept == nil {
		t.Fatal("ignore applied to another rule")
	}
}

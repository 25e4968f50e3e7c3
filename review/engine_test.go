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

package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/faultline-dev/faultline/review"
)

func TestReviewExitCodes(t *testing.T) {
	cases := []struct {
		args []string
		code int
	}{
		{[]string{"review", broken}, 1},                          // errors, default --fail-on error
		{[]string{"review", "--fail-on", "none", broken}, 0},     // never fails
		{[]string{"review", healthy}, 0},                         // infos only
		{[]string{"review", "--fail-on", "info", healthy}, 1},    // infos count now
		{[]string{"review", "--fail-on", "warning", healthy}, 0}, // no warnings
		{[]string{"review"}, 2},
		{[]string{"review", "no-such-file.yaml"}, 2},
	}
	for _, c := range cases {
		if code, _, errOut := cli(t, c.args...); code != c.code {
			t.Errorf("%v: exit %d, want %d (%s)", c.args, code, c.code, errOut)
		}
	}
}

func TestReviewJSON(t *testing.T) {
	code, out, _ := cli(t, "-o", "json", "review", broken)
	if code != 1 {
		t.Fatalf("exit %d", code)
	}
	var rep struct {
		Findings []struct {
			Rule, Severity, Area, Message, Fix string
			Subjects                           []string
			Evidence                           []struct {
				File string
				Line int
			}
		}
		Availability []struct {
			Entrypoint   string
			Availability float64
			Target       float64
			Meets        bool
		}
		Summary struct{ Findings, Errors, Warnings, Infos int }
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatal(err)
	}
	if len(rep.Findings) == 0 || rep.Summary.Findings != len(rep.Findings) || rep.Summary.Errors == 0 {
		t.Fatalf("summary %+v with %d findings", rep.Summary, len(rep.Findings))
	}
	rules := map[string]bool{}
	for _, f := range rep.Findings {
		rules[f.Rule] = true
		if f.Message == "" || f.Fix == "" || len(f.Subjects) == 0 || len(f.Evidence) == 0 || !strings.HasSuffix(f.Evidence[0].File, "legacy-shop.yaml") || f.Evidence[0].Line == 0 {
			t.Errorf("incomplete finding %+v", f)
		}
	}
	// The broken example exists to show these.
	for _, want := range []string{"single-point-of-failure", "shared-datastore", "retry-amplification", "cyclic-dependency",
		"missing-timeout", "dual-write", "distributed-transaction-on-hot-path", "plaintext-secret", "hard-coded-endpoint",
		"sync-chain-depth", "chatty-interaction", "timeout-budget-inverted", "availability-below-slo"} {
		if !rules[want] {
			t.Errorf("legacy-shop review lacks %s", want)
		}
	}
	if len(rep.Availability) != 2 || rep.Availability[0].Meets || rep.Availability[0].Target != 0.9995 {
		t.Errorf("availability %+v", rep.Availability)
	}
}

func TestReviewSARIFAndMarkdown(t *testing.T) {
	_, out, _ := cli(t, "-o", "sarif", "review", broken)
	var sarif struct {
		Version string
		Runs    []struct {
			Results []struct{ RuleID string }
		}
	}
	if err := json.Unmarshal([]byte(out), &sarif); err != nil || sarif.Version != "2.1.0" || len(sarif.Runs) != 1 || len(sarif.Runs[0].Results) == 0 {
		t.Fatalf("sarif: %v %+v", err, sarif.Version)
	}
	_, out, _ = cli(t, "-o", "markdown", "review", broken)
	if !strings.Contains(out, "| ") || !strings.Contains(out, "single-point-of-failure") {
		t.Errorf("markdown:\n%.500s", out)
	}
	if code, _, errOut := cli(t, "-o", "sarif", "model", "show", broken); code != 2 || !strings.Contains(errOut, "only for faultline review") {
		t.Errorf("sarif outside review: %d %s", code, errOut)
	}
}

func TestReviewListRules(t *testing.T) {
	code, out, _ := cli(t, "review", "--list-rules")
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	for _, r := range review.Rules() {
		if !strings.Contains(out, r.ID) {
			t.Errorf("--list-rules lacks %s", r.ID)
		}
		if _, err := os.Stat(filepath.Join("../../docs/rules", r.ID+".md")); err != nil {
			t.Errorf("rule %s has no docs/rules page: %v", r.ID, err)
		}
	}
	if len(review.Rules()) < 30 {
		t.Errorf("only %d rules", len(review.Rules()))
	}
}

func TestReviewConfig(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("rules:\n  single-point-of-falure: {disabled: true}\n"), 0o644)
	code, _, errOut := cli(t, "review", "--config", bad, broken)
	if code != 2 || !strings.Contains(errOut, "bad.yaml:2: rules.single-point-of-falure: unknown rule") || !strings.Contains(errOut, `did you mean "single-point-of-failure"`) {
		t.Errorf("bad config: exit %d: %s", code, errOut)
	}
	good := filepath.Join(dir, "good.yaml")
	os.WriteFile(good, []byte(`rules:
  single-point-of-failure: {disabled: true}
  datastore-no-replication: {severity: info}
ignore:
  - {rule: cyclic-dependency, subject: order, reason: known; being split this quarter}
`), 0o644)
	_, out, _ := cli(t, "-o", "json", "review", "--config", good, broken)
	var rep review.Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatal(err)
	}
	for _, f := range rep.Findings {
		if f.Rule == "single-point-of-failure" || f.Rule == "cyclic-dependency" {
			t.Errorf("finding should be gone: %+v", f)
		}
		if f.Rule == "datastore-no-replication" && f.Severity != review.Info {
			t.Errorf("severity override not applied: %+v", f)
		}
	}
	if len(rep.Ignored) != 1 || rep.Ignored[0].Reason == "" {
		t.Errorf("ignored = %+v", rep.Ignored)
	}
}

// TestReviewImportsOnTheFly: manifests are reviewed directly and findings point at manifest lines.
func TestReviewImportsOnTheFly(t *testing.T) {
	_, out, _ := cli(t, "-o", "json", "review", "--fail-on", "none", "../../model/kube/testdata/shop")
	var rep review.Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatal(err)
	}
	if len(rep.Findings) == 0 {
		t.Fatal("no findings")
	}
	for _, f := range rep.Findings {
		for _, e := range f.Evidence {
			if e.File != "" && !strings.Contains(e.File, "model/kube/testdata/shop/") {
				t.Errorf("evidence outside the manifests: %+v", e)
			}
		}
	}
}

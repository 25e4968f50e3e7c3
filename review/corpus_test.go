package review

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/faultline-dev/faultline/model/ingest"
)

// The corpus (testdata/corpus/<case>/) holds systems written for faultline — models, compose
// projects and Kubernetes manifests, healthy and broken, small and large — each with an
// expected.yaml listing, by hand, the findings an experienced reviewer expects (rule and subjects).
// TestCorpusPrecisionRecall reviews every case and fails when precision or recall over the whole
// corpus falls below 0.9, printing every disagreement.

type expectation struct {
	// Input lists the files or directories to review, relative to the case directory; default:
	// the case directory itself.
	Input []string `yaml:"input"`
	// Expect are the findings the review must report.
	Expect []struct {
		Rule     string   `yaml:"rule"`
		Subjects []string `yaml:"subjects"`
	} `yaml:"expect"`
}

func findingKey(rule string, subjects []string) string {
	s := append([]string(nil), subjects...)
	sort.Strings(s)
	return rule + " " + strings.Join(s, ",")
}

// corpusCase is one reviewed case of the corpus.
type corpusCase struct {
	name   string
	expect expectation
	report *Report
}

// reviewCorpus imports and reviews every case under testdata/corpus.
func reviewCorpus(t *testing.T) []corpusCase {
	t.Helper()
	files, _ := filepath.Glob("testdata/corpus/*/expected.yaml")
	if len(files) == 0 {
		t.Skip("no corpus cases yet")
	}
	var cases []corpusCase
	for _, exp := range files {
		dir := filepath.Dir(exp)
		data, err := os.ReadFile(exp)
		if err != nil {
			t.Fatal(err)
		}
		var e expectation
		if err := yaml.Unmarshal(data, &e); err != nil {
			t.Fatalf("%s: %v", exp, err)
		}
		inputs := []string{dir}
		if len(e.Input) > 0 {
			inputs = nil
			for _, in := range e.Input {
				inputs = append(inputs, filepath.Join(dir, in))
			}
		}
		res, err := ingest.Open(context.Background(), inputs, ingest.Options{})
		if err != nil {
			t.Fatalf("%s: %v", dir, err)
		}
		rep, err := Review(context.Background(), res.System, nil)
		if err != nil {
			t.Fatal(err)
		}
		cases = append(cases, corpusCase{name: filepath.Base(dir), expect: e, report: rep})
	}
	return cases
}

func TestCorpusPrecisionRecall(t *testing.T) {
	cases := reviewCorpus(t)
	var tp, fp, fn int
	var report []string
	for _, cc := range cases {
		want := map[string]bool{}
		for _, x := range cc.expect.Expect {
			want[findingKey(x.Rule, x.Subjects)] = true
		}
		got := map[string]bool{}
		for _, f := range cc.report.Findings {
			got[findingKey(f.Rule, f.Subjects)] = true
		}
		for k := range got {
			if want[k] {
				tp++
			} else {
				fp++
				report = append(report, fmt.Sprintf("%s: unexpected %s", cc.name, k))
			}
		}
		for k := range want {
			if !got[k] {
				fn++
				report = append(report, fmt.Sprintf("%s: missed %s", cc.name, k))
			}
		}
	}
	precision := float64(tp) / float64(max(1, tp+fp))
	recall := float64(tp) / float64(max(1, tp+fn))
	sort.Strings(report)
	t.Logf("corpus: %d cases, %d expected findings matched, %d unexpected, %d missed: precision %.3f, recall %.3f",
		len(cases), tp, fp, fn, precision, recall)
	for _, r := range report {
		t.Log(r)
	}
	if precision < 0.9 || recall < 0.9 {
		t.Errorf("precision %.3f, recall %.3f: both must be at least 0.9", precision, recall)
	}
}

// TestCorpusCoverage checks that the corpus exercises the whole rule set: every rule reports at
// least one finding somewhere, each rule is also expected somewhere (so its firing is checked, not
// only observed), and at least three cases are clean (no warning or error), showing the rules stay
// quiet on healthy designs.
func TestCorpusCoverage(t *testing.T) {
	cases := reviewCorpus(t)
	fired, expected := map[string]bool{}, map[string]bool{}
	var clean []string
	for _, cc := range cases {
		worst := Severity(0)
		for _, f := range cc.report.Findings {
			fired[f.Rule] = true
			worst = max(worst, f.Severity)
		}
		for _, x := range cc.expect.Expect {
			if _, ok := RuleByID(x.Rule); !ok {
				t.Errorf("%s: expected.yaml names unknown rule %q", cc.name, x.Rule)
			}
			expected[x.Rule] = true
		}
		if worst < Warning {
			clean = append(clean, cc.name)
		}
	}
	for _, r := range Rules() {
		if !fired[r.ID] {
			t.Errorf("rule %s fires in no corpus case", r.ID)
		}
		if !expected[r.ID] {
			t.Errorf("rule %s is expected in no corpus case", r.ID)
		}
	}
	t.Logf("cases with no warning or error: %v", clean)
	if len(clean) < 3 {
		t.Errorf("%d cases have no warning or error finding (%v), want at least 3", len(clean), clean)
	}
}

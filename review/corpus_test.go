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

func TestCorpusPrecisionRecall(t *testing.T) {
	cases, _ := filepath.Glob("testdata/corpus/*/expected.yaml")
	if len(cases) == 0 {
		t.Skip("no corpus cases yet")
	}
	var tp, fp, fn int
	var report []string
	for _, exp := range cases {
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
		want := map[string]bool{}
		for _, x := range e.Expect {
			want[findingKey(x.Rule, x.Subjects)] = true
		}
		got := map[string]bool{}
		for _, f := range rep.Findings {
			got[findingKey(f.Rule, f.Subjects)] = true
		}
		for k := range got {
			if want[k] {
				tp++
			} else {
				fp++
				report = append(report, fmt.Sprintf("%s: unexpected %s", filepath.Base(dir), k))
			}
		}
		for k := range want {
			if !got[k] {
				fn++
				report = append(report, fmt.Sprintf("%s: missed %s", filepath.Base(dir), k))
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

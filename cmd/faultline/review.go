package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"github.com/faultline-dev/faultline/model"
	"github.com/faultline-dev/faultline/report"
	"github.com/faultline-dev/faultline/review"
)

func (a *app) reviewCommand() *cobra.Command {
	var in inputFlags
	var configPath string
	var listRules bool
	cmd := &cobra.Command{
		Use:   "review FILE|DIR...",
		Short: "Review a system's design: findings with evidence, fixes and predicted availability",
		Long: `Reviews a system the way an experienced distributed-systems engineer would: single points of
failure, shared databases, missing timeouts and breakers, retries that multiply along sync paths,
inverted timeout budgets, deep and chatty sync chains, dual writes, missing telemetry and
contracts, unencrypted and unauthenticated edges, plaintext secrets. Each finding names the rule,
the components, the numbers, the file and line it comes from, and the fix. It also predicts each
entrypoint's availability from replicas and zones and compares it with the SLO.

Accepts a model file, docker-compose files or Kubernetes/Istio manifests (imported on the fly).
Configuration (.faultline.yaml, in the working directory or beside the input, or --config)
disables rules, changes severities and thresholds, and accepts findings with a reason; see
docs/review.md. Output: text, json, sarif (GitHub code scanning), markdown (PR comments) or html
(a self-contained page with the architecture diagram and availability charts).
Exit code 1 when a finding is at or above --fail-on (default error).`,
		Example: `  faultline review examples/models/legacy-shop.yaml
  faultline review --fail-on warning -o sarif k8s/ > faultline.sarif
  faultline review -o markdown docker-compose.yml > review.md
  faultline review -o html k8s/ > review.html
  faultline review --list-rules`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if listRules {
				return a.listRules()
			}
			if len(args) == 0 {
				return usageErr("review needs a model, compose files or manifests (or --list-rules)")
			}
			cfg, err := loadReviewConfig(configPath, args)
			if err != nil {
				return inputErr(err)
			}
			res, err := a.open(cmd, in, args)
			if err != nil {
				return err
			}
			rep, err := review.Review(cmd.Context(), res.System, cfg)
			if err != nil {
				return err
			}
			if err := a.writeReview(rep, res.System); err != nil {
				return err
			}
			if a.failOn != "none" {
				sev, _ := review.ParseSeverity(a.failOn)
				if rep.AtOrAbove(sev) {
					return &exitError{code: exitFindings}
				}
			}
			return nil
		},
	}
	in.register(cmd)
	cmd.Flags().StringVar(&configPath, "config", "", "configuration file (default: .faultline.yaml in the working directory or beside the first input)")
	cmd.Flags().BoolVar(&listRules, "list-rules", false, "list every rule with its area, default severity and thresholds")
	return cmd
}

// loadReviewConfig finds and reads the review configuration: --config, else .faultline.yaml in the
// working directory, else beside the first input.
func loadReviewConfig(explicit string, inputs []string) (*review.Config, error) {
	path := review.FindConfig(explicit)
	if path == "" && len(inputs) > 0 {
		dir := inputs[0]
		if st, err := os.Stat(dir); err != nil || !st.IsDir() {
			dir = filepath.Dir(dir)
		}
		if p := filepath.Join(dir, review.ConfigFile); fileExists(p) {
			path = p
		}
	}
	if path == "" {
		return nil, nil
	}
	return review.LoadConfig(path)
}

func fileExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir()
}

func (a *app) writeReview(rep *review.Report, sys *model.System) error {
	switch a.output {
	case "html":
		return report.ReviewHTML(a.stdout, rep, sys)
	case "sarif":
		return report.SARIF(a.stdout, rep, review.Rules(), buildVersion().Version)
	case "markdown":
		return report.ReviewMarkdown(a.stdout, rep)
	}
	return a.emit(rep, func(w io.Writer) error {
		return report.ReviewText(w, rep, report.TextOptions{Color: colorOK(a.stdout)})
	})
}

type ruleInfo struct {
	ID         string             `json:"id" yaml:"id"`
	Area       review.Area        `json:"area" yaml:"area"`
	Severity   review.Severity    `json:"severity" yaml:"severity"`
	Title      string             `json:"title" yaml:"title"`
	Thresholds map[string]float64 `json:"thresholds,omitempty" yaml:"thresholds,omitempty"`
	Doc        string             `json:"doc" yaml:"doc"`
}

func (a *app) listRules() error {
	var rules []ruleInfo
	for _, r := range review.Rules() {
		rules = append(rules, ruleInfo{r.ID, r.Area, r.Severity, r.Title, r.Thresholds, "docs/rules/" + r.ID + ".md"})
	}
	if a.output == "sarif" || a.output == "markdown" || a.output == "html" {
		return usageErr("--list-rules prints text, json or yaml")
	}
	return a.emit(rules, func(w io.Writer) error {
		area := review.Area("")
		for _, r := range rules {
			if r.Area != area {
				area = r.Area
				fmt.Fprintf(w, "\n%s\n", strings.ToUpper(string(area)))
			}
			th := ""
			if len(r.Thresholds) > 0 {
				var parts []string
				for _, k := range sortedKeys(r.Thresholds) {
					parts = append(parts, fmt.Sprintf("%s=%g", k, r.Thresholds[k]))
				}
				th = "  [" + strings.Join(parts, ", ") + "]"
			}
			fmt.Fprintf(w, "  %-36s %-8s %s%s\n", r.ID, r.Severity, r.Title, th)
		}
		return nil
	})
}

// colorOK reports whether w is a terminal that should get colour (and NO_COLOR is not set).
func colorOK(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok || os.Getenv("NO_COLOR") != "" || os.Getenv("TERM") == "dumb" {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

func sortedKeys(m map[string]float64) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

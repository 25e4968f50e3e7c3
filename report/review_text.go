package report

import (
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/faultline-dev/faultline/review"
	"github.com/faultline-dev/faultline/sim/avail"
)

// TextOptions tunes ReviewText.
type TextOptions struct {
	// Color writes severities in ANSI colours. Set it only when the output is a terminal; the
	// layout is the same either way.
	Color bool
}

// ReviewText writes a review for a terminal: the findings grouped by checklist area (in
// review.Areas order) and within an area by rule, each as its severity and subjects, the message
// and the evidence (file:line and what is there), with the rule's fix once after its findings; then the accepted (ignored) findings with their
// reasons, each entrypoint's predicted availability against its SLO with the components that
// cost the most downtime, and a one-line summary.
func ReviewText(w io.Writer, rep *review.Report, opts TextOptions) error {
	var b strings.Builder
	if rep.System != "" {
		fmt.Fprintf(&b, "Review of %s\n\n", rep.System)
	}
	if len(rep.Findings) == 0 {
		fmt.Fprintf(&b, "No findings: the design passes every rule that ran (%s).\n\n", plural(rep.Summary.Rules, "rule"))
	}
	for _, g := range groupByArea(rep.Findings) {
		fmt.Fprintf(&b, "%s (%s)\n", areaTitle(g.area), plural(len(g.findings), "finding"))
		for _, rg := range groupByRule(g.findings) {
			title := ""
			if r, ok := review.RuleByID(rg.rule); ok {
				title = ": " + r.Title
			}
			fmt.Fprintf(&b, "\n  %s%s (%d)\n", rg.rule, title, len(rg.findings))
			for _, f := range rg.findings {
				writeTextFinding(&b, f, opts)
			}
			// The fix is the rule's: said once per rule, after its findings.
			if fix := rg.findings[0].Fix; fix != "" {
				b.WriteString(indented("fix: "+fix, "    ") + "\n")
			}
		}
		b.WriteByte('\n')
	}
	if len(rep.Ignored) > 0 {
		fmt.Fprintf(&b, "Ignored by configuration (%d)\n", len(rep.Ignored))
		for _, ig := range rep.Ignored {
			fmt.Fprintf(&b, "  %s  %s: %s\n", ig.Rule, subjectList(ig.Subjects), oneLine(ig.Reason))
		}
		b.WriteByte('\n')
	}
	writeTextAvailability(&b, rep.Availability)
	b.WriteString(summaryLine(rep) + "\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// severityWidth pads severities so rule IDs line up ("warning" is the longest).
const severityWidth = len("warning")

var severityColor = map[review.Severity]string{
	review.Error:   "\x1b[1;31m", // bold red
	review.Warning: "\x1b[33m",   // yellow
	review.Info:    "\x1b[36m",   // cyan
}

func writeTextFinding(b *strings.Builder, f review.Finding, opts TextOptions) {
	sev := fmt.Sprintf("%-*s", severityWidth, f.Severity)
	if c, ok := severityColor[f.Severity]; ok && opts.Color {
		sev = c + sev + "\x1b[0m"
	}
	head := "    " + sev
	if len(f.Subjects) > 0 {
		head += "  " + subjectList(f.Subjects)
	}
	b.WriteString(head + "\n")
	const indent = "      "
	if f.Message != "" {
		b.WriteString(indented(f.Message, indent) + "\n")
	}
	for _, e := range f.Evidence {
		if e.File != "" {
			b.WriteString(indent + "at " + e.String() + "\n")
		} else if e.What != "" {
			b.WriteString(indent + "about " + e.What + "\n")
		}
	}
}

type ruleGroup struct {
	rule     string
	findings []review.Finding
}

// groupByRule gathers findings by rule, rules in order of first appearance.
func groupByRule(fs []review.Finding) []ruleGroup {
	var out []ruleGroup
	at := map[string]int{}
	for _, f := range fs {
		i, ok := at[f.Rule]
		if !ok {
			i = len(out)
			at[f.Rule] = i
			out = append(out, ruleGroup{rule: f.Rule})
		}
		out[i].findings = append(out[i].findings, f)
	}
	return out
}

// writeTextAvailability writes the per-entrypoint availability table; nothing when the system
// has no entrypoints.
func writeTextAvailability(b *strings.Builder, results []avail.Result) {
	if len(results) == 0 {
		return
	}
	b.WriteString("Availability per entrypoint\n")
	tw := tabwriter.NewWriter(b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  entrypoint\tservice\tpredicted\tSLO\tmeets\tcostliest components (share of downtime)")
	marked := false
	for _, r := range results {
		comps, m := costliest(r, "*")
		marked = marked || m
		fmt.Fprintf(tw, "  %s\t%s\t%s (%s nines)\t%s\t%s\t%s\n", r.Entrypoint, r.Service, percent(r.Availability),
			strconv.FormatFloat(r.Nines, 'f', 1, 64), sloText(r), meetsText(r, "✓", "✗"), comps)
	}
	tw.Flush()
	if marked {
		b.WriteString("  * below the extra nine: not one nine more available than the entrypoint's SLO, as a critical dependency should be\n")
	}
	b.WriteByte('\n')
}

// costliestShown is how many components the availability tables name per entrypoint.
const costliestShown = 3

// costliest lists an entrypoint's components that cost the most downtime, with their share,
// marking with mark those below the extra nine; of the components beyond the first few, those
// below it are counted. It reports whether it marked any.
func costliest(r avail.Result, mark string) (string, bool) {
	var parts []string
	marked, hidden := false, 0
	for i, c := range r.Components {
		if i >= costliestShown {
			if c.BelowExtraNine {
				hidden++
			}
			continue
		}
		p := c.Name + " " + sharePercent(c.Share)
		if c.BelowExtraNine {
			p += mark
			marked = true
		}
		parts = append(parts, p)
	}
	if hidden > 0 {
		parts = append(parts, fmt.Sprintf("+%d more below the extra nine", hidden))
	}
	if len(parts) == 0 {
		return "–", false
	}
	return strings.Join(parts, ", "), marked
}

func sloText(r avail.Result) string {
	if r.Target == 0 {
		return "none"
	}
	return percent(r.Target)
}

func meetsText(r avail.Result, yes, no string) string {
	switch {
	case r.Target == 0:
		return "–"
	case r.Meets:
		return yes
	}
	return no
}

// percent formats an availability as a percentage that shows its nines and never overstates
// them: as many decimals as it has whole nines (at least one), truncated rather than rounded,
// trailing zeros dropped ("99.9%", "99.71%", "99.995%").
func percent(a float64) string {
	switch {
	case a >= 1:
		return "100%"
	case a <= 0:
		return "0%"
	}
	d := min(max(1, int(math.Floor(avail.Nines(a)+1e-9))), 10)
	scale := math.Pow(10, float64(d))
	// The epsilon absorbs binary error (0.999 is stored as 0.99899999…) before truncating.
	v := math.Floor(a*100*scale+1e-6) / scale
	s := strconv.FormatFloat(v, 'f', d, 64)
	for strings.HasSuffix(s, "0") && !strings.HasSuffix(s, ".0") {
		s = s[:len(s)-1]
	}
	return s + "%"
}

// sharePercent formats a share of downtime: whole percents, "<1%" for a sliver.
func sharePercent(s float64) string {
	p := s * 100
	if p > 0 && p < 0.5 {
		return "<1%"
	}
	return strconv.FormatFloat(math.Round(p), 'f', 0, 64) + "%"
}

// summaryLine is the closing line of the text and Markdown reports:
// "N findings: E errors, W warnings, I infos across K areas; R rules run; X ignored", then the
// entrypoints below their SLO when there are entrypoints. Counts come from the findings
// themselves; the number of rules run from the summary.
func summaryLine(rep *review.Report) string {
	var errs, warns, infos int
	areas := map[review.Area]bool{}
	for _, f := range rep.Findings {
		areas[f.Area] = true
		switch f.Severity {
		case review.Error:
			errs++
		case review.Warning:
			warns++
		case review.Info:
			infos++
		}
	}
	s := fmt.Sprintf("%s: %s, %s, %s across %s; %s run; %d ignored",
		plural(len(rep.Findings), "finding"), plural(errs, "error"), plural(warns, "warning"), plural(infos, "info"),
		plural(len(areas), "area"), plural(rep.Summary.Rules, "rule"), len(rep.Ignored))
	if len(rep.Availability) > 0 {
		below := 0
		for _, r := range rep.Availability {
			if !r.Meets {
				below++
			}
		}
		s += fmt.Sprintf("; availability below SLO on %d of %s", below, plural(len(rep.Availability), "entrypoint"))
	}
	return s
}

type areaGroup struct {
	area     review.Area
	findings []review.Finding
}

// groupByArea groups findings by area in review.Areas order (areas it does not know come last,
// in order of appearance), keeping the findings' order within each area.
func groupByArea(fs []review.Finding) []areaGroup {
	index := map[review.Area]int{}
	var groups []areaGroup
	for _, a := range review.Areas {
		index[a] = len(groups)
		groups = append(groups, areaGroup{area: a})
	}
	for _, f := range fs {
		i, ok := index[f.Area]
		if !ok {
			i = len(groups)
			index[f.Area] = i
			groups = append(groups, areaGroup{area: f.Area})
		}
		groups[i].findings = append(groups[i].findings, f)
	}
	out := groups[:0]
	for _, g := range groups {
		if len(g.findings) > 0 {
			out = append(out, g)
		}
	}
	return out
}

// areaTitle capitalizes an area for a heading ("api" is an acronym).
func areaTitle(a review.Area) string {
	if a == review.API {
		return "API"
	}
	s := string(a)
	if s == "" {
		return "Other"
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

func subjectList(subjects []string) string { return strings.Join(subjects, ", ") }

// indented prefixes every line of s with indent.
func indented(s, indent string) string {
	return indent + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n"+indent)
}

// oneLine folds line breaks into spaces.
func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

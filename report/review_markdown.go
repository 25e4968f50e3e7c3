package report

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/faultline-dev/faultline/review"
	"github.com/faultline-dev/faultline/sim/avail"
)

// ReviewMarkdown writes a review as GitHub-flavoured Markdown for a pull-request comment: the
// summary line, a table of the findings (severity, rule, subjects, message, evidence as
// file:line), a collapsible section per area with each rule's fix and the subjects it applies
// to, the findings the configuration ignored with their reasons, and the availability table.
// Text from the model and the rules is escaped, so a "|" or a line break in a message cannot
// break a table.
//
// The comment stays within GitHub's limit of 65,536 characters: when the findings table would
// exceed it, its last rows (the least severe findings, as the report is ordered) are left out and
// a note says how many, by severity.
func ReviewMarkdown(w io.Writer, rep *review.Report) error {
	var head, tail strings.Builder
	title := "faultline review"
	if rep.System != "" {
		title += ": " + mdText(rep.System)
	}
	head.WriteString("## " + title + "\n\n")
	head.WriteString(mdText(summaryLine(rep)) + "\n")

	var rows []string
	if len(rep.Findings) == 0 {
		fmt.Fprintf(&head, "\n✅ **No findings**: the design passes every rule that ran (%s).\n", plural(rep.Summary.Rules, "rule"))
	} else {
		head.WriteString("\n| Severity | Rule | Subjects | Message | Evidence |\n|---|---|---|---|---|\n")
		for _, f := range rep.Findings {
			rows = append(rows, fmt.Sprintf("| %s | %s | %s | %s | %s |\n", mdSeverity(f.Severity), mdCode(f.Rule, true),
				mdText(subjectList(f.Subjects)), mdText(f.Message), mdEvidenceCell(f.Evidence)))
		}
		for _, g := range groupByArea(rep.Findings) {
			fmt.Fprintf(&tail, "\n<details>\n<summary><b>%s</b>: %s</summary>\n\n", areaTitle(g.area), plural(len(g.findings), "finding"))
			writeMarkdownFixes(&tail, g.findings)
			tail.WriteString("\n</details>\n")
		}
	}
	if len(rep.Ignored) > 0 {
		fmt.Fprintf(&tail, "\n<details>\n<summary>Ignored by configuration: %d</summary>\n\n", len(rep.Ignored))
		tail.WriteString("| Rule | Subjects | Message | Reason |\n|---|---|---|---|\n")
		for _, ig := range rep.Ignored {
			fmt.Fprintf(&tail, "| %s | %s | %s | %s |\n", mdCode(ig.Rule, true), mdText(subjectList(ig.Subjects)),
				mdText(ig.Message), mdText(ig.Reason))
		}
		tail.WriteString("\n</details>\n")
	}
	writeMarkdownAvailability(&tail, rep.Availability)

	var b strings.Builder
	b.WriteString(head.String())
	budget := markdownLimit - utf8.RuneCountInString(head.String()) - utf8.RuneCountInString(tail.String()) - omittedNoteRoom
	shown := 0
	for _, r := range rows {
		n := utf8.RuneCountInString(r)
		if n > budget {
			break
		}
		budget -= n
		b.WriteString(r)
		shown++
	}
	if shown < len(rows) {
		b.WriteString(omittedNote(rep.Findings[shown:]))
	}
	b.WriteString(tail.String())
	_, err := io.WriteString(w, b.String())
	return err
}

// markdownLimit is the most characters GitHub accepts in an issue or pull-request comment.
const markdownLimit = 65536

// omittedNoteRoom is kept free for the note on left-out rows.
const omittedNoteRoom = 400

// omittedNote says which findings the table leaves out.
func omittedNote(left []review.Finding) string {
	count := map[review.Severity]int{}
	for _, f := range left {
		count[f.Severity]++
	}
	var parts []string
	for _, s := range []review.Severity{review.Error, review.Warning, review.Info} {
		if count[s] > 0 {
			parts = append(parts, plural(count[s], s.String()))
		}
	}
	noun := "findings"
	if len(left) == 1 {
		noun = "finding"
	}
	return fmt.Sprintf("\n_%d more %s (%s) are not in this table, to keep the comment within GitHub's limit of %d characters; "+
		"`faultline review` in a terminal, or its SARIF output in code scanning, shows them all._\n",
		len(left), noun, strings.Join(parts, ", "), markdownLimit)
}

var severityMarker = map[review.Severity]string{review.Error: "🔴", review.Warning: "🟡", review.Info: "🔵"}

// mdSeverity is a severity with a coloured marker; the name stays, so the table reads without
// colour too.
func mdSeverity(s review.Severity) string {
	if m, ok := severityMarker[s]; ok {
		return m + " " + s.String()
	}
	return s.String()
}

// writeMarkdownFixes lists an area's fixes: one item per rule and fix, with the most serious
// severity among its findings and the subjects of each ("; " between findings), so a fix shared
// by many findings is written once.
func writeMarkdownFixes(b *strings.Builder, fs []review.Finding) {
	type group struct {
		rule, fix string
		sev       review.Severity
		subjects  []string
	}
	var groups []*group
	index := map[[2]string]*group{}
	for _, f := range fs {
		key := [2]string{f.Rule, f.Fix}
		g, ok := index[key]
		if !ok {
			g = &group{rule: f.Rule, fix: f.Fix}
			index[key] = g
			groups = append(groups, g)
		}
		g.sev = max(g.sev, f.Severity)
		if len(f.Subjects) > 0 {
			g.subjects = append(g.subjects, subjectList(f.Subjects))
		}
	}
	for _, g := range groups {
		line := "- " + mdSeverity(g.sev) + " **" + mdText(g.rule) + "**"
		if len(g.subjects) > 0 {
			line += " (" + mdText(strings.Join(g.subjects, "; ")) + ")"
		}
		fix := g.fix
		if fix == "" {
			fix = "no fix given"
		}
		b.WriteString(line + ": " + mdText(fix) + "\n")
	}
}

func writeMarkdownAvailability(b *strings.Builder, results []avail.Result) {
	if len(results) == 0 {
		return
	}
	b.WriteString("\n### Availability per entrypoint\n\n")
	b.WriteString("| Entrypoint | Service | Predicted | SLO | Meets | Costliest components (share of downtime) |\n")
	b.WriteString("|---|---|---:|---:|:---:|---|\n")
	const mark = " ⚠️"
	marked := false
	for _, r := range results {
		comps, m := costliest(r, mark)
		marked = marked || m
		fmt.Fprintf(b, "| %s | %s | %s (%s nines) | %s | %s | %s |\n", mdText(r.Entrypoint), mdText(r.Service),
			percent(r.Availability), strconv.FormatFloat(r.Nines, 'f', 1, 64), sloText(r), meetsText(r, "✅", "❌"),
			mdText(comps))
	}
	if marked {
		b.WriteString("\n⚠️ below the extra nine: not one nine more available than the entrypoint's SLO, as a critical dependency should be.\n")
	}
}

// evidenceLoc is file:line, or the file alone when the line is unknown.
func evidenceLoc(e review.Evidence) string {
	if e.Line > 0 {
		return e.File + ":" + strconv.Itoa(e.Line)
	}
	return e.File
}

// mdEvidenceCell lists evidence locations in a table cell, one per line; evidence without a file
// is named by what it is.
func mdEvidenceCell(es []review.Evidence) string {
	var parts []string
	for _, e := range es {
		switch {
		case e.File != "":
			parts = append(parts, mdCode(evidenceLoc(e), true))
		case e.What != "":
			parts = append(parts, mdText(e.What))
		}
	}
	return strings.Join(parts, "<br>")
}

// mdEscaper makes text literal in Markdown: inline markup characters are backslash-escaped,
// HTML-significant ones become entities, and line breaks become <br> so text stays inside its
// table cell or list item. "|" is escaped so it never ends a table cell.
var mdEscaper = strings.NewReplacer(
	`\`, `\\`, "`", "\\`", "*", `\*`, "_", `\_`, "[", `\[`, "]", `\]`, "~", `\~`, "|", `\|`,
	"&", "&amp;", "<", "&lt;", ">", "&gt;",
	"\r\n", "<br>", "\n", "<br>", "\r", "<br>",
)

func mdText(s string) string { return mdEscaper.Replace(strings.TrimRight(s, "\r\n")) }

// mdCode writes s as a code span. Backslashes and entities are literal inside one, so only what
// would end it is handled: a backtick (a longer fence), line breaks (folded) and, in a table,
// "|" (GitHub applies the \| escape even inside code spans).
func mdCode(s string, inTable bool) string {
	s = strings.NewReplacer("\r\n", " ", "\n", " ", "\r", " ").Replace(s)
	if inTable {
		s = strings.ReplaceAll(s, "|", `\|`)
	}
	fence := "`"
	for strings.Contains(s, fence) {
		fence += "`"
	}
	if len(fence) > 1 || strings.HasPrefix(s, "`") || strings.HasSuffix(s, "`") {
		return fence + " " + s + " " + fence
	}
	return fence + s + fence
}

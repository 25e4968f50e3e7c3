package report

import (
	"bytes"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/faultline-dev/faultline/review"
	"github.com/faultline-dev/faultline/sim/avail"
)

// reviewFixture is a review built by hand, so these tests do not depend on which rules exist: it
// has findings in five areas with one, two and three pieces of evidence, evidence without a file,
// a message with a "|" and a line break, an ignored finding, and entrypoints that miss, meet and
// have no SLO.
func reviewFixture() *review.Report {
	const model = "models/shop.yaml"
	findings := []review.Finding{
		{Rule: "single-point-of-failure", Severity: review.Error, Area: review.Availability, Subjects: []string{"payment"},
			Message:  "payment runs 1 replica in 1 zone on the sync path of 2 entrypoints (checkout, refund)",
			Evidence: []review.Evidence{{File: model, Line: 41, What: "service payment"}},
			Fix:      "Run at least 2 replicas spread over 2 zones."},
		{Rule: "retry-amplification", Severity: review.Error, Area: review.Resilience, Subjects: []string{"gateway → order", "order → payment"},
			Message: "retries multiply to 9 attempts along gateway → order → payment (3 × 3; threshold 8)",
			Evidence: []review.Evidence{
				{File: model, Line: 60, What: "edge gateway → order"},
				{File: model, Line: 72, What: "edge order → payment"},
			},
			Fix: "Retry at one layer only, or use a retry budget."},
		{Rule: "missing-timeout", Severity: review.Warning, Area: review.Resilience, Subjects: []string{"order → payment"},
			Message:  "order calls payment synchronously with no timeout",
			Evidence: []review.Evidence{{File: model, Line: 72, What: "edge order → payment"}},
			Fix:      "Set policy.timeout below the caller's own deadline."},
		{Rule: "shared-datastore", Severity: review.Warning, Area: review.Decoupling, Subjects: []string{"inventory", "order"},
			Message: "order and inventory both write orderdb | a distributed monolith\nchanges to its schema need both teams",
			Evidence: []review.Evidence{
				{File: model, Line: 30, What: "service order"},
				{File: model, Line: 52, What: "service inventory"},
				{File: model, Line: 80, What: "datastore orderdb"},
			},
			Fix: "Give each service its own store; share data through an API or events."},
		{Rule: "missing-tracing", Severity: review.Info, Area: review.Observability, Subjects: []string{"inventory"},
			Message:  "inventory exports no traces",
			Evidence: []review.Evidence{{What: "trace 4bf92f3577b34da6"}},
			Fix:      "Instrument it with OpenTelemetry and propagate trace context."},
	}
	ignored := []review.IgnoredFinding{{
		Finding: review.Finding{Rule: "single-point-of-failure", Severity: review.Error, Area: review.Availability,
			Subjects: []string{"legacy-auth"}, Message: "legacy-auth runs 1 replica in 1 zone on the sync path of 1 entrypoint (login)",
			Evidence: []review.Evidence{{File: model, Line: 90, What: "service legacy-auth"}}, Fix: "Run at least 2 replicas spread over 2 zones."},
		Reason: "replaced in Q3; accepted by the platform team",
	}}
	result := func(ep, svc string, target float64, comps ...avail.Component) avail.Result {
		a := 1.0
		for _, c := range comps {
			a *= c.Availability
		}
		return avail.Result{Entrypoint: ep, Service: svc, Availability: a, Nines: avail.Nines(a), Target: target,
			Meets: target == 0 || a >= target, Components: comps}
	}
	comp := func(name string, a, share float64, below bool) avail.Component {
		return avail.Component{Name: name, Kind: "service", Instance: a, Replicas: 1, Zones: 1, Availability: a, Share: share, BelowExtraNine: below}
	}
	availability := []avail.Result{
		result("checkout", "gateway", 0.999,
			comp("payment", 0.995, 0.62, true), comp("orderdb", 0.999, 0.2, true), comp("order", 0.9998, 0.1, false),
			comp("gateway", 0.99985, 0.07, false), comp("inventory", 0.99992, 0.01, true)),
		result("browse", "catalog", 0.999, comp("catalog", 0.99995, 1, false)),
		result("admin", "admin", 0, comp("admin", 0.995, 1, false)),
	}
	return &review.Report{System: "shop", Findings: findings, Availability: availability, Ignored: ignored,
		Summary: review.Summary{Rules: 30}}
}

// cleanFixture is a review with nothing to report.
func cleanFixture() *review.Report {
	return &review.Report{System: "tidy", Findings: []review.Finding{}, Summary: review.Summary{Rules: 30},
		Availability: []avail.Result{{Entrypoint: "home", Service: "web", Availability: 0.99995, Nines: avail.Nines(0.99995),
			Target: 0.999, Meets: true, Components: []avail.Component{{Name: "web", Availability: 0.99995, Share: 1}}}}}
}

func TestReviewTextAndMarkdownGolden(t *testing.T) {
	for name, rep := range map[string]*review.Report{"shop": reviewFixture(), "clean": cleanFixture()} {
		var text, md bytes.Buffer
		if err := ReviewText(&text, rep, TextOptions{}); err != nil {
			t.Fatal(err)
		}
		golden(t, "review/"+name+".txt", text.Bytes())
		if err := ReviewMarkdown(&md, rep); err != nil {
			t.Fatal(err)
		}
		golden(t, "review/"+name+".md", md.Bytes())
	}
}

// TestReviewTextReadsAsReview checks what a reader of the terminal output relies on: areas in
// the checklist's order, each finding under its area with its evidence and fix, the summary line,
// and a clear statement when there is nothing to report.
func TestReviewTextReadsAsReview(t *testing.T) {
	var b bytes.Buffer
	if err := ReviewText(&b, reviewFixture(), TextOptions{}); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	last := -1
	for _, heading := range []string{"\nAvailability (1 finding)\n", "\nResilience (2 findings)\n", "\nDecoupling (1 finding)\n", "\nObservability (1 finding)\n"} {
		i := strings.Index(out, heading)
		if i < 0 || i < last {
			t.Fatalf("heading %q missing or out of review.Areas order:\n%s", heading, out)
		}
		last = i
	}
	for _, want := range []string{
		"  retry-amplification: Retries multiply along a sync path (1)\n    error    gateway → order, order → payment\n      retries multiply to 9 attempts",
		"      at models/shop.yaml:60 (edge gateway → order)\n      at models/shop.yaml:72 (edge order → payment)\n    fix: Retry at one layer only",
		"      about trace 4bf92f3577b34da6\n",
		"  single-point-of-failure  legacy-auth: replaced in Q3; accepted by the platform team\n",
		"\n5 findings: 2 errors, 2 warnings, 1 info across 4 areas; 30 rules run; 1 ignored; availability below SLO on 1 of 3 entrypoints\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("text lacks %q:\n%s", want, out)
		}
	}
	// The resilience error comes before the resilience warning: the engine's order is kept.
	if strings.Index(out, "retry-amplification") > strings.Index(out, "missing-timeout") {
		t.Errorf("findings reordered within an area:\n%s", out)
	}

	b.Reset()
	if err := ReviewText(&b, cleanFixture(), TextOptions{}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "No findings") || !strings.Contains(b.String(), "0 findings: 0 errors, 0 warnings, 0 infos across 0 areas; 30 rules run; 0 ignored") {
		t.Errorf("a clean review does not say so:\n%s", b.String())
	}
}

func TestReviewTextAvailabilityTable(t *testing.T) {
	var b bytes.Buffer
	if err := ReviewText(&b, reviewFixture(), TextOptions{}); err != nil {
		t.Fatal(err)
	}
	rows := map[string]string{}
	for _, line := range strings.Split(b.String(), "\n") {
		if f := strings.Fields(line); len(f) > 0 {
			rows[f[0]] = line
		}
	}
	for ep, want := range map[string]*regexp.Regexp{
		// Misses its SLO; the costliest first, below-the-extra-nine ones marked, the hidden one counted.
		"checkout": regexp.MustCompile(`gateway\s+99\.35% \(2\.2 nines\)\s+99\.9%\s+✗\s+payment 62%\*, orderdb 20%\*, order 10%, \+1 more below the extra nine$`),
		"browse":   regexp.MustCompile(`catalog\s+99\.995% \(4\.3 nines\)\s+99\.9%\s+✓\s+catalog 100%$`),
		"admin":    regexp.MustCompile(`admin\s+99\.5% \(2\.3 nines\)\s+none\s+–\s+admin 100%$`),
	} {
		if !want.MatchString(rows[ep]) {
			t.Errorf("row %s = %q, want %v", ep, rows[ep], want)
		}
	}
	if !strings.Contains(b.String(), "* below the extra nine") {
		t.Errorf("no legend for the extra-nine mark:\n%s", b.String())
	}
}

func TestReviewTextColor(t *testing.T) {
	var plain, color bytes.Buffer
	ReviewText(&plain, reviewFixture(), TextOptions{})
	ReviewText(&color, reviewFixture(), TextOptions{Color: true})
	if strings.Contains(plain.String(), "\x1b[") {
		t.Errorf("escape codes without Color:\n%q", plain.String())
	}
	for _, want := range []string{"    \x1b[1;31merror  \x1b[0m  payment", "    \x1b[33mwarning\x1b[0m  order → payment", "    \x1b[36minfo   \x1b[0m  "} {
		if !strings.Contains(color.String(), want) {
			t.Errorf("coloured text lacks %q", want)
		}
	}
	// Only the severities are coloured: removing the codes gives the plain text back.
	stripped := regexp.MustCompile("\x1b\\[[0-9;]*m").ReplaceAllString(color.String(), "")
	if stripped != plain.String() {
		t.Errorf("colour changed more than the severities")
	}
}

// TestReviewMarkdownTables checks that every table row keeps its columns whatever the text holds
// ("|" and line breaks in a message), and what a PR reader needs: markers, evidence, fixes.
func TestReviewMarkdownTables(t *testing.T) {
	var b bytes.Buffer
	if err := ReviewMarkdown(&b, reviewFixture()); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	unescapedPipe := regexp.MustCompile(`(^|[^\\])\|`)
	columns := 0
	rows := 0
	for _, line := range strings.Split(out, "\n") {
		if !strings.HasPrefix(line, "|") {
			columns = 0
			continue
		}
		n := len(unescapedPipe.FindAllStringIndex(line, -1))
		if columns == 0 {
			columns = n // the header row sets the table's width
		} else if n != columns {
			t.Errorf("row has %d cell borders, table has %d: %s", n, columns, line)
		}
		rows++
	}
	if rows != 2+5+2+1+2+3 { // findings, ignored, availability: header and separator rows included
		t.Errorf("%d table rows:\n%s", rows, out)
	}
	for _, want := range []string{
		"| 🔴 error | `retry-amplification` | gateway → order, order → payment |",
		"| `models/shop.yaml:60`<br>`models/shop.yaml:72` |",
		`orderdb \| a distributed monolith<br>changes to its schema`,
		"<details>\n<summary><b>Resilience</b>: 2 findings</summary>\n\n",
		"- 🔴 error **retry-amplification** (gateway → order, order → payment): Retry at one layer only, or use a retry budget.\n",
		"| checkout | gateway | 99.35% (2.2 nines) | 99.9% |",
		"| ❌ | payment 62% ⚠️, orderdb 20% ⚠️, order 10%, +1 more below the extra nine |",
		"| `single-point-of-failure` | legacy-auth |",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("markdown lacks %q:\n%s", want, out)
		}
	}
	if strings.Count(out, "<details>") != strings.Count(out, "</details>") || strings.Count(out, "<details>") != 5 {
		t.Errorf("want 4 area sections and 1 ignored section, balanced:\n%s", out)
	}
}

// TestReviewMarkdownFitsAComment: GitHub refuses a comment over 65,536 characters, so a large
// review drops its least severe table rows, says so, and keeps the fixes and availability.
func TestReviewMarkdownFitsAComment(t *testing.T) {
	rep := reviewFixture()
	rep.Findings = nil
	fix := "Set policy.timeout below the caller's own deadline."
	for i := range 600 {
		sev := review.Warning
		if i >= 400 {
			sev = review.Info
		}
		rep.Findings = append(rep.Findings, review.Finding{Rule: "missing-timeout", Severity: sev, Area: review.Resilience,
			Subjects: []string{fmt.Sprintf("svc%03d → db", i)}, Message: strings.Repeat("a long message ", 10), Fix: fix,
			Evidence: []review.Evidence{{File: "deploy/k8s/very/deep/path/manifest.yaml", Line: i + 1}}})
	}
	var b bytes.Buffer
	if err := ReviewMarkdown(&b, rep); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	if n := utf8.RuneCountInString(out); n > 65536 {
		t.Fatalf("%d characters, more than a GitHub comment holds", n)
	}
	shown := strings.Count(out, "| `missing-timeout` |")
	if shown < 100 || shown >= 600 || !strings.Contains(out, "| svc000 → db |") {
		t.Fatalf("%d rows shown", shown)
	}
	left := 600 - shown
	infos := min(left, 200)
	note := fmt.Sprintf("\n_%d more findings (", left)
	if !strings.Contains(out, note) || !strings.Contains(out, fmt.Sprintf("%d infos)", infos)) {
		t.Errorf("no note on the %d findings left out:\n%s", left, out[len(out)-2000:])
	}
	// The fix is written once for all 600 findings, and the availability table is still there.
	if strings.Count(out, fix) != 1 || !strings.Contains(out, "### Availability per entrypoint") {
		t.Errorf("fixes or availability lost")
	}

	b.Reset()
	ReviewMarkdown(&b, reviewFixture())
	if strings.Contains(b.String(), "left out") {
		t.Error("a small review lost rows")
	}
}

func TestMarkdownEscaping(t *testing.T) {
	for in, want := range map[string]string{
		"a | b":           `a \| b`,
		"line\nbreak\r\n": "line<br>break",
		"<b>&":            "&lt;b&gt;&amp;",
		"3*3*3 [x] _y_":   `3\*3\*3 \[x\] \_y\_`,
	} {
		if got := mdText(in); got != want {
			t.Errorf("mdText(%q) = %q, want %q", in, got, want)
		}
	}
	for _, c := range []struct {
		in      string
		inTable bool
		want    string
	}{
		{"a.yaml:3", true, "`a.yaml:3`"},
		{"odd|name.yaml", true, "`odd\\|name.yaml`"},
		{"odd|name.yaml", false, "`odd|name.yaml`"},
		{"back`tick", false, "`` back`tick ``"},
	} {
		if got := mdCode(c.in, c.inTable); got != c.want {
			t.Errorf("mdCode(%q, %v) = %q, want %q", c.in, c.inTable, got, c.want)
		}
	}
}

func TestPercent(t *testing.T) {
	for a, want := range map[float64]string{
		0.999:     "99.9%",
		0.9999:    "99.99%",
		0.9995:    "99.95%",
		0.99712:   "99.71%",
		0.99999:   "99.999%",
		0.9999999: "99.99999%",
		0.95:      "95.0%",
		0.5:       "50.0%",
		1:         "100%",
		0:         "0%",
		// Truncated, never rounded up into a nine the system does not have.
		0.99899:        "99.89%",
		0.999999999999: "99.9999999999%",
	} {
		if got := percent(a); got != want {
			t.Errorf("percent(%v) = %s, want %s", a, got, want)
		}
	}
	for s, want := range map[float64]string{0.62: "62%", 0.004: "<1%", 0: "0%", 1: "100%"} {
		if got := sharePercent(s); got != want {
			t.Errorf("sharePercent(%v) = %s, want %s", s, got, want)
		}
	}
}

package report

import (
	_ "embed"
	"fmt"
	"html/template"
	"io"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/faultline-dev/faultline/model"
	"github.com/faultline-dev/faultline/review"
	"github.com/faultline-dev/faultline/sim/avail"
)

// ReviewHTML writes a review as one self-contained HTML page for people: a header with the counts
// and the availability verdict; the architecture as an SVG diagram faultline lays out itself
// (layered left to right from the entrypoints, each component outlined in the colour of its
// worst finding, with the findings on hover); each entrypoint's predicted availability against
// its SLO in nines, and which components cause its downtime; the findings grouped by area and rule
// with their evidence, the rule's fix and a link to its page in docs/rules, filterable by
// severity; and the findings the configuration ignored, with their reasons.
//
// The page has its CSS and SVG inline, a few lines of script for the severity filter, and fetches
// nothing. All text from the model and the review is escaped (html/template). The output is
// deterministic. sys may be nil, or describe more than MaxDiagramNodes nodes: the page then says
// why it has no diagram.
func ReviewHTML(w io.Writer, rep *review.Report, sys *model.System) error {
	page := htmlPage{
		System:       rep.System,
		Counts:       countSeverities(rep.Findings),
		Rules:        rep.Summary.Rules,
		IgnoredCount: len(rep.Ignored),
		Summary:      summaryLine(rep),
	}
	if page.System == "" && sys != nil {
		page.System = sys.Metadata.Name
	}
	if sys != nil {
		page.Description = sys.Metadata.Description
	}
	page.Verdict = availabilityVerdict(rep.Availability)
	page.Diagram, page.DiagramNote = buildDiagram(rep, sys)
	page.Availability = buildAvailability(rep.Availability)
	page.Areas = buildHTMLAreas(rep.Findings)
	for _, ig := range rep.Ignored {
		page.Ignored = append(page.Ignored, htmlIgnored{Rule: ig.Rule, Severity: ig.Severity.String(),
			Subjects: ig.Subjects, Message: ig.Message, Reason: ig.Reason})
	}
	return reviewHTMLTemplate.Execute(w, page)
}

// MaxDiagramNodes is the most boxes (components and entrypoints) ReviewHTML draws: beyond it a
// layered drawing is a hairball nobody reads, and the page says so instead.
const MaxDiagramNodes = 120

type htmlPage struct {
	System, Description string
	Counts              severityCounts
	Rules, IgnoredCount int
	Summary             string
	Verdict             htmlVerdict
	Diagram             *svgDiagram
	DiagramNote         string
	Availability        *htmlAvailability
	Areas               []htmlArea
	Ignored             []htmlIgnored
}

type severityCounts struct{ Errors, Warnings, Infos, Total int }

func countSeverities(fs []review.Finding) severityCounts {
	var c severityCounts
	for _, f := range fs {
		c.Total++
		switch f.Severity {
		case review.Error:
			c.Errors++
		case review.Warning:
			c.Warnings++
		case review.Info:
			c.Infos++
		}
	}
	return c
}

// htmlVerdict is the availability card of the header.
type htmlVerdict struct {
	Class, Value, Caption string
}

func availabilityVerdict(results []avail.Result) htmlVerdict {
	if len(results) == 0 {
		return htmlVerdict{"none", "–", "no entrypoints to predict availability for"}
	}
	below, withSLO := 0, 0
	for _, r := range results {
		if r.Target > 0 {
			withSLO++
		}
		if !r.Meets {
			below++
		}
	}
	switch {
	case below > 0:
		return htmlVerdict{"error", fmt.Sprintf("%d of %d", below, len(results)), "entrypoints predicted below their SLO"}
	case withSLO == 0:
		return htmlVerdict{"none", strconv.Itoa(len(results)), "entrypoints, none with an SLO"}
	}
	return htmlVerdict{"ok", fmt.Sprintf("%d of %d", len(results), len(results)), "entrypoints predicted to meet their SLO"}
}

// Severity colours: outline and text. The names are the CSS classes the page uses.
var severityColors = map[string]string{"error": "#cf1322", "warning": "#d48806", "info": "#1677ff", "none": "#8c8c8c"}

func severityClass(s review.Severity) string {
	switch s {
	case review.Error, review.Warning, review.Info:
		return s.String()
	}
	return "none"
}

// --- the architecture diagram ---

type svgDiagram struct {
	Width, Height string
	// Fit scales the drawing down to the page's width; a drawing much wider than a page scrolls
	// instead, as shrinking it that far would make its labels unreadable.
	Fit       bool
	Nodes     []svgNode
	Edges     []svgEdge
	Crossings int
}

type svgNode struct {
	Class           string // entry, service, datastore, broker, external
	Sev             string // error, warning, info, none
	Stroke          string
	Rect            bool   // drawn as a rect with rounded corners RX; otherwise as Path
	X, Y, W, H, RX  string // the rect
	Path            string // cylinder, hexagon
	Lid             string // the cylinder's front rim
	CX, NameY, DetY string
	Name, Detail    string
	Count           int
	BadgeX, BadgeY  string
	Title           string
}

type svgEdge struct {
	D      string
	Async  bool
	Back   bool
	Sev    string
	Stroke string
	Title  string
}

// fitWidth is the widest drawing scaled down to fit the page (about 1300 pixels wide) rather
// than scrolled.
const fitWidth = 1800

// Text metrics: a box fits its name in bold 13px and its detail in 11px, estimated at 0.62em per
// character (no font is measured, so the page looks the same everywhere it renders).
const (
	nameFont    = 13.0
	detailFont  = 11.0
	charWidth   = 0.62
	boxPadding  = 28.0
	minBoxWidth = 84.0
	maxBoxChars = 36
)

func textWidth(s string, size float64) float64 {
	return float64(utf8.RuneCountInString(s)) * size * charWidth
}

// clip shortens a label to n characters with an ellipsis; the whole text is in the tooltip.
func clip(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}

func num(v float64) string { return strconv.FormatFloat(round1(v), 'f', -1, 64) }

// diagramFindings sorts the findings by what they are about: a component, an entrypoint or an
// edge ("from → to"). A finding counts once per box or edge however many of its subjects name it.
func diagramFindings(rep *review.Report, sys *model.System, ids nodeIDs) (byNode, byEdge map[string][]review.Finding) {
	byNode, byEdge = map[string][]review.Finding{}, map[string][]review.Finding{}
	entries := map[string]bool{}
	for _, ep := range sys.Entrypoints {
		entries[ep.Name] = true
	}
	for _, f := range rep.Findings {
		seen := map[string]bool{}
		for _, s := range f.Subjects {
			key := ""
			if from, to, ok := strings.Cut(s, "→"); ok {
				a, okA := ids[strings.TrimSpace(from)]
				b, okB := ids[strings.TrimSpace(to)]
				if okA && okB {
					key = "edge:" + a + ">" + b
				}
			} else if id, ok := ids[s]; ok {
				key = id
			} else if entries[s] {
				key = ids["entry:"+s]
			}
			if key == "" || seen[key] {
				continue
			}
			seen[key] = true
			if strings.HasPrefix(key, "edge:") {
				byEdge[strings.TrimPrefix(key, "edge:")] = append(byEdge[strings.TrimPrefix(key, "edge:")], f)
			} else {
				byNode[key] = append(byNode[key], f)
			}
		}
	}
	return byNode, byEdge
}

// tooltipFindings lists findings for a hover title, the most serious first (the report's order),
// at most a dozen.
func tooltipFindings(fs []review.Finding) string {
	if len(fs) == 0 {
		return "no findings"
	}
	var b strings.Builder
	b.WriteString(plural(len(fs), "finding") + ":")
	const shown = 12
	for i, f := range fs {
		if i == shown {
			fmt.Fprintf(&b, "\n… and %d more below", len(fs)-shown)
			break
		}
		fmt.Fprintf(&b, "\n• %s %s: %s", f.Severity, f.Rule, clip(oneLine(f.Message), 110))
	}
	return b.String()
}

func worst(fs []review.Finding) review.Severity {
	s := review.Severity(0)
	for _, f := range fs {
		s = max(s, f.Severity)
	}
	return s
}

// buildDiagram lays out the system and draws it, or says why there is no drawing.
func buildDiagram(rep *review.Report, sys *model.System) (*svgDiagram, string) {
	if sys == nil {
		return nil, "No diagram: the review was rendered without its system."
	}
	ids := newNodeIDs(sys)
	nodes := diagramNodes(sys, ids)
	if len(nodes) == 0 {
		return nil, "No diagram: the system has no components."
	}
	if len(nodes) > MaxDiagramNodes {
		return nil, fmt.Sprintf("No diagram: the system has %d components and entrypoints, more than the %d a layered drawing keeps readable. "+
			"faultline model diagram --format dot writes it for Graphviz, which can lay out and pan larger graphs.", len(nodes), MaxDiagramNodes)
	}
	links := diagramLinks(sys, ids)
	byNode, byEdge := diagramFindings(rep, sys, ids)

	index := map[string]int{}
	boxes := make([]layoutBox, len(nodes))
	for i, n := range nodes {
		index[n.id] = i
		w := max(textWidth(clip(n.name, maxBoxChars), nameFont), textWidth(clip(n.detail, maxBoxChars+6), detailFont)) + boxPadding
		h := 34.0
		if n.detail != "" {
			h = 46
		}
		switch n.class {
		case "datastore":
			h += 12 // the cylinder's lid
		case "broker":
			w += 16 // the hexagon's points
		case "entry":
			w += 12 // the pill's round ends
		}
		boxes[i] = layoutBox{w: math.Ceil(max(w, minBoxWidth)), h: h, entry: n.class == "entry"}
	}
	edges := make([]layoutEdge, 0, len(links))
	for _, l := range links {
		edges = append(edges, layoutEdge{from: index[l.from], to: index[l.to], async: l.async})
	}
	lay := layoutGraph(boxes, edges)

	d := &svgDiagram{Width: num(lay.width), Height: num(lay.height), Fit: lay.width <= fitWidth}
	for i, n := range nodes {
		p := lay.nodes[i]
		fs := byNode[n.id]
		sev := severityClass(worst(fs))
		sn := svgNode{
			Class: n.class, Sev: sev, Stroke: severityColors[sev], Rect: true,
			X: num(p.x), Y: num(p.y), W: num(p.w), H: num(p.h), RX: "8",
			CX: num(p.x + p.w/2), Name: clip(n.name, maxBoxChars), Detail: clip(n.detail, maxBoxChars+6),
			Count: len(fs), BadgeX: num(p.x + p.w - 3), BadgeY: num(p.y - 2),
		}
		top := p.y
		switch n.class {
		case "entry":
			sn.RX = num(p.h / 2)
		case "datastore":
			// A cylinder: the body, then the lid's front rim.
			const lid = 7.0
			x0, x1, y0, y1 := p.x, p.x+p.w, p.y+lid, p.y+p.h-lid
			rx := p.w / 2
			sn.Rect = false
			sn.Path = "M " + num(x0) + " " + num(y0) + " A " + num(rx) + " " + num(lid) + " 0 0 1 " + num(x1) + " " + num(y0) +
				" V " + num(y1) + " A " + num(rx) + " " + num(lid) + " 0 0 1 " + num(x0) + " " + num(y1) + " Z"
			sn.Lid = "M " + num(x0) + " " + num(y0) + " A " + num(rx) + " " + num(lid) + " 0 0 0 " + num(x1) + " " + num(y0)
			top = p.y + lid
		case "broker":
			const point = 12.0
			sn.Rect = false
			cy := p.y + p.h/2
			sn.Path = "M " + num(p.x) + " " + num(cy) + " L " + num(p.x+point) + " " + num(p.y) + " L " + num(p.x+p.w-point) + " " + num(p.y) +
				" L " + num(p.x+p.w) + " " + num(cy) + " L " + num(p.x+p.w-point) + " " + num(p.y+p.h) + " L " + num(p.x+point) + " " + num(p.y+p.h) + " Z"
			sn.BadgeX = num(p.x + p.w - point)
		}
		mid := top + (p.y+p.h-top)/2
		if n.detail != "" {
			sn.NameY, sn.DetY = num(mid-2), num(mid+13)
		} else {
			sn.NameY = num(mid + 4.5)
		}
		title := n.name
		if n.detail != "" {
			title += " (" + n.detail + ")"
		}
		sn.Title = title + "\n" + tooltipFindings(fs)
		d.Nodes = append(d.Nodes, sn)
	}
	for i, l := range links {
		r := lay.routes[i]
		fs := byEdge[l.from+">"+l.to]
		sev := severityClass(worst(fs))
		title := nodes[index[l.from]].name + " → " + nodes[index[l.to]].name
		if l.label != "" {
			title += " (" + l.label + ")"
		}
		if l.async {
			title += ", async"
		}
		if r.back {
			title += "; closes a cycle"
		}
		if nodes[index[l.from]].class != "entry" {
			title += "\n" + tooltipFindings(fs)
		}
		d.Edges = append(d.Edges, svgEdge{D: routePath(r), Async: l.async, Back: r.back, Sev: sev, Stroke: edgeColor(sev), Title: title})
	}
	return d, ""
}

// edgeColor is an edge's stroke: severity colours, but a plain edge is darker than a plain box's
// outline so it reads as a line.
func edgeColor(sev string) string {
	if sev == "none" {
		return "#595959"
	}
	return severityColors[sev]
}

// routePath draws a route as SVG path data: horizontal runs across layer bands are straight, the
// bends between bands are cubic curves leaving and entering horizontally.
func routePath(r route) string {
	p := r.points
	if r.self {
		a, b := p[0], p[1]
		return "M " + num(a.x) + " " + num(a.y) + " C " + num(a.x) + " " + num(a.y-selfLoopRise) + " " + num(b.x) + " " + num(b.y-selfLoopRise) +
			" " + num(b.x) + " " + num(b.y)
	}
	var b strings.Builder
	b.WriteString("M " + num(p[0].x) + " " + num(p[0].y))
	for i := 1; i < len(p); i++ {
		a, c := p[i-1], p[i]
		if a.y == c.y && i%2 == 0 {
			// A run across a band (points 1-2, 3-4, … are a dummy's two sides).
			b.WriteString(" L " + num(c.x) + " " + num(c.y))
			continue
		}
		mx := (a.x + c.x) / 2
		b.WriteString(" C " + num(mx) + " " + num(a.y) + " " + num(mx) + " " + num(c.y) + " " + num(c.x) + " " + num(c.y))
	}
	return b.String()
}

// --- availability ---

type htmlAvailability struct {
	Width, Height  string
	Ticks          []svgTick
	Rows           []svgNinesRow
	Shares         []htmlShares
	ChartX, ChartR string // the chart's left and right edges
	AxisY          string
	Marked         bool // some component is below the extra nine
}

type svgTick struct{ X, Label string }

type svgNinesRow struct {
	Name, Service                     string
	Y, TextY, BarY, BarW, BarH        string
	Class                             string // ok, error, none
	Value, Target, Meets              string
	HasTarget                         bool
	TargetX, ExtraX, MarkTop, MarkBot string
	ExtraLabel                        string
	Title                             string
}

type htmlShares struct {
	// Entrypoints are those whose downtime this bar shows: entrypoints that need the same
	// components share one bar.
	Entrypoints string
	Width       string
	Segments    []svgSegment
	Legend      []htmlShareItem
}

type svgSegment struct {
	X, W, Color, Label, LabelX, Title string
	Below                             bool
}

type htmlShareItem struct {
	Name, Share, Color, Availability string
	Below                            bool
}

// sharePalette colours components in a stacked bar (Tableau 10), costliest first; the rest share
// the last colour.
var sharePalette = []string{"#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"}

// Availability chart geometry, in SVG pixels.
const (
	ninesLabelW = 230.0
	ninesChartW = 540.0
	ninesValueW = 250.0
	ninesRowH   = 40.0
	ninesTop    = 26.0
	shareBarW   = 1000.0
)

// ninesLabel names k nines as a percentage: 0%, 90%, 99%, 99.9%, …
func ninesLabel(k int) string {
	switch k {
	case 0:
		return "0%"
	case 1:
		return "90%"
	case 2:
		return "99%"
	}
	return "99." + strings.Repeat("9", k-2) + "%"
}

func buildAvailability(results []avail.Result) *htmlAvailability {
	if len(results) == 0 {
		return nil
	}
	scale := 4.0
	for _, r := range results {
		scale = max(scale, math.Ceil(r.Nines+0.2))
		if r.Target > 0 {
			scale = max(scale, math.Ceil(avail.Nines(avail.ExtraNine(r.Target))+0.2))
		}
	}
	scale = min(scale, 12)
	x := func(n float64) float64 { return ninesLabelW + min(n, scale)/scale*ninesChartW }
	a := &htmlAvailability{
		Width:  num(ninesLabelW + ninesChartW + ninesValueW),
		Height: num(ninesTop + ninesRowH*float64(len(results)) + 8),
		ChartX: num(x(0)), ChartR: num(x(scale)), AxisY: num(ninesTop - 10),
	}
	for k := 0; k <= int(scale); k++ {
		a.Ticks = append(a.Ticks, svgTick{X: num(x(float64(k))), Label: ninesLabel(k)})
	}
	sameShares := map[string]int{}
	for i, r := range results {
		y := ninesTop + ninesRowH*float64(i)
		row := svgNinesRow{
			Name: clip(r.Entrypoint, 30), Service: clip(r.Service, 30), Y: num(y), TextY: num(y + 17), BarY: num(y + 8), BarH: "16",
			BarW:  num(max(x(r.Nines)-x(0), 1)),
			Value: fmt.Sprintf("%s · %s nines", percent(r.Availability), strconv.FormatFloat(r.Nines, 'f', 1, 64)),
			Class: "none", Target: "no SLO", MarkTop: num(y + 3), MarkBot: num(y + 29),
		}
		title := fmt.Sprintf("%s (entry service %s): predicted %s (%s nines)", r.Entrypoint, r.Service, percent(r.Availability),
			strconv.FormatFloat(r.Nines, 'f', 1, 64))
		if r.Target > 0 {
			row.HasTarget = true
			row.TargetX = num(x(avail.Nines(r.Target)))
			extra := avail.ExtraNine(r.Target)
			row.ExtraX = num(x(avail.Nines(extra)))
			row.ExtraLabel = "extra nine: each critical dependency should reach " + percent(extra)
			row.Target = "SLO " + percent(r.Target)
			if r.Meets {
				row.Class, row.Meets = "ok", "meets"
			} else {
				row.Class, row.Meets = "error", "misses"
			}
			title += fmt.Sprintf(", SLO %s: %s", percent(r.Target), row.Meets)
		}
		row.Title = title
		a.Rows = append(a.Rows, row)
		sh := buildShares(r)
		key := fmt.Sprint(sh.Segments)
		if k, ok := sameShares[key]; ok {
			a.Shares[k].Entrypoints += ", " + r.Entrypoint
		} else {
			sameShares[key] = len(a.Shares)
			a.Shares = append(a.Shares, sh)
		}
		for _, c := range r.Components {
			a.Marked = a.Marked || c.BelowExtraNine
		}
	}
	return a
}

// buildShares draws an entrypoint's downtime as a stacked bar of its components' shares,
// costliest first; components beyond the palette are pooled as "others".
func buildShares(r avail.Result) htmlShares {
	s := htmlShares{Entrypoints: r.Entrypoint, Width: num(shareBarW)}
	total := 0.0
	for _, c := range r.Components {
		total += c.Share
	}
	if total <= 0 {
		return s
	}
	x := 0.0
	shown := len(sharePalette) - 1
	var rest float64
	var restBelow, restCount int
	for i, c := range r.Components {
		if i >= shown && len(r.Components) > shown+1 {
			rest += c.Share
			restCount++
			if c.BelowExtraNine {
				restBelow++
			}
			continue
		}
		color := sharePalette[min(i, len(sharePalette)-1)]
		w := c.Share / total * shareBarW
		seg := svgSegment{X: num(x), W: num(w), Color: color, Below: c.BelowExtraNine,
			Title: fmt.Sprintf("%s: %s of the downtime; %s available", c.Name, sharePercent(c.Share), percent(c.Availability))}
		if c.BelowExtraNine {
			seg.Title += "; below the extra nine"
		}
		label := c.Name + " " + sharePercent(c.Share)
		if textWidth(label, 11)+8 <= w {
			seg.Label, seg.LabelX = label, num(x+w/2)
		} else if textWidth(sharePercent(c.Share), 11)+6 <= w {
			seg.Label, seg.LabelX = sharePercent(c.Share), num(x+w/2)
		}
		s.Segments = append(s.Segments, seg)
		s.Legend = append(s.Legend, htmlShareItem{Name: c.Name, Share: sharePercent(c.Share), Color: color,
			Availability: percent(c.Availability), Below: c.BelowExtraNine})
		x += w
	}
	if restCount > 0 {
		color := sharePalette[len(sharePalette)-1]
		w := shareBarW - x
		name := plural(restCount, "other")
		seg := svgSegment{X: num(x), W: num(w), Color: color, Below: restBelow > 0,
			Title: fmt.Sprintf("%s: %s of the downtime", name, sharePercent(rest/total))}
		if restBelow > 0 {
			seg.Title += fmt.Sprintf("; %d below the extra nine", restBelow)
		}
		s.Segments = append(s.Segments, seg)
		s.Legend = append(s.Legend, htmlShareItem{Name: name, Share: sharePercent(rest / total), Color: color, Below: restBelow > 0})
	}
	return s
}

// --- findings ---

type htmlArea struct {
	ID, Title string
	Count     int
	Rules     []htmlRule
}

type htmlRule struct {
	ID, Title, Severity, Fix, Doc string
	Count                         int
	Findings                      []htmlFinding
}

type htmlFinding struct {
	Severity string
	Subjects []string
	Message  string
	Evidence []htmlEvidence
}

type htmlEvidence struct{ Loc, What string }

type htmlIgnored struct {
	Rule, Severity, Message, Reason string
	Subjects                        []string
}

func buildHTMLAreas(fs []review.Finding) []htmlArea {
	var out []htmlArea
	for _, g := range groupByArea(fs) {
		a := htmlArea{ID: "area-" + string(g.area), Title: areaTitle(g.area), Count: len(g.findings)}
		for _, rg := range groupByRule(g.findings) {
			r := htmlRule{ID: rg.rule, Count: len(rg.findings), Fix: rg.findings[0].Fix, Doc: "docs/rules/" + rg.rule + ".md",
				Severity: severityClass(worst(rg.findings))}
			if rule, ok := review.RuleByID(rg.rule); ok {
				r.Title = rule.Title
			}
			for _, f := range rg.findings {
				hf := htmlFinding{Severity: severityClass(f.Severity), Subjects: f.Subjects, Message: f.Message}
				for _, e := range f.Evidence {
					if e.File == "" && e.What == "" {
						continue
					}
					hf.Evidence = append(hf.Evidence, htmlEvidence{Loc: evidenceLoc(e), What: e.What})
				}
				r.Findings = append(r.Findings, hf)
			}
			a.Rules = append(a.Rules, r)
		}
		out = append(out, a)
	}
	return out
}

// reviewHTMLSource is the page; html/template escapes every value it inserts.
//
//go:embed review_html.tmpl
var reviewHTMLSource string

var reviewHTMLTemplate = template.Must(template.New("review").Parse(reviewHTMLSource))

package report

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"html"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/faultline-dev/faultline/internal/testkit"
	"github.com/faultline-dev/faultline/model"
	"github.com/faultline-dev/faultline/review"
)

// fixtureSystem is a small system with the components reviewFixture talks about, and one of each
// kind of box: entrypoints, services, a datastore, a broker and an external.
func fixtureSystem(t *testing.T) *model.System {
	t.Helper()
	sys, err := model.Load("models/shop.yaml", []byte(`apiVersion: faultline/v1
kind: System
metadata: {name: shop, description: The shop after its resilience work.}
slo: {availability: 0.999}
services:
  - {name: gateway, role: gateway, replicas: 2, zones: [a, b]}
  - {name: order, replicas: 2, zones: [a, b], datastores: [orderdb]}
  - {name: payment}
  - {name: inventory, replicas: 2, datastores: [orderdb]}
  - {name: catalog, replicas: 3, zones: [a, b, c]}
  - {name: admin}
  - {name: legacy-auth}
datastores:
  - {name: orderdb, kind: postgres, replicas: 2}
brokers:
  - {name: bus, kind: nats, replicas: 3}
externals:
  - {name: psp, host: api.psp.example.com}
edges:
  - {from: gateway, to: order, protocol: http, policy: {timeout: 2s, retry: {attempts: 3}}}
  - {from: gateway, to: catalog, protocol: grpc}
  - {from: order, to: payment, protocol: http, policy: {retry: {attempts: 3}}}
  - {from: order, to: inventory, protocol: http}
  - {from: order, to: bus, protocol: nats, mode: async, topics: [order.created]}
  - {from: payment, to: psp, protocol: http}
  - {from: bus, to: inventory, protocol: nats, mode: async}
  - {from: admin, to: legacy-auth, protocol: http}
entrypoints:
  - {name: checkout, service: gateway, rps: 200, path: POST /checkout}
  - {name: browse, service: catalog, rps: 800}
  - {name: admin, service: admin}
`))
	if err != nil {
		t.Fatal(err)
	}
	return sys
}

func reviewHTML(t *testing.T, rep *review.Report, sys *model.System) string {
	t.Helper()
	var b bytes.Buffer
	if err := ReviewHTML(&b, rep, sys); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func TestReviewHTMLGolden(t *testing.T) {
	golden(t, "review/shop.html", []byte(reviewHTML(t, reviewFixture(), fixtureSystem(t))))
	golden(t, "review/clean.html", []byte(reviewHTML(t, cleanFixture(), nil)))
}

// TestReviewHTMLShowsEveryFinding checks what a reader relies on: every finding with its
// subjects, message and evidence; each rule's fix once and a link to its page; the ignored
// finding with its reason; the counts; and a diagram whose boxes carry their findings.
func TestReviewHTMLShowsEveryFinding(t *testing.T) {
	rep := reviewFixture()
	out := reviewHTML(t, rep, fixtureSystem(t))
	if n := strings.Count(out, `<li class="finding"`); n != len(rep.Findings) {
		t.Errorf("%d findings shown, want %d", n, len(rep.Findings))
	}
	for _, f := range rep.Findings {
		for _, want := range []string{html.EscapeString(f.Message), `<a href="docs/rules/` + f.Rule + `.md">`} {
			if !strings.Contains(out, want) {
				t.Errorf("page lacks %q", want)
			}
		}
		for _, s := range f.Subjects {
			if !strings.Contains(out, `<span class="subject">`+html.EscapeString(s)+`</span>`) {
				t.Errorf("page lacks subject %q", s)
			}
		}
		for _, e := range f.Evidence {
			if e.File != "" && !strings.Contains(out, "<code>"+evidenceLoc(e)+"</code>") {
				t.Errorf("page lacks evidence %s", evidenceLoc(e))
			}
		}
		if n := strings.Count(out, html.EscapeString(f.Fix)); n != 1 {
			t.Errorf("fix %q shown %d times, want once", f.Fix, n)
		}
	}
	for _, want := range []string{
		"replaced in Q3; accepted by the platform team", // the ignored finding's reason
		"<b>2</b><span>errors</span>", "<b>2</b><span>warnings</span>", "<b>1</b><span>infos</span>",
		"<b>1 of 3</b><span>entrypoints predicted below their SLO</span>",
		// payment has an error: red outline, and its hover lists the finding.
		`<g class="node service sev-error"><title>payment`,
		"• error single-point-of-failure: payment runs 1 replica",
		// The edge order → payment carries retry-amplification (error) and missing-timeout.
		"<title>order → payment (http · 3 tries)\n2 findings:",
		`<g class="edge sev-none async">`, // order → bus
		`<g class="node datastore sev-none">`, `<g class="node broker sev-none">`, `<g class="node external sev-none">`,
		`<g class="node entry sev-none"><title>checkout (POST /checkout 200 rps)`,
		"Where the downtime of checkout comes from",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	if rest := strings.ReplaceAll(out, `xmlns="http://www.w3.org/2000/svg"`, ""); strings.Contains(rest, "http://") || strings.Contains(rest, "https://") {
		t.Error("page refers to something outside itself")
	}
	for _, tag := range regexp.MustCompile(`<(?:script|link|img|iframe)[^>]*\ssrc=|<link[^>]*href=`).FindAllString(out, -1) {
		t.Errorf("page fetches something: %s", tag)
	}
	checkSVGs(t, out)
}

// TestReviewHTMLEscapes: names and messages are text, never markup, in HTML and in the SVG.
func TestReviewHTMLEscapes(t *testing.T) {
	const evil = `<script>alert("x")</script>`
	sys, err := model.Load("evil.yaml", []byte(`apiVersion: faultline/v1
kind: System
metadata: {name: '`+evil+`'}
services:
  - {name: '`+evil+`'}
  - {name: "a&b</title><svg onload=alert(1)>"}
edges:
  - {from: '`+evil+`', to: "a&b</title><svg onload=alert(1)>"}
entrypoints:
  - {name: "e'\"><img src=x>", service: '`+evil+`'}
`))
	if err != nil {
		t.Fatal(err)
	}
	rep, err := review.Review(context.Background(), sys, nil)
	if err != nil {
		t.Fatal(err)
	}
	rep.Findings = append(rep.Findings, review.Finding{Rule: "missing-timeout", Severity: review.Warning, Area: review.Resilience,
		Subjects: []string{evil + " → a&b</title><svg onload=alert(1)>"}, Message: "</li></ul>" + evil,
		Evidence: []review.Evidence{{File: `"><script>.yaml`, Line: 3, What: evil}}, Fix: "<b>fix</b>"})
	rep.Ignored = append(rep.Ignored, review.IgnoredFinding{Finding: rep.Findings[0], Reason: evil})
	out := reviewHTML(t, rep, sys)
	if n := strings.Count(out, "<script"); n != 1 {
		t.Errorf("%d <script elements, want only the page's own filter", n)
	}
	for _, bad := range []string{"<svg onload", "<img src", "<b>fix</b>", "</li></ul><"} {
		if strings.Contains(out, bad) {
			t.Errorf("page contains unescaped %q", bad)
		}
	}
	if !strings.Contains(out, "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;") {
		t.Error("escaped name missing")
	}
	checkSVGs(t, out)
}

// checkSVGs parses every inline SVG of a page as XML: a drawing a browser shows as a broken image
// fails here.
func checkSVGs(t *testing.T, page string) {
	t.Helper()
	svgs := regexp.MustCompile(`(?s)<svg.*?</svg>`).FindAllString(page, -1)
	if len(svgs) == 0 {
		t.Fatal("no SVG in the page")
	}
	for _, s := range svgs {
		d := xml.NewDecoder(strings.NewReader(s))
		for {
			_, err := d.Token()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("SVG is not well-formed XML: %v\n%.600s", err, s)
			}
		}
	}
}

func TestReviewHTMLWithoutDiagram(t *testing.T) {
	out := reviewHTML(t, cleanFixture(), nil)
	if !strings.Contains(out, "No diagram: the review was rendered without its system.") || !strings.Contains(out, "No findings") {
		t.Errorf("page:\n%s", out)
	}
	big, err := model.Load("big.yaml", testkit.LayeredSystem(300, 600))
	if err != nil {
		t.Fatal(err)
	}
	out = reviewHTML(t, cleanFixture(), big)
	if strings.Contains(out, `class="diagram`) || !strings.Contains(out, "more than the 120 a layered drawing keeps readable") {
		t.Error("a system of 300 services should get a note, not a drawing")
	}
}

// TestReviewHTMLLargeDiagram: a system of 60 services still gets a drawing without overlaps.
func TestReviewHTMLLargeDiagram(t *testing.T) {
	sys, err := model.Load("gen.yaml", testkit.LayeredSystem(60, 110))
	if err != nil {
		t.Fatal(err)
	}
	rep, err := review.Review(context.Background(), sys, nil)
	if err != nil {
		t.Fatal(err)
	}
	out := reviewHTML(t, rep, sys)
	if n := strings.Count(out, `<g class="node `); n != len(sys.Components())+len(sys.Entrypoints) {
		t.Errorf("%d boxes drawn, want %d", n, len(sys.Components())+len(sys.Entrypoints))
	}
	checkSVGs(t, out)
	if p := os.Getenv("FAULTLINE_HTML_OUT"); p != "" {
		os.WriteFile(p, []byte(out), 0o644) // for looking at by hand
	}
}

// --- layout ---

func boxesOf(n int) []layoutBox {
	out := make([]layoutBox, n)
	for i := range out {
		out[i] = layoutBox{w: 80 + float64(i%3)*20, h: 34 + float64(i%2)*12}
	}
	return out
}

func TestLayoutLayersDAG(t *testing.T) {
	// 0 entry → 1 → 2 → 4, 1 → 3 → 4, 1 → 4; 5 is a lone source calling 4.
	boxes := boxesOf(6)
	boxes[0].entry = true
	edges := []layoutEdge{{from: 0, to: 1}, {from: 1, to: 2}, {from: 2, to: 4}, {from: 1, to: 3}, {from: 3, to: 4}, {from: 1, to: 4}, {from: 5, to: 4}}
	lay := layoutGraph(boxes, edges)
	want := []int{0, 1, 2, 2, 3, 2} // longest paths; the lone source sits just before its callee
	for i, w := range want {
		if lay.nodes[i].layer != w {
			t.Errorf("node %d in layer %d, want %d", i, lay.nodes[i].layer, w)
		}
	}
	for i, r := range lay.routes {
		if r.back || len(r.points) < 2 {
			t.Errorf("edge %d: %+v", i, r)
		}
		// Left to right: from the caller's right side to the callee's left side.
		from, to := lay.nodes[edges[i].from], lay.nodes[edges[i].to]
		if first, last := r.points[0], r.points[len(r.points)-1]; first.x != from.x+from.w || last.x != to.x {
			t.Errorf("edge %d runs %v → %v", i, first, last)
		}
	}
	// The long edge 1 → 4 passes layer 2 through a dummy: two more points.
	if got := len(lay.routes[5].points); got != 4 {
		t.Errorf("edge 1 → 4 has %d points, want 4", got)
	}
	checkNoOverlap(t, lay)
}

func TestLayoutCycles(t *testing.T) {
	// entry 0 → 1 → 2 → 3 → 1 (a cycle), 3 → 3 (self), 2 ⇄ 4.
	boxes := boxesOf(5)
	boxes[0].entry = true
	edges := []layoutEdge{{from: 0, to: 1}, {from: 1, to: 2}, {from: 2, to: 3}, {from: 3, to: 1}, {from: 3, to: 3}, {from: 2, to: 4}, {from: 4, to: 2}}
	done := make(chan graphLayout)
	go func() { done <- layoutGraph(boxes, edges) }()
	var lay graphLayout
	select {
	case lay = <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("layout of a cyclic graph does not finish")
	}
	if l := []int{lay.nodes[0].layer, lay.nodes[1].layer, lay.nodes[2].layer, lay.nodes[3].layer}; fmt.Sprint(l) != "[0 1 2 3]" {
		t.Errorf("layers %v, want [0 1 2 3]", l)
	}
	if !lay.routes[3].back || !lay.routes[6].back || lay.routes[5].back {
		t.Errorf("back edges: 3→1 %v, 4→2 %v, 2→4 %v", lay.routes[3].back, lay.routes[6].back, lay.routes[5].back)
	}
	if !lay.routes[4].self {
		t.Error("3 → 3 is not drawn as a loop")
	}
	// A back edge runs right to left: from the caller's left side to the callee's right side.
	r, from, to := lay.routes[3], lay.nodes[3], lay.nodes[1]
	if r.points[0].x != from.x || r.points[len(r.points)-1].x != to.x+to.w {
		t.Errorf("back edge 3 → 1 runs %v → %v", r.points[0], r.points[len(r.points)-1])
	}
	// The two edges between 2 and 4 attach at different points.
	if a, b := lay.routes[5].points[0], lay.routes[6].points[len(lay.routes[6].points)-1]; a == b {
		t.Errorf("2 → 4 and 4 → 2 share their end on 2 at %v", a)
	}
	checkNoOverlap(t, lay)
}

// TestLayoutAsyncClosesCycle: when a cycle mixes sync and async edges, an async edge is reversed,
// so the sync calls read left to right and only a message flows back.
func TestLayoutAsyncClosesCycle(t *testing.T) {
	boxes := boxesOf(3)
	boxes[0].entry = true
	// 0 → 1, 1 → 2 async (found first by a plain depth-first search), 2 → 1 sync.
	edges := []layoutEdge{{from: 0, to: 1}, {from: 1, to: 2, async: true}, {from: 2, to: 1}}
	lay := layoutGraph(boxes, edges)
	if !lay.routes[1].back || lay.routes[2].back {
		t.Errorf("back: async 1 → 2 %v, sync 2 → 1 %v; want the async edge reversed", lay.routes[1].back, lay.routes[2].back)
	}
	if lay.nodes[2].layer >= lay.nodes[1].layer {
		t.Errorf("2 calls 1 but sits in layer %d, 1 in %d", lay.nodes[2].layer, lay.nodes[1].layer)
	}
	checkNoOverlap(t, lay)
}

func TestLayoutDeterministicAndApart(t *testing.T) {
	sys, err := model.Load("gen.yaml", testkit.LayeredSystem(60, 110))
	if err != nil {
		t.Fatal(err)
	}
	var first string
	for i := 0; i < 3; i++ {
		ids := newNodeIDs(sys)
		nodes := diagramNodes(sys, ids)
		index := map[string]int{}
		boxes := make([]layoutBox, len(nodes))
		for k, n := range nodes {
			index[n.id] = k
			boxes[k] = layoutBox{w: 100, h: 46, entry: n.class == "entry"}
		}
		var edges []layoutEdge
		for _, l := range diagramLinks(sys, ids) {
			edges = append(edges, layoutEdge{from: index[l.from], to: index[l.to], async: l.async})
		}
		lay := layoutGraph(boxes, edges)
		checkNoOverlap(t, lay)
		got := fmt.Sprintf("%v %v", lay.nodes, lay.routes)
		if i == 0 {
			first = got
			if lay.layers < 10 {
				t.Errorf("%d layers for a 10-layer system", lay.layers)
			}
		} else if got != first {
			t.Fatal("layout differs between runs")
		}
	}
}

// checkNoOverlap fails when two boxes overlap or a box leaves the drawing.
func checkNoOverlap(t *testing.T, lay graphLayout) {
	t.Helper()
	for i, a := range lay.nodes {
		if a.x < 0 || a.y < 0 || a.x+a.w > lay.width || a.y+a.h > lay.height {
			t.Errorf("node %d at %+v outside the %v×%v drawing", i, a, lay.width, lay.height)
		}
		for j := i + 1; j < len(lay.nodes); j++ {
			b := lay.nodes[j]
			if a.x < b.x+b.w && b.x < a.x+a.w && a.y < b.y+b.h && b.y < a.y+a.h {
				t.Errorf("nodes %d %+v and %d %+v overlap", i, a, j, b)
			}
		}
	}
}

func TestSpacedFit(t *testing.T) {
	got := spacedFit([]float64{0, 0, 100}, []float64{0, 10, 10})
	// The first two want the same place: they share it symmetrically, 10 apart; the third is free.
	if fmt.Sprint(got) != "[-5 5 100]" {
		t.Errorf("spacedFit = %v", got)
	}
}

// TestReviewHTMLInChromium renders the review of the legacy shop in headless Chromium and checks
// that it produced a real screenshot: the page loads, with nothing it has to fetch.
func TestReviewHTMLInChromium(t *testing.T) {
	chromium := ""
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			chromium = p
			break
		}
	}
	if chromium == "" {
		if os.Getenv("FAULTLINE_REQUIRE_SERVICES") == "1" {
			t.Fatal("chromium is required in CI; .ci/run installs it")
		}
		t.Skip("chromium not installed")
	}
	sys, err := model.LoadFile("../examples/models/legacy-shop.yaml")
	if err != nil {
		t.Fatal(err)
	}
	rep, err := review.Review(context.Background(), sys, nil)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	page := filepath.Join(dir, "review.html")
	if err := os.WriteFile(page, []byte(reviewHTML(t, rep, sys)), 0o644); err != nil {
		t.Fatal(err)
	}
	shot := filepath.Join(dir, "review.png")
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--user-data-dir="+filepath.Join(dir, "profile"), "--window-size=1400,2000", "--screenshot="+shot, "file://"+page)
	msg, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("chromium: %v\n%s", err, msg)
	}
	png, err := os.ReadFile(shot)
	if err != nil {
		t.Fatalf("no screenshot: %v\n%s", err, msg)
	}
	if !bytes.HasPrefix(png, []byte("\x89PNG\r\n\x1a\n")) || len(png) < 50_000 {
		t.Errorf("screenshot is not a real rendering: %d bytes", len(png))
	}
}

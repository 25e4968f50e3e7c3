package report

import (
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"

	"github.com/faultline-dev/faultline/model"
)

// DiagramFormats are the formats Diagram writes.
var DiagramFormats = []string{"mermaid", "dot"}

// Diagram writes a system as a diagram in the given format.
func Diagram(w io.Writer, s *model.System, format string) error {
	switch format {
	case "mermaid":
		return Mermaid(w, s)
	case "dot":
		return DOT(w, s)
	}
	return fmt.Errorf("unknown diagram format %q; expected mermaid or dot", format)
}

// nodeIDs gives every component and entrypoint an identifier safe in Mermaid and DOT.
type nodeIDs map[string]string

var unsafeID = regexp.MustCompile(`[^A-Za-z0-9_]`)

func newNodeIDs(s *model.System) nodeIDs {
	ids := nodeIDs{}
	used := map[string]bool{}
	add := func(key, name string) {
		id := unsafeID.ReplaceAllString(name, "_")
		if id == "" || id[0] >= '0' && id[0] <= '9' || reserved[strings.ToLower(id)] {
			id = "n_" + id
		}
		base := id
		for i := 2; used[id]; i++ {
			id = base + "_" + strconv.Itoa(i)
		}
		used[id] = true
		ids[key] = id
	}
	for _, c := range s.Components() {
		add(c.Name, c.Name)
	}
	for _, ep := range s.Entrypoints {
		add("entry:"+ep.Name, "entry_"+ep.Name)
	}
	return ids
}

// reserved are words Mermaid or DOT read as keywords.
var reserved = map[string]bool{"end": true, "graph": true, "subgraph": true, "node": true, "edge": true, "digraph": true, "strict": true, "style": true, "class": true, "click": true, "default": true}

func edgeLabel(e model.Edge) string {
	var parts []string
	if e.Protocol != "" {
		parts = append(parts, e.Protocol)
	}
	if e.CallsPerRequest > 1 {
		parts = append(parts, "×"+strconv.FormatFloat(e.CallsPerRequest, 'g', -1, 64))
	}
	if p := e.Policy; p != nil {
		if p.Timeout != 0 {
			parts = append(parts, "timeout "+p.Timeout.String())
		}
		if p.Retry != nil && p.Retry.Attempts > 1 {
			parts = append(parts, fmt.Sprintf("%d tries", p.Retry.Attempts))
		}
		if p.CircuitBreaker != nil {
			parts = append(parts, "breaker")
		}
	}
	if len(e.Topics) > 0 {
		parts = append(parts, strings.Join(e.Topics, ","))
	}
	return strings.Join(parts, " · ")
}

func replicasNote(n int, zones []string) string {
	s := ""
	if n > 1 {
		s = fmt.Sprintf("×%d", n)
	}
	if len(zones) > 0 {
		if s != "" {
			s += " "
		}
		s += strings.Join(zones, ",")
	}
	return s
}

func mermaidText(s string) string {
	return strings.NewReplacer(`"`, "#quot;", "<", "#lt;", ">", "#gt;").Replace(s)
}

// diagramNode is one box of a diagram, whatever the format.
type diagramNode struct {
	id, name, detail string
	class            string // entry, service, datastore, broker, external
}

// diagramNodes lists the boxes of a system in drawing order: entrypoints, services, datastores,
// brokers, externals.
func diagramNodes(s *model.System, ids nodeIDs) []diagramNode {
	var out []diagramNode
	for _, ep := range s.Entrypoints {
		detail := ep.Path
		if ep.RPS > 0 {
			detail = strings.TrimSpace(detail + " " + strconv.FormatFloat(ep.RPS, 'g', -1, 64) + " rps")
		}
		out = append(out, diagramNode{ids["entry:"+ep.Name], ep.Name, detail, "entry"})
	}
	for _, svc := range s.Services {
		out = append(out, diagramNode{ids[svc.Name], svc.Name, replicasNote(svc.Replicas, svc.Zones), "service"})
	}
	for _, d := range s.Datastores {
		out = append(out, diagramNode{ids[d.Name], d.Name, strings.TrimSpace(d.Kind + " " + replicasNote(d.Replicas, d.Zones)), "datastore"})
	}
	for _, br := range s.Brokers {
		out = append(out, diagramNode{ids[br.Name], br.Name, strings.TrimSpace(br.Kind + " " + replicasNote(br.Replicas, br.Zones)), "broker"})
	}
	for _, x := range s.Externals {
		out = append(out, diagramNode{ids[x.Name], x.Name, x.Host, "external"})
	}
	return out
}

// diagramLink is one arrow of a diagram.
type diagramLink struct {
	from, to, label string
	async           bool
}

// diagramLinks lists the arrows: entrypoint to service, then every edge (implicit datastore edges
// included).
func diagramLinks(s *model.System, ids nodeIDs) []diagramLink {
	var out []diagramLink
	for _, ep := range s.Entrypoints {
		if id, ok := ids[ep.Service]; ok {
			out = append(out, diagramLink{from: ids["entry:"+ep.Name], to: id})
		}
	}
	for _, e := range model.NewGraph(s).Edges() {
		out = append(out, diagramLink{ids[e.From], ids[e.To], edgeLabel(e), !e.IsSync()})
	}
	return out
}

// mermaidShapes are the Mermaid node shapes per class: open and close around the label.
var mermaidShapes = map[string][2]string{
	"entry": {"([", "])"}, "service": {"[", "]"}, "datastore": {"[(", ")]"}, "broker": {"{{", "}}"}, "external": {">", "]"},
}

// Mermaid writes a Mermaid flowchart.
func Mermaid(w io.Writer, s *model.System) error {
	ids := newNodeIDs(s)
	var b strings.Builder
	b.WriteString("flowchart LR\n")
	for _, n := range diagramNodes(s, ids) {
		label := mermaidText(n.name)
		if n.detail != "" {
			label += "<br/><small>" + mermaidText(n.detail) + "</small>"
		}
		shape := mermaidShapes[n.class]
		fmt.Fprintf(&b, "  %s%s\"%s\"%s:::%s\n", n.id, shape[0], label, shape[1], n.class)
	}
	for _, l := range diagramLinks(s, ids) {
		arrow := "-->"
		if l.async {
			arrow = "-.->"
		}
		if l.label != "" {
			fmt.Fprintf(&b, "  %s %s|\"%s\"| %s\n", l.from, arrow, mermaidText(l.label), l.to)
		} else {
			fmt.Fprintf(&b, "  %s %s %s\n", l.from, arrow, l.to)
		}
	}
	b.WriteString("  classDef entry fill:#fff7e6,stroke:#d48806\n")
	b.WriteString("  classDef service fill:#e6f4ff,stroke:#1677ff\n")
	b.WriteString("  classDef datastore fill:#f6ffed,stroke:#389e0d\n")
	b.WriteString("  classDef broker fill:#f9f0ff,stroke:#722ed1\n")
	b.WriteString("  classDef external fill:#f5f5f5,stroke:#8c8c8c,stroke-dasharray:4 3\n")
	_, err := io.WriteString(w, b.String())
	return err
}

func dotQuote(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(s) + `"`
}

// dotStyles are the Graphviz node attributes per class.
var dotStyles = map[string]string{
	"entry":     `shape=invhouse, style=filled, fillcolor="#fff7e6"`,
	"service":   `shape=box, style="rounded,filled", fillcolor="#e6f4ff"`,
	"datastore": `shape=cylinder, style=filled, fillcolor="#f6ffed"`,
	"broker":    `shape=cds, style=filled, fillcolor="#f9f0ff"`,
	"external":  `shape=box, style=dashed`,
}

// DOT writes a Graphviz digraph.
func DOT(w io.Writer, s *model.System) error {
	ids := newNodeIDs(s)
	var b strings.Builder
	fmt.Fprintf(&b, "digraph %s {\n", dotQuote(s.Metadata.Name))
	b.WriteString("  rankdir=LR;\n  node [fontname=\"Helvetica\", fontsize=11];\n  edge [fontname=\"Helvetica\", fontsize=9];\n")
	for _, n := range diagramNodes(s, ids) {
		label := n.name
		if n.detail != "" {
			label += "\n" + n.detail
		}
		fmt.Fprintf(&b, "  %s [label=%s, %s];\n", n.id, dotQuote(label), dotStyles[n.class])
	}
	for _, l := range diagramLinks(s, ids) {
		var attrs []string
		if l.label != "" {
			attrs = append(attrs, "label="+dotQuote(l.label))
		}
		if l.async {
			attrs = append(attrs, "style=dashed")
		}
		fmt.Fprintf(&b, "  %s -> %s", l.from, l.to)
		if len(attrs) > 0 {
			fmt.Fprintf(&b, " [%s]", strings.Join(attrs, ", "))
		}
		b.WriteString(";\n")
	}
	b.WriteString("}\n")
	_, err := io.WriteString(w, b.String())
	return err
}

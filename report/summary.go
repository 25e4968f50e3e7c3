package report

import (
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/faultline-dev/faultline/model"
)

// Summary writes a model summary for a terminal: counts, then each entrypoint's sync call tree.
func Summary(w io.Writer, sum model.Summary) error {
	var b strings.Builder
	fmt.Fprintf(&b, "System %s: %s, %s, %s, %s; %s (%d sync, %d async)\n", sum.Name,
		plural(sum.Services, "service"), plural(sum.Datastores, "datastore"), plural(sum.Brokers, "broker"),
		plural(sum.Externals, "external"), plural(sum.Edges, "edge"), sum.SyncEdges, sum.AsyncEdges)
	if len(sum.Cycles) > 0 {
		b.WriteString("\nSync call cycles:\n")
		for _, c := range sum.Cycles {
			fmt.Fprintf(&b, "  %s\n", strings.Join(c, " → "))
		}
	}
	treeOf := map[string]string{} // service → first entrypoint whose tree was printed
	for _, ep := range sum.Entrypoints {
		head := ep.Name
		if ep.Path != "" {
			head += " (" + ep.Path + ")"
		}
		if ep.RPS > 0 {
			head += ", " + strconv.FormatFloat(ep.RPS, 'g', -1, 64) + " rps"
		}
		fmt.Fprintf(&b, "\nEntrypoint %s → %s\n", head, ep.Service)
		fmt.Fprintf(&b, "  reaches %d components synchronously; longest sync chain %d: %s\n",
			len(ep.Reachable), max(0, len(ep.LongestChain)-1), strings.Join(ep.LongestChain, " → "))
		if first, ok := treeOf[ep.Service]; ok {
			fmt.Fprintf(&b, "  same sync call tree as entrypoint %s\n", first)
			continue
		}
		treeOf[ep.Service] = ep.Name
		if ep.Tree != nil {
			writeTree(&b, ep.Tree, "  ", "  ")
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func writeTree(b *strings.Builder, t *model.TreeNode, first, rest string) {
	b.WriteString(first)
	b.WriteString(t.Name)
	if t.Kind != model.KindService {
		fmt.Fprintf(b, " [%s]", t.Kind)
	}
	if t.Edge != nil {
		if l := edgeLabel(*t.Edge); l != "" {
			fmt.Fprintf(b, "  (%s)", l)
		}
	}
	switch {
	case t.Cycle:
		b.WriteString("  ↺ cycle")
	case t.Repeat:
		b.WriteString("  … calls shown above")
	}
	b.WriteByte('\n')
	for i, c := range t.Children {
		if i == len(t.Children)-1 {
			writeTree(b, c, rest+"└─ ", rest+"   ")
		} else {
			writeTree(b, c, rest+"├─ ", rest+"│  ")
		}
	}
}

// Count formats a count with its noun: "1 broker", "2 brokers".
func Count(n int, noun string) string { return plural(n, noun) }

func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return strconv.Itoa(n) + " " + noun + "s"
}

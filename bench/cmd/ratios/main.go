// Command ratios reads `go test -bench -benchmem` output (several -count runs of benchmarks named
// Benchmark<Row>/<library>) and prints, per row, each library's median ns/op and allocs/op and
// faultline's time as a ratio of each peer's: below 1 means faultline is faster.
//
//	go test -run '^$' -bench . -benchmem -count 6 | go run ./cmd/ratios
//	go run ./cmd/ratios results/raw.txt
//
// A ratio is median(faultline ns/op) / median(peer ns/op); the range after it is the smallest and
// largest ratio of runs paired by order (the i-th faultline run with the i-th peer run, which ran
// next to each other), to show how much the noise moves it.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
)

const self = "faultline"

// peers are the columns, in order (only those present in the input are shown); a row lacking one
// shows "–".
var peers = []string{"gobreaker", "failsafe", "watermill", "dtm"}

type sample struct{ ns, bytes, allocs []float64 }

func main() {
	markdown := flag.Bool("md", true, "print a Markdown table")
	flag.Parse()
	var in io.Reader = os.Stdin
	if flag.NArg() > 0 {
		var rs []io.Reader
		for _, name := range flag.Args() {
			f, err := os.Open(name)
			if err != nil {
				fmt.Fprintln(os.Stderr, "ratios:", err)
				os.Exit(1)
			}
			defer f.Close()
			rs = append(rs, f)
		}
		in = io.MultiReader(rs...)
	}
	rows, data, err := parse(in)
	if err != nil {
		fmt.Fprintln(os.Stderr, "ratios:", err)
		os.Exit(1)
	}
	peers = slices.DeleteFunc(peers, func(p string) bool {
		for _, libs := range data {
			if libs[p] != nil {
				return false
			}
		}
		return true
	})
	if len(rows) == 0 {
		fmt.Fprintln(os.Stderr, "ratios: no benchmark results named Benchmark<Row>/<library> in the input")
		os.Exit(1)
	}
	print(os.Stdout, rows, data, *markdown)
	if lost := losses(rows, data); len(lost) > 0 {
		fmt.Printf("\nfaultline is slower on: %s\n", strings.Join(lost, ", "))
	} else {
		fmt.Printf("\nfaultline is faster than every peer on every row.\n")
	}
}

// parse returns the rows in order of first appearance and the samples by row and library.
func parse(r io.Reader) ([]string, map[string]map[string]*sample, error) {
	var rows []string
	data := map[string]map[string]*sample{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") {
			continue
		}
		name := f[0]
		if i := strings.LastIndexByte(name, '-'); i > 0 && isDigits(name[i+1:]) {
			name = name[:i] // GOMAXPROCS suffix
		}
		slash := strings.LastIndexByte(name, '/')
		if slash < 0 {
			continue
		}
		row, lib := strings.TrimPrefix(name[:slash], "Benchmark"), name[slash+1:]
		s := &sample{}
		if data[row] == nil {
			data[row] = map[string]*sample{}
			rows = append(rows, row)
		}
		if data[row][lib] == nil {
			data[row][lib] = s
		} else {
			s = data[row][lib]
		}
		// f[1] is the iteration count; then value/unit pairs.
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				return nil, nil, fmt.Errorf("%q: %v", sc.Text(), err)
			}
			switch f[i+1] {
			case "ns/op":
				s.ns = append(s.ns, v)
			case "B/op":
				s.bytes = append(s.bytes, v)
			case "allocs/op":
				s.allocs = append(s.allocs, v)
			}
		}
	}
	return rows, data, sc.Err()
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// ratio returns median(a)/median(b) and the range of the paired ratios a[i]/b[i].
func ratio(a, b []float64) (r, lo, hi float64, ok bool) {
	if len(a) == 0 || len(b) == 0 || median(b) == 0 {
		return 0, 0, 0, false
	}
	r = median(a) / median(b)
	lo, hi = r, r
	for i := 0; i < min(len(a), len(b)); i++ {
		if b[i] > 0 {
			q := a[i] / b[i]
			lo, hi = min(lo, q), max(hi, q)
		}
	}
	return r, lo, hi, true
}

func ns(v float64) string {
	switch {
	case v >= 100:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case v >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	}
	return strconv.FormatFloat(v, 'f', 2, 64)
}

func print(w io.Writer, rows []string, data map[string]map[string]*sample, md bool) {
	header := []string{"row", "faultline ns/op"}
	for _, p := range peers {
		header = append(header, p+" ns/op")
	}
	for _, p := range peers {
		header = append(header, "ratio vs "+p)
	}
	header = append(header, "allocs/op ("+strings.Join(append([]string{self}, peers...), " / ")+")")
	var table [][]string
	for _, row := range rows {
		libs := data[row]
		cell := func(lib string) string {
			if s := libs[lib]; s != nil && len(s.ns) > 0 {
				return ns(median(s.ns))
			}
			return "–"
		}
		line := []string{row, cell(self)}
		for _, p := range peers {
			line = append(line, cell(p))
		}
		for _, p := range peers {
			c := "–"
			if f, q := libs[self], libs[p]; f != nil && q != nil {
				if r, lo, hi, ok := ratio(f.ns, q.ns); ok {
					c = fmt.Sprintf("%.2f (%.2f–%.2f)", r, lo, hi)
					if md && r < 1 {
						c = "**" + fmt.Sprintf("%.2f", r) + "**" + fmt.Sprintf(" (%.2f–%.2f)", lo, hi)
					}
				}
			}
			line = append(line, c)
		}
		var allocs []string
		for _, lib := range append([]string{self}, peers...) {
			if s := libs[lib]; s != nil && len(s.allocs) > 0 {
				allocs = append(allocs, strconv.FormatFloat(median(s.allocs), 'f', -1, 64))
			} else {
				allocs = append(allocs, "–")
			}
		}
		line = append(line, strings.Join(allocs, " / "))
		table = append(table, line)
	}
	if md {
		fmt.Fprintln(w, "| "+strings.Join(header, " | ")+" |")
		fmt.Fprintln(w, strings.Repeat("|---", len(header))+"|")
		for _, l := range table {
			fmt.Fprintln(w, "| "+strings.Join(l, " | ")+" |")
		}
		return
	}
	width := make([]int, len(header))
	for _, l := range append([][]string{header}, table...) {
		for i, c := range l {
			width[i] = max(width[i], len([]rune(c)))
		}
	}
	for _, l := range append([][]string{header}, table...) {
		for i, c := range l {
			fmt.Fprintf(w, "%-*s  ", width[i], c)
		}
		fmt.Fprintln(w)
	}
}

// losses lists "Row vs peer" wherever faultline's median is not below the peer's.
func losses(rows []string, data map[string]map[string]*sample) []string {
	var out []string
	for _, row := range rows {
		f := data[row][self]
		for _, p := range peers {
			q := data[row][p]
			if f == nil || q == nil {
				continue
			}
			if r, _, _, ok := ratio(f.ns, q.ns); ok && r >= 1 {
				out = append(out, fmt.Sprintf("%s vs %s (%.2f×)", row, p, r))
			}
		}
	}
	return out
}

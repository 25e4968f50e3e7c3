package main

import (
	"bufio"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/faultline-dev/faultline/advise"
	"github.com/faultline-dev/faultline/model"
)

// adviseInput returns where interactive answers (and --answers -) are read from, and whether it
// is a terminal. Tests replace it to feed answers without one.
var adviseInput = func() (io.Reader, bool) { return os.Stdin, isTerminal(os.Stdin) }

// isTerminal reports whether f is a terminal, without a terminal library: a character device
// that is not /dev/null (which is one too, and which no one types into).
func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	if err != nil || fi.Mode()&os.ModeCharDevice == 0 {
		return false
	}
	if null, err := os.Stat(os.DevNull); err == nil && os.SameFile(fi, null) {
		return false
	}
	return true
}

func (a *app) adviseCommand() *cobra.Command {
	var answersFile string
	var interactive, listQuestions bool
	flagAnswers := map[string]*string{}
	cmd := &cobra.Command{
		Use:   "advise [--answers FILE] [--QUESTION ANSWER]...",
		Short: "Monolith or microservices? A short questionnaire and a recommendation with its reasons",
		Long: `Asks the questions behind the seed's answer to "When should I use microservices versus a
monolithic architecture?" and recommends modular-monolith, modular-monolith-then-extract or
microservices, with the reasons (each quoting the seed), the risks, the next steps, and which
single answers would change the verdict.

On a terminal with no answers given, it asks each question in turn on stderr (Enter takes the
default, ? shows help, Ctrl-D aborts with exit code 2). Otherwise give the answers as flags, one
per question, or in a YAML or JSON file (--answers); a flag wins over the file. A question left
unanswered takes its default, the answer that adds no reason to split, and the output marks it
assumed; the confidence drops to low when an assumed answer alone could change the verdict.
--interactive asks the questions the flags and file left open, even when stdin is not a terminal.

How it decides (docs/advise.md):
  1. a team of 10 engineers or fewer, or a domain not well understood: modular-monolith
     (the seed: "Start with a modular monolith if the team is small or the domain is not well
     understood.")
  2. none of the seed's reasons to split (distinct scaling needs above low load, a genuinely
     different technology, teams that need independent deployment): modular-monolith
  3. reasons, but a condition to split safely missing (domain only partly understood, no clear
     bounded contexts, a shared database, operations short of full): modular-monolith-then-extract
  4. one reason: modular-monolith-then-extract; two or more: microservices

Exit codes: 0 recommended, 2 bad answers, usage error or aborted.`,
		Example: `  faultline advise
  faultline advise --team-size 6 --domain-understood no --independent-scaling yes
  faultline advise --answers answers.yaml -o json
  faultline advise --questions`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if !contains([]string{"text", "json", "yaml"}, a.output) {
				// Checked first, so that no prompt is answered for an output that cannot be written.
				return usageErr("-o %s is only for faultline review; advise prints text, json or yaml", a.output)
			}
			if listQuestions {
				qs := advise.Questions()
				return a.emit(qs, func(w io.Writer) error { return writeQuestions(w, qs) })
			}
			in, tty := adviseInput()
			if interactive && answersFile == "-" {
				return usageErr("--interactive and --answers - both read stdin; give the answers file by name")
			}
			answers, err := a.collectAnswers(cmd, in, answersFile, flagAnswers)
			if err != nil {
				return err
			}
			ask := interactive || (tty && len(answers) == 0 && answersFile == "")
			if ask {
				if err := a.ask(cmd.Context(), in, tty, answers); err != nil {
					return err
				}
			} else if len(answers) == 0 {
				return usageErr("no answers: give them as flags (--team-size 6 --domain-understood no ...) or in a file (--answers FILE), " +
					"or run on a terminal or with --interactive to be asked; 'faultline advise --questions' lists the questions")
			}
			rec, err := advise.Recommend(answers)
			if err != nil {
				return inputErr(err)
			}
			var assumed []string
			for _, r := range rec.Reasons {
				if r.Assumed {
					assumed = append(assumed, r.Question+" "+r.Answer)
				}
			}
			if len(assumed) > 0 {
				a.warn("not answered, so the defaults were assumed: %s", strings.Join(assumed, ", "))
			}
			return a.emit(rec, func(w io.Writer) error { return writeAdvice(w, rec) })
		},
	}
	fl := cmd.Flags()
	for _, q := range advise.Questions() {
		origin := "the seed's criterion"
		if q.Origin == advise.Faultline {
			origin = "faultline's addition"
		}
		flagAnswers[q.ID] = fl.String(q.ID, "", fmt.Sprintf("%s (%s; default %s; %s)", q.Text, q.Expect(), q.Default, origin))
	}
	fl.StringVar(&answersFile, "answers", "", "read answers from a YAML or JSON file mapping question IDs to answers (- reads stdin)")
	fl.BoolVarP(&interactive, "interactive", "i", false, "ask the questions that flags and --answers left open, even when stdin is not a terminal")
	fl.BoolVar(&listQuestions, "questions", false, "print the questions with their allowed answers, defaults and help, and exit")
	return cmd
}

// collectAnswers reads --answers and the question flags (a flag wins) and validates them, reporting
// every bad answer at once with the file and line or the flag it came from.
func (a *app) collectAnswers(cmd *cobra.Command, in io.Reader, file string, flags map[string]*string) (advise.Answers, error) {
	answers := advise.Answers{}
	lines := map[string]int{}
	var probs model.Problems
	if file != "" {
		var data []byte
		var err error
		if file == "-" {
			data, err = io.ReadAll(in)
		} else {
			data, err = os.ReadFile(file)
		}
		if err != nil {
			return nil, inputErr(fmt.Errorf("read answers: %w", err))
		}
		var read advise.Answers
		read, lines, err = advise.ParseAnswers(data)
		if err != nil {
			probs = append(probs, answerProblems(err, file, lines, nil)...)
		}
		maps.Copy(answers, read)
	}
	fromFlag := map[string]bool{}
	for _, id := range advise.IDs() {
		if cmd.Flags().Changed(id) {
			answers[id], fromFlag[id] = *flags[id], true
		}
	}
	if err := advise.Validate(answers); err != nil {
		probs = append(probs, answerProblems(err, file, lines, fromFlag)...)
	}
	if len(probs) > 0 {
		// The file's problems in line order, then the flags'.
		fromFile := func(p model.Problem) int {
			if p.File != "" {
				return 0
			}
			return 1
		}
		slices.SortStableFunc(probs, func(x, y model.Problem) int {
			return cmp.Or(cmp.Compare(fromFile(x), fromFile(y)), cmp.Compare(x.Line, y.Line))
		})
		return nil, inputErr(probs)
	}
	return answers, nil
}

// answerProblems turns advise.AnswerErrors into located problems: file:line: question: message
// for an answers file, --question: message for a flag.
func answerProblems(err error, file string, lines map[string]int, fromFlag map[string]bool) model.Problems {
	var errs advise.AnswerErrors
	if !errors.As(err, &errs) {
		return model.Problems{{File: file, Message: err.Error()}}
	}
	var probs model.Problems
	for _, e := range errs {
		p := model.Problem{Field: e.Question, Message: e.Problem}
		switch {
		case fromFlag[e.Question]:
			p.Field = "--" + e.Question
		case file != "":
			p.File, p.Line = file, e.Line
			if p.Line == 0 {
				p.Line = lines[e.Question]
			}
			if file == "-" {
				p.File = "stdin"
			}
		}
		probs = append(probs, p)
	}
	return probs
}

// ask puts the questions not yet answered, one at a time, on stderr, and reads the answers from
// in. An invalid answer is explained and asked again; end of input or Ctrl-C aborts.
func (a *app) ask(ctx context.Context, in io.Reader, tty bool, answers advise.Answers) error {
	var todo []advise.Question
	for _, q := range advise.Questions() {
		if _, ok := answers[q.ID]; !ok {
			todo = append(todo, q)
		}
	}
	if len(todo) == 0 {
		return nil
	}
	lines := newLineReader(in)
	defer lines.stop()
	w := a.stderr
	fmt.Fprintf(w, "Monolith or microservices? %d questions. Enter takes the default in brackets, ? explains the question, Ctrl-D aborts.\n", len(todo))
	for i, q := range todo {
		fmt.Fprintf(w, "\n[%d/%d] %s (%s)\n", i+1, len(todo), q.Text, q.ID)
		if q.Kind == advise.Choice {
			for _, o := range q.Options {
				fmt.Fprintf(w, "      %-8s %s\n", o.Value, o.Meaning)
			}
		}
		for {
			fmt.Fprintf(w, "      %s [%s]: ", q.Expect(), q.Default)
			line, err := lines.next(ctx)
			if err != nil {
				fmt.Fprintln(w)
				if errors.Is(err, io.EOF) {
					return usageErr("aborted at %s: end of input; nothing was recommended", q.ID)
				}
				if errors.Is(err, context.Canceled) {
					return usageErr("aborted at %s: interrupted; nothing was recommended", q.ID)
				}
				return usageErr("aborted at %s: %v; nothing was recommended", q.ID, err)
			}
			text := strings.TrimSpace(line)
			if !tty {
				fmt.Fprintln(w, text) // no terminal echoed it: keep the transcript readable
			}
			switch text {
			case "":
				text = q.Default
			case "?":
				origin := "The seed's criterion."
				if q.Origin == advise.Faultline {
					origin = "faultline's addition, not the seed's criterion."
				}
				fmt.Fprint(w, wrap(q.Help, 6, 6), wrap(`The seed: "`+q.Quote+`"`, 6, 6), wrap(origin, 6, 6))
				continue
			}
			v, err := q.Parse(text)
			if err != nil {
				fmt.Fprint(w, wrap(err.Error(), 6, 6))
				continue
			}
			answers[q.ID] = v
			break
		}
	}
	fmt.Fprintln(w)
	return nil
}

// lineReader reads lines in a goroutine so that a prompt returns when the context ends (Ctrl-C
// cancels it): a read from a terminal cannot be interrupted portably. stop lets the goroutine
// exit at its next line; one blocked in a terminal read ends with the process, which exits right
// after the command returns.
type lineReader struct {
	lines chan lineResult
	done  chan struct{}
}

type lineResult struct {
	text string
	err  error
}

func newLineReader(r io.Reader) *lineReader {
	lr := &lineReader{lines: make(chan lineResult), done: make(chan struct{})}
	go func() {
		br := bufio.NewReader(r)
		for {
			s, err := br.ReadString('\n')
			if s != "" && !lr.send(lineResult{text: s}) {
				return
			}
			if err != nil {
				lr.send(lineResult{err: err})
				return
			}
		}
	}()
	return lr
}

func (lr *lineReader) send(l lineResult) bool {
	select {
	case lr.lines <- l:
		return true
	case <-lr.done:
		return false
	}
}

// next returns the next line, io.EOF at the end of input, or the context's error.
func (lr *lineReader) next(ctx context.Context) (string, error) {
	select {
	case <-ctx.Done():
		return "", ctx.Err()
	case l := <-lr.lines:
		return l.text, l.err
	}
}

func (lr *lineReader) stop() { close(lr.done) }

// writeAdvice renders a recommendation for a terminal.
func writeAdvice(w io.Writer, rec advise.Recommendation) error {
	var b strings.Builder
	fmt.Fprintf(&b, "Recommendation: %s (%s), confidence %s\n", rec.Verdict.Title(), rec.Verdict, rec.Confidence)
	b.WriteString(wrap(rec.Summary, 0, 0))
	b.WriteString("\nReasons\n")
	for _, r := range rec.Reasons {
		head := r.Question + ": " + r.Answer
		if r.Assumed {
			head += " (assumed)"
		}
		source := "seed criterion"
		if r.Source == advise.Faultline {
			source = "faultline's addition"
		}
		leans := "leans " + string(r.Leans)
		if r.Leans == advise.Neutral {
			leans = "neutral"
		}
		fmt.Fprintf(&b, "  %-36s %s · %s\n", head, leans, source)
		b.WriteString(wrap(r.Says, 4, 4))
		b.WriteString(wrap(`seed: "`+r.Quote+`"`, 4, 10))
	}
	b.WriteString("\nRisks\n")
	for _, r := range rec.Risks {
		b.WriteString(wrap("- "+r, 2, 4))
	}
	b.WriteString("\nNext steps\n")
	for i, s := range rec.NextSteps {
		b.WriteString(wrap(fmt.Sprintf("%d. %s", i+1, s), 2, 5))
	}
	if len(rec.Changes) > 0 {
		b.WriteString("\nAnswers that alone would change the verdict\n")
		for _, c := range rec.Changes {
			fmt.Fprintf(&b, "  %s\n", c)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// writeQuestions renders the questionnaire for a terminal.
func writeQuestions(w io.Writer, qs []advise.Question) error {
	var b strings.Builder
	for i, q := range qs {
		origin := "seed criterion"
		if q.Origin == advise.Faultline {
			origin = "faultline's addition"
		}
		if i > 0 {
			b.WriteString("\n")
		}
		fmt.Fprintf(&b, "--%s (%s; default %s; %s)\n", q.ID, q.Expect(), q.Default, origin)
		b.WriteString(wrap(q.Text, 2, 2))
		for _, o := range q.Options {
			if o.Meaning != "" {
				fmt.Fprintf(&b, "    %-8s %s\n", o.Value, o.Meaning)
			}
		}
		b.WriteString(wrap(q.Help, 2, 2))
		b.WriteString(wrap(`seed: "`+q.Quote+`"`, 2, 8))
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// wrap fills s into lines of at most 100 columns: the first indented by first spaces, the rest by
// rest spaces. It ends with a newline.
func wrap(s string, first, rest int) string {
	const width = 100
	var b strings.Builder
	col := 0
	for _, word := range strings.Fields(s) {
		switch {
		case col == 0:
			b.WriteString(strings.Repeat(" ", first))
			col = first
		case col+1+len([]rune(word)) > width:
			b.WriteString("\n" + strings.Repeat(" ", rest))
			col = rest
		default:
			b.WriteString(" ")
			col++
		}
		b.WriteString(word)
		col += len([]rune(word))
	}
	b.WriteString("\n")
	return b.String()
}

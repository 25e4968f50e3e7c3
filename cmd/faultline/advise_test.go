package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/faultline-dev/faultline/advise"
)

// withInput makes the advise command read input as its stdin, a terminal or not.
func withInput(t *testing.T, input string, tty bool) {
	t.Helper()
	old := adviseInput
	adviseInput = func() (io.Reader, bool) { return strings.NewReader(input), tty }
	t.Cleanup(func() { adviseInput = old })
}

var microservicesFlags = []string{"advise", "--team-size", "60", "--domain-understood", "yes", "--bounded-contexts", "yes",
	"--independent-scaling", "yes", "--expected-load", "high", "--different-technologies", "no",
	"--independent-deployment", "yes", "--shared-database", "no", "--ops-maturity", "full"}

func TestAdviseFlags(t *testing.T) {
	withInput(t, "", true) // answers given: no prompts even on a terminal
	code, out, errOut := cli(t, "advise", "--team-size", "6", "--domain-understood", "no", "--independent-scaling", "yes")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, want := range []string{
		"Recommendation: modular monolith (modular-monolith), confidence high\n",
		"The seed's first rule decides: the team is small (6 engineers;",
		"  team-size: 6                         leans monolith · seed criterion\n",
		`    seed: "Start with a modular monolith if the team is small or the domain is not well understood."`,
		"  shared-database: yes (assumed)       leans monolith · faultline's addition\n",
		"\nRisks\n  - Big ball of mud",
		"\nNext steps\n  1. Build one deployable",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(errOut, "Monolith or microservices?") {
		t.Error("prompted although answers were given")
	}
	if want := "warning: not answered, so the defaults were assumed: bounded-contexts no, expected-load moderate, " +
		"different-technologies no, independent-deployment no, shared-database yes, ops-maturity partial\n"; errOut != want {
		t.Errorf("stderr %q, want %q", errOut, want)
	}
	if _, _, errOut := cli(t, "-q", "advise", "--team-size", "6"); errOut != "" {
		t.Errorf("--quiet printed %q", errOut)
	}

	code, out, errOut = cli(t, microservicesFlags...)
	if code != 0 || errOut != "" || !strings.HasPrefix(out, "Recommendation: microservices (microservices), confidence medium\n") ||
		!strings.Contains(out, "\nAnswers that alone would change the verdict\n  team-size 10 or fewer → modular-monolith\n") {
		t.Errorf("exit %d, stderr %q:\n%s", code, errOut, out)
	}
}

func TestAdviseJSONAndYAML(t *testing.T) {
	code, out, errOut := cli(t, append([]string{"-o", "json"}, microservicesFlags...)...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var rec advise.Recommendation
	if err := json.Unmarshal([]byte(out), &rec); err != nil {
		t.Fatal(err)
	}
	if rec.Verdict != advise.Microservices || rec.Confidence != advise.Medium || rec.Rule != advise.RuleReady ||
		len(rec.Reasons) != 9 || len(rec.Risks) == 0 || len(rec.NextSteps) == 0 || len(rec.Changes) == 0 {
		t.Errorf("json: %+v", rec)
	}
	// The documented field names.
	var raw map[string]any
	json.Unmarshal([]byte(out), &raw)
	for _, k := range []string{"verdict", "confidence", "rule", "summary", "reasons", "risks", "nextSteps", "changes"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("json lacks %q", k)
		}
	}
	r0 := raw["reasons"].([]any)[0].(map[string]any)
	for _, k := range []string{"question", "answer", "says", "quote", "leans", "source"} {
		if _, ok := r0[k]; !ok {
			t.Errorf("reason lacks %q: %v", k, r0)
		}
	}

	code, out, _ = cli(t, "-o", "yaml", "advise", "--team-size", "3", "--domain-understood", "no")
	var y advise.Recommendation
	if err := yaml.Unmarshal([]byte(out), &y); err != nil || code != 0 || y.Verdict != advise.ModularMonolith || !y.Reasons[2].Assumed {
		t.Errorf("yaml: exit %d, %v, %+v", code, err, y)
	}
}

func TestAdviseAnswersFile(t *testing.T) {
	dir := t.TempDir()
	yamlFile := filepath.Join(dir, "answers.yaml")
	os.WriteFile(yamlFile, []byte("team-size: 60\ndomain-understood: yes\nbounded-contexts: yes\nindependent-scaling: yes\n"+
		"expected-load: high\ndifferent-technologies: no\nindependent-deployment: yes\nshared-database: no\nops-maturity: full\n"), 0o644)
	code, out, errOut := cli(t, "-o", "json", "advise", "--answers", yamlFile)
	var rec advise.Recommendation
	if code != 0 || json.Unmarshal([]byte(out), &rec) != nil || rec.Verdict != advise.Microservices || errOut != "" {
		t.Fatalf("yaml file: exit %d %s %s", code, errOut, out)
	}

	// A flag wins over the file.
	code, out, _ = cli(t, "-o", "json", "advise", "--answers", yamlFile, "--shared-database", "yes")
	if json.Unmarshal([]byte(out), &rec); code != 0 || rec.Verdict != advise.ModularMonolithThenExtract || rec.Reasons[7].Answer != "yes" {
		t.Errorf("flag over file: exit %d, %s", code, rec.Verdict)
	}

	jsonFile := filepath.Join(dir, "answers.json")
	os.WriteFile(jsonFile, []byte(`{"team-size": 4, "domain-understood": "no", "bounded-contexts": false}`), 0o644)
	code, out, _ = cli(t, "-o", "json", "advise", "--answers", jsonFile)
	if json.Unmarshal([]byte(out), &rec); code != 0 || rec.Verdict != advise.ModularMonolith || rec.Reasons[2].Assumed || rec.Reasons[3].Assumed != true {
		t.Errorf("json file: exit %d, %+v", code, rec)
	}

	withInput(t, "team-size: 4\n", false)
	if code, out, _ := cli(t, "advise", "--answers", "-"); code != 0 || !strings.HasPrefix(out, "Recommendation: modular monolith") {
		t.Errorf("--answers -: exit %d %s", code, out)
	}
}

func TestAdviseBadInput(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("team-size: 6\nteamsize: 4\ndomain-understood: [no]\nops-maturity: ful\nops-maturity: full\n"), 0o644)
	broken := filepath.Join(dir, "broken.yaml")
	os.WriteFile(broken, []byte("team-size: 6\n  x: : y\n"), 0o644)
	cases := []struct {
		name  string
		input string // stdin, not a terminal
		args  []string
		want  []string // stderr lines, in order
	}{
		{"bad flag values, all at once", "", []string{"advise", "--team-size", "six", "--bounded-contexts", "maybe", "--ops-maturity", "ful"}, []string{
			`--team-size: "six" is not a whole number; expected a whole number from 1 to 100000`,
			`--bounded-contexts: "maybe" is not an answer to this question; expected yes or no`,
			`--ops-maturity: "ful" is not an answer to this question; expected none, partial or full; did you mean "full"?`,
		}},
		{"team size out of range", "", []string{"advise", "--team-size", "0"}, []string{
			"--team-size: 0 is out of range; expected a whole number from 1 to 100000"}},
		{"bad answers file, every problem with its line", "", []string{"advise", "--answers", bad, "--expected-load", "huge"}, []string{
			bad + `:2: teamsize: unknown question; expected one of team-size, domain-understood, bounded-contexts, independent-scaling, expected-load, different-technologies, independent-deployment, shared-database, ops-maturity; did you mean "team-size"?`,
			bad + ":3: domain-understood: expected one answer, found a list",
			bad + `:4: ops-maturity: "ful" is not an answer to this question; expected none, partial or full; did you mean "full"?`,
			bad + ":5: ops-maturity: answered twice (first on line 4)",
			`--expected-load: "huge" is not an answer to this question; expected low, moderate or high`,
		}},
		{"broken YAML", "", []string{"advise", "--answers", broken}, []string{
			broken + ":2: invalid YAML: mapping values are not allowed in this context"}},
		{"bad answers on stdin", "colour: blue\n", []string{"advise", "--answers", "-"}, []string{
			"stdin:1: colour: unknown question; expected one of team-size,"}},
		{"missing file", "", []string{"advise", "--answers", filepath.Join(dir, "none.yaml")}, []string{
			"faultline: read answers: open " + filepath.Join(dir, "none.yaml") + ": no such file or directory"}},
		{"no answers and no terminal", "", []string{"advise"}, []string{
			"faultline: no answers: give them as flags (--team-size 6 --domain-understood no ...) or in a file (--answers FILE)"}},
		{"stdin twice", "", []string{"advise", "-i", "--answers", "-"}, []string{
			"faultline: --interactive and --answers - both read stdin"}},
		{"an argument", "", []string{"advise", "microservices"}, []string{`faultline: unknown command "microservices" for "faultline advise"`}},
		{"unknown flag", "", []string{"advise", "--team", "6"}, []string{"faultline: unknown flag: --team"}},
		{"sarif is for the review", "", []string{"-o", "sarif", "advise", "--team-size", "6"}, []string{"-o sarif is only for faultline review"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			withInput(t, c.input, false)
			code, out, errOut := cli(t, c.args...)
			if code != 2 {
				t.Errorf("exit %d, want 2", code)
			}
			lines := strings.Split(strings.TrimRight(errOut, "\n"), "\n")
			if len(lines) < len(c.want) {
				t.Fatalf("stderr:\n%s\nwant:\n%s", errOut, strings.Join(c.want, "\n"))
			}
			for i, w := range c.want {
				if !strings.Contains(lines[i], w) {
					t.Errorf("stderr line %d:\n got %s\nwant %s", i+1, lines[i], w)
				}
			}
			if strings.Contains(out, "Recommendation") {
				t.Errorf("recommended anyway:\n%s", out)
			}
		})
	}
}

// TestAdviseInteractive feeds a terminal session: every question asked in turn with its allowed
// answers and default, ? explains, a bad answer is explained and asked again, Enter takes the
// default.
func TestAdviseInteractive(t *testing.T) {
	input := strings.Join([]string{
		"40",     // team-size
		"?",      // domain-understood: help
		"maybe",  // not an answer: asked again
		"yes",    // domain-understood
		"y",      // bounded-contexts
		"",       // independent-scaling: default no
		"high",   // expected-load
		"No",     // different-technologies
		"yes",    // independent-deployment
		"no",     // shared-database
		"ful",    // ops-maturity: asked again
		"full\n", // ops-maturity
	}, "\n")
	withInput(t, input, true)
	code, out, errOut := cli(t, "advise")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, want := range []string{
		"Monolith or microservices? 9 questions. Enter takes the default in brackets, ? explains the question, Ctrl-D aborts.\n",
		"\n[1/9] How many engineers will build and run this system over the next year? (team-size)\n      a whole number from 1 to 100000 [5]: ",
		"[2/9] How well is the business domain understood? (domain-understood)\n      no       still discovering what the product must do",
		"      no, partly or yes [partly]:       The seed starts on a modular monolith while the domain is not well understood",
		`      The seed: "Start with a modular monolith if the team is small or the domain is not well`,
		"      The seed's criterion.\n",
		"      \"maybe\" is not an answer to this question; expected no, partly or yes\n      no, partly or yes [partly]: ",
		"[3/9] Can you name the bounded contexts today",
		"(ops-maturity)\n      none     manual or ad-hoc deploys",
		`"ful" is not an answer to this question; expected none, partial or full; did you mean "full"?`,
	} {
		if !strings.Contains(errOut, want) {
			t.Errorf("prompts lack %q:\n%s", want, errOut)
		}
	}
	if strings.Count(errOut, "[2/9]") != 1 || strings.Count(errOut, "no, partly or yes [partly]: ") != 3 {
		t.Errorf("domain-understood should be asked once and prompted three times:\n%s", errOut)
	}
	if strings.Contains(errOut, "assumed") || strings.Contains(out, "(assumed)") {
		t.Error("answers given interactively are not assumed")
	}
	if !strings.HasPrefix(out, "Recommendation: modular monolith, then extract services (modular-monolith-then-extract), confidence medium\n") ||
		!strings.Contains(out, "  independent-scaling: no ") || !strings.Contains(out, "  ops-maturity: full ") {
		t.Errorf("output:\n%s", out)
	}
}

// TestAdviseInteractiveFlag: --interactive asks only what flags left open, reading stdin that is
// not a terminal, and echoes the answers so the transcript reads well; JSON still goes to stdout.
func TestAdviseInteractiveFlag(t *testing.T) {
	withInput(t, "yes\nyes\n\n\n\n\n\n\n", false)
	code, out, errOut := cli(t, "-o", "json", "advise", "--interactive", "--team-size", "4")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if !strings.Contains(errOut, "8 questions") || !strings.Contains(errOut, "[1/8] How well is the business domain understood?") ||
		strings.Contains(errOut, "(team-size)") || !strings.Contains(errOut, "no, partly or yes [partly]: yes\n") {
		t.Errorf("prompts:\n%s", errOut)
	}
	var rec advise.Recommendation
	if err := json.Unmarshal([]byte(out), &rec); err != nil || rec.Verdict != advise.ModularMonolith || rec.Reasons[0].Answer != "4" || rec.Reasons[1].Answer != "yes" {
		t.Errorf("json %v: %s", err, out)
	}
}

func TestAdviseInteractiveAbort(t *testing.T) {
	// End of input (Ctrl-D) in the middle: exit 2, nothing recommended.
	withInput(t, "40\nyes\n", true)
	code, out, errOut := cli(t, "advise")
	if code != 2 || out != "" || !strings.HasSuffix(errOut, "faultline: aborted at bounded-contexts: end of input; nothing was recommended\n") {
		t.Errorf("EOF: exit %d, stdout %q, stderr:\n%s", code, out, errOut)
	}
	// A last line without a newline is still an answer.
	withInput(t, "4\nno\nno\nno\nlow\nno\nno\nyes\nnone", true)
	if code, out, errOut := cli(t, "advise"); code != 0 || !strings.Contains(out, "ops-maturity: none ") {
		t.Errorf("unterminated last line: exit %d %s", code, errOut)
	}

	// Ctrl-C cancels the context (main's signal.NotifyContext) while the prompt waits on a read
	// that never returns: the prompt gives up at once.
	pr, pw := io.Pipe()
	defer pw.Close() // ends the reader goroutine's read
	old := adviseInput
	adviseInput = func() (io.Reader, bool) { return pr, true }
	defer func() { adviseInput = old }()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var stdout, stderr strings.Builder
	if code := run(ctx, []string{"advise"}, &stdout, &stderr); code != 2 || stdout.Len() != 0 ||
		!strings.Contains(stderr.String(), "faultline: aborted at team-size: interrupted; nothing was recommended") {
		t.Errorf("Ctrl-C: exit %d, stderr:\n%s", code, stderr.String())
	}
}

func TestAdviseQuestions(t *testing.T) {
	code, out, _ := cli(t, "advise", "--questions")
	if code != 0 || !strings.HasPrefix(out, "--team-size (a whole number from 1 to 100000; default 5; seed criterion)\n") ||
		!strings.Contains(out, "--ops-maturity (none, partial or full; default partial; faultline's addition)") {
		t.Errorf("exit %d:\n%s", code, out)
	}
	code, out, _ = cli(t, "-o", "json", "advise", "--questions")
	var qs []advise.Question
	if err := json.Unmarshal([]byte(out), &qs); err != nil || code != 0 || len(qs) != 9 || qs[0].ID != advise.TeamSize || qs[1].Options[1].Value != "partly" {
		t.Errorf("json: %v %+v", err, qs)
	}
	code, out, _ = cli(t, "advise", "--help")
	for _, q := range advise.Questions() {
		if !strings.Contains(out, "--"+q.ID+" string") {
			t.Errorf("help lacks the flag --%s", q.ID)
		}
	}
	if code != 0 || !strings.Contains(out, "How it decides") {
		t.Errorf("help: exit %d", code)
	}
}

func TestIsTerminal(t *testing.T) {
	f, err := os.CreateTemp(t.TempDir(), "stdin")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	null, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer null.Close()
	if isTerminal(f) || isTerminal(null) {
		t.Error("a file or /dev/null taken for a terminal")
	}
}

// TestAdviseDocs runs every console example in docs/advise.md and compares its output (stderr, then
// stdout); a line "…" in an example stands for lines left out. It also checks that the questions
// table lists every question as the package defines it.
func TestAdviseDocs(t *testing.T) {
	doc, err := os.ReadFile("../../docs/advise.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := regexp.MustCompile("(?s)```console\n\\$ faultline ([^\n]*)\n(.*?)```").FindAllStringSubmatch(string(doc), -1)
	if len(blocks) < 4 {
		t.Fatalf("%d console examples in docs/advise.md", len(blocks))
	}
	for _, b := range blocks {
		args := strings.Fields(b[1])
		for i, arg := range args {
			if _, err := os.Stat(filepath.Join("../..", arg)); err == nil && strings.Contains(arg, "/") {
				args[i] = filepath.Join("../..", arg)
			}
		}
		withInput(t, "", false)
		code, out, errOut := cli(t, args...)
		got := strings.ReplaceAll(errOut+out, "../../", "")
		if code != 0 {
			t.Errorf("faultline %s: exit %d", b[1], code)
		}
		if err := matchElided(got, b[2]); err != "" {
			t.Errorf("faultline %s: %s\ngot:\n%s", b[1], err, got)
		}
	}
	for _, q := range advise.Questions() {
		if row := "| `" + q.ID + "` | " + q.Text + " | "; !strings.Contains(string(doc), row) {
			t.Errorf("docs/advise.md: the questions table lacks %q", row)
		}
	}
}

// matchElided reports how got differs from want, in which a line "…" stands for any lines.
func matchElided(got, want string) string {
	chunks := strings.Split(want, "…\n")
	if !strings.HasPrefix(got, chunks[0]) {
		return "the start differs"
	}
	pos := len(chunks[0])
	for _, c := range chunks[1:] {
		i := strings.Index(got[pos:], c)
		if i < 0 {
			return fmt.Sprintf("lacks, after byte %d:\n%s", pos, c)
		}
		pos += i + len(c)
	}
	if last := chunks[len(chunks)-1]; len(chunks) > 1 && last != "" && !strings.HasSuffix(got, last) {
		return "the end differs"
	}
	if len(chunks) == 1 && got != want {
		return "the output differs"
	}
	return ""
}

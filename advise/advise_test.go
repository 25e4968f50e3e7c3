package advise

import (
	"errors"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// all answers every question; overrides change some.
func all(overrides Answers) Answers {
	a := Answers{
		TeamSize:              "40",
		DomainUnderstood:      "yes",
		BoundedContexts:       "yes",
		IndependentScaling:    "no",
		ExpectedLoad:          "moderate",
		DifferentTechnologies: "no",
		IndependentDeployment: "no",
		SharedDatabase:        "no",
		OpsMaturity:           "full",
	}
	for k, v := range overrides {
		a[k] = v
	}
	return a
}

func TestRecommend(t *testing.T) {
	cases := []struct {
		name    string
		answers Answers
		verdict Verdict
		conf    Confidence
		rule    Rule
	}{
		{"small team and unclear domain: monolith even with every reason to split",
			all(Answers{TeamSize: "4", DomainUnderstood: "no", IndependentScaling: "yes", DifferentTechnologies: "yes", IndependentDeployment: "yes", ExpectedLoad: "high"}),
			ModularMonolith, High, RuleStartSimple},
		{"small team and unclear domain, nothing else said",
			Answers{TeamSize: "3", DomainUnderstood: "no"},
			ModularMonolith, High, RuleStartSimple},
		{"small team alone decides, against two reasons",
			all(Answers{TeamSize: "8", IndependentScaling: "yes", IndependentDeployment: "yes"}),
			ModularMonolith, Medium, RuleStartSimple},
		{"unclear domain alone decides for a large team",
			all(Answers{TeamSize: "120", DomainUnderstood: "no", IndependentDeployment: "yes"}),
			ModularMonolith, Medium, RuleStartSimple},
		{"10 engineers is still small",
			all(Answers{TeamSize: "10", IndependentScaling: "yes", IndependentDeployment: "yes"}),
			ModularMonolith, Medium, RuleStartSimple},
		{"large team, clear domain, no reason to split",
			all(nil),
			ModularMonolith, High, RuleNoReason},
		{"distinct scaling at low load is premature",
			all(Answers{IndependentScaling: "yes", ExpectedLoad: "low"}),
			ModularMonolith, High, RuleNoReason},
		{"large autonomous teams, bounded contexts, distinct scaling",
			all(Answers{TeamSize: "60", IndependentDeployment: "yes", IndependentScaling: "yes", ExpectedLoad: "high"}),
			Microservices, Medium, RuleReady},
		{"11 engineers are past the small-team rule",
			all(Answers{TeamSize: "11", IndependentDeployment: "yes", IndependentScaling: "yes"}),
			Microservices, Medium, RuleReady},
		{"all three reasons and ready",
			all(Answers{IndependentScaling: "yes", DifferentTechnologies: "yes", IndependentDeployment: "yes", ExpectedLoad: "high"}),
			Microservices, High, RuleReady},
		{"mixed: one reason, ready: extract that part",
			all(Answers{TeamSize: "25", IndependentScaling: "yes", ExpectedLoad: "high"}),
			ModularMonolithThenExtract, Medium, RuleOneReason},
		{"mixed: reasons but the parts would share a database",
			all(Answers{IndependentScaling: "yes", IndependentDeployment: "yes", SharedDatabase: "yes"}),
			ModularMonolithThenExtract, High, RuleNotReady},
		{"mixed: reasons but the domain is only partly understood",
			all(Answers{DomainUnderstood: "partly", IndependentDeployment: "yes", DifferentTechnologies: "yes"}),
			ModularMonolithThenExtract, High, RuleNotReady},
		{"mixed: reasons but no bounded contexts",
			all(Answers{BoundedContexts: "no", IndependentDeployment: "yes", DifferentTechnologies: "yes"}),
			ModularMonolithThenExtract, High, RuleNotReady},
		{"mixed: one reason and operations not ready",
			all(Answers{DifferentTechnologies: "yes", OpsMaturity: "partial"}),
			ModularMonolithThenExtract, Medium, RuleNotReady},
		{"answers in any case and synonyms",
			all(Answers{TeamSize: " 40 ", IndependentScaling: "Y", DifferentTechnologies: "TRUE", IndependentDeployment: "yes", ExpectedLoad: "High"}),
			Microservices, High, RuleReady},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rec, err := Recommend(c.answers)
			if err != nil {
				t.Fatal(err)
			}
			if rec.Verdict != c.verdict || rec.Confidence != c.conf || rec.Rule != c.rule {
				t.Errorf("got %s/%s/%s, want %s/%s/%s\nsummary: %s", rec.Verdict, rec.Confidence, rec.Rule, c.verdict, c.conf, c.rule, rec.Summary)
			}
			if len(rec.Reasons) != len(questions) || len(rec.Risks) == 0 || len(rec.NextSteps) == 0 || rec.Summary == "" {
				t.Errorf("incomplete recommendation: %+v", rec)
			}
			again, _ := Recommend(c.answers)
			if !reflect.DeepEqual(rec, again) {
				t.Error("the same answers gave another recommendation")
			}
		})
	}
}

// TestSummaryNamesTheDecidingAnswers: the summary says which answers decided, in words a user
// recognises.
func TestSummaryNamesTheDecidingAnswers(t *testing.T) {
	cases := []struct {
		answers Answers
		want    []string
	}{
		{Answers{TeamSize: "6", DomainUnderstood: "no", IndependentScaling: "yes"},
			[]string{"team is small (6 engineers", "domain is not well understood", "even though distinct scaling requirements"}},
		{all(Answers{IndependentScaling: "yes", IndependentDeployment: "yes", SharedDatabase: "yes", OpsMaturity: "none"}),
			[]string{"distinct scaling requirements and teams that need independent deployment", "share one database", "ops-maturity none"}},
		{all(Answers{IndependentScaling: "yes", ExpectedLoad: "low"}),
			[]string{"None of the seed's reasons", "do not count while one instance carries the load"}},
	}
	for _, c := range cases {
		rec, err := Recommend(c.answers)
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range c.want {
			if !strings.Contains(rec.Summary, w) {
				t.Errorf("%v: summary lacks %q:\n%s", c.answers, w, rec.Summary)
			}
		}
	}
}

// combos enumerates every combination of answers to the choice and yes-no questions, with the
// given team size.
func combos(teamSize string, visit func(Answers)) {
	var qs []Question
	for _, q := range questions {
		if q.Kind != Number {
			qs = append(qs, q)
		}
	}
	var rec func(i int, a Answers)
	rec = func(i int, a Answers) {
		if i == len(qs) {
			c := Answers{TeamSize: teamSize}
			for k, v := range a {
				c[k] = v
			}
			visit(c)
			return
		}
		for _, o := range qs[i].Options {
			a[qs[i].ID] = o.Value
			rec(i+1, a)
		}
	}
	rec(0, Answers{})
}

// TestSeedStartWithModularMonolith checks the seed's "Common Questions & Responses" answer over
// every combination of answers: "Start with a modular monolith if the team is small or the domain
// is not well understood", whatever else is answered.
func TestSeedStartWithModularMonolith(t *testing.T) {
	n := 0
	for _, size := range []string{"1", "10", "11", "500"} {
		combos(size, func(a Answers) {
			n++
			rec, err := Recommend(a)
			if err != nil {
				t.Fatal(err)
			}
			small := size == "1" || size == "10"
			if (small || a[DomainUnderstood] == "no") && rec.Verdict != ModularMonolith {
				t.Fatalf("%v: %s, want modular-monolith", a, rec.Verdict)
			}
		})
	}
	if n != 4*3*2*2*3*2*2*2*3 {
		t.Fatalf("visited %d combinations", n)
	}
}

// TestSeedMigrateToMicroservicesWhen checks, over every combination, that microservices are
// recommended only when the seed's conditions hold: a team past small, a well-understood domain
// decomposed into bounded contexts, at least two of its reasons to migrate; and faultline's: own
// data, full operations. And that with no reason to migrate the verdict is a modular monolith.
func TestSeedMigrateToMicroservicesWhen(t *testing.T) {
	for _, size := range []string{"11", "500"} {
		combos(size, func(a Answers) {
			rec, err := Recommend(a)
			if err != nil {
				t.Fatal(err)
			}
			reasons := 0
			if a[IndependentScaling] == "yes" && a[ExpectedLoad] != "low" {
				reasons++
			}
			if a[DifferentTechnologies] == "yes" {
				reasons++
			}
			if a[IndependentDeployment] == "yes" {
				reasons++
			}
			ready := a[DomainUnderstood] == "yes" && a[BoundedContexts] == "yes" && a[SharedDatabase] == "no" && a[OpsMaturity] == "full"
			want := ModularMonolith
			switch {
			case a[DomainUnderstood] == "no" || reasons == 0:
			case ready && reasons >= 2:
				want = Microservices
			default:
				want = ModularMonolithThenExtract
			}
			if rec.Verdict != want {
				t.Fatalf("%v: %s, want %s", a, rec.Verdict, want)
			}
		})
	}
}

// TestChangesAreTrue: each listed change, applied alone, gives the verdict it names, and an answer
// not listed does not change the verdict.
func TestChangesAreTrue(t *testing.T) {
	for _, a := range []Answers{
		all(nil),
		all(Answers{IndependentScaling: "yes", IndependentDeployment: "yes", ExpectedLoad: "high"}),
		all(Answers{TeamSize: "5", DifferentTechnologies: "yes"}),
		all(Answers{SharedDatabase: "yes", IndependentDeployment: "yes", DifferentTechnologies: "yes"}),
	} {
		rec, err := Recommend(a)
		if err != nil {
			t.Fatal(err)
		}
		listed := map[string]bool{}
		for _, c := range rec.Changes {
			listed[c.Question+"="+c.Answer] = true
			try := all(a)
			try[c.Question] = c.Answer
			got, _ := Recommend(try)
			if got.Verdict != c.Verdict || c.Verdict == rec.Verdict {
				t.Errorf("%v: change %s gives %s", a, c, got.Verdict)
			}
		}
		for _, q := range questions {
			for _, o := range q.Options {
				try := all(a)
				try[q.ID] = o.Value
				if got, _ := Recommend(try); got.Verdict != rec.Verdict && !listed[q.ID+"="+o.Value] {
					t.Errorf("%v: %s=%s changes the verdict to %s but is not listed", a, q.ID, o.Value, got.Verdict)
				}
			}
		}
	}
	rec, _ := Recommend(all(Answers{IndependentScaling: "yes", IndependentDeployment: "yes"}))
	if !slices.Contains(rec.Changes, Change{TeamSize, "10", ModularMonolith}) {
		t.Errorf("team-size change missing: %v", rec.Changes)
	}
	if s := (Change{TeamSize, "10", ModularMonolith}).String(); s != "team-size 10 or fewer → modular-monolith" {
		t.Errorf("change reads %q", s)
	}
}

// TestAssumedAnswers: a missing answer takes its default, is marked assumed, and when it alone could
// change the verdict the confidence is low and the first next step asks for it.
func TestAssumedAnswers(t *testing.T) {
	a := all(Answers{IndependentScaling: "yes", IndependentDeployment: "yes", ExpectedLoad: "high"})
	delete(a, SharedDatabase)
	rec, err := Recommend(a)
	if err != nil {
		t.Fatal(err)
	}
	if rec.Verdict != ModularMonolithThenExtract || rec.Confidence != Low {
		t.Fatalf("got %s/%s, want then-extract with low confidence", rec.Verdict, rec.Confidence)
	}
	for _, r := range rec.Reasons {
		if r.Assumed != (r.Question == SharedDatabase) {
			t.Errorf("%s assumed=%v", r.Question, r.Assumed)
		}
		if r.Question == SharedDatabase && r.Answer != "yes" {
			t.Errorf("shared-database default %q", r.Answer)
		}
	}
	if want := "Answer shared-database (assumed yes): with shared-database no the verdict would be microservices."; rec.NextSteps[0] != want {
		t.Errorf("first step %q, want %q", rec.NextSteps[0], want)
	}

	// Assumed answers that cannot change the verdict leave the confidence alone.
	rec, _ = Recommend(Answers{TeamSize: "4", DomainUnderstood: "no"})
	if rec.Confidence != High || !rec.Reasons[2].Assumed {
		t.Errorf("got %s, reasons %+v", rec.Confidence, rec.Reasons)
	}

	// No answers at all: every default, which adds no reason to split.
	rec, _ = Recommend(nil)
	if rec.Verdict != ModularMonolith {
		t.Errorf("defaults give %s", rec.Verdict)
	}
}

func TestValidate(t *testing.T) {
	err := Validate(Answers{
		"team-size":         "six",
		"teamsize":          "4",
		"ops-maturity":      "ful",
		"bounded-contexts":  "maybe",
		"expected-load":     "",
		"domain-understood": "Partly",
		"colour":            "blue",
	})
	var errs AnswerErrors
	if !errors.As(err, &errs) {
		t.Fatalf("error %T %v, want AnswerErrors", err, err)
	}
	want := []string{
		`team-size: "six" is not a whole number; expected a whole number from 1 to 100000`,
		`bounded-contexts: "maybe" is not an answer to this question; expected yes or no`,
		`expected-load: no answer; expected low, moderate or high`,
		`ops-maturity: "ful" is not an answer to this question; expected none, partial or full; did you mean "full"?`,
		`colour: unknown question; expected one of team-size, domain-understood, bounded-contexts, independent-scaling, expected-load, different-technologies, independent-deployment, shared-database, ops-maturity`,
		`teamsize: unknown question; expected one of team-size, domain-understood, bounded-contexts, independent-scaling, expected-load, different-technologies, independent-deployment, shared-database, ops-maturity; did you mean "team-size"?`,
	}
	if len(errs) != len(want) {
		t.Fatalf("%d errors:\n%v", len(errs), err)
	}
	for i, w := range want {
		if errs[i].Error() != w {
			t.Errorf("error %d:\n got %s\nwant %s", i, errs[i].Error(), w)
		}
	}
	if _, err := Recommend(Answers{TeamSize: "0"}); err == nil || err.Error() != "team-size: 0 is out of range; expected a whole number from 1 to 100000" {
		t.Errorf("team-size 0: %v", err)
	}
	if _, err := Recommend(Answers{TeamSize: "5.5"}); err == nil || !strings.Contains(err.Error(), `"5.5" is not a whole number`) {
		t.Errorf("team-size 5.5: %v", err)
	}
	if err := Validate(all(nil)); err != nil {
		t.Errorf("valid answers: %v", err)
	}
}

func TestQuestions(t *testing.T) {
	qs := Questions()
	seedCriteria := []string{TeamSize, DomainUnderstood, BoundedContexts, IndependentScaling, DifferentTechnologies, IndependentDeployment}
	ids := map[string]bool{}
	for _, q := range qs {
		if ids[q.ID] {
			t.Errorf("%s twice", q.ID)
		}
		ids[q.ID] = true
		if q.Text == "" || q.Help == "" || q.Quote == "" {
			t.Errorf("%s: text, help and quote are required", q.ID)
		}
		if v, err := q.Parse(q.Default); err != nil || v != q.Default {
			t.Errorf("%s: default %q does not parse: %v", q.ID, q.Default, err)
		}
		if want := slices.Contains(seedCriteria, q.ID); (q.Origin == Seed) != want {
			t.Errorf("%s: origin %s", q.ID, q.Origin)
		}
		if q.Kind == Choice && len(q.Options) < 2 || q.Kind == YesNo && len(q.Options) != 2 || q.Kind == Number && q.Min >= q.Max {
			t.Errorf("%s: bad answer set", q.ID)
		}
	}
	if !reflect.DeepEqual(slices.Collect(func(yield func(string) bool) {
		for _, q := range qs {
			yield(q.ID)
		}
	}), IDs()) {
		t.Error("IDs and Questions disagree")
	}
	qs[0].ID, qs[1].Options[0].Value = "changed", "changed"
	if again := Questions(); again[0].ID != TeamSize || again[1].Options[0].Value != "no" {
		t.Error("Questions returned shared state")
	}
}

func TestParse(t *testing.T) {
	yn, _ := Lookup(IndependentScaling)
	for in, want := range map[string]string{"yes": "yes", "Y": "yes", " true ": "yes", "NO": "no", "n": "no", "false": "no"} {
		if got, err := yn.Parse(in); got != want || err != nil {
			t.Errorf("Parse(%q) = %q, %v", in, got, err)
		}
	}
	num, _ := Lookup(TeamSize)
	for _, bad := range []string{"-1", "0", "100001", "1e3", "ten", ""} {
		if _, err := num.Parse(bad); err == nil {
			t.Errorf("team-size %q accepted", bad)
		}
	}
	if got, _ := num.Parse("007"); got != "7" {
		t.Errorf("007 → %q", got)
	}
}

// TestQuotesAreVerbatim: every passage faultline attributes to the seed is in the seed.
// testdata/seed.md is the seed document (distributed-systems-design.md, version 1.0.0) unchanged.
func TestQuotesAreVerbatim(t *testing.T) {
	seed, err := os.ReadFile("testdata/seed.md")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(seed), "name: distributed-systems-design\nversion: 1.0.0") {
		t.Fatal("testdata/seed.md is not the seed document")
	}
	check := func(where, quote string) {
		if !strings.Contains(string(seed), quote) {
			t.Errorf("%s: %q is not in the seed", where, quote)
		}
	}
	for _, q := range questions {
		check(q.ID, q.Quote)
		for _, m := range regexp.MustCompile(`"([^"]+)"`).FindAllStringSubmatch(q.Help, -1) {
			if len(strings.Fields(m[1])) <= 3 { // quoted words ("Genuinely"), not passages
				continue
			}
			for _, part := range strings.Split(strings.Join(strings.Fields(m[1]), " "), "...") { // an ellipsis leaves words out
				if part = strings.TrimSpace(part); part != "" {
					check(q.ID+" help", part)
				}
			}
		}
	}
	quoted := regexp.MustCompile(`The seed: "([^"]+)"`)
	n := 0
	for _, size := range []string{"5", "40"} {
		combos(size, func(a Answers) {
			rec, _ := Recommend(a)
			for _, r := range rec.Reasons {
				check(r.Question+" reason", r.Quote)
				n++
			}
			for _, s := range append(append([]string{}, rec.Risks...), rec.NextSteps...) {
				for _, m := range quoted.FindAllStringSubmatch(s, -1) {
					check("risk or step", m[1])
					n++
				}
			}
		})
	}
	if n == 0 {
		t.Fatal("no quotes checked")
	}
}

// TestLeansAgreeWithVerdict: on the clear cases, the reasons lean mostly the verdict's way, so a
// reader scanning the reasons is not surprised by the verdict.
func TestLeansAgreeWithVerdict(t *testing.T) {
	count := func(rec Recommendation, l Lean) int {
		n := 0
		for _, r := range rec.Reasons {
			if r.Leans == l {
				n++
			}
		}
		return n
	}
	mono, _ := Recommend(Answers{TeamSize: "4", DomainUnderstood: "no"})
	micro, _ := Recommend(all(Answers{IndependentScaling: "yes", DifferentTechnologies: "yes", IndependentDeployment: "yes", ExpectedLoad: "high"}))
	if count(mono, TowardMonolith) < 8 || count(micro, TowardMicroservices) < 8 {
		t.Errorf("monolith case: %d lean monolith; microservices case: %d lean microservices",
			count(mono, TowardMonolith), count(micro, TowardMicroservices))
	}
}

func TestParseAnswers(t *testing.T) {
	yamlIn := "# answers\nteam-size: 6\ndomain-understood: no\nindependent-scaling: yes\nshared-database: false\n"
	a, lines, err := ParseAnswers([]byte(yamlIn))
	if err != nil {
		t.Fatal(err)
	}
	if a[TeamSize] != "6" || a[DomainUnderstood] != "no" || a[IndependentScaling] != "yes" || lines[DomainUnderstood] != 3 {
		t.Errorf("got %v %v", a, lines)
	}
	if rec, err := Recommend(a); err != nil || rec.Reasons[7].Answer != "no" {
		t.Errorf("false as an answer: %v %+v", err, rec.Reasons[7])
	}
	jsonIn := `{"team-size": 30, "bounded-contexts": true, "ops-maturity": "full"}`
	if a, _, err := ParseAnswers([]byte(jsonIn)); err != nil || a[TeamSize] != "30" || a[BoundedContexts] != "true" {
		t.Errorf("json: %v %v", a, err)
	} else if err := Validate(a); err != nil {
		t.Errorf("json answers: %v", err)
	}

	bad := []struct {
		name, in string
		want     []string
	}{
		{"empty", "", []string{"no answers; expected a mapping of question ID to answer"}},
		{"comment only", "# nothing\n", []string{"no answers"}},
		{"a list", "- team-size\n", []string{"line 1: expected a mapping of question ID to answer, found a list"}},
		{"a scalar", "yes\n", []string{`line 1: expected a mapping of question ID to answer, found "yes"`}},
		{"syntax", "team-size: 6\n  x: : y\n", []string{"line 2: invalid YAML: mapping values are not allowed"}},
		{"list value and duplicate", "team-size: [1, 2]\nops-maturity: full\nops-maturity: none\n",
			[]string{"line 1: team-size: expected one answer, found a list", "line 3: ops-maturity: answered twice (first on line 2)"}},
		{"mapping key", "? [a]\n: b\n", []string{"line 1: expected a question ID as key, found a list"}},
	}
	for _, c := range bad {
		_, _, err := ParseAnswers([]byte(c.in))
		var errs AnswerErrors
		if !errors.As(err, &errs) || len(errs) != len(c.want) {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		for i, w := range c.want {
			if !strings.HasPrefix(errs[i].Error(), w) {
				t.Errorf("%s: %q, want prefix %q", c.name, errs[i].Error(), w)
			}
		}
	}
	// A bad entry does not hide the good ones: they come back for validation.
	a, _, err = ParseAnswers([]byte("team-size: [1]\nops-maturity: ful\n"))
	if err == nil || a[OpsMaturity] != "ful" {
		t.Errorf("partial answers: %v %v", a, err)
	}
	// A null answer is read as empty, which validation reports as no answer.
	a, _, _ = ParseAnswers([]byte("team-size:\n"))
	if err := Validate(a); err == nil || !strings.Contains(err.Error(), "team-size: no answer; expected a whole number") {
		t.Errorf("null answer: %v", err)
	}
}

// FuzzParseAnswers: any input gives answers or AnswerErrors, never a panic, and answers that
// validate always give a complete recommendation.
func FuzzParseAnswers(f *testing.F) {
	for _, s := range []string{
		"team-size: 6\ndomain-understood: no\n",
		`{"team-size": 30, "bounded-contexts": true}`,
		"a: &x yes\nb: *x\n",
		"- 1\n",
		"team-size: [1]\n",
		"ops-maturity: ful\nteamsize: 3\n",
		"",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		a, _, err := ParseAnswers(data)
		var errs AnswerErrors
		if err != nil && !errors.As(err, &errs) {
			t.Fatalf("error %T: %v", err, err)
		}
		rec, err := Recommend(a)
		if err != nil {
			if !errors.As(err, &errs) {
				t.Fatalf("Recommend error %T: %v", err, err)
			}
			return
		}
		if rec.Verdict == "" || rec.Confidence == "" || len(rec.Reasons) != len(questions) {
			t.Fatalf("incomplete: %+v", rec)
		}
	})
}

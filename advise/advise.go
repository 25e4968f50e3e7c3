// Package advise answers "should this system be a monolith or microservices?" the way the seed
// document does, as a short questionnaire and a recommendation with its reasons.
//
// The seed's answer is the rule: "Start with a modular monolith if the team is small or the domain
// is not well understood. Microservices introduce significant operational complexity." It
// migrates to microservices when the domain decomposes into bounded contexts and when parts have
// distinct scaling requirements, genuinely need different technologies, or belong to teams that
// need independent deployment. faultline adds three questions an architect also asks (expected
// load, a shared database, operational maturity), each marked as faultline's, not the seed's.
//
// Recommend decides in four ordered steps (see Rule); the same answers always give the same
// recommendation, and the package does no I/O.
package advise

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/faultline-dev/faultline/internal/suggest"
)

// Answers maps question IDs to answers ("team-size": "6", "domain-understood": "no").
type Answers map[string]string

// Verdict is the recommended architecture.
type Verdict string

// The verdicts.
const (
	// ModularMonolith: one deployable, split inside into modules with enforced boundaries.
	ModularMonolith Verdict = "modular-monolith"
	// ModularMonolithThenExtract: a modular monolith now; extract as services the parts with a
	// reason to leave, once the conditions to do it safely hold.
	ModularMonolithThenExtract Verdict = "modular-monolith-then-extract"
	// Microservices: independently deployed services, one per bounded context, each owning its data.
	Microservices Verdict = "microservices"
)

// Title is the verdict in words.
func (v Verdict) Title() string {
	switch v {
	case ModularMonolith:
		return "modular monolith"
	case ModularMonolithThenExtract:
		return "modular monolith, then extract services"
	case Microservices:
		return "microservices"
	}
	return string(v)
}

// Confidence says how firmly the answers support the verdict.
type Confidence string

// The confidence levels.
const (
	Low    Confidence = "low"
	Medium Confidence = "medium"
	High   Confidence = "high"
)

// Lean is the direction an answer pushes.
type Lean string

// The directions.
const (
	TowardMonolith      Lean = "monolith"
	TowardMicroservices Lean = "microservices"
	Neutral             Lean = "neutral"
)

// Rule names the step of the decision that settled the verdict.
type Rule string

// The steps, in the order Recommend applies them.
const (
	// RuleStartSimple: the team is small or the domain is not well understood → modular monolith
	// (the seed: "Start with a modular monolith if the team is small or the domain is not well
	// understood.").
	RuleStartSimple Rule = "start-simple"
	// RuleNoReason: none of the seed's reasons to migrate applies → modular monolith.
	RuleNoReason Rule = "no-reason-to-split"
	// RuleNotReady: reasons to migrate apply, but a condition to split safely is missing (domain
	// only partly understood, no clear bounded contexts, a shared database, operations not
	// ready) → modular monolith, then extract.
	RuleNotReady Rule = "not-ready-to-split"
	// RuleOneReason: ready to split, and exactly one reason to → extract the part it concerns.
	RuleOneReason Rule = "one-reason-to-split"
	// RuleReady: ready to split, and two or more reasons to → microservices.
	RuleReady Rule = "ready-to-split"
)

// Recommendation is the answer to the questionnaire.
type Recommendation struct {
	Verdict    Verdict    `json:"verdict" yaml:"verdict"`
	Confidence Confidence `json:"confidence" yaml:"confidence"`
	// Rule is the step of the decision that settled the verdict.
	Rule Rule `json:"rule" yaml:"rule"`
	// Summary says in a sentence or two why.
	Summary string `json:"summary" yaml:"summary"`
	// Reasons has one entry per question, in the order they are asked.
	Reasons   []Reason `json:"reasons" yaml:"reasons"`
	Risks     []string `json:"risks" yaml:"risks"`
	NextSteps []string `json:"nextSteps" yaml:"nextSteps"`
	// Changes lists the single answers that, changed alone, would give another verdict.
	Changes []Change `json:"changes" yaml:"changes"`
}

// Reason is what one answer says about the choice.
type Reason struct {
	Question string `json:"question" yaml:"question"`
	Answer   string `json:"answer" yaml:"answer"`
	// Assumed is true when the answer was not given and the question's default was used.
	Assumed bool `json:"assumed,omitempty" yaml:"assumed,omitempty"`
	// Says is the reasoning applied to this answer, in one sentence.
	Says string `json:"says" yaml:"says"`
	// Quote is the seed passage the reasoning rests on, verbatim.
	Quote string `json:"quote" yaml:"quote"`
	Leans Lean   `json:"leans" yaml:"leans"`
	// Source says whether the criterion is the seed's or faultline's addition.
	Source Origin `json:"source" yaml:"source"`
}

// Change is one answer that, changed alone, would change the verdict.
type Change struct {
	Question string  `json:"question" yaml:"question"`
	Answer   string  `json:"answer" yaml:"answer"`
	Verdict  Verdict `json:"verdict" yaml:"verdict"`
}

// String reads "team-size more than 10 → microservices" or "bounded-contexts yes → microservices".
func (c Change) String() string {
	return describeAnswer(c.Question, c.Answer) + " → " + string(c.Verdict)
}

// describeAnswer names an answer in words; a team size stands for its side of SmallTeam.
func describeAnswer(id, answer string) string {
	if id == TeamSize {
		if n, err := strconv.Atoi(answer); err == nil {
			if n > SmallTeam {
				return fmt.Sprintf("%s more than %d", id, SmallTeam)
			}
			return fmt.Sprintf("%s %d or fewer", id, SmallTeam)
		}
	}
	return id + " " + answer
}

// AnswerError is one bad answer.
type AnswerError struct {
	// Question is the question ID as given (it may be unknown).
	Question string `json:"question" yaml:"question"`
	Answer   string `json:"answer,omitempty" yaml:"answer,omitempty"`
	// Line is the line of an answers file the answer is on, when it came from one.
	Line int `json:"line,omitempty" yaml:"line,omitempty"`
	// Problem says what is wrong and what is expected.
	Problem string `json:"problem" yaml:"problem"`
}

// Error reads "line 3: team-size: ..." (the line only when the answer came from a file).
func (e AnswerError) Error() string {
	s := e.Problem
	if e.Question != "" {
		s = e.Question + ": " + s
	}
	if e.Line > 0 {
		s = fmt.Sprintf("line %d: %s", e.Line, s)
	}
	return s
}

// AnswerErrors is every bad answer of one set, reported together.
type AnswerErrors []AnswerError

// Error lists the problems, one per line.
func (es AnswerErrors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Validate checks answers: every ID must name a question and every answer must be one the
// question allows. All problems are returned together as AnswerErrors, known questions first in
// questionnaire order, then unknown IDs in alphabetical order. Missing answers are not errors.
func Validate(answers Answers) error {
	_, _, err := complete(answers)
	return err
}

// complete validates answers and returns them in canonical form with every question answered,
// the defaults filled in for missing ones, and which answers were assumed.
func complete(answers Answers) (Answers, map[string]bool, error) {
	var errs AnswerErrors
	canon := Answers{}
	assumed := map[string]bool{}
	for _, q := range questions {
		raw, ok := answers[q.ID]
		if !ok {
			canon[q.ID], assumed[q.ID] = q.Default, true
			continue
		}
		v, err := q.Parse(raw)
		if err != nil {
			errs = append(errs, AnswerError{Question: q.ID, Answer: raw, Problem: err.Error()})
			continue
		}
		canon[q.ID] = v
	}
	var unknown []string
	for id := range answers {
		if _, ok := Lookup(id); !ok {
			unknown = append(unknown, id)
		}
	}
	slices.Sort(unknown)
	for _, id := range unknown {
		errs = append(errs, AnswerError{Question: id, Answer: answers[id],
			Problem: "unknown question; expected one of " + strings.Join(IDs(), ", ") + suggest.Hint(id, IDs())})
	}
	if len(errs) > 0 {
		return nil, nil, errs
	}
	return canon, assumed, nil
}

// facts are complete, canonical answers in typed form.
type facts struct {
	teamSize                                  int
	domain, load, ops                         string
	contexts, scaling, tech, autonomy, shared bool
}

func factsOf(a Answers) facts {
	n, _ := strconv.Atoi(a[TeamSize])
	return facts{
		teamSize: n,
		domain:   a[DomainUnderstood],
		load:     a[ExpectedLoad],
		ops:      a[OpsMaturity],
		contexts: a[BoundedContexts] == "yes",
		scaling:  a[IndependentScaling] == "yes",
		tech:     a[DifferentTechnologies] == "yes",
		autonomy: a[IndependentDeployment] == "yes",
		shared:   a[SharedDatabase] == "yes",
	}
}

// The seed's reasons to migrate, as they are named in summaries.
const (
	motiveScaling  = "distinct scaling requirements"
	motiveTech     = "a genuinely different technology"
	motiveAutonomy = "teams that need independent deployment"
)

// decision is the outcome of the rule and what led to it.
type decision struct {
	verdict  Verdict
	rule     Rule
	small    bool     // the team is small
	unclear  bool     // the domain is not well understood
	motives  []string // the seed's reasons to migrate that apply
	blockers []string // missing conditions to split safely
}

// decide applies the rule. In order:
//
//  1. start-simple: a small team (≤ SmallTeam) or a domain that is not well understood → modular
//     monolith, whatever else is answered (the seed's first sentence).
//  2. Count the seed's reasons to migrate: distinct scaling requirements (counted only when the
//     expected load is not low: faultline's addition), a genuinely different technology, teams
//     that need independent deployment. None → modular monolith (no-reason-to-split).
//  3. Check the conditions to split safely: the domain is well understood and decomposes into
//     bounded contexts (the seed), the parts need not share a database (the seed's distributed
//     monolith) and operations are mature (the seed's operational complexity). Any missing →
//     modular monolith, then extract (not-ready-to-split).
//  4. One reason → modular monolith, then extract that part (one-reason-to-split); two or more →
//     microservices (ready-to-split).
func decide(f facts) decision {
	d := decision{small: f.teamSize <= SmallTeam, unclear: f.domain == "no"}
	if f.scaling && f.load != "low" {
		d.motives = append(d.motives, motiveScaling)
	}
	if f.tech {
		d.motives = append(d.motives, motiveTech)
	}
	if f.autonomy {
		d.motives = append(d.motives, motiveAutonomy)
	}
	switch {
	case d.small || d.unclear:
		d.verdict, d.rule = ModularMonolith, RuleStartSimple
		return d
	case len(d.motives) == 0:
		d.verdict, d.rule = ModularMonolith, RuleNoReason
		return d
	}
	if f.domain != "yes" {
		d.blockers = append(d.blockers, "the domain is only partly understood")
	}
	if !f.contexts {
		d.blockers = append(d.blockers, "the bounded contexts are not clear")
	}
	if f.shared {
		d.blockers = append(d.blockers, "the parts would share one database")
	}
	if f.ops != "full" {
		d.blockers = append(d.blockers, fmt.Sprintf("operations are not ready for many services (ops-maturity %s)", f.ops))
	}
	switch {
	case len(d.blockers) > 0:
		d.verdict, d.rule = ModularMonolithThenExtract, RuleNotReady
	case len(d.motives) == 1:
		d.verdict, d.rule = ModularMonolithThenExtract, RuleOneReason
	default:
		d.verdict, d.rule = Microservices, RuleReady
	}
	return d
}

// confidence grades how firmly the answers hold the verdict:
//
//   - modular monolith: high when both start-simple conditions hold or no reason to migrate
//     applies; medium when the rule decides against reasons to migrate that do apply.
//   - modular monolith, then extract: high with two or more reasons to migrate (the direction is
//     clear; what is missing is the plan); medium with one.
//   - microservices: high when all three reasons to migrate apply, medium with two.
//
// Recommend lowers it to low when an answer that was not given, and was assumed, could change the
// verdict on its own.
func confidence(d decision) Confidence {
	switch d.verdict {
	case ModularMonolith:
		if (d.small && d.unclear) || len(d.motives) == 0 {
			return High
		}
	case ModularMonolithThenExtract:
		if len(d.motives) >= 2 {
			return High
		}
	case Microservices:
		if len(d.motives) == 3 {
			return High
		}
	}
	return Medium
}

// Recommend validates the answers, fills in the defaults of missing ones (marked Assumed) and
// returns the recommendation. Bad answers give AnswerErrors naming every problem at once.
func Recommend(answers Answers) (Recommendation, error) {
	canon, assumed, err := complete(answers)
	if err != nil {
		return Recommendation{}, err
	}
	f := factsOf(canon)
	d := decide(f)
	rec := Recommendation{
		Verdict:    d.verdict,
		Confidence: confidence(d),
		Rule:       d.rule,
		Summary:    summary(d, f),
		Changes:    changes(canon, d.verdict),
	}
	for _, q := range questions {
		r := reason(q.ID, f)
		r.Question, r.Answer, r.Assumed, r.Source = q.ID, canon[q.ID], assumed[q.ID], q.Origin
		rec.Reasons = append(rec.Reasons, r)
	}
	var open []Change // changes that hang on an assumed answer
	for _, c := range rec.Changes {
		if assumed[c.Question] {
			open = append(open, c)
		}
	}
	if len(open) > 0 {
		rec.Confidence = Low
	}
	rec.Risks = risks(d, f)
	rec.NextSteps = nextSteps(d, f, open)
	return rec, nil
}

// changes tries every other answer to each question, one at a time, and keeps those that change
// the verdict. A team size is tried on the other side of SmallTeam, the only threshold it has.
func changes(canon Answers, verdict Verdict) []Change {
	out := []Change{}
	for _, q := range questions {
		var alts []string
		if q.Kind == Number {
			if n, _ := strconv.Atoi(canon[q.ID]); n <= SmallTeam {
				alts = []string{strconv.Itoa(SmallTeam + 1)}
			} else {
				alts = []string{strconv.Itoa(SmallTeam)}
			}
		} else {
			for _, o := range q.Options {
				if o.Value != canon[q.ID] {
					alts = append(alts, o.Value)
				}
			}
		}
		for _, alt := range alts {
			try := Answers{}
			for k, v := range canon {
				try[k] = v
			}
			try[q.ID] = alt
			if v := decide(factsOf(try)).verdict; v != verdict {
				out = append(out, Change{Question: q.ID, Answer: alt, Verdict: v})
			}
		}
	}
	return out
}

func summary(d decision, f facts) string {
	switch d.rule {
	case RuleStartSimple:
		var why []string
		if d.small {
			why = append(why, fmt.Sprintf("the team is small (%d engineers; faultline counts up to %d as small)", f.teamSize, SmallTeam))
		}
		if d.unclear {
			why = append(why, "the domain is not well understood")
		}
		s := "The seed's first rule decides: " + andList(why) + ", so start with a modular monolith"
		if len(d.motives) > 0 {
			s += ", even though " + andList(d.motives) + " will argue for a split later"
		}
		return s + "."
	case RuleNoReason:
		s := "None of the seed's reasons to migrate applies (distinct scaling requirements, genuinely different " +
			"technologies, teams that need independent deployment), so microservices would add operational " +
			"complexity for no gain: build a modular monolith."
		if f.scaling && f.load == "low" {
			s += " Distinct scaling needs do not count while one instance carries the load."
		}
		return s
	case RuleNotReady:
		return fmt.Sprintf("There are reasons to split (%s) but not yet the conditions to do it safely: %s. "+
			"Build a modular monolith now and extract services once those are in place.", andList(d.motives), andList(d.blockers))
	case RuleOneReason:
		return fmt.Sprintf("One reason to split applies (%s) and the conditions to do it safely are in place: "+
			"keep a modular monolith and extract the part that needs it.", d.motives[0])
	}
	return fmt.Sprintf("The domain is well understood and decomposes into bounded contexts, %d of the seed's reasons "+
		"to migrate apply (%s), the parts can own their data and operations are ready: split into microservices.",
		len(d.motives), andList(d.motives))
}

// reason is what the answer to question id says, given all the answers.
func reason(id string, f facts) Reason {
	switch id {
	case TeamSize:
		if f.teamSize <= SmallTeam {
			return Reason{Leans: TowardMonolith, Quote: quoteStartSimple, Says: fmt.Sprintf(
				"%d engineers is a small team (at most %d), and the seed starts a small team on a modular monolith.", f.teamSize, SmallTeam)}
		}
		return Reason{Leans: Neutral, Quote: quoteStartSimple, Says: fmt.Sprintf(
			"%d engineers is more than one small team, so the seed's start-simple rule does not decide alone; the other answers do.", f.teamSize)}
	case DomainUnderstood:
		switch f.domain {
		case "no":
			return Reason{Leans: TowardMonolith, Quote: quoteStartSimple,
				Says: "The domain is not well understood, and the seed starts such a system on a modular monolith: boundaries drawn now would land in the wrong places."}
		case "partly":
			return Reason{Leans: TowardMonolith, Quote: quoteDomain,
				Says: "The domain is only partly understood; the seed migrates only once it is well understood, so boundaries should settle inside a monolith first."}
		}
		return Reason{Leans: TowardMicroservices, Quote: quoteDomain,
			Says: "The domain is well understood, which the seed requires before migrating to microservices."}
	case BoundedContexts:
		if f.contexts {
			return Reason{Leans: TowardMicroservices, Quote: quoteDomain,
				Says: "The domain decomposes into bounded contexts, the boundaries the seed wants services cut along."}
		}
		return Reason{Leans: TowardMonolith, Quote: quoteDomain,
			Says: "Without clear bounded contexts, services would change together and call each other constantly: a distributed monolith."}
	case IndependentScaling:
		if f.scaling {
			return Reason{Leans: TowardMicroservices, Quote: quoteScaling,
				Says: "Parts with distinct scaling requirements are one of the seed's reasons to migrate: each could scale on its own."}
		}
		return Reason{Leans: TowardMonolith, Quote: quoteScaling,
			Says: "No part scales differently, so the seed's scaling reason does not apply: one deployable scales out as a whole."}
	case ExpectedLoad:
		switch {
		case f.load == "low" && f.scaling:
			return Reason{Leans: TowardMonolith, Quote: quotePremature,
				Says: "At low load one instance carries every part, so scaling parts separately saves nothing yet: faultline does not count the scaling reason (premature optimization)."}
		case f.load == "low":
			return Reason{Leans: TowardMonolith, Quote: quotePremature,
				Says: "At low load one instance carries the whole system; anything more is premature optimization."}
		case f.scaling && f.load == "high":
			return Reason{Leans: TowardMicroservices, Quote: quoteHorizontal,
				Says: "At high load, scaling each part to its own needs saves real capacity, so the seed's scaling reason counts."}
		case f.scaling:
			return Reason{Leans: Neutral, Quote: quoteHorizontal,
				Says: "At moderate load the parts' different scaling needs already cost something, so the seed's scaling reason counts."}
		}
		return Reason{Leans: Neutral, Quote: quoteHorizontal,
			Says: "Load that grows the same everywhere is carried by more replicas of one stateless deployable; load alone is no reason to split."}
	case DifferentTechnologies:
		if f.tech {
			return Reason{Leans: TowardMicroservices, Quote: quoteTechnologies,
				Says: "A part that genuinely needs a different technology is one of the seed's reasons to migrate: it can run as its own service."}
		}
		return Reason{Leans: TowardMonolith, Quote: quoteTechnologies,
			Says: "One technology serves every part, so the seed's technology reason does not apply."}
	case IndependentDeployment:
		if f.autonomy {
			return Reason{Leans: TowardMicroservices, Quote: quoteAutonomy,
				Says: "Teams that need their own deployment cycles are one of the seed's reasons to migrate."}
		}
		return Reason{Leans: TowardMonolith, Quote: quoteAutonomy,
			Says: "No team needs its own release cycle, so one deployable takes no team's autonomy away."}
	case SharedDatabase:
		if f.shared {
			return Reason{Leans: TowardMonolith, Quote: quoteDistMonolith,
				Says: "Parts that must share one database would be the seed's distributed monolith: split the data before the services."}
		}
		return Reason{Leans: TowardMicroservices, Quote: quoteOwnData,
			Says: "Each part can own its data, as the seed requires of every microservice."}
	case OpsMaturity:
		switch f.ops {
		case "none":
			return Reason{Leans: TowardMonolith, Quote: quoteAutomate,
				Says: "Without automated deployments and central logs and metrics, every extra service multiplies the operational complexity the seed warns of."}
		case "partial":
			return Reason{Leans: TowardMonolith, Quote: quoteObservability,
				Says: "Operations that carry one deployable are not yet ready for many: each service needs its pipeline, tracing, alerts and on-call."}
		}
		return Reason{Leans: TowardMicroservices, Quote: quoteOpsComplexity,
			Says: "Pipelines per deployable, tracing and on-call are in place to carry the operational complexity microservices add."}
	}
	return Reason{Leans: Neutral}
}

func risks(d decision, f facts) []string {
	var out []string
	if d.verdict != Microservices {
		out = append(out, "Big ball of mud: module boundaries that nothing enforces erode, and a later extraction becomes a rewrite.")
	}
	if d.verdict == ModularMonolith {
		if f.scaling && f.load != "low" {
			out = append(out, "The whole application scales as one unit: the part with distinct load sets the replica count and the cost of everything.")
		}
		if f.tech {
			out = append(out, "The part that needs a different technology strains the single stack; if it cannot wait, run just that part as a separate process behind a module API.")
		}
		if f.autonomy {
			out = append(out, "Teams share one release train and can block each other; keep module tests independent and the build fast.")
		}
		return out
	}
	out = append(out,
		`Operational complexity: each service needs its own pipeline, dashboards, alerts and on-call. The seed: "`+quoteOpsComplexity+`"`,
		`Network failures and latency on every call between services. The seed: "`+quoteNetwork+`"`,
		`Consistency: a business transaction that spans services loses its database transaction. The seed: "`+quoteSaga+`"`)
	switch {
	case f.shared:
		out = append(out, `Distributed monolith: services that share a database. The seed: "`+quoteDistMonolith+`"`)
	case f.domain != "yes" || !f.contexts:
		out = append(out, "Distributed monolith: services cut along boundaries that have not settled change together and call each other constantly.")
	default:
		out = append(out, `Distributed monolith, if services come to share tables or must be deployed together. The seed: "`+quoteOwnData+`"`)
	}
	if d.verdict == Microservices {
		out = append(out, `Chattiness. The seed: "`+quoteChattiness+`"`)
	}
	if f.ops != "full" {
		out = append(out, "Services without per-service pipelines, distributed tracing and on-call turn every incident into a search across machines.")
	}
	return out
}

func nextSteps(d decision, f facts, open []Change) []string {
	var out []string
	for _, c := range open {
		q, _ := Lookup(c.Question)
		out = append(out, fmt.Sprintf("Answer %s (assumed %s): with %s the verdict would be %s.",
			c.Question, q.Default, describeAnswer(c.Question, c.Answer), c.Verdict))
	}
	const modules = "one deployable split into modules along the bounded contexts (or today's best guess at them), with enforced boundaries: a module calls another only through its public API (in Go, each module's internals under internal/)"
	const ownTables = "Give each module its own tables (or schema) and never read another module's tables, so a later extraction needs no data migration and the seed's shared-database anti-pattern never starts."
	const automate = "Automate builds, tests and deployments and add structured logs, metrics and alerts (the seed's Automate Everything and Prioritize Observability)."
	const model = "Write the target architecture as a faultline model (docs/model.md) and check it with faultline review before building it."
	switch d.verdict {
	case ModularMonolith:
		out = append(out, "Build "+modules+".", ownTables)
		if f.ops != "full" {
			out = append(out, automate+" A monolith needs them too, and a later split needs them first.")
		}
		var when []string
		if d.small {
			when = append(when, fmt.Sprintf("the team grows past %d engineers", SmallTeam))
		}
		if f.domain != "yes" {
			when = append(when, "the domain is well understood")
		}
		if len(d.motives) == 0 {
			when = append(when, "a part needs its own scaling, technology or release cycle")
		}
		if len(when) > 0 {
			out = append(out, "Run faultline advise again when "+orList(when)+".")
		}
	case ModularMonolithThenExtract:
		out = append(out, "Keep (or build) "+modules+".")
		if f.domain != "yes" || !f.contexts {
			out = append(out, "Let the bounded contexts settle inside the monolith; extract only a module whose boundary and API have not changed for a while.")
		}
		if f.shared {
			out = append(out, `Split the data before the code: give the first candidate its own schema and replace other modules' reads of its tables with calls to its API or with events. The seed: "`+quoteOwnData+`"`)
		} else {
			out = append(out, ownTables)
		}
		if f.ops != "full" {
			out = append(out, "Before the first extraction, set up a pipeline per deployable, distributed tracing, alerting and an on-call rotation (the seed's Automate Everything and Prioritize Observability).")
		}
		var first []string
		if f.scaling && f.load != "low" {
			first = append(first, "the part with distinct scaling needs")
		}
		if f.tech {
			first = append(first, "the part that needs a different technology")
		}
		if f.autonomy {
			first = append(first, "the parts whose teams need their own release cycle")
		}
		out = append(out, "Extract first "+orList(first)+"; everything else stays in the monolith until it has a reason of its own.",
			"Give every synchronous call to an extracted service a timeout, retries with exponential backoff and a circuit breaker (the seed's Implement Resilience Patterns); use events where the caller needs no answer.",
			model)
	case Microservices:
		out = append(out,
			`One service per bounded context, each owning its data store. The seed: "`+quoteDecouple+`"`,
			"Publish each service's API as a versioned contract (OpenAPI, AsyncAPI); between contexts prefer events to chains of synchronous calls.",
			`Give every synchronous call a timeout, retries with exponential backoff and a circuit breaker, and isolate dependencies with bulkheads. The seed: "`+quoteResilience+`"`,
			`Structured logs, metrics and distributed tracing in every service from the first one. The seed: "`+quoteObservability+`"`,
			"If a system exists already, move one bounded context at a time behind its existing interface instead of rewriting it (the seed's Start Simple, Iterate, and Refactor).",
			`Keep each service simple: no event sourcing or CQRS without a demonstrated need. The seed: "`+quoteOverEngineer+`"`,
			model)
	}
	return out
}

// andList joins ["a","b","c"] as "a, b and c".
func andList(vals []string) string {
	switch len(vals) {
	case 0:
		return ""
	case 1:
		return vals[0]
	}
	return strings.Join(vals[:len(vals)-1], ", ") + " and " + vals[len(vals)-1]
}

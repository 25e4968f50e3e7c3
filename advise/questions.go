package advise

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/faultline-dev/faultline/internal/suggest"
)

// Kind is how a question is answered.
type Kind string

// The kinds of question.
const (
	YesNo  Kind = "yes-no" // yes or no (y, n, true and false are accepted too)
	Choice Kind = "choice" // one of Options
	Number Kind = "number" // a whole number from Min to Max
)

// Origin says whose criterion a question is.
type Origin string

// The origins of a question (and of a Reason).
const (
	// Seed marks a criterion the seed document itself names in its answer to "When should I use
	// microservices versus a monolithic architecture?".
	Seed Origin = "seed"
	// Faultline marks a question faultline adds, the way an experienced architect would, grounded
	// in other passages of the seed (its anti-patterns and best practices).
	Faultline Origin = "faultline"
)

// Option is one allowed answer of a yes-no or choice question.
type Option struct {
	Value   string `json:"value" yaml:"value"`
	Meaning string `json:"meaning" yaml:"meaning"`
}

// Question is one question of the questionnaire.
type Question struct {
	// ID names the question in Answers, in flags (--team-size) and in answers files.
	ID string `json:"id" yaml:"id"`
	// Text is the question as it is asked.
	Text string `json:"text" yaml:"text"`
	Kind Kind   `json:"kind" yaml:"kind"`
	// Options are the allowed answers of a yes-no or choice question, in the order they are offered.
	Options []Option `json:"options,omitempty" yaml:"options,omitempty"`
	// Min and Max bound a number question's answer.
	Min int `json:"min,omitempty" yaml:"min,omitempty"`
	Max int `json:"max,omitempty" yaml:"max,omitempty"`
	// Default is the answer assumed when none is given. Every default is the answer that adds no
	// reason to split the system (the seed's "Start Simple, Iterate, and Refactor").
	Default string `json:"default" yaml:"default"`
	// Origin says whether the seed names this criterion or faultline adds it.
	Origin Origin `json:"origin" yaml:"origin"`
	// Quote is the seed passage the question rests on, verbatim.
	Quote string `json:"quote" yaml:"quote"`
	// Help explains what the question is after and how to answer it.
	Help string `json:"help" yaml:"help"`
}

// The question IDs.
const (
	TeamSize              = "team-size"
	DomainUnderstood      = "domain-understood"
	BoundedContexts       = "bounded-contexts"
	IndependentScaling    = "independent-scaling"
	ExpectedLoad          = "expected-load"
	DifferentTechnologies = "different-technologies"
	IndependentDeployment = "independent-deployment"
	SharedDatabase        = "shared-database"
	OpsMaturity           = "ops-maturity"
)

// SmallTeam is the largest team faultline calls small. The seed says "if the team is small" and
// gives no number; 10 engineers is about one team that can share one codebase and one release.
const SmallTeam = 10

// Seed passages, verbatim (advise_test.go checks each against the seed document).
const (
	quoteStartSimple   = "Start with a modular monolith if the team is small or the domain is not well understood."
	quoteOpsComplexity = "Microservices introduce significant operational complexity."
	quoteDomain        = "The domain is well-understood and can be clearly decomposed into bounded contexts."
	quoteScaling       = "Different parts of the application have distinct scaling requirements."
	quoteTechnologies  = "Different technologies are genuinely needed for different components."
	quoteAutonomy      = "Teams need high autonomy and independent deployment cycles."
	quotePremature     = "Begin with a simpler architecture (e.g., modular monolith) and evolve towards more distributed patterns as complexity and needs grow. Avoid premature optimization."
	quoteHorizontal    = "Horizontal vs. Vertical scaling, elasticity, and auto-scaling."
	quoteDistMonolith  = "Services are logically separated but share a single database, leading to tight coupling and hindering independent deployment and scaling."
	quoteOwnData       = "Each microservice should own its data store to maintain autonomy and avoid tight coupling."
	quoteAutomate      = "Use CI/CD for deployments, Infrastructure as Code (IaC) for provisioning, and automated testing to ensure consistency and reduce human error."
	quoteObservability = "Implement comprehensive logging, metrics, and distributed tracing from the outset."
	quoteResilience    = "Actively use Circuit Breaker, Bulkhead, Retry, and Timeout patterns to prevent cascading failures and improve system stability."
	quoteNetwork       = "Do not assume a reliable, zero-latency network. Design for network partitions, message loss, and variable latency."
	quoteSaga          = "More commonly in microservices, use eventual consistency with patterns like the Saga pattern for distributed business transactions, or Event Sourcing to reconstruct state."
	quoteChattiness    = "Avoid excessive fine-grained synchronous communication between services, which can lead to performance bottlenecks."
	quoteOverEngineer  = "Do not introduce complex distributed patterns (e.g., event sourcing, CQRS) unless there's a clear, demonstrated need."
	quoteDecouple      = "Design services with clear boundaries and independent deployment capabilities. Avoid shared databases between microservices."
)

var yesNo = []Option{{"yes", ""}, {"no", ""}}

// questions is the questionnaire, in the order it is asked.
var questions = []Question{
	{
		ID:      TeamSize,
		Text:    "How many engineers will build and run this system over the next year?",
		Kind:    Number,
		Min:     1,
		Max:     100000,
		Default: "5",
		Origin:  Seed,
		Quote:   quoteStartSimple,
		Help: fmt.Sprintf(`The seed starts a small team on a modular monolith. It gives no number; faultline calls a
team small at %d engineers or fewer: about one team that can share one codebase and one release.
Count the people who change the code, not the whole company.`, SmallTeam),
	},
	{
		ID:   DomainUnderstood,
		Text: "How well is the business domain understood?",
		Kind: Choice,
		Options: []Option{
			{"no", "still discovering what the product must do; core concepts change often"},
			{"partly", "the core is clear, the edges still move"},
			{"yes", "stable concepts and vocabulary; few surprises expected"},
		},
		Default: "partly",
		Origin:  Seed,
		Quote:   quoteStartSimple,
		Help: `The seed starts on a modular monolith while the domain is not well understood, and migrates to
microservices only once it is well understood. Boundaries drawn before the domain settles
land in the wrong places, and moving a boundary between services costs far more than between
modules.`,
	},
	{
		ID:      BoundedContexts,
		Text:    "Can you name the bounded contexts today: parts with their own data, vocabulary and rules that rarely need each other's internals?",
		Kind:    YesNo,
		Options: yesNo,
		Default: "no",
		Origin:  Seed,
		Quote:   quoteDomain,
		Help: `The seed migrates when the domain "can be clearly decomposed into bounded contexts". Services cut
where no context boundary exists change together and call each other constantly: the distributed
monolith. Answer yes only if you could draw the boundaries now and they have not moved lately.`,
	},
	{
		ID:      IndependentScaling,
		Text:    "Do some parts need to scale very differently from the rest (load, peaks, CPU, memory, GPUs)?",
		Kind:    YesNo,
		Options: yesNo,
		Default: "no",
		Origin:  Seed,
		Quote:   quoteScaling,
		Help: `One of the seed's reasons to migrate. Example: an image pipeline that needs 40 workers and a GPU
next to an admin UI that needs one instance. Growth that is the same everywhere is no reason: one
stateless deployable scales out as a whole.`,
	},
	{
		ID:   ExpectedLoad,
		Text: "What peak load do you expect over the next year?",
		Kind: Choice,
		Options: []Option{
			{"low", "one instance (plus a standby) carries the peak"},
			{"moderate", "a few replicas"},
			{"high", "many replicas; what scaling costs matters"},
		},
		Default: "moderate",
		Origin:  Faultline,
		Quote:   quotePremature,
		Help: `faultline's addition. The seed's scaling reason is about distinct requirements; whether they are
worth a split depends on load. At low load one instance carries every part, so scaling parts
separately saves nothing yet: the premature optimization the seed warns against. Load alone is
never a reason to split: a monolith scales horizontally too.`,
	},
	{
		ID:      DifferentTechnologies,
		Text:    "Does some part genuinely need a different technology (language, runtime, datastore) from the rest?",
		Kind:    YesNo,
		Options: yesNo,
		Default: "no",
		Origin:  Seed,
		Quote:   quoteTechnologies,
		Help: `One of the seed's reasons to migrate. "Genuinely" rules out taste: count it only when the main stack
cannot do the job well (a Python ML model next to a Go backend, a search engine, code bound to
special hardware).`,
	},
	{
		ID:      IndependentDeployment,
		Text:    "Do several teams need to release their parts independently, each on its own schedule?",
		Kind:    YesNo,
		Options: yesNo,
		Default: "no",
		Origin:  Seed,
		Quote:   quoteAutonomy,
		Help: `One of the seed's reasons to migrate. One team rarely needs it; it matters when teams block each
other on a shared release train.`,
	},
	{
		ID:      SharedDatabase,
		Text:    "If the system were split, would the parts still have to share one database (read or write each other's tables)?",
		Kind:    YesNo,
		Options: yesNo,
		Default: "yes",
		Origin:  Faultline,
		Quote:   quoteDistMonolith,
		Help: `faultline's addition, from the seed's Distributed Monolith anti-pattern and its rule "Each
microservice should own its data store to maintain autonomy and avoid tight coupling." Answer yes
if joins, reports or transactions span the parts' data and cannot move behind APIs or events yet.`,
	},
	{
		ID:   OpsMaturity,
		Text: "How mature are your operations: CI/CD, observability, on-call?",
		Kind: Choice,
		Options: []Option{
			{"none", "manual or ad-hoc deploys; no central logs or metrics"},
			{"partial", "automated CI/CD, but tracing, alerting or on-call is missing"},
			{"full", "a pipeline per deployable; central logs, metrics and distributed tracing; alerts go to an on-call rotation"},
		},
		Default: "partial",
		Origin:  Faultline,
		Quote:   quoteOpsComplexity,
		Help: `faultline's addition, from the seed's warning that microservices bring operational complexity and
its best practices Automate Everything ("Use CI/CD for deployments ...") and Prioritize
Observability ("Implement comprehensive logging, metrics, and distributed tracing from the
outset."). Every service is one more thing to build, deploy, watch and wake up for.`,
	},
}

// Questions returns the questionnaire in the order it is asked. The result is a copy.
func Questions() []Question {
	out := make([]Question, len(questions))
	for i, q := range questions {
		q.Options = append([]Option(nil), q.Options...)
		out[i] = q
	}
	return out
}

// Lookup returns the question with the given ID.
func Lookup(id string) (Question, bool) {
	for _, q := range Questions() {
		if q.ID == id {
			return q, true
		}
	}
	return Question{}, false
}

// IDs returns the question IDs in the order they are asked.
func IDs() []string {
	ids := make([]string, len(questions))
	for i, q := range questions {
		ids[i] = q.ID
	}
	return ids
}

// Expect describes the allowed answers: "yes or no", "no, partly or yes", "a whole number from 1
// to 100000".
func (q Question) Expect() string {
	if q.Kind == Number {
		return fmt.Sprintf("a whole number from %d to %d", q.Min, q.Max)
	}
	vals := make([]string, len(q.Options))
	for i, o := range q.Options {
		vals[i] = o.Value
	}
	return orList(vals)
}

// Parse reads an answer to q and returns it in canonical form ("yes", "partly", "12"). Case and
// surrounding space do not matter; a yes-no question also takes y, n, true and false. The error
// says what the question expects.
func (q Question) Parse(s string) (string, error) {
	v := strings.ToLower(strings.TrimSpace(s))
	if v == "" {
		return "", fmt.Errorf("no answer; expected %s", q.Expect())
	}
	switch q.Kind {
	case Number:
		n, err := strconv.Atoi(v)
		if err != nil {
			return "", fmt.Errorf("%q is not a whole number; expected %s", s, q.Expect())
		}
		if n < q.Min || n > q.Max {
			return "", fmt.Errorf("%d is out of range; expected %s", n, q.Expect())
		}
		return strconv.Itoa(n), nil
	case YesNo:
		switch v {
		case "y", "true":
			v = "yes"
		case "n", "false":
			v = "no"
		}
	}
	vals := make([]string, len(q.Options))
	for i, o := range q.Options {
		if o.Value == v {
			return v, nil
		}
		vals[i] = o.Value
	}
	return "", fmt.Errorf("%q is not an answer to this question; expected %s%s", s, q.Expect(), suggest.Hint(v, vals))
}

// orList joins ["a","b","c"] as "a, b or c".
func orList(vals []string) string {
	switch len(vals) {
	case 0:
		return ""
	case 1:
		return vals[0]
	}
	return strings.Join(vals[:len(vals)-1], ", ") + " or " + vals[len(vals)-1]
}

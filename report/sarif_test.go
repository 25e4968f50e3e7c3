package report

import (
	"bytes"
	"encoding/json"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/faultline-dev/faultline/review"

	// go-sarif ships the OASIS SARIF 2.1.0 JSON Schema (errata01) as the source of a Go constant.
	// This import keeps that module, at the version go.sum pins, in the build so the test can
	// read the schema from the module cache: no network at test time and no copy of a
	// third-party file in this repository. The package itself is not used.
	_ "github.com/owenrumney/go-sarif/v3/pkg/report/v210/sarif"
)

const sarifSchemaPackage = "github.com/owenrumney/go-sarif/v3/pkg/report/v210/sarif"

// fixtureRules describes the fixture's rules by hand, in the order review.Rules would give them.
func fixtureRules() []*review.Rule {
	return []*review.Rule{
		{ID: "single-point-of-failure", Area: review.Availability, Severity: review.Error, Title: "Single point of failure on a sync path",
			Rationale: "One replica or one zone on the synchronous path of an entrypoint takes the entrypoint down with it.", Fix: "Run at least 2 replicas spread over 2 zones."},
		{ID: "missing-timeout", Area: review.Resilience, Severity: review.Warning, Title: "Sync call without a timeout",
			Rationale: "A call without a timeout holds its caller's resources for as long as the callee hangs.", Fix: "Set policy.timeout below the caller's own deadline."},
		{ID: "retry-amplification", Area: review.Resilience, Severity: review.Error, Title: "Retries multiply along a sync path",
			Rationale: "Retries at every layer multiply: 3 attempts at each of 3 layers is 27 calls to the last one.", Fix: "Retry at one layer only, or use a retry budget."},
		{ID: "shared-datastore", Area: review.Decoupling, Severity: review.Warning, Title: "Datastore shared by services",
			Rationale: "Services that share a database are coupled through its schema: a distributed monolith.", Fix: "Give each service its own store; share data through an API or events."},
		{ID: "missing-tracing", Area: review.Observability, Severity: review.Info, Title: "Service without tracing",
			Rationale: "Without traces, a slow request cannot be followed across services.", Fix: "Instrument it with OpenTelemetry and propagate trace context."},
		{ID: "unencrypted-edge", Area: review.Security, Severity: review.Warning, Title: "Edge without TLS"},
	}
}

// sarifOf renders the fixture as SARIF with /src/shop as the working directory.
func sarifOf(t *testing.T, rep *review.Report, rules []*review.Rule) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := writeSARIF(&b, rep, rules, "1.2.3", "/src/shop"); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

var (
	schemaOnce sync.Once
	schemaVal  *jsonschema.Schema
	schemaErr  error
)

// sarifSchema compiles the SARIF 2.1.0 schema, read from go-sarif's source in the module cache
// (see the import above). Format assertions are on, so URIs must be valid URI references.
func sarifSchema(t *testing.T) *jsonschema.Schema {
	t.Helper()
	schemaOnce.Do(func() { schemaVal, schemaErr = compileSARIFSchema() })
	if schemaErr != nil {
		t.Fatal(schemaErr)
	}
	return schemaVal
}

func compileSARIFSchema() (*jsonschema.Schema, error) {
	out, err := exec.Command("go", "list", "-f", "{{.Dir}}", sarifSchemaPackage).Output()
	if err != nil {
		return nil, fmt.Errorf("locate %s: %v", sarifSchemaPackage, err)
	}
	path := filepath.Join(strings.TrimSpace(string(out)), "schema.go")
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	text, err := constString(path, src, "schema")
	if err != nil {
		return nil, err
	}
	doc, err := jsonschema.UnmarshalJSON(strings.NewReader(text))
	if err != nil {
		return nil, fmt.Errorf("%s: schema: %v", path, err)
	}
	id, _ := doc.(map[string]any)["id"].(string)
	if !strings.Contains(id, "sarif-schema-2.1.0.json") {
		return nil, fmt.Errorf("%s: schema id %q is not SARIF 2.1.0's", path, id)
	}
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	if err := c.AddResource(id, doc); err != nil {
		return nil, err
	}
	return c.Compile(id)
}

// constString returns the value of a string constant declared in Go source.
func constString(path string, src []byte, name string) (string, error) {
	f, err := parser.ParseFile(token.NewFileSet(), path, src, 0)
	if err != nil {
		return "", err
	}
	for _, d := range f.Decls {
		g, ok := d.(*ast.GenDecl)
		if !ok || g.Tok != token.CONST {
			continue
		}
		for _, s := range g.Specs {
			v := s.(*ast.ValueSpec)
			for i, n := range v.Names {
				if n.Name != name || i >= len(v.Values) {
					continue
				}
				if lit, ok := v.Values[i].(*ast.BasicLit); ok && lit.Kind == token.STRING {
					return strconv.Unquote(lit.Value)
				}
			}
		}
	}
	return "", fmt.Errorf("%s: no string constant %s", path, name)
}

func validateSARIF(t *testing.T, out []byte) {
	t.Helper()
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(out))
	if err != nil {
		t.Fatalf("SARIF is not JSON: %v", err)
	}
	if err := sarifSchema(t).Validate(inst); err != nil {
		t.Fatalf("SARIF does not validate against the SARIF 2.1.0 schema: %v\n%s", err, out)
	}
}

// TestSARIFValidatesAgainstSchema validates the output for the fixture, a clean review, and a
// review whose evidence names no file at all (results without locations) against the SARIF
// 2.1.0 JSON Schema.
func TestSARIFValidatesAgainstSchema(t *testing.T) {
	noFiles := &review.Report{Findings: []review.Finding{{Rule: "missing-tracing", Severity: review.Info, Area: review.Observability,
		Subjects: []string{"a"}, Message: "a exports no traces", Evidence: []review.Evidence{{What: "trace 1"}}}}}
	for name, rep := range map[string]*review.Report{"fixture": reviewFixture(), "clean": cleanFixture(), "no files": noFiles} {
		t.Run(name, func(t *testing.T) {
			out := sarifOf(t, rep, fixtureRules())
			validateSARIF(t, out)
			// Through the exported entry point too (working directory and empty version).
			var b bytes.Buffer
			if err := SARIF(&b, rep, nil, ""); err != nil {
				t.Fatal(err)
			}
			validateSARIF(t, b.Bytes())
		})
	}
	// The schema is really applied, formats included: broken logs fail.
	good := sarifOf(t, reviewFixture(), fixtureRules())
	for _, breakage := range [][2]string{
		{`"level": "note"`, `"level": "info"`},
		{`"uri": "models/shop.yaml"`, `"uri": "models/shop%zz.yaml"`},
		{`"ruleIndex": 0`, `"ruleIndex": -5`},
	} {
		bad := bytes.Replace(good, []byte(breakage[0]), []byte(breakage[1]), 1)
		inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(bad))
		if err != nil || bytes.Equal(bad, good) {
			t.Fatalf("breaking %s: %v", breakage[0], err)
		}
		if sarifSchema(t).Validate(inst) == nil {
			t.Errorf("%s passed the schema", breakage[1])
		}
	}
}

func TestSARIFGolden(t *testing.T) {
	golden(t, "review/shop.sarif", sarifOf(t, reviewFixture(), fixtureRules()))
}

// The parts of a SARIF log the tests read.
type sarifOut struct {
	Schema  string `json:"$schema"`
	Version string `json:"version"`
	Runs    []struct {
		Tool struct {
			Driver struct {
				Name, InformationURI, Version string
				Rules                         []struct {
					ID, Name             string
					ShortDescription     struct{ Text string }
					FullDescription      struct{ Text string }
					Help                 struct{ Text string }
					DefaultConfiguration struct{ Level string }
					Properties           struct{ Tags []string }
				}
			}
		}
		Results []struct {
			RuleID              string
			RuleIndex           int
			Level               string
			Message             struct{ Text string }
			Locations           []sarifLocOut
			RelatedLocations    []sarifLocOut
			PartialFingerprints map[string]string
			Suppressions        []struct{ Kind, Status, Justification string }
		}
	}
}

type sarifLocOut struct {
	ID               int
	PhysicalLocation struct {
		ArtifactLocation struct{ URI, URIBaseID string }
		Region           struct{ StartLine int }
	}
	Message struct{ Text string }
}

func parseSARIF(t *testing.T, out []byte) sarifOut {
	t.Helper()
	var s sarifOut
	if err := json.Unmarshal(out, &s); err != nil {
		t.Fatal(err)
	}
	if len(s.Runs) != 1 {
		t.Fatalf("%d runs, want 1", len(s.Runs))
	}
	return s
}

func TestSARIFRulesAndLevels(t *testing.T) {
	rules := fixtureRules()
	s := parseSARIF(t, sarifOf(t, reviewFixture(), rules))
	if s.Schema != "https://json.schemastore.org/sarif-2.1.0.json" || s.Version != "2.1.0" {
		t.Errorf("$schema %q version %q", s.Schema, s.Version)
	}
	run := s.Runs[0]
	d := run.Tool.Driver
	if d.Name != "faultline" || d.InformationURI != "https://github.com/faultline-dev/faultline" || d.Version != "1.2.3" {
		t.Errorf("driver %s %s %s", d.Name, d.InformationURI, d.Version)
	}
	if len(d.Rules) != len(rules) {
		t.Fatalf("%d rules described, want every rule given (%d)", len(d.Rules), len(rules))
	}
	wantLevel := map[review.Severity]string{review.Error: "error", review.Warning: "warning", review.Info: "note"}
	for i, r := range rules {
		got := d.Rules[i]
		if got.ID != r.ID || got.DefaultConfiguration.Level != wantLevel[r.Severity] || len(got.Properties.Tags) != 1 || got.Properties.Tags[0] != string(r.Area) {
			t.Errorf("rule %d = %+v, want %s at %s tagged %s", i, got, r.ID, wantLevel[r.Severity], r.Area)
		}
		if got.ShortDescription.Text == "" || got.FullDescription.Text == "" || got.Help.Text == "" {
			t.Errorf("rule %s has an empty description or help (GitHub requires them)", r.ID)
		}
	}
	if d.Rules[0].Name != "SinglePointOfFailure" || d.Rules[0].FullDescription.Text != rules[0].Rationale || d.Rules[0].Help.Text != rules[0].Fix {
		t.Errorf("rule 0 = %+v", d.Rules[0])
	}
	// A rule with only a title still has every text GitHub requires.
	if last := d.Rules[len(d.Rules)-1]; last.FullDescription.Text != "Edge without TLS" || last.Help.Text != "Edge without TLS" {
		t.Errorf("title-only rule = %+v", last)
	}

	rep := reviewFixture()
	if len(run.Results) != len(rep.Findings)+len(rep.Ignored) {
		t.Fatalf("%d results, want %d findings + %d ignored", len(run.Results), len(rep.Findings), len(rep.Ignored))
	}
	for i, r := range run.Results {
		if r.RuleIndex < 0 || r.RuleIndex >= len(d.Rules) || d.Rules[r.RuleIndex].ID != r.RuleID {
			t.Errorf("result %d: ruleIndex %d does not point at rule %s", i, r.RuleIndex, r.RuleID)
		}
	}
	for i, f := range rep.Findings {
		if run.Results[i].Level != wantLevel[f.Severity] {
			t.Errorf("result %d (%s): level %s, want %s", i, f.Severity, run.Results[i].Level, wantLevel[f.Severity])
		}
	}

	// A finding of a rule that is not among those given gets a descriptor of its own.
	odd := &review.Report{Findings: []review.Finding{{Rule: "made-up-rule", Severity: review.Warning, Area: review.API, Subjects: []string{"x"}, Message: "m", Fix: "f"}}}
	s = parseSARIF(t, sarifOf(t, odd, rules))
	d = s.Runs[0].Tool.Driver
	if r := s.Runs[0].Results[0]; d.Rules[r.RuleIndex].ID != "made-up-rule" || d.Rules[r.RuleIndex].Help.Text != "f" {
		t.Errorf("unknown rule: result %+v, rules %+v", r, d.Rules)
	}
}

func TestSARIFLocations(t *testing.T) {
	s := parseSARIF(t, sarifOf(t, reviewFixture(), fixtureRules()))
	res := s.Runs[0].Results
	byRule := func(id, subject string) int {
		for i, r := range res {
			if r.RuleID == id && strings.Contains(r.Message.Text, subject) {
				return i
			}
		}
		t.Fatalf("no result %s about %s", id, subject)
		return -1
	}

	// The first evidence is the location; the others are related locations linked from the message.
	r := res[byRule("shared-datastore", "orderdb")]
	if len(r.Locations) != 1 || r.Locations[0].PhysicalLocation.ArtifactLocation.URI != "models/shop.yaml" ||
		r.Locations[0].PhysicalLocation.ArtifactLocation.URIBaseID != "%SRCROOT%" || r.Locations[0].PhysicalLocation.Region.StartLine != 30 {
		t.Errorf("location %+v", r.Locations)
	}
	if len(r.RelatedLocations) != 2 || r.RelatedLocations[0].ID != 1 || r.RelatedLocations[0].PhysicalLocation.Region.StartLine != 52 ||
		r.RelatedLocations[1].ID != 2 || r.RelatedLocations[1].Message.Text != "datastore orderdb" {
		t.Errorf("related locations %+v", r.RelatedLocations)
	}
	if !strings.HasSuffix(r.Message.Text, "both teams. Related: [service inventory](1), [datastore orderdb](2).") {
		t.Errorf("message does not link the related locations: %q", r.Message.Text)
	}

	// Evidence without a file: anchored at line 1 of the file the evidence cites most, so GitHub
	// accepts the upload.
	r = res[byRule("missing-tracing", "inventory")]
	if len(r.Locations) != 1 || r.Locations[0].PhysicalLocation.ArtifactLocation.URI != "models/shop.yaml" || r.Locations[0].PhysicalLocation.Region.StartLine != 1 ||
		!strings.Contains(r.Locations[0].Message.Text, "trace 4bf92f3577b34da6") {
		t.Errorf("unlocated finding: %+v", r.Locations)
	}

	// Ignored findings are results with an external suppression and the reason.
	r = res[len(res)-1]
	if r.RuleID != "single-point-of-failure" || len(r.Suppressions) != 1 || r.Suppressions[0].Kind != "external" ||
		r.Suppressions[0].Justification != "replaced in Q3; accepted by the platform team" {
		t.Errorf("ignored finding: %+v", r)
	}
	for _, r := range res[:len(res)-1] {
		if len(r.Suppressions) != 0 {
			t.Errorf("finding %s is suppressed", r.RuleID)
		}
	}

	// With no file anywhere there is nothing to anchor to: the result has no location.
	noFiles := &review.Report{Findings: []review.Finding{{Rule: "missing-tracing", Severity: review.Info, Subjects: []string{"a"}, Message: "m [1]", Evidence: []review.Evidence{{What: "trace 1"}}}}}
	s = parseSARIF(t, sarifOf(t, noFiles, nil))
	if r := s.Runs[0].Results[0]; len(r.Locations) != 0 || r.Message.Text != `m \[1\]` {
		t.Errorf("no-file finding: %+v", r)
	}
}

func TestSARIFURIs(t *testing.T) {
	const root = "/src/shop"
	for _, c := range []struct {
		file, uri string
		relative  bool
	}{
		{"models/shop.yaml", "models/shop.yaml", true},
		{"./models/../models/shop.yaml", "models/shop.yaml", true},
		{"k8s/my app/deploy.yaml", "k8s/my%20app/deploy.yaml", true},
		{"/src/shop/k8s/order.yaml", "k8s/order.yaml", true},
		{"/src/shop", ".", true},
		{"/src/shopping/x.yaml", "file:///src/shopping/x.yaml", false},
		{"/etc/faultline/model.yaml", "file:///etc/faultline/model.yaml", false},
		{"../other/model.yaml", "file:///src/other/model.yaml", false},
		{"a:b.yaml", "./a:b.yaml", true},
	} {
		uri, rel := artifactURI(filepath.FromSlash(c.file), root)
		if uri != c.uri || rel != c.relative {
			t.Errorf("artifactURI(%q) = %q, %v; want %q, %v", c.file, uri, rel, c.uri, c.relative)
		}
	}
	// In the log: relative URIs carry %SRCROOT%, absolute ones no base.
	rep := &review.Report{Findings: []review.Finding{{Rule: "unencrypted-edge", Severity: review.Warning, Area: review.Security,
		Subjects: []string{"a → b"}, Message: "m", Evidence: []review.Evidence{
			{File: "/src/shop/k8s/a.yaml", Line: 3}, {File: "/elsewhere/b.yaml", Line: 4}}}}}
	out := sarifOf(t, rep, fixtureRules())
	validateSARIF(t, out)
	r := parseSARIF(t, out).Runs[0].Results[0]
	if a := r.Locations[0].PhysicalLocation.ArtifactLocation; a.URI != "k8s/a.yaml" || a.URIBaseID != "%SRCROOT%" {
		t.Errorf("location %+v", a)
	}
	if a := r.RelatedLocations[0].PhysicalLocation.ArtifactLocation; a.URI != "file:///elsewhere/b.yaml" || a.URIBaseID != "" {
		t.Errorf("related location %+v", a)
	}
	if strings.Contains(string(out), `\\`) {
		t.Errorf("backslash in URIs:\n%s", out)
	}
}

// TestSARIFFingerprints: code scanning matches results across commits by their fingerprints, so
// they must not change between runs, nor when a finding's message or lines change, and must
// differ between subjects.
func TestSARIFFingerprints(t *testing.T) {
	a, b := sarifOf(t, reviewFixture(), fixtureRules()), sarifOf(t, reviewFixture(), fixtureRules())
	if !bytes.Equal(a, b) {
		t.Fatal("two runs on the same review differ")
	}
	fp := func(f review.Finding) map[string]string {
		rep := &review.Report{Findings: []review.Finding{f}}
		return parseSARIF(t, sarifOf(t, rep, fixtureRules())).Runs[0].Results[0].PartialFingerprints
	}
	base := review.Finding{Rule: "missing-timeout", Severity: review.Warning, Area: review.Resilience, Subjects: []string{"order → payment"},
		Message: "no timeout", Evidence: []review.Evidence{{File: "m.yaml", Line: 10}}}
	moved := base
	moved.Message, moved.Evidence = "no timeout at all (3 attempts)", []review.Evidence{{File: "m.yaml", Line: 99}}
	other := base
	other.Subjects = []string{"order → inventory"}
	otherRule := base
	otherRule.Rule = "missing-circuit-breaker"
	two := base
	two.Subjects = []string{"x", "y"}
	swapped := base
	swapped.Subjects = []string{"y", "x"}

	got := fp(base)
	if len(got["faultline/v1"]) != 32 || got["primaryLocationLineHash"] != got["faultline/v1"][:16]+":1" {
		t.Fatalf("fingerprints %v", got)
	}
	if fp(moved)["faultline/v1"] != got["faultline/v1"] {
		t.Error("fingerprint changed with the message and line")
	}
	if fp(other)["faultline/v1"] == got["faultline/v1"] || fp(otherRule)["faultline/v1"] == got["faultline/v1"] {
		t.Error("different subjects or rules share a fingerprint")
	}
	if fp(two)["faultline/v1"] != fp(swapped)["faultline/v1"] {
		t.Error("fingerprint depends on the order of subjects")
	}

	// Two results with the same identity are told apart by their occurrence, as CodeQL does.
	rep := &review.Report{Findings: []review.Finding{base, moved}}
	res := parseSARIF(t, sarifOf(t, rep, fixtureRules())).Runs[0].Results
	if res[0].PartialFingerprints["primaryLocationLineHash"] == res[1].PartialFingerprints["primaryLocationLineHash"] ||
		!strings.HasSuffix(res[1].PartialFingerprints["primaryLocationLineHash"], ":2") {
		t.Errorf("duplicates: %v, %v", res[0].PartialFingerprints, res[1].PartialFingerprints)
	}
}

package report

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/faultline-dev/faultline/review"
)

// sarifSchemaURI is the schema a SARIF log names: the one GitHub's documentation uses for SARIF
// 2.1.0.
const sarifSchemaURI = "https://json.schemastore.org/sarif-2.1.0.json"

// SARIF writes a review as a SARIF 2.1.0 log (OASIS SARIF v2.1.0) with one run, for GitHub code
// scanning and other SARIF viewers.
//
// tool.driver.rules describes every rule given (and any rule a finding names that is not among
// them), with its title, rationale, fix, default level and area as a tag. Each finding becomes a
// result whose level is error, warning or note (for info). Its location is the first evidence
// that names a file, at its line (line 1 when the line is unknown); further located evidence
// become relatedLocations, linked from the message. A finding with no located evidence is
// anchored at line 1 of the file the report's evidence cites most, because GitHub rejects the
// whole upload when one result has no location ("locationFromSarifResult: expected at least one
// location"); only when the report names no file at all is such a result written without a
// location, which SARIF allows. Findings the configuration ignored are written with an
// external, accepted suppression carrying its reason.
//
// Artifact URIs are relative to %SRCROOT%, with forward slashes and percent-encoding; GitHub
// reads them relative to the repository root, so run faultline from there. An absolute path
// inside the working directory is made relative to it; a path outside it is written as an
// absolute file:// URI without a base.
//
// partialFingerprints identify a finding by its rule and subjects alone, so a finding keeps its
// identity when lines move or its numbers change. GitHub reads only primaryLocationLineHash and
// the upload action computes one from the source line only when it is missing, so the hash is
// written there (as "hash:occurrence", the form CodeQL uses) and again, whole, under
// "faultline/v1". The upload action may log that the hash differs from the line hash it
// computes; that is expected.
func SARIF(w io.Writer, rep *review.Report, rules []*review.Rule, toolVersion string) error {
	root, err := os.Getwd()
	if err != nil {
		root = ""
	}
	return writeSARIF(w, rep, rules, toolVersion, root)
}

// writeSARIF is SARIF with the directory that absolute paths are made relative to.
func writeSARIF(w io.Writer, rep *review.Report, rules []*review.Rule, toolVersion, root string) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	return enc.Encode(buildSARIF(rep, rules, toolVersion, root))
}

type sarifLog struct {
	Schema  string     `json:"$schema"`
	Version string     `json:"version"`
	Runs    []sarifRun `json:"runs"`
}

type sarifRun struct {
	Tool    sarifTool     `json:"tool"`
	Results []sarifResult `json:"results"`
}

type sarifTool struct {
	Driver sarifDriver `json:"driver"`
}

type sarifDriver struct {
	Name           string            `json:"name"`
	InformationURI string            `json:"informationUri"`
	Version        string            `json:"version,omitempty"`
	Rules          []sarifDescriptor `json:"rules"`
}

type sarifDescriptor struct {
	ID                   string          `json:"id"`
	Name                 string          `json:"name"`
	ShortDescription     sarifMessage    `json:"shortDescription"`
	FullDescription      sarifMessage    `json:"fullDescription"`
	Help                 sarifMessage    `json:"help"`
	HelpURI              string          `json:"helpUri"`
	DefaultConfiguration sarifRuleConfig `json:"defaultConfiguration"`
	Properties           sarifRuleProps  `json:"properties"`
}

type sarifMessage struct {
	Text string `json:"text"`
}

type sarifRuleConfig struct {
	Level string `json:"level"`
}

type sarifRuleProps struct {
	Tags []string `json:"tags"`
	// ProblemSeverity is GitHub's "problem.severity": error, warning or recommendation.
	ProblemSeverity string `json:"problem.severity"`
}

type sarifResult struct {
	RuleID              string             `json:"ruleId"`
	RuleIndex           int                `json:"ruleIndex"`
	Level               string             `json:"level"`
	Message             sarifMessage       `json:"message"`
	Locations           []sarifLocation    `json:"locations,omitempty"`
	RelatedLocations    []sarifLocation    `json:"relatedLocations,omitempty"`
	PartialFingerprints map[string]string  `json:"partialFingerprints"`
	Suppressions        []sarifSuppression `json:"suppressions,omitempty"`
	Properties          sarifResultProps   `json:"properties"`
}

type sarifResultProps struct {
	Area     review.Area `json:"area"`
	Subjects []string    `json:"subjects"`
}

type sarifLocation struct {
	ID               int           `json:"id,omitempty"`
	PhysicalLocation sarifPhysical `json:"physicalLocation"`
	Message          *sarifMessage `json:"message,omitempty"`
}

type sarifPhysical struct {
	ArtifactLocation sarifArtifact `json:"artifactLocation"`
	Region           *sarifRegion  `json:"region,omitempty"`
}

type sarifArtifact struct {
	URI       string `json:"uri"`
	URIBaseID string `json:"uriBaseId,omitempty"`
}

type sarifRegion struct {
	StartLine int `json:"startLine"`
}

type sarifSuppression struct {
	Kind          string `json:"kind"`
	Status        string `json:"status"`
	Justification string `json:"justification"`
}

// srcRoot is the uriBaseId of relative artifact URIs: the root of the analysed sources.
const srcRoot = "%SRCROOT%"

// rulesDocURI is where each rule's page lives (docs/rules/<id>.md).
const rulesDocURI = "https://github.com/faultline-dev/faultline/blob/main/docs/rules/"

func buildSARIF(rep *review.Report, rules []*review.Rule, toolVersion, root string) sarifLog {
	driver := sarifDriver{Name: "faultline", InformationURI: "https://github.com/faultline-dev/faultline",
		Version: toolVersion, Rules: []sarifDescriptor{}}
	index := map[string]int{}
	add := func(r *review.Rule) int {
		if i, ok := index[r.ID]; ok {
			return i
		}
		index[r.ID] = len(driver.Rules)
		driver.Rules = append(driver.Rules, descriptor(r))
		return index[r.ID]
	}
	for _, r := range rules {
		if r != nil {
			add(r)
		}
	}
	ruleIndex := func(f review.Finding) int {
		if i, ok := index[f.Rule]; ok {
			return i
		}
		if r, ok := review.RuleByID(f.Rule); ok {
			return add(r)
		}
		// A rule nobody registered (a report built elsewhere): describe it from the finding.
		return add(&review.Rule{ID: f.Rule, Area: f.Area, Severity: f.Severity, Title: f.Rule, Fix: f.Fix})
	}

	anchor := anchorFile(rep)
	occurrences := map[string]int{}
	results := []sarifResult{}
	emit := func(f review.Finding, suppression *sarifSuppression) {
		r := sarifResult{RuleID: f.Rule, RuleIndex: ruleIndex(f), Level: sarifLevel(f.Severity),
			Properties: sarifResultProps{Area: f.Area, Subjects: nonNil(f.Subjects)}}
		msg := f.Message
		if strings.TrimSpace(msg) == "" {
			msg = driver.Rules[r.RuleIndex].ShortDescription.Text
		}
		msg = sarifEscape(msg)
		var located []review.Evidence
		for _, e := range f.Evidence {
			if e.File != "" {
				located = append(located, e)
			}
		}
		switch {
		case len(located) > 0:
			r.Locations = []sarifLocation{sarifLoc(located[0], root)}
			var links []string
			for i, e := range located[1:] {
				l := sarifLoc(e, root)
				l.ID = i + 1
				r.RelatedLocations = append(r.RelatedLocations, l)
				text := e.What
				if text == "" {
					text = evidenceLoc(e)
				}
				links = append(links, "["+sarifEscape(text)+"]("+strconv.Itoa(l.ID)+")")
			}
			if len(links) > 0 {
				if !strings.HasSuffix(msg, ".") {
					msg += "."
				}
				msg += " Related: " + strings.Join(links, ", ") + "."
			}
		case anchor != "":
			l := sarifLoc(review.Evidence{File: anchor}, root)
			var about []string
			for _, e := range f.Evidence {
				if e.What != "" {
					about = append(about, e.What)
				}
			}
			text := "no file or line backs this finding"
			if len(about) > 0 {
				text += " (" + strings.Join(about, ", ") + ")"
			}
			l.Message = &sarifMessage{Text: text + "; shown at the top of " + anchor}
			r.Locations = []sarifLocation{l}
		}
		r.Message = sarifMessage{Text: msg}
		sum := fingerprint(f)
		occurrences[sum]++
		r.PartialFingerprints = map[string]string{
			"faultline/v1":            sum,
			"primaryLocationLineHash": sum[:16] + ":" + strconv.Itoa(occurrences[sum]),
		}
		if suppression != nil {
			r.Suppressions = []sarifSuppression{*suppression}
		}
		results = append(results, r)
	}
	for _, f := range rep.Findings {
		emit(f, nil)
	}
	for _, ig := range rep.Ignored {
		emit(ig.Finding, &sarifSuppression{Kind: "external", Status: "accepted", Justification: ig.Reason})
	}
	return sarifLog{Schema: sarifSchemaURI, Version: "2.1.0",
		Runs: []sarifRun{{Tool: sarifTool{Driver: driver}, Results: results}}}
}

func descriptor(r *review.Rule) sarifDescriptor {
	title := firstNonEmpty(r.Title, r.ID)
	return sarifDescriptor{
		ID:                   r.ID,
		Name:                 camelCase(r.ID),
		ShortDescription:     sarifMessage{Text: title},
		FullDescription:      sarifMessage{Text: firstNonEmpty(r.Rationale, title)},
		Help:                 sarifMessage{Text: firstNonEmpty(r.Fix, title)},
		HelpURI:              rulesDocURI + url.PathEscape(r.ID) + ".md",
		DefaultConfiguration: sarifRuleConfig{Level: sarifLevel(r.Severity)},
		Properties:           sarifRuleProps{Tags: []string{string(r.Area)}, ProblemSeverity: problemSeverity(r.Severity)},
	}
}

// sarifLevel maps a severity to a SARIF level: error, warning, note.
func sarifLevel(s review.Severity) string {
	switch s {
	case review.Error:
		return "error"
	case review.Info:
		return "note"
	}
	return "warning"
}

// problemSeverity is GitHub's problem.severity for a rule, which with precision decides what
// code scanning shows by default.
func problemSeverity(s review.Severity) string {
	switch s {
	case review.Error:
		return "error"
	case review.Info:
		return "recommendation"
	}
	return "warning"
}

// sarifLoc is the physical location of located evidence.
func sarifLoc(e review.Evidence, root string) sarifLocation {
	uri, relative := artifactURI(e.File, root)
	a := sarifArtifact{URI: uri}
	if relative {
		a.URIBaseID = srcRoot
	}
	l := sarifLocation{PhysicalLocation: sarifPhysical{ArtifactLocation: a, Region: &sarifRegion{StartLine: max(1, e.Line)}}}
	if e.What != "" {
		l.Message = &sarifMessage{Text: e.What}
	}
	return l
}

// artifactURI turns a file name from the model into a SARIF artifact URI: relative (to be read
// against %SRCROOT%) when the file is, or lies under root; otherwise an absolute file:// URI.
func artifactURI(file, root string) (string, bool) {
	p := filepath.Clean(file)
	if !filepath.IsAbs(p) {
		if !escapesRoot(p) || root == "" {
			return relativeURI(p), true
		}
		p = filepath.Join(root, p)
	}
	if root != "" {
		if rel, err := filepath.Rel(root, p); err == nil && !escapesRoot(rel) {
			return relativeURI(rel), true
		}
	}
	s := filepath.ToSlash(p)
	if !strings.HasPrefix(s, "/") {
		s = "/" + s // a Windows drive: file:///C:/...
	}
	return (&url.URL{Scheme: "file", Path: s}).String(), false
}

func escapesRoot(rel string) bool {
	return rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator))
}

// relativeURI percent-encodes a relative path as a URI reference ("./" guards a first segment
// with a colon, which would read as a scheme).
func relativeURI(p string) string {
	return (&url.URL{Path: filepath.ToSlash(p)}).String()
}

// anchorFile is the file the report's evidence cites most (the first by name on a tie), where
// findings without located evidence are shown; "" when no evidence names a file.
func anchorFile(rep *review.Report) string {
	count := map[string]int{}
	tally := func(f review.Finding) {
		for _, e := range f.Evidence {
			if e.File != "" {
				count[e.File]++
			}
		}
	}
	for _, f := range rep.Findings {
		tally(f)
	}
	for _, ig := range rep.Ignored {
		tally(ig.Finding)
	}
	files := make([]string, 0, len(count))
	for f := range count {
		files = append(files, f)
	}
	sort.Slice(files, func(i, j int) bool {
		if count[files[i]] != count[files[j]] {
			return count[files[i]] > count[files[j]]
		}
		return files[i] < files[j]
	})
	if len(files) == 0 {
		return ""
	}
	return files[0]
}

// fingerprint identifies a finding across runs and commits by its rule and its subjects (in any
// order): not its message, whose numbers change, nor its lines, which move.
func fingerprint(f review.Finding) string {
	subjects := append([]string(nil), f.Subjects...)
	sort.Strings(subjects)
	h := sha256.New()
	h.Write([]byte(f.Rule))
	for _, s := range subjects {
		h.Write([]byte{0})
		h.Write([]byte(s))
	}
	return hex.EncodeToString(h.Sum(nil))[:32]
}

// sarifEscape keeps square brackets literal in a SARIF message, where "[text](id)" is a link
// (SARIF 2.1.0 §3.11.6, embedded links).
func sarifEscape(s string) string {
	return strings.NewReplacer("[", `\[`, "]", `\]`).Replace(s)
}

// camelCase turns a rule ID into a SARIF rule name: "single-point-of-failure" → "SinglePointOfFailure".
func camelCase(id string) string {
	var b strings.Builder
	for _, part := range strings.FieldsFunc(id, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9')
	}) {
		b.WriteString(strings.ToUpper(part[:1]) + part[1:])
	}
	return b.String()
}

func firstNonEmpty(ss ...string) string {
	for _, s := range ss {
		if strings.TrimSpace(s) != "" {
			return s
		}
	}
	return ""
}

func nonNil(ss []string) []string {
	if ss == nil {
		return []string{}
	}
	return ss
}

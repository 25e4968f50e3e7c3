// Package ingest opens whatever a user points faultline at: a model file, docker-compose files or
// Kubernetes/Istio manifests (files or directories), detecting which, and returns one system. Every
// command that takes a system (review, show, diagram, import) goes through it.
package ingest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/faultline-dev/faultline/internal/yamlx"
	"github.com/faultline-dev/faultline/model"
	"github.com/faultline-dev/faultline/model/compose"
	"github.com/faultline-dev/faultline/model/kube"
)

// Format is an input format.
type Format string

// The formats Open reads.
const (
	Auto    Format = "auto"
	Model   Format = "model"
	Compose Format = "compose"
	Kube    Format = "kube"
)

// blankFile classifies an empty or comment-only file during detection.
const blankFile Format = "blank"

// Formats lists the values --from accepts.
var Formats = []Format{Auto, Model, Compose, Kube}

// ParseFormat reads a --from value.
func ParseFormat(s string) (Format, error) {
	for _, f := range Formats {
		if string(f) == s {
			return f, nil
		}
	}
	if s == "kubernetes" || s == "k8s" {
		return Kube, nil
	}
	return "", fmt.Errorf("unknown input format %q; expected auto, model, compose or kube", s)
}

// Options control Open.
type Options struct {
	From      Format
	Profiles  []string // compose profiles
	Name      string   // system name for imports
	Namespace string   // default namespace for manifests without one
}

// Result is an opened system and how it was read.
type Result struct {
	System *model.System
	Format Format
	Files  []string
	// Skipped are manifest objects of kinds the Kubernetes importer does not read.
	Skipped []kube.Skipped
}

// Open reads paths as opts.From says, or detects the format from the files' contents.
func Open(ctx context.Context, paths []string, opts Options) (*Result, error) {
	if len(paths) == 0 {
		return nil, model.Problems{{Message: "no input: give a model file, compose files, or Kubernetes manifests (files or directories)"}}
	}
	from := opts.From
	if from == "" {
		from = Auto
	}
	files, err := model.ExpandPaths(paths, model.IsYAMLName)
	if err != nil {
		return nil, err
	}
	if from == Auto {
		if from, files, err = detect(paths, files); err != nil {
			return nil, err
		}
	}
	res := &Result{Format: from, Files: files}
	switch from {
	case Model:
		if len(files) != 1 {
			return nil, model.Problems{{File: strings.Join(files, ", "), Message: fmt.Sprintf("%d model files given; faultline reads one model at a time", len(files))}}
		}
		res.System, err = model.LoadFile(files[0])
	case Compose:
		res.System, err = compose.Import(ctx, files, compose.Options{Profiles: opts.Profiles, Name: opts.Name})
	case Kube:
		// The importer walks directories itself and names the system after the namespace or the
		// directory, so it gets the paths as the user gave them.
		res.System, res.Skipped, err = kube.Import(ctx, paths, kube.Options{Name: opts.Name, Namespace: opts.Namespace})
	default:
		return nil, fmt.Errorf("unknown input format %q", from)
	}
	if err != nil {
		return nil, err
	}
	return res, nil
}

// detect classifies each file by its content. Files found by walking a directory that are none of
// the three formats are left out; files named explicitly must be one of them. Empty or
// comment-only files (an override left empty on purpose) join the compose files.
func detect(paths, files []string) (Format, []string, error) {
	explicit := map[string]bool{}
	for _, p := range paths {
		explicit[filepath.Clean(p)] = true
	}
	class := map[string]Format{}
	var probs model.Problems
	for _, f := range files {
		data, err := model.ReadInput(f)
		if err != nil {
			var ps model.Problems
			if errors.As(err, &ps) {
				probs = append(probs, ps...)
			} else {
				probs = append(probs, model.Problem{File: f, Message: err.Error()})
			}
			continue
		}
		switch {
		case isBlank(data):
			class[f] = blankFile
		case model.IsModelDocument(data):
			class[f] = Model
		case compose.LooksLikeCompose(data):
			class[f] = Compose
		case kube.LooksLikeKubernetes(data):
			class[f] = Kube
		case explicit[filepath.Clean(f)]:
			if p, bad := syntaxProblem(f, data); bad {
				probs = append(probs, p)
				continue
			}
			probs = append(probs, model.Problem{File: f, Line: 1, Message: "not a faultline model (apiVersion: faultline/v1), a compose file (services:) or a Kubernetes manifest (apiVersion and kind)"})
		}
	}
	if len(probs) > 0 {
		return "", nil, probs
	}
	var found []Format
	byFormat := map[Format][]string{}
	for _, f := range files { // file order kept: compose files given later override earlier ones
		c, ok := class[f]
		if !ok || c == blankFile {
			continue
		}
		if len(byFormat[c]) == 0 {
			found = append(found, c)
		}
		byFormat[c] = append(byFormat[c], f)
	}
	switch len(found) {
	case 0:
		return "", nil, model.Problems{{File: strings.Join(paths, ", "), Message: "no model, compose file or Kubernetes manifest found"}}
	case 1:
		if found[0] != Compose {
			return found[0], byFormat[found[0]], nil
		}
		return Compose, composeFiles(paths, files, class), nil
	}
	var parts []string
	for _, f := range found {
		parts = append(parts, fmt.Sprintf("%s: %s", f, strings.Join(byFormat[f], ", ")))
	}
	return "", nil, model.Problems{{Message: "inputs mix formats (" + strings.Join(parts, "; ") + "); read them separately or choose one with --from"}}
}

// composeCanonical are the file names docker compose reads from a project directory, in its order
// of preference, each with its override file.
var composeCanonical = [][2]string{
	{"compose.yaml", "compose.override.yaml"}, {"compose.yml", "compose.override.yml"},
	{"docker-compose.yaml", "docker-compose.override.yaml"}, {"docker-compose.yml", "docker-compose.override.yml"},
}

// composeFiles orders the compose files as docker compose would read them: explicit files in the
// order given; for a directory holding a canonical compose file, that file and its override only
// (other YAML there is extends targets or alternatives, not part of the project); for any other
// directory, every compose file in it, in name order. Blank files given explicitly are kept.
func composeFiles(paths, files []string, class map[string]Format) []string {
	isCompose := func(f string) bool { return class[f] == Compose || class[f] == blankFile }
	var out []string
	for _, p := range paths {
		st, err := os.Stat(p)
		if err != nil || !st.IsDir() {
			if isCompose(p) {
				out = append(out, p)
			}
			continue
		}
		under := func(f string) bool {
			rel, err := filepath.Rel(p, f)
			return err == nil && !strings.HasPrefix(rel, "..")
		}
		picked := false
		for _, c := range composeCanonical {
			main := filepath.Join(p, c[0])
			if class[main] != Compose {
				continue
			}
			out = append(out, main)
			if over := filepath.Join(p, c[1]); isCompose(over) {
				out = append(out, over)
			}
			picked = true
			break
		}
		if picked {
			continue
		}
		for _, f := range files {
			if under(f) && isCompose(f) {
				out = append(out, f)
			}
		}
	}
	return out
}

// syntaxProblem reports the first YAML syntax error in data, so a broken file that could not be
// classified says what is wrong with it rather than that it is of no known kind.
func syntaxProblem(file string, data []byte) (model.Problem, bool) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for {
		var n yaml.Node
		err := dec.Decode(&n)
		if errors.Is(err, io.EOF) {
			return model.Problem{}, false
		}
		if err != nil {
			is := yamlx.ErrorIssues(err)[0]
			return model.Problem{File: file, Line: is.Line, Message: "invalid YAML: " + is.Message}, true
		}
	}
}

// isBlank reports whether a YAML file holds nothing but whitespace, comments and document markers.
func isBlank(data []byte) bool {
	for _, line := range strings.Split(string(data), "\n") {
		t := strings.TrimSpace(line)
		if t != "" && !strings.HasPrefix(t, "#") && t != "---" && t != "..." {
			return false
		}
	}
	return true
}

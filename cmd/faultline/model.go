package main

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/faultline-dev/faultline/model"
	"github.com/faultline-dev/faultline/model/ingest"
	"github.com/faultline-dev/faultline/report"
)

func (a *app) modelCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "model",
		Short: "Validate, show, import and draw architecture models",
		Long: `The architecture model (apiVersion: faultline/v1, kind: System) is what every faultline tool
reads: services, datastores, brokers, the edges between them with their resilience policies,
entrypoints and the SLO. See docs/model.md.`,
		Args: cobra.ArbitraryArgs,
		RunE: groupRun,
	}
	cmd.AddCommand(a.modelValidateCommand(), a.modelShowCommand(), a.modelImportCommand(),
		a.modelDiagramCommand(), a.modelSchemaCommand())
	return cmd
}

// inputFlags are the flags of commands that read a system from any supported input.
type inputFlags struct {
	from      string
	profiles  []string
	name      string
	namespace string
}

func (f *inputFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&f.from, "from", "auto", "input format: auto, model, compose or kube")
	fl.StringSliceVar(&f.profiles, "profile", nil, "compose profiles to activate (repeatable)")
	fl.StringVar(&f.name, "name", "", "system name for imported inputs (default: compose project or namespace)")
	fl.StringVar(&f.namespace, "namespace", "default", "namespace for manifests that set none")
}

// open reads the system the paths describe, printing import warnings to stderr.
func (a *app) open(cmd *cobra.Command, f inputFlags, paths []string) (*ingest.Result, error) {
	from, err := ingest.ParseFormat(f.from)
	if err != nil {
		return nil, usageErr("%v", err)
	}
	res, err := ingest.Open(cmd.Context(), paths, ingest.Options{From: from, Profiles: f.profiles, Name: f.name, Namespace: f.namespace})
	if err != nil {
		return nil, inputErr(err)
	}
	for _, w := range res.System.Warnings {
		a.warn("%s", w.String())
	}
	if a.verbose {
		for _, s := range res.Skipped {
			fmt.Fprintf(a.stderr, "skipped %s %q (%s)\n", s.Kind, s.Name, s.Source)
		}
	} else if len(res.Skipped) > 0 && !a.quiet {
		fmt.Fprintf(a.stderr, "note: %d manifest objects of kinds faultline does not read were skipped (--verbose lists them)\n", len(res.Skipped))
	}
	return res, nil
}

type validateResult struct {
	File     string          `json:"file" yaml:"file"`
	Valid    bool            `json:"valid" yaml:"valid"`
	Problems []model.Problem `json:"problems" yaml:"problems"`
}

func (a *app) modelValidateCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "validate FILE...",
		Short: "Check model files against the schema and their references",
		Long: `Checks each model file: YAML syntax, field names and types (against the JSON Schema that
'faultline model schema' prints), durations, replicas, and that every edge and entrypoint names
a component that exists. Every problem is reported at once, one per line, as file:line:col: field:
message. Exit code 2 when any file has a problem.`,
		Example: "  faultline model validate examples/models/shop.yaml",
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var results []validateResult
			var all model.Problems
			for _, f := range args {
				r := validateResult{File: f, Valid: true, Problems: []model.Problem{}}
				sys, err := model.LoadFile(f)
				if err != nil {
					var probs model.Problems
					if !errors.As(err, &probs) {
						return inputErr(err)
					}
					r.Valid, r.Problems = false, probs
					all = append(all, probs...)
				}
				results = append(results, r)
				if a.output == "text" && err == nil && !a.quiet {
					fmt.Fprintf(a.stdout, "%s: valid (%s, %s, %s, %s, %s)\n", f,
						report.Count(len(sys.Services), "service"), report.Count(len(sys.Datastores), "datastore"),
						report.Count(len(sys.Brokers), "broker"), report.Count(len(sys.Edges), "edge"),
						report.Count(len(sys.Entrypoints), "entrypoint"))
				}
			}
			if a.output != "text" {
				if err := a.emit(results, nil); err != nil {
					return err
				}
				if len(all) > 0 {
					return &exitError{code: exitInput}
				}
				return nil
			}
			if len(all) > 0 {
				return inputErr(all)
			}
			return nil
		},
	}
}

func (a *app) modelShowCommand() *cobra.Command {
	var in inputFlags
	cmd := &cobra.Command{
		Use:   "show FILE|DIR...",
		Short: "Summarize a system: counts, entrypoints and the sync call tree from each",
		Long: `Prints what a person needs to see first: how many services, datastores, brokers and edges,
the sync call cycles, and for each entrypoint the components a request reaches synchronously, the
longest sync chain and the call tree with each call's protocol and policy. Accepts a model, compose
files or Kubernetes manifests.`,
		Example: `  faultline model show examples/models/legacy-shop.yaml
  faultline model show -o json examples/models/shop.yaml
  faultline model show deploy/k8s/`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			res, err := a.open(cmd, in, args)
			if err != nil {
				return err
			}
			sum := model.Summarize(res.System)
			return a.emit(sum, func(w io.Writer) error { return report.Summary(w, sum) })
		},
	}
	in.register(cmd)
	return cmd
}

func (a *app) modelImportCommand() *cobra.Command {
	var in inputFlags
	var noSources bool
	cmd := &cobra.Command{
		Use:   "import [--from auto|compose|kube] PATH...",
		Short: "Turn docker-compose files or Kubernetes/Istio manifests into a model",
		Long: `Reads docker-compose files (merged in the order given, like docker compose -f a -f b) or
Kubernetes and Istio manifests (files or directories) and prints the model as YAML (or JSON with
-o json). Each element is annotated with the file and line it came from. Warnings (a missing
variable, a host that matches no workload) go to stderr; --verbose lists skipped manifest kinds.
See docs/model.md for how each field is mapped.`,
		Example: `  faultline model import docker-compose.yml docker-compose.prod.yml > model.yaml
  faultline model import --from kube k8s/ istio/
  faultline model import -o json deploy/ | jq '.edges[] | select(.mode=="sync")'`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			res, err := a.open(cmd, in, args)
			if err != nil {
				return err
			}
			if a.output != "text" {
				return a.emit(res.System, nil)
			}
			out, err := model.MarshalYAML(res.System, !noSources)
			if err != nil {
				return err
			}
			_, err = a.stdout.Write(out)
			return err
		},
	}
	in.register(cmd)
	cmd.Flags().BoolVar(&noSources, "no-sources", false, "leave out the comments naming each element's source file and line")
	return cmd
}

func (a *app) modelDiagramCommand() *cobra.Command {
	var in inputFlags
	var format string
	cmd := &cobra.Command{
		Use:   "diagram FILE|DIR... [--format mermaid|dot]",
		Short: "Draw a system as a Mermaid or Graphviz diagram",
		Long: `Writes the system as a diagram: sync calls as solid arrows, async messages dashed, datastores
as cylinders, brokers as queues, externals dashed, entrypoints as their own nodes. Edge labels carry
the protocol, calls per request, timeout, retries and breaker.`,
		Example: `  faultline model diagram examples/models/shop.yaml > shop.mmd
  faultline model diagram --format dot examples/models/shop.yaml | dot -Tsvg > shop.svg`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if !contains(report.DiagramFormats, format) {
				return usageErr("unknown diagram format %q; expected %s", format, strings.Join(report.DiagramFormats, " or "))
			}
			res, err := a.open(cmd, in, args)
			if err != nil {
				return err
			}
			return report.Diagram(a.stdout, res.System, format)
		},
	}
	in.register(cmd)
	cmd.Flags().StringVar(&format, "format", "mermaid", "diagram format: mermaid or dot")
	return cmd
}

func (a *app) modelSchemaCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "schema",
		Short: "Print the model's JSON Schema (for editors and CI)",
		Long: `Prints the JSON Schema (draft 2020-12) of the model, generated from faultline's own types.
Save it and point your editor at it with a first line in the model file:

  # yaml-language-server: $schema=./faultline.schema.json`,
		Example: "  faultline model schema > faultline.schema.json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			_, err := a.stdout.Write(model.Schema())
			return err
		},
	}
}

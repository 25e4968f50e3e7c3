package main

import (
	"encoding/json"
	"fmt"
	"io"

	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"
)

// app holds what every command shares: output streams and the global flags.
type app struct {
	stdout, stderr io.Writer
	output         string
	quiet          bool
	verbose        bool
	failOn         string
}

func newApp(stdout, stderr io.Writer) *app { return &app{stdout: stdout, stderr: stderr} }

// outputFormats are the -o values; sarif, markdown and html are for the review only.
var outputFormats = []string{"text", "json", "yaml", "sarif", "markdown", "html"}

func (a *app) rootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "faultline",
		Short: "Find where a distributed system will break, before an outage does",
		Long: `faultline reads an architecture model of a distributed system — or imports one from the
docker-compose files and Kubernetes/Istio manifests you already have — and tells you where it will
break: single points of failure, shared databases, deep and chatty synchronous chains, missing
timeouts and breakers, retry storms.

Exit codes: 0 ok, 1 findings at or above --fail-on, 2 usage or input error.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			if !contains(outputFormats, a.output) {
				return usageErr("unknown output format %q; expected text, json, yaml, sarif, markdown or html", a.output)
			}
			if !contains([]string{"error", "warning", "info", "none"}, a.failOn) {
				return usageErr("unknown --fail-on level %q; expected error, warning, info or none", a.failOn)
			}
			return nil
		},
	}
	root.SetOut(a.stdout)
	root.SetErr(a.stderr)
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		return &exitError{code: exitInput, err: fmt.Errorf("%w\nRun '%s --help' for usage.", err, cmd.CommandPath())}
	})
	pf := root.PersistentFlags()
	pf.StringVarP(&a.output, "output", "o", "text", "output format: text, json or yaml (review also: sarif, markdown, html)")
	pf.BoolVarP(&a.quiet, "quiet", "q", false, "print only results and errors (no warnings or progress)")
	pf.BoolVarP(&a.verbose, "verbose", "v", false, "print more detail (skipped manifest objects, sources)")
	pf.StringVar(&a.failOn, "fail-on", "error", "exit 1 when findings at or above this severity exist: error, warning, info or none")
	root.AddCommand(a.versionCommand(), a.modelCommand(), a.reviewCommand(), a.adviseCommand())
	root.AddCommand(a.sagaCommand())
	return root
}

// usageErr is a usage or input error: exit code 2.
func usageErr(format string, args ...any) error {
	return &exitError{code: exitInput, err: fmt.Errorf(format, args...)}
}

// inputErr wraps an input error (bad file, bad model) for exit code 2.
func inputErr(err error) error { return &exitError{code: exitInput, err: err} }

// emit writes v as JSON or YAML when -o asks for it, and otherwise calls text.
func (a *app) emit(v any, text func(io.Writer) error) error {
	switch a.output {
	case "json":
		enc := json.NewEncoder(a.stdout)
		enc.SetIndent("", "  ")
		enc.SetEscapeHTML(false)
		return enc.Encode(v)
	case "sarif", "markdown", "html":
		return usageErr("-o %s is only for faultline review; this command prints text, json or yaml", a.output)
	case "yaml":
		enc := yaml.NewEncoder(a.stdout)
		enc.SetIndent(2)
		if err := enc.Encode(v); err != nil {
			return err
		}
		return enc.Close()
	}
	return text(a.stdout)
}

// warn prints a warning unless --quiet.
func (a *app) warn(format string, args ...any) {
	if !a.quiet {
		fmt.Fprintf(a.stderr, "warning: "+format+"\n", args...)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// groupRun is the RunE of a command that only groups subcommands: with no arguments it prints
// help; anything else is an unknown subcommand (exit 2), not a silent help screen.
func groupRun(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return cmd.Help()
	}
	return usageErr("unknown command %q for %q\nRun '%s --help' for usage.", args[0], cmd.CommandPath(), cmd.CommandPath())
}

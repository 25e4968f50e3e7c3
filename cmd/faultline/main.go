// Command faultline designs, evaluates and hardens distributed systems: it reads an architecture
// model (or imports one from docker-compose files and Kubernetes/Istio manifests) and answers
// where the system will break.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/sirupsen/logrus"

	"github.com/faultline-dev/faultline/model"
)

// Exit codes, the same for every command.
const (
	exitOK       = 0 // success, nothing at or above --fail-on
	exitFindings = 1 // findings at or above --fail-on
	exitInput    = 2 // usage error or bad input
)

// exitError carries an exit code out of a command.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit %d", e.code)
	}
	return e.err.Error()
}
func (e *exitError) Unwrap() error { return e.err }

func main() {
	// compose-go reports through the process-wide logrus logger; faultline reports those
	// conditions itself (as warnings with file and line), so the library's lines are dropped.
	logrus.SetOutput(io.Discard)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run executes the CLI and returns the process exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	app := newApp(stdout, stderr)
	cmd := app.rootCommand()
	cmd.SetArgs(args)
	err := cmd.ExecuteContext(ctx)
	if err == nil {
		return exitOK
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.err != nil {
			app.printError(ee.err)
		}
		return ee.code
	}
	app.printError(err)
	return exitInput
}

// printError writes an error to stderr: input problems one per line, others prefixed.
func (a *app) printError(err error) {
	var probs model.Problems
	if errors.As(err, &probs) {
		for _, p := range probs {
			fmt.Fprintln(a.stderr, p.String())
		}
		return
	}
	fmt.Fprintln(a.stderr, "faultline:", err)
}

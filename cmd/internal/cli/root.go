// Package cli wires tollgate's cobra commands: flags, output and exit codes. The work is
// done by policy/* (pure builders and verification) and daemon/* (registry, recording).
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
)

// Exit codes.
const (
	ExitOK     = 0 // success, verified
	ExitFailed = 1 // denied, verification failed
	ExitUsage  = 2 // bad flags or input
)

// exitError carries an exit code with its message. A nil err with a code exits quietly.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit status %d", e.code)
	}
	return e.err.Error()
}
func (e *exitError) Unwrap() error { return e.err }

// usage marks a usage or input error (exit 2).
func usage(format string, args ...any) error {
	return &exitError{code: ExitUsage, err: fmt.Errorf(format, args...)}
}

// inputErr marks err as an input error (exit 2), with context.
func inputErr(err error, format string, args ...any) error {
	return &exitError{code: ExitUsage, err: fmt.Errorf(format+": %w", append(args, err)...)}
}

// failed marks a failed verification or operation (exit 1).
func failed(err error) error { return &exitError{code: ExitFailed, err: err} }

// env is what a command sees of the process: streams, environment, clock.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	environ        map[string]string
	now            func() time.Time
	context        context.Context
}

func (e *env) ctx() context.Context {
	if e.context == nil {
		return context.Background()
	}
	return e.context
}

func (e *env) getenv(k string) string { return e.environ[k] }

// Main runs the CLI with args and returns the process exit code.
func Main(args []string, stdin io.Reader, stdout, stderr io.Writer, environ []string) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return Run(ctx, args, stdin, stdout, stderr, environ)
}

// Run is Main without signal handling, for tests.
func Run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, environ []string) (code int) {
	e := &env{stdin: stdin, stdout: stdout, stderr: stderr, environ: map[string]string{}, now: time.Now, context: ctx}
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok {
			e.environ[k] = v
		}
	}
	defer func() {
		// Nothing panics on any input; if something does anyway, say so and fail.
		if r := recover(); r != nil {
			fmt.Fprintf(stderr, "tollgate: internal error: %v\n", r)
			code = ExitFailed
		}
	}()
	root := newRoot(e)
	root.SetArgs(expandNargs(args))
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return ExitOK
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.err != nil {
			fmt.Fprintf(stderr, "tollgate: %v\n", ee.err)
		}
		return ee.code
	}
	// Anything cobra itself returns (unknown command or flag, bad arguments) is usage.
	fmt.Fprintf(stderr, "tollgate: %v\n", err)
	fmt.Fprintln(stderr, "Run 'tollgate --help' for usage.")
	return ExitUsage
}

func newRoot(e *env) *cobra.Command {
	root := &cobra.Command{
		Use:   "tollgate",
		Short: "Supply-chain evidence for container images: in-toto layouts, links, provenance",
		Long: `tollgate records and verifies in-toto evidence for container images.

Pipelines use it to create keys and layouts, record links (like in-toto-run), write SLSA
provenance, and attach evidence to an OCI registry. Operators use it to verify an image
exactly as the node daemon (tollgated) would.

Exit codes: 0 success or verified, 1 denied or verification failed, 2 usage or input error.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return usage("%v (see 'tollgate %s --help')", err, strings.TrimPrefix(c.CommandPath(), "tollgate "))
	})
	root.AddCommand(
		newKeygen(e),
		newLayout(e),
		newRun(e),
		newRecord(e),
		newAttest(e),
		newAttach(e),
		newFetch(e),
		newVerify(e),
		newVersion(e),
	)
	return root
}

// exactArgs is cobra.ExactArgs with an exit-2 error naming what is expected.
func exactArgs(n int, what string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			return usage("%s expects %s, got %d argument(s)", cmd.CommandPath(), what, len(args))
		}
		return nil
	}
}

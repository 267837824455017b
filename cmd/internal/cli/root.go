// Package cli wires tollgate's cobra commands: flags, output and exit codes. The work is
// done by policy/* (pure builders and verification) and daemon/* (registry, recording).
package cli

import (
	"context"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"tollgate.dev/tollgate/cmd/internal/exit"
	"tollgate.dev/tollgate/cmd/internal/input"
)

// Exit codes, as package exit defines them.
const (
	ExitOK     = exit.OK
	ExitFailed = exit.Failed
	ExitUsage  = exit.Usage
)

// Shorthands for the exit errors every command returns.
var (
	usage    = exit.Usagef
	inputErr = exit.Inputf
	failed   = exit.Fail
)

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

// Main runs the CLI with args and returns the process exit code.
func Main(args []string, stdin io.Reader, stdout, stderr io.Writer, environ []string) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return Run(ctx, args, stdin, stdout, stderr, environ)
}

// Run is Main without signal handling, for tests.
func Run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, environ []string) int {
	e := &env{stdin: stdin, stdout: stdout, stderr: stderr, environ: map[string]string{}, now: time.Now, context: ctx}
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok {
			e.environ[k] = v
		}
	}
	return exit.Guard(stderr, func() int {
		args := input.ExpandNargs(args)
		root := newRoot(e, args)
		root.SetArgs(args)
		root.SetIn(stdin)
		root.SetOut(stdout)
		root.SetErr(stderr)
		return exit.Report(stderr, root.ExecuteContext(ctx))
	})
}

// commands are the subcommands, by name, in the order help lists them.
var commands = []struct {
	name string
	new  func(*env) *cobra.Command
}{
	{"keygen", newKeygen},
	{"layout", newLayout},
	{"run", newRun},
	{"record", newRecord},
	{"attest", newAttest},
	{"attach", newAttach},
	{"fetch", newFetch},
	{"verify", newVerify},
	{"policy", newPolicy},
	{"preview", newPreview},
	{"version", newVersion},
}

// newRoot builds the command tree for args. When args name a subcommand, only that one is
// built: a process runs one command, and building the others' flag sets is start-up cost
// for nothing (help, completion and unknown commands get the whole tree).
func newRoot(e *env, args []string) *cobra.Command {
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
	for _, c := range commands {
		if len(args) > 0 && args[0] == c.name {
			root.AddCommand(c.new(e))
			return root
		}
	}
	for _, c := range commands {
		root.AddCommand(c.new(e))
	}
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

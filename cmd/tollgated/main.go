// Command tollgated is Tollgate's node daemon: a containerd NRI plugin that lets a container
// start only when the node can prove, with in-toto evidence, where its image came from.
//
// main only wires packages together: daemon (configuration, Gate, policies, evidence,
// metrics, health, audit log), plugin (NRI), daemon/ctrd (image identity and image events
// from containerd) and daemon/registry (evidence from OCI registries). See run.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"strings"
	"syscall"

	"tollgate.dev/tollgate/daemon"
)

// Exit codes.
const (
	exitOK     = 0
	exitFailed = 1 // the daemon stopped on an error
	exitUsage  = 2 // bad flags or configuration
)

func main() {
	// A GC goal of 1.5x the live heap instead of 2x, unless GOGC is set. The daemon runs
	// on every node, where memory is what it costs; its live heap is small (about 10 MiB
	// with 1,000 images on the node) and it allocates in bursts off the hook (pre-
	// verification, the re-check after a reload), while a cached decision allocates
	// nothing. Collecting every 5 MiB instead of every 10 MiB of a burst costs a few
	// milliseconds of CPU per burst, and lowers the peak by a quarter of the live heap
	// (docs/operations.md, "Sizing"; TestBenchMemory measures it).
	if _, set := os.LookupEnv("GOGC"); !set {
		debug.SetGCPercent(50)
	}
	os.Exit(realMain(os.Args[1:], os.Stdout, os.Stderr))
}

// realMain dispatches the subcommands and returns the exit code.
func realMain(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		switch args[0] {
		case "webhook":
			return webhookMain(args[1:], stdout, stderr)
		case "version":
			fmt.Fprintf(stdout, "tollgated %s (%s)\n", daemon.Version, runtime.Version())
			return exitOK
		case "help":
			usage(stdout, args[1:])
			return exitOK
		}
	}
	cfg, code, ok := parseConfig(args, stdout, stderr)
	if !ok {
		return code
	}
	ctx, stop := signalContext()
	defer stop()
	if err := run(ctx, cfg); err != nil {
		fmt.Fprintf(stderr, "tollgated: %v\n", err)
		return exitFailed
	}
	return exitOK
}

// signalContext is done at the first SIGTERM or SIGINT; after it, a second signal kills
// the process the default way.
func signalContext() (context.Context, context.CancelFunc) {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-ctx.Done()
		stop()
	}()
	return ctx, stop
}

// parseConfig reads the command line (and the --config file it names). It reports usage
// errors itself, and whether the daemon should start.
func parseConfig(args []string, stdout, stderr io.Writer) (daemon.Config, int, bool) {
	// A first pass with our own flag set gives --help the full usage text and turns flag
	// syntax errors into a short message. daemon.ParseArgs then applies the precedence
	// (defaults < --config file < flags) and validates.
	probe := daemon.DefaultConfig()
	fs := flag.NewFlagSet("tollgated", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	probe.RegisterFlags(fs)
	switch err := fs.Parse(args); {
	case errors.Is(err, flag.ErrHelp):
		usage(stdout, nil)
		return daemon.Config{}, exitOK, false
	case err != nil:
		fmt.Fprintf(stderr, "tollgated: %v\nRun 'tollgated --help' for usage.\n", err)
		return daemon.Config{}, exitUsage, false
	}
	cfg, err := daemon.ParseArgs("tollgated", args)
	if err != nil {
		fmt.Fprintf(stderr, "tollgated: %v\n", err)
		return daemon.Config{}, exitUsage, false
	}
	return cfg, exitOK, true
}

const usageHead = `tollgated is Tollgate's node daemon. As a containerd NRI plugin it decides, at every
container creation, whether the exact image content containerd is about to run is backed by
in-toto evidence (layouts and links, in-toto Statements such as SLSA provenance) that
satisfies the node-local policy, and blocks the container (enforce) or reports it (audit).

Usage:
  tollgated [flags]            run the node gate (until SIGTERM or SIGINT)
  tollgated webhook [flags]    run the validating admission webhook ('tollgated webhook --help')
  tollgated version            print the version
  tollgated help               print this text

At start-up tollgated loads the policy directory (and keeps watching it: a file that fails to
load never replaces the policies in force), connects to containerd's NRI socket as plugin
<plugin-index>-<plugin-name> and to containerd's API socket, pre-verifies every image already
on the node, and then every image containerd pulls, fetching evidence from registries outside
the NRI hook. Evidence for an image is searched in the node evidence directory, then the
daemon's disk cache, then the registry. Layouts and keys are read from the policy directory
only.

/readyz reports ready once the plugin is registered with containerd and a policy set is
loaded without a pending reload error. For fail-closed operation configure containerd's NRI
default_validator with required_plugins = ["<plugin-name>"] (deploy/ has the snippet).

Flags (also keys of the --config YAML file; flags given on the command line override it):
`

// usage prints the help text with every flag and its default.
func usage(w io.Writer, _ []string) {
	fmt.Fprint(w, usageHead)
	cfg := daemon.DefaultConfig()
	fs := flag.NewFlagSet("tollgated", flag.ContinueOnError)
	cfg.RegisterFlags(fs)
	printFlags(w, fs)
	fmt.Fprint(w, `
Signals: SIGTERM or SIGINT stop the daemon cleanly (a second one kills it).
Exit codes: 0 stopped on a signal, 1 stopped on an error, 2 usage or configuration error.
`)
}

// valueNames name the values of flags in the help text.
var valueNames = map[string]string{
	"config": "FILE", "nri-socket": "PATH", "containerd-socket": "PATH", "policy-dir": "DIR",
	"evidence-dir": "DIR", "cache-dir": "DIR", "audit-log": "FILE", "listen": "HOST:PORT",
	"audit-log-max-bytes": "SIZE", "hook-deadline": "DURATION", "allow-ttl": "DURATION",
	"deny-ttl": "DURATION", "node-name": "NAME", "log-level": "LEVEL", "plugin-name": "NAME",
	"plugin-index": "NN", "containerd-namespace": "NAME", "insecure-registry": "HOST[:PORT]",
	// tollgated webhook
	"metrics-listen": "HOST:PORT", "tls-cert-file": "FILE", "tls-key-file": "FILE",
	"tls-reload-interval": "DURATION", "timeout": "DURATION", "platform": "OS/ARCH[/VARIANT]",
	"resolve-ttl": "DURATION", "max-request-bytes": "BYTES",
}

// printFlags lists the flags GNU-style (--name VALUE), as the documentation writes them,
// each with its explanation and default.
func printFlags(w io.Writer, fs *flag.FlagSet) {
	fs.VisitAll(func(f *flag.Flag) {
		kind, help := flag.UnquoteUsage(f)
		if n, ok := valueNames[f.Name]; ok {
			kind = n
		}
		line := "  --" + f.Name
		if kind != "" {
			line += " " + strings.ToUpper(kind)
		}
		fmt.Fprintf(w, "%s\n        %s", line, help)
		if f.DefValue != "" && f.DefValue != "0" && f.DefValue != "[]" {
			fmt.Fprintf(w, " (default %s)", f.DefValue)
		}
		fmt.Fprintln(w)
	})
}

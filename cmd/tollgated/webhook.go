package main

import (
	"errors"
	"flag"
	"fmt"
	"io"

	"go.uber.org/zap"

	"tollgate.dev/tollgate/daemon"
	"tollgate.dev/tollgate/daemon/admission"
)

// webhookMain is `tollgated webhook`: the validating admission webhook of package
// daemon/admission, wired as daemon/admission/doc.go shows. It returns the exit code.
func webhookMain(args []string, stdout, stderr io.Writer) int {
	// As for the node gate: a first pass with our own flag set gives --help the webhook's
	// usage text and turns flag syntax errors into a short message; admission.ParseArgs
	// then applies defaults < --config file < flags, and validates.
	probe := admission.DefaultConfig()
	fs := flag.NewFlagSet("tollgated webhook", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	probe.RegisterFlags(fs)
	switch err := fs.Parse(args); {
	case errors.Is(err, flag.ErrHelp):
		webhookUsage(stdout)
		return exitOK
	case err != nil:
		fmt.Fprintf(stderr, "tollgated webhook: %v\nRun 'tollgated webhook --help' for usage.\n", err)
		return exitUsage
	}
	cfg, err := admission.ParseArgs("tollgated webhook", args)
	if err != nil {
		fmt.Fprintf(stderr, "tollgated webhook: %v\n", err)
		return exitUsage
	}
	log, err := daemon.NewLogger(cfg.LogLevel)
	if err != nil {
		fmt.Fprintf(stderr, "tollgated webhook: %v\n", err)
		return exitUsage
	}
	defer func() { _ = log.Sync() }()
	ctx, stop := signalContext()
	defer stop()
	log.Info("starting tollgated webhook", zap.String("version", daemon.Version),
		zap.String("listen", cfg.Listen), zap.String("metrics_listen", cfg.MetricsListen),
		zap.String("policy_dir", cfg.PolicyDir), zap.Bool("fail_open", cfg.FailOpen))
	err = admission.Run(ctx, cfg, admission.WithLogger(log))
	log.Info("tollgated webhook stopped", zap.Error(err))
	if err != nil {
		fmt.Fprintf(stderr, "tollgated webhook: %v\n", err)
		return exitFailed
	}
	return exitOK
}

const webhookUsageHead = `tollgated webhook is Tollgate's validating admission webhook: the node gate's decision,
given early, when the API server admits a Pod or a workload's pod template. It uses the
nodes' policy directory and verifier; image references are resolved through their
registries (an index is checked for --platform). The node gate stays the guarantee: see
docs/admission.md.

Usage:
  tollgated webhook [flags]    serve POST /validate over HTTPS (until SIGTERM or SIGINT)

Flags (also keys of the --config YAML file; flags given on the command line override it):
`

// webhookUsage prints the webhook's help text with every flag and its default.
func webhookUsage(w io.Writer) {
	fmt.Fprint(w, webhookUsageHead)
	cfg := admission.DefaultConfig()
	fs := flag.NewFlagSet("tollgated webhook", flag.ContinueOnError)
	cfg.RegisterFlags(fs)
	printFlags(w, fs)
	fmt.Fprint(w, `
Signals: SIGTERM or SIGINT stop the webhook cleanly (a second one kills it).
Exit codes: 0 stopped on a signal, 1 stopped on an error, 2 usage or configuration error.
`)
}

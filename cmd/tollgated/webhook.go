package main

import (
	"fmt"
	"io"
)

// webhookMain is `tollgated webhook`: the validating admission webhook of package
// daemon/admission.
//
// ──────────────────────────────────────────────────────────────────────────────────────
// OWNED BY THE daemon/admission ENGINEER — not wired here on purpose. Replace the body
// with the wiring documented in daemon/admission/doc.go:
//
//	cfg, err := admission.ParseArgs("tollgated webhook", args)   // exit 2 on error
//	log, _ := daemon.NewLogger(cfg.LogLevel)
//	err = admission.Run(ctx, cfg, admission.WithLogger(log))   // ctx: SIGTERM/SIGINT
//
// ──────────────────────────────────────────────────────────────────────────────────────
func webhookMain(args []string, stdout, stderr io.Writer) int {
	_, _ = args, stdout
	fmt.Fprintln(stderr, "tollgated webhook: not available in this build yet")
	return exitUsage
}

// Command tollgate is the CLI for pipelines and operators: keys, layouts, links,
// provenance, attaching evidence to registries, and verifying it as a node would
// (offline from files, or online exactly as tollgated decides).
package main

import (
	"os"
	"runtime/debug"

	"tollgate.dev/tollgate/cmd/internal/cli"
)

func main() {
	// A run lives milliseconds, and package initialisation alone (sigstore-go's
	// dependencies, CEL, protobuf descriptors) leaves ~2 MB on the heap, just under the
	// runtime's first 4 MB goal: with the default GOGC a 3-step verification starts a GC
	// cycle it exits before using, ~9% of its CPU time. A goal of 3x the live heap
	// instead of 2x skips it; large inputs still collect, at most 1.5x the default peak.
	// An explicit GOGC in the environment wins.
	if _, set := os.LookupEnv("GOGC"); !set {
		debug.SetGCPercent(200)
	}
	os.Exit(cli.Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr, os.Environ()))
}

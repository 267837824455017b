// Command tollgate is the CLI for pipelines and operators: keys, layouts, links,
// provenance, attaching evidence to registries, and verifying it as a node would.
//
// This binary is small on purpose. It verifies offline evidence itself (tollgate verify
// --layout/--attestation) and hands every other command to tollgate-full, installed next
// to it, which links the registry client and the policy engine. Start-up cost grows with
// what a binary links, and offline verification is the command pipelines run most.
package main

import (
	"fmt"
	"os"
	"time"

	"tollgate.dev/tollgate/cmd/internal/exit"
	"tollgate.dev/tollgate/cmd/internal/launch"
	"tollgate.dev/tollgate/cmd/internal/verify"
)

func main() {
	args := os.Args[1:]
	if code, ok := verify.Fast(args, os.Stdout, os.Stderr, time.Now); ok {
		os.Exit(code)
	}
	err := launch.Exec(args)
	fmt.Fprintf(os.Stderr, "tollgate: %v\n", err)
	os.Exit(exit.Usage)
}

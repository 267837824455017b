// Command tollgate is the CLI for pipelines and operators: keys, layouts, links,
// provenance, attaching evidence to registries, and verifying it as a node would
// (offline from files, or online exactly as tollgated decides).
package main

import (
	"os"

	"tollgate.dev/tollgate/cmd/internal/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr, os.Environ()))
}

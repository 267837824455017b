// Command tollgate-full is the whole tollgate CLI. Users run it through tollgate, which
// verifies offline evidence itself and hands every other command line here unchanged;
// running tollgate-full directly does the same thing.
package main

import (
	"os"

	"tollgate.dev/tollgate/cmd/internal/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr, os.Environ()))
}

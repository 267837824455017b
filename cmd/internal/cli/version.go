package cli

import (
	"fmt"
	"runtime"

	"github.com/spf13/cobra"
)

// Version is the CLI's version, set at build time (make build: -X ...cli.Version=...). It
// lives here rather than in package daemon so that the CLI does not link the node daemon's
// metrics and watchers: `tollgate verify` is run per pipeline step, and start-up counts.
var Version = "dev"

func newVersion(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(*cobra.Command, []string) error {
			fmt.Fprintf(e.stdout, "tollgate %s (%s %s/%s)\n", Version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
			return nil
		},
	}
}

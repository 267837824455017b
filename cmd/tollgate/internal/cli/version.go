package cli

import (
	"fmt"
	"runtime"

	"github.com/spf13/cobra"

	"tollgate.dev/tollgate/daemon"
)

func newVersion(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(*cobra.Command, []string) error {
			fmt.Fprintf(e.stdout, "tollgate %s (%s %s/%s)\n", daemon.Version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
			return nil
		},
	}
}

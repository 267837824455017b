package verify

import (
	"io"
	"time"

	"github.com/spf13/pflag"

	"tollgate.dev/tollgate/cmd/internal/exit"
	"tollgate.dev/tollgate/cmd/internal/input"
)

// Fast runs `tollgate verify` in this process when the command line is an offline
// verification without --run-inspections, and reports handled=false for everything else:
// other commands, the online form, --help, and any command line these flags do not
// parse. The caller hands those to the full CLI, which parses the same flags (Bind) and
// so gives the same errors and help it always does.
//
// It exists because a process's start-up cost grows with what its binary links: the
// registry client, the policy engine and their protobuf descriptors cost more at start-up
// than the whole verification of a typical layout (docs/performance.md).
func Fast(args []string, stdout, stderr io.Writer, now func() time.Time) (code int, handled bool) {
	if len(args) == 0 || args[0] != "verify" {
		return 0, false
	}
	var f Flags
	fs := pflag.NewFlagSet("verify", pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	f.Bind(fs)
	if err := fs.Parse(input.ExpandNargs(args)[1:]); err != nil || fs.NArg() > 0 {
		return 0, false
	}
	if mode, err := f.Mode(); err != nil || mode != Offline || f.RunInspections || f.Keyless() {
		return 0, false
	}
	return exit.Guard(stderr, func() int {
		return exit.Report(stderr, f.RunOffline(stdout, now(), nil))
	}), true
}

package cli

import (
	"fmt"

	"tollgate.dev/tollgate/cmd/internal/linkrec"
	"tollgate.dev/tollgate/policy/intoto"
)

// localInspections runs a layout's inspections here, as in-toto-verify does: the command
// runs in the current directory, which is hashed before (materials) and after (products).
// Only `tollgate verify --run-inspections` uses it; nodes never run inspection commands.
type localInspections struct{ e *env }

func (r *localInspections) RunInspection(name string, run []string) (*intoto.Link, error) {
	mat, err := linkrec.Record([]string{"."}, linkrec.Options{})
	if err != nil {
		return nil, fmt.Errorf("hashing materials: %w", err)
	}
	res, err := linkrec.Run(r.e.ctx(), run, r.e.stderr, r.e.stderr)
	if err != nil {
		return nil, err
	}
	if res.ExitCode != 0 {
		// in-toto-verify fails an inspection whose command fails (BadReturnValueError).
		return nil, fmt.Errorf("inspection command %q exited with status %d", run, res.ExitCode)
	}
	prod, err := linkrec.Record([]string{"."}, linkrec.Options{})
	if err != nil {
		return nil, fmt.Errorf("hashing products: %w", err)
	}
	return intoto.NewLink(name, run, mat, prod)
}

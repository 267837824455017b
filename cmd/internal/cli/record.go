package cli

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"tollgate.dev/tollgate/cmd/internal/linkrec"
	"tollgate.dev/tollgate/policy/envelope"
)

func newRecord(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "record",
		Short: "Record a step in two parts, around commands tollgate does not run (like in-toto-record)",
	}
	cmd.AddCommand(newRecordStart(e), newRecordStop(e))
	return cmd
}

func newRecordStart(e *env) *cobra.Command {
	var f linkFlags
	cmd := &cobra.Command{
		Use:   "start --step-name STEP --key KEY [-m PATH...]",
		Short: "Hash materials and write .<step>.<keyid8>.link-unfinished",
		Args:  exactArgs(0, "no positional arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := f.signer(e)
			if err != nil {
				return err
			}
			l := linkrec.NewLink(f.step)
			if l.Materials, err = linkrec.Record(f.materials, f.recordOptions()); err != nil {
				return inputErr(err, "materials")
			}
			p, err := signAndWrite(l, f.dsse, s, f.outDir, linkrec.UnfinishedName(f.step, s.ID))
			if err != nil {
				return err
			}
			fmt.Fprintf(e.stderr, "wrote %s (%d materials); run 'tollgate record stop' when the step is done\n", p, len(l.Materials))
			return nil
		},
	}
	f.register(cmd, true, false)
	return cmd
}

func newRecordStop(e *env) *cobra.Command {
	var f linkFlags
	cmd := &cobra.Command{
		Use:   "stop --step-name STEP --key KEY [-p PATH...]",
		Short: "Hash products, sign and write <step>.<keyid8>.link",
		Args:  exactArgs(0, "no positional arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := f.signer(e)
			if err != nil {
				return err
			}
			unfinished := filepath.Join(f.outDir, linkrec.UnfinishedName(f.step, s.ID))
			data, err := readFile(unfinished, maxDocumentFile)
			if err != nil {
				return inputErr(err, "no started record for step %q with this key (run 'tollgate record start' first)", f.step)
			}
			env, err := envelope.Parse(data)
			if err != nil {
				return inputErr(err, "%s", unfinished)
			}
			if err := verifyOwn(env, s); err != nil {
				return failed(fmt.Errorf("%s was not signed by %s: %w", unfinished, s.Key, err))
			}
			l, err := linkrec.FromEnvelope(env)
			if err != nil {
				return inputErr(err, "%s", unfinished)
			}
			if l.Name != f.step {
				return usage("%s records step %q, not %q", unfinished, l.Name, f.step)
			}
			if l.Products, err = linkrec.Record(f.products, f.recordOptions()); err != nil {
				return inputErr(err, "products")
			}
			imgs, err := f.imageArtifacts(cmd.Context(), e)
			if err != nil {
				return err
			}
			for n, h := range imgs {
				l.Products[n] = h
			}
			p, err := signAndWrite(l, env.Format == envelope.DSSE || f.dsse, s, f.outDir, linkrec.FileName(f.step, s.ID))
			if err != nil {
				return err
			}
			if err := os.Remove(unfinished); err != nil {
				fmt.Fprintf(e.stderr, "warning: could not remove %s: %v\n", unfinished, err)
			}
			fmt.Fprintf(e.stderr, "wrote %s (%d materials, %d products)\n", p, len(l.Materials), len(l.Products))
			return nil
		},
	}
	f.register(cmd, false, true)
	return cmd
}

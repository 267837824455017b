package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"tollgate.dev/tollgate/policy"
)

func newPolicy(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "policy",
		Short: "Facts about a policy directory",
		Args:  exactArgs(0, "use a subcommand: digest"),
	}
	var dir string
	digest := &cobra.Command{
		Use:   "digest --policy-dir DIR",
		Short: "Print the policy set's digest, as a node reports it and a VSA names it",
		Long: `Print the digest of a policy directory: the value a node running it reports
(its "policy set loaded" log line, the tollgate_policy_info{digest} metric, /readyz), and
the policy digest a verification summary written by tollgate verify --image --policy-dir
names. List it under a verificationSummaries requirement's policyDigests to accept VSAs of
exactly this policy.

The directory must load as a node would load it: a node never runs a policy that does
not, so it never reports that digest.`,
		Args: exactArgs(0, "no positional arguments (use --policy-dir)"),
		RunE: func(_ *cobra.Command, _ []string) error {
			if dir == "" {
				return usage("policy digest needs --policy-dir")
			}
			files, err := readPolicyDir(dir)
			if err != nil {
				return err
			}
			if _, err := policy.Load(files, 1); err != nil {
				return inputErr(err, "policy directory %s", dir)
			}
			_, err = fmt.Fprintln(e.stdout, policy.Digest(files))
			return err
		},
	}
	digest.Flags().StringVar(&dir, "policy-dir", "", "the policy directory, as on the node")
	cmd.AddCommand(digest)
	return cmd
}

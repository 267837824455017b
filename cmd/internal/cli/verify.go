package cli

import (
	"github.com/spf13/cobra"

	"tollgate.dev/tollgate/cmd/internal/exit"
	"tollgate.dev/tollgate/cmd/internal/verify"
)

func newVerify(e *env) *cobra.Command {
	var (
		f  verify.Flags
		pf passphraseFlags // of --vsa-key
	)
	cmd := &cobra.Command{
		Use:   "verify",
		Short: "Verify evidence offline (layout + links, attestations) or an image online, as a node would",
		Long: `Verify in-toto evidence.

Offline, from files:
  tollgate verify --layout root.layout --layout-keys owner.pub --link-dir links/ \
      [--image-digest sha256:... --image-config-digest sha256:...] [--param K=V]
  tollgate verify --attestation prov.dsse.json --key builder.pub \
      --predicate-type slsa-v1 --image-digest sha256:...

Keyless, Sigstore bundles against pinned trusted roots (spelled as cosign spells it):
  tollgate verify --attestation att.sigstore.json --trusted-root trusted_root.jsonl \
      --certificate-identity SAN --certificate-oidc-issuer ISSUER \
      [--certificate-identity-regexp RE] [--certificate-oidc-issuer-regexp RE] \
      [--artifact FILE | --image-digest sha256:...]   (--key KEY for key-signed bundles)
  Regular expressions must match the whole value (cosign's need not).

Online, exactly as the node daemon decides (policy directory as on the node, evidence
from the registry):
  tollgate verify --image registry.example/app:1.0 --policy-dir /etc/tollgate

-o dot or -o mermaid (offline, with --layout) writes, instead of the report, the layout's
graph with each step coloured by its result: verified, failed (with a short reason), below
threshold, or not reached. Render DOT with Graphviz:
  tollgate verify -l root.layout -k owner.pub -d links -o dot | dot -Tsvg -o result.svg

--run-inspections runs a layout's inspection commands here, hashing the current
directory, as in-toto-verify does. That is UNSAFE for nodes and tollgated never does it.

A signed SLSA verification summary (VSA v1) of a passed verification, for nodes whose
policies accept VSAs from this verifier (spec.verificationSummaries):
  ... --image-digest sha256:... --vsa-out app.vsa.json --vsa-key verifier.key \
      --verifier-id https://ci.example/verifier --policy-uri https://git.example/policies \
      [--vsa-resource-uri registry.example/app]   (offline; --image names it online)
  It names the policy digest (online: of --policy-dir, as the node reports it) and
  SLSA_BUILD_LEVEL_1 only when SLSA provenance was verified. Nothing is written when
  verification fails. Push it with tollgate attach --attestation.

Exit status: 0 verified, 1 verification failed or denied, 2 usage or input error,
3 allowed without verification (--image: no policy matches and the node default allows
it, or an exemption applies).`,
		Args: exactArgs(0, "no positional arguments (use flags)"),
		RunE: func(cmd *cobra.Command, _ []string) error { return runVerify(cmd, e, &f, &pf) },
	}
	f.Bind(cmd.Flags())
	pf.register(cmd)
	return cmd
}

// runVerify runs the form of verify the flags ask for, then writes the VSA of a passed
// verification when --vsa-out asks for one.
func runVerify(cmd *cobra.Command, e *env, f *verify.Flags, pf *passphraseFlags) error {
	mode, err := f.Mode()
	if err != nil {
		return err
	}
	wantVSA, err := f.VSA.Wanted()
	if err != nil {
		return err
	}
	if f.Keyless() {
		if mode == verify.Online {
			return exit.Usagef("--trusted-root and --certificate-* verify bundle files (--attestation); the online form reads trusted roots from --policy-dir")
		}
		if wantVSA {
			return exit.Usagef("--vsa-out is written by the key-based offline form and by --image, not by keyless bundle verification")
		}
		return verifyKeyless(e.stdout, f)
	}
	var v *verify.Verified
	if mode == verify.Online {
		v, err = verifyOnline(cmd, e, f)
	} else {
		v, err = f.RunOffline(e.stdout, e.now(), &localInspections{e: e})
	}
	if err != nil || v == nil {
		return err
	}
	return writeVSA(e, &f.VSA, pf, v)
}

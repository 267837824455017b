package cli

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"tollgate.dev/tollgate/policy/keys"
)

func newKeygen(e *env) *cobra.Command {
	var (
		typ   string
		bits  int
		force bool
		pf    passphraseFlags
	)
	cmd := &cobra.Command{
		Use:   "keygen NAME",
		Short: "Create a key pair: NAME (private, 0600) and NAME.pub, readable by Python in-toto",
		Example: `  tollgate keygen alice --type ed25519
  tollgate keygen owner --type rsa --bits 3072 --passphrase-env OWNER_PASSPHRASE`,
		Args: exactArgs(1, "the key file name NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			switch typ {
			case keys.TypeED25519, keys.TypeECDSA:
				if cmd.Flags().Changed("bits") {
					return usage("--bits applies to rsa keys only")
				}
			case keys.TypeRSA:
				if bits < keys.MinRSABits {
					return usage("--bits %d is below the minimum of %d", bits, keys.MinRSABits)
				}
			default:
				return usage("--type %q: want ed25519, ecdsa or rsa", typ)
			}
			if !force {
				for _, p := range []string{name, name + ".pub"} {
					if _, err := os.Lstat(p); err == nil {
						return usage("%s exists; pass --force to replace it", p)
					}
				}
			}
			pass, err := pf.get(e, "the new key")
			if err != nil {
				return err
			}
			s, err := keys.Generate(typ, bits)
			if err != nil {
				return failed(fmt.Errorf("generating %s key: %w", typ, err))
			}
			priv, err := s.MarshalPrivate(pass)
			if err != nil {
				return failed(fmt.Errorf("encoding private key: %w", err))
			}
			pub, err := s.MarshalPublic()
			if err != nil {
				return failed(fmt.Errorf("encoding public key: %w", err))
			}
			if err := writeFile(name, priv, 0o600); err != nil {
				return inputErr(err, "writing %s", name)
			}
			if err := writeFile(name+".pub", pub, 0o644); err != nil {
				return inputErr(err, "writing %s.pub", name)
			}
			fmt.Fprintf(e.stdout, "%s\n", s.ID)
			fmt.Fprintf(e.stderr, "wrote %s (private, %s, %s) and %s.pub\n", name, s.Type, s.Scheme, name)
			return nil
		},
	}
	cmd.Flags().StringVarP(&typ, "type", "t", keys.TypeED25519, "key type: ed25519, ecdsa or rsa")
	cmd.Flags().IntVarP(&bits, "bits", "b", keys.DefaultRSABits, "RSA modulus size")
	cmd.Flags().BoolVar(&force, "force", false, "replace existing key files")
	pf.register(cmd)
	return cmd
}

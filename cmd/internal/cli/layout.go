package cli

import (
	"fmt"
	"path/filepath"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"tollgate.dev/tollgate/cmd/internal/layoutgraph"
	"tollgate.dev/tollgate/cmd/internal/report"
	"tollgate.dev/tollgate/policy/envelope"
	"tollgate.dev/tollgate/policy/intoto"
	"tollgate.dev/tollgate/policy/keys"
	"tollgate.dev/tollgate/policy/layoutspec"
)

func newLayout(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "layout",
		Short: "Create, sign and inspect in-toto layouts",
	}
	cmd.AddCommand(newLayoutCreate(e), newLayoutSign(e), newLayoutShow(e))
	return cmd
}

func newLayoutCreate(e *env) *cobra.Command {
	var (
		from, out   string
		signKeys    []string
		dsse, allow bool
		pf          passphraseFlags
	)
	cmd := &cobra.Command{
		Use:   "create --from layout.yaml --key OWNER_KEY --out root.layout",
		Short: "Build a signed layout from a YAML description",
		Long: `Build a signed in-toto layout from a YAML description. Functionaries are public key
files (paths relative to the YAML file); their keyids are computed, never pasted.

  expires: 8760h                 # RFC 3339 time, or a duration (h, or d for days)
  readme: build and ship the api
  steps:
    - name: build
      threshold: 1
      functionaries: [alice.pub]
      expected_command: make build         # or a list
      materials: [ALLOW src/*, DISALLOW *]
      products: [CREATE app, ALLOW image, DISALLOW *]
  inspections:
    - image: {from: build}       # the image must be build's "image" product
  parameters: [VERSION]          # {VERSION} placeholders, given at verification

Only the image inspection is allowed unless --allow-inspections (such layouts cannot be
used on nodes, which never run inspection commands).`,
		Args: exactArgs(0, "no positional arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if from == "" || out == "" || len(signKeys) == 0 {
				return usage("layout create needs --from, --out and at least one --key")
			}
			data, err := readFile(from, layoutspec.MaxSpecBytes)
			if err != nil {
				return inputErr(err, "reading layout description")
			}
			spec, err := layoutspec.Parse(data)
			if err != nil {
				return inputErr(err, "%s", from)
			}
			keyFiles, err := functionaryFiles(spec, filepath.Dir(from))
			if err != nil {
				return err
			}
			signers, err := loadSigners(e, signKeys, &pf)
			if err != nil {
				return err
			}
			var opts []layoutspec.Option
			if allow {
				opts = append(opts, layoutspec.AllowInspections())
			}
			env, err := layoutspec.Build(spec, keyFiles, e.now(), dsse, opts...)
			if err != nil {
				return inputErr(err, "%s", from)
			}
			if err := env.Sign(signers...); err != nil {
				return failed(err)
			}
			raw, err := env.Marshal()
			if err != nil {
				return failed(err)
			}
			if err := writeFile(out, raw, 0o644); err != nil {
				return inputErr(err, "writing %s", out)
			}
			fmt.Fprintf(e.stderr, "wrote %s (%s, signed by %s)\n", out, env.Format, signerIDs(signers))
			return nil
		},
	}
	cmd.Flags().StringVarP(&from, "from", "f", "", "layout description (YAML)")
	cmd.Flags().StringVarP(&out, "out", "o", "", "layout file to write")
	cmd.Flags().StringArrayVarP(&signKeys, "key", "k", nil, "private key of a layout owner (repeatable)")
	cmd.Flags().BoolVar(&dsse, "dsse", false, "write a DSSE envelope instead of a Metablock")
	cmd.Flags().BoolVar(&allow, "allow-inspections", false, "allow inspections that run commands (not usable on nodes)")
	pf.register(cmd)
	return cmd
}

// functionaryFiles reads every functionary key file the description names, relative to dir.
func functionaryFiles(spec *layoutspec.Spec, dir string) (map[string][]byte, error) {
	out := map[string][]byte{}
	for _, st := range spec.Steps {
		for _, f := range st.Functionaries {
			if _, ok := out[f]; ok {
				continue
			}
			p := f
			if !filepath.IsAbs(p) {
				p = filepath.Join(dir, p)
			}
			data, err := readFile(p, maxKeyFile)
			if err != nil {
				return nil, inputErr(err, "step %q: functionary key", st.Name)
			}
			out[f] = data
		}
	}
	return out, nil
}

func loadSigners(e *env, paths []string, pf *passphraseFlags) ([]*keys.Signer, error) {
	var out []*keys.Signer
	for _, p := range paths {
		s, err := loadSigner(e, p, pf)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

func signerIDs(ss []*keys.Signer) string {
	s := ""
	for i, k := range ss {
		if i > 0 {
			s += ", "
		}
		s += k.Key.String()
	}
	return s
}

func newLayoutSign(e *env) *cobra.Command {
	var (
		signKeys []string
		out      string
		pf       passphraseFlags
	)
	cmd := &cobra.Command{
		Use:   "sign --key OWNER_KEY FILE",
		Short: "Add a layout owner's signature (for layouts that need several owners)",
		Args:  exactArgs(1, "the layout FILE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(signKeys) == 0 {
				return usage("layout sign needs at least one --key")
			}
			env, _, err := readLayout(args[0])
			if err != nil {
				return err
			}
			signers, err := loadSigners(e, signKeys, &pf)
			if err != nil {
				return err
			}
			if err := env.Sign(signers...); err != nil {
				return failed(err)
			}
			raw, err := env.Marshal()
			if err != nil {
				return failed(err)
			}
			dst := args[0]
			if out != "" {
				dst = out
			}
			if err := writeFile(dst, raw, 0o644); err != nil {
				return inputErr(err, "writing %s", dst)
			}
			fmt.Fprintf(e.stderr, "signed %s with %s (%d signature(s) now)\n", dst, signerIDs(signers), len(env.Signatures))
			return nil
		},
	}
	cmd.Flags().StringArrayVarP(&signKeys, "key", "k", nil, "private key of a layout owner (repeatable)")
	cmd.Flags().StringVarP(&out, "out", "o", "", "write the signed layout here instead of replacing FILE")
	pf.register(cmd)
	return cmd
}

// readLayout reads and parses a layout file (Metablock or DSSE), structure only.
func readLayout(path string) (*envelope.Signed, *intoto.Layout, error) {
	data, err := readFile(path, maxDocumentFile)
	if err != nil {
		return nil, nil, inputErr(err, "reading layout")
	}
	env, err := envelope.Parse(data)
	if err != nil {
		return nil, nil, inputErr(err, "layout %s", path)
	}
	l, err := intoto.ParseLayout(env)
	if err != nil {
		return nil, nil, inputErr(err, "layout %s", path)
	}
	return env, l, nil
}

func newLayoutShow(e *env) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "show [--format text|json|dot|mermaid] FILE",
		Short: "Summarize a layout: steps, who may sign, rules, expiry, inspections",
		Long: `Summarize a layout: steps, who may sign, rules, expiry, inspections.

--format (or -o/--output) dot or mermaid draws the layout as a graph instead: a box per
step (its functionaries' keyids, threshold and expected command, shown and never run),
the inspections (shown, never executed), an arrow for every MATCH rule from the step it
reads to the step that has it, labelled with the pattern, and the final product. Render
DOT with Graphviz:

  tollgate layout show --format dot root.layout | dot -Tsvg -o layout.svg

'tollgate verify --output dot' draws the same graph coloured by each step's result.`,
		Args: exactArgs(1, "the layout FILE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			env, l, err := readLayout(args[0])
			if err != nil {
				return err
			}
			switch output {
			case "json":
				return report.JSON(e.stdout, layoutSummary(env, l, e.now()))
			case "", "text":
				printLayout(e.stdout, env, l, e.now())
				return nil
			case "dot":
				return layoutgraph.WriteDOT(e.stdout, layoutgraph.FromLayout(l))
			case "mermaid":
				return layoutgraph.WriteMermaid(e.stdout, layoutgraph.FromLayout(l))
			}
			return usage("--format %q: want text, json, dot or mermaid", output)
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "text", "output format: text, json, dot (Graphviz) or mermaid; also spelled --format")
	cmd.Flags().SetNormalizeFunc(formatAlias)
	return cmd
}

// formatAlias lets --format name the --output flag: "layout show --format dot" reads as
// the issue and the docs spell it, and -o keeps working.
func formatAlias(_ *pflag.FlagSet, name string) pflag.NormalizedName {
	if name == "format" {
		name = "output"
	}
	return pflag.NormalizedName(name)
}

package cli

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/spf13/cobra"

	"tollgate.dev/tollgate/cmd/internal/exit"
	"tollgate.dev/tollgate/cmd/internal/input"
	"tollgate.dev/tollgate/cmd/internal/linkrec"
	"tollgate.dev/tollgate/daemon/registry"
	"tollgate.dev/tollgate/policy/envelope"
	"tollgate.dev/tollgate/policy/intoto"
	"tollgate.dev/tollgate/policy/keys"
)

// linkFlags are the flags `run` and `record` share with in-toto-run and in-toto-record.
type linkFlags struct {
	step, key, keyType   string
	materials, products  []string
	basePath             string
	exclude, lstrip      []string
	followSymlinkDirs    bool
	normalizeLineEndings bool
	dsse                 bool
	outDir               string
	imageProducts        []string
	imageProductDigests  []string
	insecure             []string
	pf                   passphraseFlags
}

func (f *linkFlags) register(cmd *cobra.Command, materials, products bool) {
	fl := cmd.Flags()
	fl.StringVarP(&f.step, "step-name", "n", "", "name of the step (as in the layout)")
	fl.StringVarP(&f.key, "key", "k", "", "functionary private key")
	fl.StringVarP(&f.keyType, "key-type", "t", "", "expected key type (rsa, ed25519, ecdsa); the file is detected anyway")
	if materials {
		fl.StringArrayVarP(&f.materials, "materials", "m", nil, "paths to record as materials (files or directories)")
	}
	if products {
		fl.StringArrayVarP(&f.products, "products", "p", nil, "paths to record as products (files or directories)")
		fl.StringArrayVar(&f.imageProducts, "image-product", nil, "record product `NAME=REF` as the digest REF resolves to in its registry")
		fl.StringArrayVar(&f.imageProductDigests, "image-product-digest", nil, "record product `NAME=sha256:HEX` (offline)")
		fl.StringArrayVar(&f.insecure, "insecure-registry", nil, "registry `HOST[:PORT]` spoken to over plain HTTP")
	}
	fl.StringVar(&f.basePath, "base-path", "", "record artifact paths relative to this directory")
	fl.StringArrayVar(&f.exclude, "exclude", nil, "gitignore-style pattern of paths not to record (default: Python in-toto's *.link*, .git, *.pyc, *~)")
	fl.StringArrayVar(&f.lstrip, "lstrip-paths", nil, "prefix to strip from recorded paths")
	fl.BoolVar(&f.followSymlinkDirs, "follow-symlink-dirs", false, "descend into symlinked directories")
	fl.BoolVar(&f.normalizeLineEndings, "normalize-line-endings", false, "hash files with CRLF/CR line endings as LF")
	fl.BoolVar(&f.dsse, "dsse", false, "write the link as a DSSE envelope instead of a Metablock")
	fl.BoolVar(&f.dsse, "use-dsse", false, "alias of --dsse (in-toto-run)")
	fl.StringVarP(&f.outDir, "out-dir", "d", ".", "directory to write the link to")
	fl.StringVar(&f.outDir, "metadata-directory", ".", "alias of --out-dir (in-toto-run)")
	_ = fl.MarkHidden("use-dsse")
	_ = fl.MarkHidden("metadata-directory")
	f.pf.register(cmd)
}

func (f *linkFlags) recordOptions() linkrec.Options {
	o := linkrec.Options{BasePath: f.basePath, LStrip: f.lstrip, FollowSymlinkDirs: f.followSymlinkDirs,
		NormalizeLineEndings: f.normalizeLineEndings}
	if len(f.exclude) > 0 {
		o.Exclude = f.exclude
	}
	return o
}

// signer loads the functionary key and checks --key-type.
func (f *linkFlags) signer(e *env) (*keys.Signer, error) {
	if f.step == "" {
		return nil, usage("--step-name is required")
	}
	if strings.ContainsAny(f.step, "/\\") || f.step == "." || f.step == ".." {
		return nil, usage("--step-name %q: a step name cannot contain a path separator", f.step)
	}
	if f.key == "" {
		return nil, usage("--key is required (the functionary's private key)")
	}
	s, err := loadSigner(e, f.key, &f.pf)
	if err != nil {
		return nil, err
	}
	if f.keyType != "" && !strings.EqualFold(f.keyType, s.Type) && !(f.keyType == "ecdsa" && strings.HasPrefix(s.Scheme, "ecdsa")) {
		return nil, usage("--key-type %s, but %s holds a %s key", f.keyType, f.key, s.Type)
	}
	return s, nil
}

// imageArtifacts resolves --image-product and --image-product-digest.
func (f *linkFlags) imageArtifacts(ctx context.Context, e *env) (map[string]intoto.HashObj, error) {
	out := map[string]intoto.HashObj{}
	for _, kv := range f.imageProductDigests {
		name, d, ok := strings.Cut(kv, "=")
		h, err := digestHashObj(d)
		if !ok || name == "" || err != nil {
			return nil, usage("--image-product-digest %q: want NAME=sha256:<64 hex>", kv)
		}
		out[name] = h
	}
	if len(f.imageProducts) == 0 {
		return out, nil
	}
	c := newRegistry(f.insecure)
	for _, kv := range f.imageProducts {
		name, ref, ok := strings.Cut(kv, "=")
		if !ok || name == "" || ref == "" {
			return nil, usage("--image-product %q: want NAME=REF, e.g. image=registry.example/app:1.0", kv)
		}
		if err := checkRef("--image-product", ref); err != nil {
			return nil, err
		}
		r, err := c.Resolve(ctx, ref)
		if err != nil {
			return nil, failed(fmt.Errorf("--image-product %s: %w", kv, err))
		}
		h, err := digestHashObj(r.Digest)
		if err != nil {
			return nil, failed(err)
		}
		out[name] = h
		fmt.Fprintf(e.stderr, "product %s = %s (%s)\n", name, r.Digest, r.Ref)
	}
	return out, nil
}

func digestHashObj(d string) (intoto.HashObj, error) {
	alg, hex, err := input.Digest(d)
	if err != nil {
		return nil, err
	}
	return intoto.HashObj{alg: hex}, nil
}

// checkRef rejects a malformed image reference as a usage error before any network I/O.
func checkRef(flag, ref string) error {
	if _, err := name.ParseReference(ref); err != nil {
		return usage("%s %q is not an image reference: %v", flag, ref, err)
	}
	return nil
}

func newRegistry(insecure []string) *registry.Client {
	return registry.New(registry.WithInsecure(insecure...), registry.WithUserAgent("tollgate-cli"))
}

// signAndWrite signs the link and writes it into dir under name.
func signAndWrite(l *linkrec.Link, dsse bool, s *keys.Signer, dir, name string) (string, error) {
	env, err := l.Envelope(dsse)
	if err != nil {
		return "", failed(fmt.Errorf("building link: %w", err))
	}
	if err := env.Sign(s); err != nil {
		return "", failed(err)
	}
	raw, err := env.Marshal()
	if err != nil {
		return "", failed(err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", inputErr(err, "creating %s", dir)
	}
	p := filepath.Join(dir, name)
	if err := writeFile(p, raw, 0o644); err != nil {
		return "", inputErr(err, "writing link")
	}
	return p, nil
}

func newRun(e *env) *cobra.Command {
	var (
		f         linkFlags
		noCommand bool
		streams   bool
	)
	cmd := &cobra.Command{
		Use:   "run --step-name STEP --key KEY [-m PATH...] [-p PATH...] -- CMD [ARG...]",
		Short: "Record a step: hash materials, run the command, hash products, sign the link (like in-toto-run)",
		Long: `Record one supply-chain step as a signed in-toto link, like in-toto-run -s.

Materials are hashed, the command runs (its exit code, stdout and stderr become the link's
byproducts), products are hashed, and <step>.<keyid8>.link is written to --out-dir. A
command that fails still gets its link, and tollgate exits with the command's status.

--image-product image=REF records the image's manifest (or index) digest as the product
"image", for layouts with the image inspection (- image: {from: STEP}).

-m, -p, --exclude and --lstrip-paths take several values, as in Python: -m a b c.`,
		Example: `  tollgate run -n build -k alice -m src -p app -- make app
  tollgate run -n package -k carol --image-product image=registry.example/app:1.0 --no-command`,
		RunE: func(cmd *cobra.Command, args []string) error {
			argv := args
			if dash := cmd.ArgsLenAtDash(); dash > 0 {
				return usage("unexpected arguments before --: %q", args[:dash])
			}
			if noCommand && len(argv) > 0 {
				return usage("--no-command and a command to run exclude each other")
			}
			if !noCommand && len(argv) == 0 {
				return usage("no command to run: give it after --, or pass --no-command")
			}
			return f.runStep(cmd.Context(), e, argv)
		},
	}
	f.register(cmd, true, true)
	cmd.Flags().BoolVarP(&noCommand, "no-command", "x", false, "record materials and products only, run nothing")
	cmd.Flags().BoolVarP(&streams, "record-streams", "s", true, "accepted for in-toto-run compatibility: streams are always recorded")
	return cmd
}

// runStep records one step: materials, the command (if any), products, images, and the
// signed link. A failing command still gets its link; its status becomes tollgate's.
func (f *linkFlags) runStep(ctx context.Context, e *env, argv []string) error {
	s, err := f.signer(e)
	if err != nil {
		return err
	}
	l := linkrec.NewLink(f.step)
	if l.Materials, err = linkrec.Record(f.materials, f.recordOptions()); err != nil {
		return inputErr(err, "materials")
	}
	status := 0
	if len(argv) > 0 {
		res, err := linkrec.Run(ctx, argv, e.stdout, e.stderr)
		if err != nil {
			return failed(err)
		}
		l.Command = argv
		l.Byproducts = res.Byproducts()
		status = res.ExitCode
	}
	if l.Products, err = linkrec.Record(f.products, f.recordOptions()); err != nil {
		return inputErr(err, "products")
	}
	// Images are products: resolved after the command, which may be what pushed them.
	imgs, err := f.imageArtifacts(ctx, e)
	if err != nil {
		return err
	}
	for n, h := range imgs {
		if _, dup := l.Products[n]; dup {
			return usage("product %q is both a file and an --image-product", n)
		}
		l.Products[n] = h
	}
	p, err := signAndWrite(l, f.dsse, s, f.outDir, linkrec.FileName(f.step, s.ID))
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stderr, "wrote %s (%d materials, %d products)\n", p, len(l.Materials), len(l.Products))
	if status != 0 {
		if status < 0 || status > 255 {
			status = ExitFailed
		}
		return &exit.Error{Code: status, Err: fmt.Errorf("command %q exited with status %d (link written)", argv[0], status)}
	}
	return nil
}

// verifyOwn checks a preliminary link was signed by s (in-toto-record stop does too).
func verifyOwn(env *envelope.Signed, s *keys.Signer) error {
	_, err := env.Verify([]*keys.Key{s.Key}, 1)
	return err
}

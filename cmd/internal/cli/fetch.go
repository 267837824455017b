package cli

import (
	"fmt"
	"os"
	"path"

	"github.com/spf13/cobra"

	"tollgate.dev/tollgate/daemon/registry"
)

func newFetch(e *env) *cobra.Command {
	var (
		image, out string
		insecure   []string
	)
	cmd := &cobra.Command{
		Use:   "fetch --image REF --out DIR",
		Short: "Download the evidence attached to an image (and its platform manifests); verifies nothing",
		Args:  exactArgs(0, "no positional arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if image == "" || out == "" {
				return usage("fetch needs --image and --out")
			}
			if err := checkRef("--image", image); err != nil {
				return err
			}
			c := newRegistry(insecure)
			res, err := c.Resolve(cmd.Context(), image)
			if err != nil {
				return failed(fmt.Errorf("resolving %s: %w", image, err))
			}
			digests := []string{res.Digest}
			for _, m := range res.Manifests {
				digests = append(digests, m.Digest)
			}
			files, err := c.Fetch(cmd.Context(), res.Repository, digests...)
			if err != nil {
				return failed(fmt.Errorf("fetching evidence for %s: %w", image, err))
			}
			if err := writeUnder(out, files); err != nil {
				return err
			}
			for _, n := range sortedKeys(files) {
				fmt.Fprintln(e.stdout, n)
			}
			fmt.Fprintf(e.stderr, "fetched %d file(s) for %s (%s) into %s\n", len(files), res.Ref, res.Digest, out)
			return nil
		},
	}
	cmd.Flags().StringVar(&image, "image", "", "image reference")
	cmd.Flags().StringVarP(&out, "out", "o", "", "directory to write evidence files into")
	cmd.Flags().StringArrayVar(&insecure, "insecure-registry", nil, "registry `HOST[:PORT]` spoken to over plain HTTP")
	return cmd
}

// writeUnder writes files below dir through os.Root, so no name (even one that slipped
// past registry.SanitizeName) and no symlink inside dir can lead outside it.
func writeUnder(dir string, files map[string][]byte) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return inputErr(err, "creating %s", dir)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return inputErr(err, "opening %s", dir)
	}
	defer root.Close()
	for _, name := range sortedKeys(files) {
		clean, err := registry.SanitizeName(name)
		if err != nil {
			return failed(fmt.Errorf("refusing evidence file name %q: %w", name, err))
		}
		if d := path.Dir(clean); d != "." {
			if err := root.MkdirAll(d, 0o755); err != nil {
				return inputErr(err, "creating %s", d)
			}
		}
		f, err := root.OpenFile(clean, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
		if err != nil {
			return inputErr(err, "writing %s", clean)
		}
		_, werr := f.Write(files[name])
		cerr := f.Close()
		if werr != nil || cerr != nil {
			return inputErr(fmt.Errorf("%v %v", werr, cerr), "writing %s", clean)
		}
	}
	return nil
}

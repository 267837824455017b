package cli

import (
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"tollgate.dev/tollgate/daemon/registry"
	"tollgate.dev/tollgate/policy/attest"
	"tollgate.dev/tollgate/policy/envelope"
)

func newAttach(e *env) *cobra.Command {
	var (
		image, linkDir string
		atts, insecure []string
	)
	cmd := &cobra.Command{
		Use:   "attach --image REF [--link-dir DIR] [--attestation FILE...]",
		Short: "Push links and attestations next to an image (OCI 1.1 referrers, and cosign's .att for Statements)",
		Long: `Push evidence to the image's registry. Links (*.link under --link-dir, sublayout
directories kept) go as in-toto link artifacts under their file names; DSSE attestations
go as DSSE artifacts and into cosign's .att image, so cosign verify-attestation sees them.

Layouts are never attached: nodes take layouts only from their own policy directory.`,
		Args: exactArgs(0, "no positional arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if image == "" {
				return usage("attach needs --image")
			}
			if linkDir == "" && len(atts) == 0 {
				return usage("nothing to attach: give --link-dir and/or --attestation")
			}
			if err := checkRef("--image", image); err != nil {
				return err
			}
			var arts []registry.Artifact
			if linkDir != "" {
				la, err := linkArtifacts(linkDir)
				if err != nil {
					return err
				}
				if len(la) == 0 {
					return usage("--link-dir %s holds no *.link files", linkDir)
				}
				arts = append(arts, la...)
			}
			for _, file := range atts {
				aa, err := attestationArtifacts(file)
				if err != nil {
					return err
				}
				arts = append(arts, aa...)
			}
			if err := newRegistry(insecure).Attach(cmd.Context(), image, arts); err != nil {
				return failed(fmt.Errorf("attaching to %s: %w", image, err))
			}
			for _, a := range arts {
				fmt.Fprintf(e.stderr, "attached %s (%s)\n", a.Name, a.MediaType)
			}
			fmt.Fprintf(e.stderr, "attached %d artifact(s) to %s\n", len(arts), image)
			return nil
		},
	}
	cmd.Flags().StringVar(&image, "image", "", "image reference (a tag is resolved to its digest)")
	cmd.Flags().StringVarP(&linkDir, "link-dir", "d", "", "directory of links to attach")
	cmd.Flags().StringArrayVar(&atts, "attestation", nil, "DSSE envelope file to attach (repeatable)")
	cmd.Flags().StringArrayVar(&insecure, "insecure-registry", nil, "registry `HOST[:PORT]` spoken to over plain HTTP")
	return cmd
}

// linkArtifacts reads every *.link under dir; names are relative paths, so sublayout
// directories survive the round trip through the registry.
func linkArtifacts(dir string) ([]registry.Artifact, error) {
	var out []registry.Artifact
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if p != dir && strings.HasPrefix(d.Name(), ".") {
				return filepath.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() || strings.HasPrefix(d.Name(), ".") || !strings.HasSuffix(d.Name(), ".link") {
			return nil
		}
		data, err := readFile(p, maxDocumentFile)
		if err != nil {
			return err
		}
		env, err := envelope.Parse(data)
		if err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		rel, _ := filepath.Rel(dir, p)
		name, err := registry.SanitizeName(filepath.ToSlash(rel))
		if err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		mt := registry.MediaTypeInTotoLink
		if env.Format == envelope.DSSE {
			mt = registry.MediaTypeDSSE
		}
		out = append(out, registry.Artifact{Name: name, MediaType: mt, Data: data})
		return nil
	})
	if err != nil {
		return nil, inputErr(err, "reading links")
	}
	return out, nil
}

// attestationArtifacts reads a DSSE file (or cosign JSON-lines: one artifact each).
func attestationArtifacts(file string) ([]registry.Artifact, error) {
	data, err := readFile(file, maxDocumentFile)
	if err != nil {
		return nil, inputErr(err, "reading attestation")
	}
	envs, err := attest.Unwrap(data)
	if err != nil {
		return nil, inputErr(err, "attestation %s", file)
	}
	base, err := registry.SanitizeName(filepath.Base(file))
	if err != nil {
		return nil, inputErr(err, "attestation %s", file)
	}
	var out []registry.Artifact
	for i, env := range envs {
		if env.Format != envelope.DSSE {
			return nil, usage("attestation %s is a %s, not a DSSE envelope (links go with --link-dir)", file, env.Format)
		}
		raw, name := data, base
		if len(envs) > 1 {
			if raw, err = env.Marshal(); err != nil {
				return nil, failed(err)
			}
			name = fmt.Sprintf("%s.%d.dsse.json", strings.TrimSuffix(base, ".json"), i+1)
		}
		out = append(out, registry.Artifact{Name: name, MediaType: registry.MediaTypeDSSE, Data: raw})
	}
	return out, nil
}

package cli

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/spf13/cobra"

	"tollgate.dev/tollgate/cmd/internal/verify"
	"tollgate.dev/tollgate/policy/attest"
	"tollgate.dev/tollgate/policy/provenance"
)

type attestFlags struct {
	image, predicateType, predicate, key, out     string
	builderID, buildType, sourceURI, sourceDigest string
	entryPoint, invocationID                      string
	materials                                     []string
	startedOn, finishedOn                         string
	insecure                                      []string
	pf                                            passphraseFlags
}

func newAttest(e *env) *cobra.Command {
	var f attestFlags
	cmd := &cobra.Command{
		Use:   "attest --image REF@DIGEST --predicate-type TYPE --key KEY [--out FILE]",
		Short: "Sign an in-toto Statement (SLSA provenance, link, or any predicate) about an image as DSSE",
		Long: `Write a DSSE envelope holding an in-toto Statement v1 about the image.

--predicate-type slsa-v1 or slsa-v0.2 builds SLSA provenance from the flags, filling what
they leave out from the CI environment (GitHub Actions: GITHUB_SERVER_URL,
GITHUB_REPOSITORY, GITHUB_SHA, GITHUB_REF, GITHUB_RUN_ID, GITHUB_RUN_ATTEMPT,
GITHUB_WORKFLOW_REF, RUNNER_*), or takes the predicate verbatim from --predicate.
--predicate-type link turns the link file --predicate names into a link v0.3 predicate.
Any other URI takes --predicate (a JSON object) as is.

Attach the result with 'tollgate attach --attestation FILE'.`,
		Example: `  tollgate attest --image registry.example/app@sha256:... --predicate-type slsa-v1 \
      --key builder --builder-id https://ci.example/builder --out app.slsa.dsse.json`,
		Args: exactArgs(0, "no positional arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runAttest(cmd, e, &f)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.image, "image", "", "image the Statement is about: REF@sha256:... (a tag is resolved in its registry)")
	fl.StringVar(&f.predicateType, "predicate-type", "slsa-v1", "slsa-v1, slsa-v0.2, link, or a predicate type URI")
	fl.StringVar(&f.predicate, "predicate", "", "predicate file (JSON object; for link: a link file)")
	fl.StringVarP(&f.key, "key", "k", "", "private key to sign with")
	fl.StringVarP(&f.out, "out", "o", "", "file to write (default: standard output)")
	fl.StringVar(&f.builderID, "builder-id", "", "SLSA builder id (default from CI, else "+provenance.DefaultBuilderID+")")
	fl.StringVar(&f.buildType, "build-type", "", "SLSA build type URI")
	fl.StringVar(&f.sourceURI, "source-uri", "", "source repository URI, e.g. git+https://github.com/acme/app@refs/heads/main")
	fl.StringVar(&f.sourceDigest, "source-digest", "", "source digest ALG:HEX, e.g. gitCommit:<sha>")
	fl.StringVar(&f.entryPoint, "entry-point", "", "build entry point (workflow file, script)")
	fl.StringVar(&f.invocationID, "invocation-id", "", "build invocation id")
	fl.StringArrayVar(&f.materials, "material", nil, "resolved dependency `URI@ALG:HEX` (repeatable)")
	fl.StringVar(&f.startedOn, "started-on", "", "build start (RFC 3339)")
	fl.StringVar(&f.finishedOn, "finished-on", "", "build end (RFC 3339)")
	fl.StringArrayVar(&f.insecure, "insecure-registry", nil, "registry `HOST[:PORT]` spoken to over plain HTTP (to resolve a tag)")
	f.pf.register(cmd)
	return cmd
}

func runAttest(cmd *cobra.Command, e *env, f *attestFlags) error {
	if f.image == "" || f.key == "" {
		return usage("attest needs --image and --key")
	}
	pt, err := verify.PredicateURI(f.predicateType)
	if err != nil || pt == "" {
		return usage("--predicate-type %q: want slsa-v1, slsa-v0.2, link or a URI", f.predicateType)
	}
	subject, err := imageSubject(cmd, e, f)
	if err != nil {
		return err
	}
	s, err := loadSigner(e, f.key, &f.pf)
	if err != nil {
		return err
	}
	var pred []byte
	if f.predicate != "" {
		if pred, err = readFile(f.predicate, maxDocumentFile); err != nil {
			return inputErr(err, "reading predicate")
		}
	}
	stmt, err := buildStatement(e, f, pt, subject, pred)
	if err != nil {
		return err
	}
	raw, err := signDSSE(s, stmt)
	if err != nil {
		return err
	}
	if f.out == "" {
		_, err := fmt.Fprintf(e.stdout, "%s\n", raw)
		return err
	}
	if err := writeOutput(f.out, raw); err != nil {
		return err
	}
	fmt.Fprintf(e.stderr, "wrote %s (%s about %s@%s, signed by %s)\n", f.out, pt, subject.Name, digestOf(subject), s.Key)
	return nil
}

func digestOf(s provenance.Subject) string {
	for alg, hex := range s.Digest {
		return alg + ":" + hex
	}
	return ""
}

// imageSubject turns --image into a subject; a tag is resolved through the registry.
func imageSubject(cmd *cobra.Command, e *env, f *attestFlags) (provenance.Subject, error) {
	ref, err := name.ParseReference(f.image)
	if err != nil {
		return provenance.Subject{}, usage("--image %q is not an image reference: %v", f.image, err)
	}
	repo := ref.Context().Name()
	digest := ""
	if d, ok := ref.(name.Digest); ok {
		digest = d.DigestStr()
	} else {
		res, err := newRegistry(f.insecure).Resolve(cmd.Context(), f.image)
		if err != nil {
			return provenance.Subject{}, failed(fmt.Errorf("--image %s has no digest and resolving it failed: %w", f.image, err))
		}
		digest = res.Digest
		fmt.Fprintf(e.stderr, "resolved %s to %s\n", f.image, digest)
	}
	sub, err := provenance.ImageSubject(repo, digest)
	if err != nil {
		return sub, usage("%v", err)
	}
	return sub, nil
}

func buildStatement(e *env, f *attestFlags, pt string, subject provenance.Subject, pred []byte) ([]byte, error) {
	subjects := []provenance.Subject{subject}
	switch {
	case pt == attest.PredicateLinkV03:
		if pred == nil {
			return nil, usage("--predicate-type link needs --predicate LINK_FILE")
		}
		out, err := provenance.LinkStatement(subjects, pred)
		if err != nil {
			return nil, inputErr(err, "%s", f.predicate)
		}
		return out, nil
	case pred != nil:
		if !json.Valid(pred) || !strings.HasPrefix(strings.TrimSpace(string(pred)), "{") {
			return nil, usage("--predicate %s is not a JSON object", f.predicate)
		}
		out, err := provenance.Statement(pt, subjects, json.RawMessage(pred))
		if err != nil {
			return nil, inputErr(err, "%s", f.predicate)
		}
		return out, nil
	case pt == attest.PredicateSLSAProvenanceV1 || pt == attest.PredicateSLSAProvenanceV02:
		in, err := f.inputs()
		if err != nil {
			return nil, err
		}
		in = provenance.Merge(in, provenance.FromEnv(e.environ))
		if in.BuilderID == "" {
			in.BuilderID = provenance.DefaultBuilderID
		}
		build := provenance.SLSAv1
		if pt == attest.PredicateSLSAProvenanceV02 {
			build = provenance.SLSAv02
		}
		out, err := build(subjects, in)
		if err != nil {
			return nil, usage("%v", err)
		}
		return out, nil
	}
	return nil, usage("--predicate-type %s needs --predicate FILE", pt)
}

func (f *attestFlags) inputs() (provenance.Inputs, error) {
	in := provenance.Inputs{BuilderID: f.builderID, BuildType: f.buildType, SourceURI: f.sourceURI,
		EntryPoint: f.entryPoint, InvocationID: f.invocationID}
	if f.sourceDigest != "" {
		d, err := provenance.ParseDigest(f.sourceDigest)
		if err != nil {
			return in, usage("--source-digest: %v", err)
		}
		in.SourceDigest = d
	}
	for _, m := range f.materials {
		mat, err := provenance.ParseMaterial(m)
		if err != nil {
			return in, usage("--material %q: %v", m, err)
		}
		in.Materials = append(in.Materials, mat)
	}
	for _, t := range []struct {
		flag, val string
		dst       *time.Time
	}{{"--started-on", f.startedOn, &in.StartedOn}, {"--finished-on", f.finishedOn, &in.FinishedOn}} {
		if t.val == "" {
			continue
		}
		v, err := time.Parse(time.RFC3339, t.val)
		if err != nil {
			return in, usage("%s %q is not an RFC 3339 time", t.flag, t.val)
		}
		*t.dst = v
	}
	return in, nil
}

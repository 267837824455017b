package cli

import (
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"tollgate.dev/tollgate/policy/reason"
)

// verifyFlags holds both forms of `tollgate verify`.
type verifyFlags struct {
	// offline
	layout            string
	layoutKeys        []string
	layoutThreshold   int
	linkDir           string
	imageDigests      []string
	imageConfigDigest string
	attestations      []string
	keys              []string
	predicateType     string
	threshold         int
	params            []string
	runInspections    bool
	at                string
	// online
	image     string
	policyDir string
	insecure  []string
	platform  string
	// output
	output string
}

func newVerify(e *env) *cobra.Command {
	var f verifyFlags
	cmd := &cobra.Command{
		Use:   "verify",
		Short: "Verify evidence offline (layout + links, attestations) or an image online, as a node would",
		Long: `Verify in-toto evidence.

Offline, from files:
  tollgate verify --layout root.layout --layout-keys owner.pub --link-dir links/ \
      [--image-digest sha256:... --image-config-digest sha256:...] [--param K=V]
  tollgate verify --attestation prov.dsse.json --key builder.pub \
      --predicate-type slsa-v1 --image-digest sha256:...

Online, exactly as the node daemon decides (policy directory as on the node, evidence
from the registry):
  tollgate verify --image registry.example/app:1.0 --policy-dir /etc/tollgate

--run-inspections runs a layout's inspection commands here, hashing the current
directory, as in-toto-verify does. That is UNSAFE for nodes and tollgated never does it.

Exit status: 0 verified, 1 verification failed or denied, 2 usage or input error.`,
		Args: exactArgs(0, "no positional arguments (use flags)"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if f.output != "text" && f.output != "json" {
				return usage("-o %q: want text or json", f.output)
			}
			online := f.image != "" || f.policyDir != ""
			offline := f.layout != "" || len(f.attestations) > 0
			switch {
			case online && offline:
				return usage("--image/--policy-dir (online) and --layout/--attestation (offline) are two forms of verify; use one")
			case online:
				if f.image == "" || f.policyDir == "" {
					return usage("online verification needs both --image and --policy-dir")
				}
				return verifyOnline(cmd, e, &f)
			case offline:
				return verifyOffline(cmd, e, &f)
			}
			return usage("nothing to verify: give --layout (with --layout-keys and --link-dir), --attestation (with --key), or --image with --policy-dir")
		},
	}
	fl := cmd.Flags()
	fl.StringVarP(&f.layout, "layout", "l", "", "signed root layout file")
	fl.StringArrayVarP(&f.layoutKeys, "layout-keys", "k", nil, "public key of a layout owner (repeatable)")
	fl.IntVar(&f.layoutThreshold, "layout-threshold", 0, "distinct layout keys that must have signed (default: all given)")
	fl.StringVarP(&f.linkDir, "link-dir", "d", ".", "directory holding the links (and sublayout directories)")
	fl.StringArrayVar(&f.imageDigests, "image-digest", nil, "manifest or index digest of the image (sha256:...) for the image inspection and subject binding")
	fl.StringVar(&f.imageConfigDigest, "image-config-digest", "", "config digest of the image (sha256:...)")
	fl.StringArrayVar(&f.attestations, "attestation", nil, "DSSE envelope, cosign JSON-lines or Sigstore bundle file (repeatable)")
	fl.StringArrayVar(&f.keys, "key", nil, "public key trusted to sign attestations (repeatable)")
	fl.StringVar(&f.predicateType, "predicate-type", "", "required predicate type: slsa-v1, slsa-v0.2, link, or a URI")
	fl.IntVar(&f.threshold, "threshold", 1, "distinct attestation keys that must have signed")
	fl.StringArrayVar(&f.params, "param", nil, "layout substitution parameter `K=V` (repeatable)")
	fl.BoolVar(&f.runInspections, "run-inspections", false, "run the layout's inspection commands here, like in-toto-verify (UNSAFE on nodes)")
	fl.StringVar(&f.at, "at", "", "verify as of this time (RFC 3339) instead of now")
	fl.StringVar(&f.image, "image", "", "online: image reference to verify")
	fl.StringVar(&f.policyDir, "policy-dir", "", "online: the node's policy directory")
	fl.StringArrayVar(&f.insecure, "insecure-registry", nil, "registry `HOST[:PORT]` spoken to over plain HTTP")
	fl.StringVar(&f.platform, "platform", "", "online: platform of an index to verify (default: this machine's, linux/"+defaultArch()+")")
	fl.StringVarP(&f.output, "output", "o", "text", "output format: text or json")
	return cmd
}

func (f *verifyFlags) when(e *env) (time.Time, error) {
	if f.at == "" {
		return e.now(), nil
	}
	t, err := time.Parse(time.RFC3339, f.at)
	if err != nil {
		return time.Time{}, usage("--at %q is not an RFC 3339 time like 2030-01-02T03:04:05Z", f.at)
	}
	return t, nil
}

// reasonView is a failure as JSON.
type reasonView struct {
	Kind     string `json:"kind"`
	Step     string `json:"step,omitempty"`
	Rule     string `json:"rule,omitempty"`
	Artifact string `json:"artifact,omitempty"`
	Message  string `json:"message"`
}

func viewReason(err error) *reasonView {
	if err == nil {
		return nil
	}
	r := reason.As(err)
	return &reasonView{Kind: string(r.Kind), Step: r.Step, Rule: r.Rule, Artifact: r.Artifact, Message: err.Error()}
}

// predicateURI maps the short names to predicate type URIs.
func predicateURI(s string) (string, error) {
	switch strings.ToLower(s) {
	case "":
		return "", nil
	case "slsa-v1", "slsaprovenance1", "slsa1":
		return "https://slsa.dev/provenance/v1", nil
	case "slsa-v0.2", "slsaprovenance02", "slsaprovenance", "slsa0.2":
		return "https://slsa.dev/provenance/v0.2", nil
	case "link":
		return "https://in-toto.io/attestation/link/v0.3", nil
	}
	if strings.Contains(s, "://") {
		return s, nil
	}
	return "", fmt.Errorf("predicate type %q: want slsa-v1, slsa-v0.2, link or a URI", s)
}

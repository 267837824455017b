package cli

import (
	"context"
	"fmt"
	"path/filepath"
	"runtime"
	"time"

	"github.com/spf13/cobra"

	"tollgate.dev/tollgate/cmd/internal/exit"
	"tollgate.dev/tollgate/cmd/internal/report"
	"tollgate.dev/tollgate/cmd/internal/verify"
	"tollgate.dev/tollgate/daemon/ctrd"
	"tollgate.dev/tollgate/daemon/evidence"
	"tollgate.dev/tollgate/daemon/registry"
	"tollgate.dev/tollgate/policy"
	"tollgate.dev/tollgate/policy/policydiff"
)

// previewFlags are `tollgate preview`'s flags.
type previewFlags struct {
	policyDir, compare    string
	images, containerd    string
	namespaces            []string
	evidenceDir, cacheDir string
	offline               bool
	insecure              []string
	platform, output, at  string
}

func newPreview(e *env) *cobra.Command {
	var f previewFlags
	cmd := &cobra.Command{
		Use:   "preview",
		Short: "Show what a policy change would do: which images would be newly denied, and why",
		Long: `Evaluate images under a new policy directory and (with --compare) the one in force, exactly
as the node daemon decides, and show what changes: images newly denied (and why), newly
allowed, or decided for another reason. Without --compare, the baseline is no policy at
all: every image the new policies would deny is listed.

Images come from a file (--images: one reference per line; blank lines and lines starting
with # are ignored), or from a node's containerd (--containerd SOCKET: every image of the
k8s.io namespace, or of each --namespace, and the image of every running container,
resolved from containerd's content store as tollgated does).

Evidence is read as the node reads it: the node evidence directory (--evidence-dir), the
daemon's disk cache (--cache-dir, the node's --cache-dir), then the registry, asked only
when no local evidence verifies (unless --offline). On a node, before switching a policy
to enforce:

  tollgate preview --policy-dir ./new-policies --compare /etc/tollgate \
      --containerd /run/containerd/containerd.sock \
      --evidence-dir /var/lib/tollgate/evidence --cache-dir /var/lib/tollgate/cache --offline

In CI, for a list of images:

  tollgate preview --policy-dir policies/ --compare policies-main/ --images images.txt -o json

Exit status: 0 no image would be newly denied (and every image was decided), 1 some image
would be newly denied, or could not be decided (its evidence could not be read or fetched),
2 usage or input error (bad flags, an unreadable policy directory, a bad --images line).`,
		Args: exactArgs(0, "no positional arguments (use flags)"),
		RunE: func(cmd *cobra.Command, _ []string) error { return runPreview(cmd.Context(), e, &f) },
	}
	fl := cmd.Flags()
	fl.StringVar(&f.policyDir, "policy-dir", "", "the new policy directory (required)")
	fl.StringVar(&f.compare, "compare", "", "the policy directory in force, to compare with (default: no policy)")
	fl.StringVar(&f.images, "images", "", "file of image references, one per line ('-' for standard input)")
	fl.StringVar(&f.containerd, "containerd", "", "containerd socket: preview every image and running container on this node")
	fl.StringArrayVar(&f.namespaces, "namespace", nil, "containerd namespace with --containerd (repeatable; default k8s.io)")
	fl.StringVar(&f.evidenceDir, "evidence-dir", "", "the node evidence directory (tollgated's --evidence-dir)")
	fl.StringVar(&f.cacheDir, "cache-dir", "", "tollgated's --cache-dir: read its disk cache of fetched evidence")
	fl.BoolVar(&f.offline, "offline", false, "never ask a registry: only --evidence-dir and --cache-dir (needs --containerd)")
	fl.StringArrayVar(&f.insecure, "insecure-registry", nil, "registry `HOST[:PORT]` spoken to over plain HTTP")
	fl.StringVar(&f.platform, "platform", "", "--images: platform of an index (default linux/"+runtime.GOARCH+")")
	fl.StringVar(&f.at, "at", "", "decide as of this time (RFC 3339) instead of now")
	fl.StringVarP(&f.output, "output", "o", "text", "output format: text or json")
	return cmd
}

// check refuses flag combinations that cannot work, before anything is read.
func (f *previewFlags) check() error {
	switch {
	case f.policyDir == "":
		return usage("preview needs --policy-dir (the new policies)")
	case (f.images == "") == (f.containerd == ""):
		return usage("preview needs exactly one of --images FILE and --containerd SOCKET")
	case f.offline && f.images != "":
		return usage("--offline works with --containerd only: --images references are resolved at their registry")
	case len(f.namespaces) > 0 && f.containerd == "":
		return usage("--namespace needs --containerd")
	case f.platform != "" && f.images == "":
		return usage("--platform applies to --images (containerd knows which platform the node pulled)")
	case f.output != "text" && f.output != "json":
		return usage("--output %q: want text or json", f.output)
	}
	return nil
}

func runPreview(ctx context.Context, e *env, f *previewFlags) error {
	if err := f.check(); err != nil {
		return err
	}
	now, err := (&verify.Flags{At: f.at}).When(e.now()) // --at as verify reads it
	if err != nil {
		return err
	}
	p := &previewer{now: now, sources: f.localSources()}
	if p.newSet, _, err = loadPolicies(f.policyDir); err != nil {
		return err
	}
	if f.compare != "" {
		if p.oldSet, _, err = loadPolicies(f.compare); err != nil {
			return err
		}
	}
	if !f.offline {
		p.registry = newRegistry(f.insecure)
	}
	var targets []previewTarget
	if f.images != "" {
		targets, err = p.fromList(ctx, e, f)
	} else {
		targets, err = fromContainerd(ctx, f.containerd, f.namespaces)
	}
	if err != nil {
		return err
	}
	rep := &previewReport{PolicyDir: f.policyDir, Compare: f.compare, Images: []previewImage{}}
	for i := range targets {
		rep.add(p.preview(ctx, &targets[i]))
	}
	if f.output == "json" {
		if err := report.JSON(e.stdout, rep); err != nil {
			return failed(err)
		}
	} else {
		rep.print(e.stdout)
	}
	if rep.Summary.NewlyDenied > 0 || rep.Summary.Errors > 0 {
		return exit.Quiet(ExitFailed)
	}
	return nil
}

// localSources are the node's evidence sources named by the flags, in the node's order.
func (f *previewFlags) localSources() []evidence.Source {
	var out []evidence.Source
	if f.evidenceDir != "" {
		out = append(out, evidence.NewDir("node evidence directory", f.evidenceDir, evidence.DefaultLimits))
	}
	if f.cacheDir != "" {
		out = append(out, evidence.NewCache(filepath.Join(f.cacheDir, "evidence"), evidence.DefaultLimits))
	}
	return out
}

// previewTarget is one image to decide, with the running containers that use it.
type previewTarget struct {
	image      policy.Image
	containers []string // "namespace/pod/container"
	err        error    // it could not be resolved (--images: the registry failed)
}

// previewer decides images under the two policy sets, reading evidence as the node does.
type previewer struct {
	newSet, oldSet *policy.Set // oldSet nil: no baseline
	sources        []evidence.Source
	registry       *registry.Client // nil: --offline
	now            time.Time
}

// preview decides t's image under both sets. Evidence comes from the local sources first;
// the registry is asked (once) only when, under either set, no local evidence verifies,
// as the node fetches only then.
func (p *previewer) preview(ctx context.Context, t *previewTarget) previewImage {
	out := previewImage{target: t}
	if t.err != nil {
		return out.failed(t.err)
	}
	evs, err := p.loadLocal(ctx, &t.image)
	if err != nil {
		return out.failed(err)
	}
	req := policy.Request{Image: t.image}
	oldD, newD := p.decide(p.oldSet, req, evs), p.decide(p.newSet, req, evs)
	if p.registry != nil && (failedVerification(oldD) || failedVerification(newD)) && t.image.Repository != "" {
		files, err := fetchEvidence(ctx, p.registry, &t.image)
		if err != nil {
			return out.failed(err)
		}
		evs = append(evs, policy.Evidence{Files: files})
		oldD, newD = p.decide(p.oldSet, req, evs), p.decide(p.newSet, req, evs)
	}
	return out.decided(oldD, newD)
}

func (p *previewer) decide(set *policy.Set, req policy.Request, evs []policy.Evidence) *policy.Decision {
	if set == nil {
		return nil
	}
	d := policydiff.Decide(set, req, evs, p.now)
	return &d
}

func failedVerification(d *policy.Decision) bool {
	return d != nil && policydiff.FailedVerification(d)
}

// loadLocal reads img's evidence from the node's sources, as tollgated does.
func (p *previewer) loadLocal(ctx context.Context, img *policy.Image) ([]policy.Evidence, error) {
	evs := make([]policy.Evidence, 0, len(p.sources)+1)
	for _, src := range p.sources {
		ev, err := src.Load(ctx, img.Repository, img.Digests)
		if err != nil {
			return nil, fmt.Errorf("cannot read evidence from the %s: %w", src.Name(), err)
		}
		evs = append(evs, ev)
	}
	return evs, nil
}

// fromContainerd lists the images and running containers of each namespace (k8s.io by
// default) from containerd, with the digests its content store binds to each config.
func fromContainerd(ctx context.Context, socket string, namespaces []string) ([]previewTarget, error) {
	if len(namespaces) == 0 {
		namespaces = []string{ctrd.DefaultNamespace}
	}
	var list targetList
	for _, ns := range namespaces {
		c := ctrd.New(ctrd.WithAddress(socket), ctrd.WithNamespace(ns))
		imgs, err := c.List(ctx)
		if err == nil {
			var reqs []policy.Request
			if reqs, err = c.RunningContainers(ctx); err == nil {
				for _, img := range imgs {
					list.add(img, "")
				}
				for _, r := range reqs {
					list.add(r.Image, containerName(&r))
				}
			}
		}
		c.Close()
		if err != nil {
			return nil, failed(fmt.Errorf("containerd namespace %q: %w", ns, err))
		}
	}
	if len(list.targets) > maxImageListRefs {
		return nil, failed(fmt.Errorf("containerd at %s holds %d images, over the preview's limit of %d",
			socket, len(list.targets), maxImageListRefs))
	}
	return list.targets, nil
}

// containerName names a running container as the re-check does: namespace/pod/container
// from the kubelet's labels, or the container ID when it has none.
func containerName(r *policy.Request) string {
	if r.Namespace == "" && r.Pod == "" {
		return r.Container
	}
	return r.Namespace + "/" + r.Pod + "/" + r.Container
}

// Package admission is Tollgate's validating admission webhook (`tollgated webhook`): the
// node gate's decision, given early, when the API server admits a Pod or a workload's pod
// template. It shares the node's policy (the same policy directory, loaded and watched by
// policystore.Store), the node's Gate (decision cache keyed by config digest, digests and
// policy generation; coalescing of identical checks; infrastructure errors never cached)
// and the node's verifier (policy.Set.Evaluate), so the two never disagree about the same
// content. What differs is where the image identity comes from: admission has no
// containerd, so references are resolved through daemon/registry, and an index is
// checked for the platform the pod will run on: the one its nodeSelector or required node
// affinity pins through the well-known kubernetes.io/os and kubernetes.io/arch labels
// (each of them, up to four, when it allows several; denied if any fails), else
// --platform (default linux/amd64). Those pod strings only choose among an index's
// manifests, and only when they look like an os or arch name.
//
// The node gate is the guarantee; the webhook is early feedback. A tag may move between
// admission and pull, and an image that cannot be verified before the deadline is
// allowed with a warning by default (--fail-open), because the node gate still refuses it
// at container creation. docs/admission.md explains when to use which.
//
// Wiring, as cmd/tollgated's `webhook` subcommand does it:
//
//	cfg, err := admission.ParseArgs("tollgated webhook", args)
//	log, _ := daemon.NewLogger(cfg.LogLevel)
//	err = admission.Run(ctx, cfg, admission.WithLogger(log)) // until ctx is done
package admission

package main

import (
	"context"
	"fmt"

	"go.uber.org/zap"

	"tollgate.dev/tollgate/daemon"
	"tollgate.dev/tollgate/daemon/ctrd"
	"tollgate.dev/tollgate/daemon/registry"
	"tollgate.dev/tollgate/plugin"
)

// run builds the node gate from cfg and serves until ctx is done. Its parts run side by
// side, and one decision goes one way:
//
//	containerd ──NRI──▶ plugin ──▶ gate.Decide ◀── policystore (watched), evidence
//	containerd ──image events──▶ ctrd.Watch ──▶ Preverifier ──▶ gate.Preverify ──▶ registry
//
// It returns nil after a clean shutdown, or the error that stopped the daemon.
func run(ctx context.Context, cfg daemon.Config) error {
	log, err := daemon.NewLogger(cfg.LogLevel)
	if err != nil {
		return err
	}
	defer func() { _ = log.Sync() }()

	// Image identity from containerd's own stores, never from a registry (DESIGN §3), and
	// image events for pre-verification. The connection is made on first use.
	ctr := ctrd.New(
		ctrd.WithAddress(cfg.ContainerdSocket),
		ctrd.WithNamespace(cfg.ContainerdNamespace),
		ctrd.WithLogger(log.Named("containerd")),
	)
	defer ctr.Close()

	n, err := newNode(cfg, log, nodeParts{
		// Evidence from registries, for pre-verification only: the NRI hook never waits on it.
		fetcher: registry.New(
			registry.WithInsecure(cfg.InsecureRegistries...),
			registry.WithUserAgent("tollgated/"+daemon.Version),
		),
		// After every policy reload the node's images are pre-verified again under the new
		// policies, and the running containers, with the image identity they were created
		// from, are re-checked (reported, never stopped).
		images:     ctr,
		containers: ctr,
	})
	if err != nil {
		return err
	}

	p, err := plugin.New(n.gate, ctr,
		plugin.WithName(cfg.PluginName),
		plugin.WithIndex(fmt.Sprintf("%02d", cfg.PluginIndex)), // NRI wants two digits
		plugin.WithSocket(cfg.NRISocket),
		plugin.WithDeadline(cfg.HookDeadline.D()),
		plugin.WithLogger(log.Named("nri")),
		// The start-up audit of running containers is accounted apart from the hook.
		plugin.WithSyncDecider(n.gate.SyncDecider()),
		// Each hook call is recorded once, by the plugin, with what containerd was told.
		plugin.WithAnswerFunc(n.gate.Answered),
		plugin.WithConnectionCallbacks(
			func() { n.health.SetNRIConnected(true) },
			func(error) { n.health.SetNRIConnected(false) },
		),
	)
	if err != nil {
		n.close()
		return err
	}

	log.Info("starting tollgated", zap.String("version", daemon.Version),
		zap.String("nri_socket", cfg.NRISocket), zap.String("plugin", fmt.Sprintf("%02d-%s", cfg.PluginIndex, cfg.PluginName)),
		zap.String("containerd_socket", cfg.ContainerdSocket), zap.String("namespace", cfg.ContainerdNamespace),
		zap.Strings("insecure_registries", cfg.InsecureRegistries))
	err = n.serve(ctx,
		task{"nri plugin", p.Run},
		// The watcher's first listing pre-verifies every image already on the node; later
		// events pre-verify every image pulled, outside NRI's lock.
		task{"containerd image events", func(ctx context.Context) error { return ctr.Watch(ctx, n.pre.PreverifyAsync) }},
		task{"heap profiles on SIGUSR1", func(ctx context.Context) error { return heapDumps(ctx, cfg.CacheDir, log) }},
	)
	log.Info("tollgated stopped", zap.Error(err))
	return err
}

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

// run builds the node gate from cfg and serves until ctx is done:
//
//	containerd ──NRI──▶ plugin ──▶ daemon.Gate ◀── policies (watched), evidence
//	containerd ──image events──▶ ctrd.Watch ──▶ Daemon.PreverifyAsync ──▶ registry
//
// It returns nil after a clean shutdown, or the error that stopped the daemon.
func run(ctx context.Context, cfg daemon.Config) error {
	log, err := daemon.NewLogger(cfg.LogLevel)
	if err != nil {
		return err
	}
	defer func() { _ = log.Sync() }()

	// Evidence from registries, for pre-verification only: the NRI hook never waits on it.
	reg := registry.New(
		registry.WithInsecure(cfg.InsecureRegistries...),
		registry.WithUserAgent("tollgated/"+daemon.Version),
	)
	d, err := daemon.New(cfg, daemon.WithDaemonLogger(log), daemon.WithFetcher(reg))
	if err != nil {
		return err
	}

	// Image identity from containerd's own stores, never from a registry (DESIGN §3), and
	// image events for pre-verification. The connection is made on first use.
	ctr := ctrd.New(
		ctrd.WithAddress(cfg.ContainerdSocket),
		ctrd.WithNamespace(cfg.ContainerdNamespace),
		ctrd.WithLogger(log.Named("containerd")),
	)
	defer ctr.Close()

	p, err := plugin.New(d.Gate(), ctr,
		plugin.WithName(cfg.PluginName),
		plugin.WithIndex(fmt.Sprintf("%02d", cfg.PluginIndex)), // NRI wants two digits
		plugin.WithSocket(cfg.NRISocket),
		plugin.WithDeadline(cfg.HookDeadline.D()),
		plugin.WithLogger(log.Named("nri")),
		// The start-up audit of running containers is accounted apart from the hook.
		plugin.WithSyncDecider(d.Gate().SyncDecider()),
		plugin.WithConnectionCallbacks(
			func() { d.SetNRIConnected(true) },
			func(error) { d.SetNRIConnected(false) },
		),
	)
	if err != nil {
		d.Close()
		return err
	}
	d.Attach(p)
	// Running containers, with the image identity they were created from, are re-checked
	// (reported, never stopped) after every policy reload.
	d.SetContainerLister(ctr)
	// The watcher's first listing pre-verifies every image already on the node; later
	// events pre-verify every image pulled, outside NRI's lock. After every policy reload
	// the node's images are listed and pre-verified again, under the new policies.
	d.SetImageWatcher(ctr)
	d.SetImageLister(ctr)

	log.Info("starting tollgated", zap.String("version", daemon.Version),
		zap.String("nri_socket", cfg.NRISocket), zap.String("plugin", fmt.Sprintf("%02d-%s", cfg.PluginIndex, cfg.PluginName)),
		zap.String("containerd_socket", cfg.ContainerdSocket), zap.String("namespace", cfg.ContainerdNamespace),
		zap.Strings("insecure_registries", cfg.InsecureRegistries))
	err = d.Run(ctx)
	log.Info("tollgated stopped", zap.Error(err))
	return err
}

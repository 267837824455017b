// Package deploy holds no Go code of its own: it is where Tollgate's deployment artifacts
// live (the kustomize base and overlays, the Helm chart, the containerd drop-in, alerts and
// dashboards) and where their tests run. The tests render the manifests with the real
// kustomize and helm binaries (test/tools/install-k8s-tools.sh builds them), decode every
// object strictly into Kubernetes API types, and check that both renderings agree with each
// other and with the fixed names in docs/dev/BRIEF.md.
package deploy

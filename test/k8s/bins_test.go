//go:build k8s

package k8s

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"tollgate.dev/tollgate/test/e2e"
)

// k8sBins are the directories test/tools/install-k8s.sh filled.
type k8sBins struct {
	kubernetes, etcd, cni string
}

func (b k8sBins) path(name string) string { return filepath.Join(b.kubernetes, name) }

// k8sDir is where install-k8s.sh puts its versioned directories: $TOLLGATE_K8S_DIR, else
// beside $TOLLGATE_TOOLS_BIN, else <repo>/.cache/k8s.
func k8sDir() string {
	if d := os.Getenv("TOLLGATE_K8S_DIR"); d != "" {
		return d
	}
	if d := os.Getenv("TOLLGATE_TOOLS_BIN"); d != "" {
		return filepath.Join(filepath.Dir(d), "k8s")
	}
	root, _ := e2e.RepoRoot()
	return filepath.Join(root, ".cache", "k8s")
}

// findK8s reads current.env, the install script's record of the versions it installed last.
func findK8s() (k8sBins, error) {
	dir := k8sDir()
	f, err := os.Open(filepath.Join(dir, "current.env"))
	if err != nil {
		return k8sBins{}, fmt.Errorf("no Kubernetes binaries in %s (run `make tools` or `bash test/tools/install-k8s.sh` as root): %v", dir, err)
	}
	defer f.Close()
	var b k8sBins
	s := bufio.NewScanner(f)
	for s.Scan() {
		k, v, _ := strings.Cut(s.Text(), "=")
		switch k {
		case "KUBERNETES":
			b.kubernetes = v
		case "ETCD":
			b.etcd = filepath.Join(v, "etcd")
		case "CNI":
			b.cni = v
		}
	}
	for _, p := range []string{b.path("kube-apiserver"), b.path("kubelet"), b.path("kubectl"), b.etcd, filepath.Join(b.cni, "bridge")} {
		if _, err := os.Stat(p); err != nil {
			return k8sBins{}, fmt.Errorf("%s/current.env names a missing binary (run test/tools/install-k8s.sh again): %v", dir, err)
		}
	}
	return b, nil
}

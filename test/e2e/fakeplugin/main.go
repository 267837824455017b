// Command fakeplugin is a stand-in NRI plugin for the e2e harness's own tests: it connects
// to an NRI socket under a chosen name and answers every ValidateContainerAdjustment with
// a fixed verdict. It lets the suite check the NRI wiring (a required plugin present, a
// rejection message reaching crictl, a hanging plugin) without Tollgate's daemon.
//
//	fakeplugin --nri-socket /tmp/tg-x/nri.sock --name tollgate --idx 10 --mode deny
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/containerd/nri/pkg/api"
	"github.com/containerd/nri/pkg/stub"
)

type plugin struct {
	mode    string
	message string
	dump    string
}

// ValidateContainerAdjustment is the hook Tollgate decides in; here the verdict is fixed.
func (p *plugin) ValidateContainerAdjustment(ctx context.Context, req *api.ValidateContainerAdjustmentRequest) error {
	img := req.GetContainer().GetAnnotations()["io.kubernetes.cri.image-name"]
	if p.dump != "" { // what NRI shows a validator, for tests that pin containerd's behaviour
		if b, err := json.Marshal(req); err == nil {
			_ = os.WriteFile(filepath.Join(p.dump, req.GetContainer().GetName()+".json"), b, 0o644)
		}
	}
	switch p.mode {
	case "deny":
		return fmt.Errorf("%s %s", p.message, img)
	case "hang":
		<-ctx.Done()
		return ctx.Err()
	default:
		fmt.Printf("fakeplugin: allowed %s %s\n", req.GetContainer().GetName(), img)
		return nil
	}
}

func main() {
	socket := flag.String("nri-socket", os.Getenv("TOLLGATE_E2E_NRI_SOCKET"), "NRI socket path")
	name := flag.String("name", "tollgate", "plugin name")
	idx := flag.String("idx", "10", "plugin index")
	mode := flag.String("mode", "allow", "verdict: allow, deny or hang")
	message := flag.String("message", "fakeplugin: denied", "deny message prefix (the image name follows)")
	dump := flag.String("dump", "", "directory to write each validation request to, as JSON named by container")
	flag.Parse()

	s, err := stub.New(&plugin{mode: *mode, message: *message, dump: *dump},
		stub.WithSocketPath(*socket), stub.WithPluginName(*name), stub.WithPluginIdx(*idx),
		stub.WithOnClose(func() { fmt.Fprintln(os.Stderr, "fakeplugin: connection closed"); os.Exit(3) }))
	if err != nil {
		fmt.Fprintln(os.Stderr, "fakeplugin:", err)
		os.Exit(1)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := s.Run(ctx); err != nil && ctx.Err() == nil {
		fmt.Fprintln(os.Stderr, "fakeplugin:", err)
		os.Exit(1)
	}
}

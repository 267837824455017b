//go:build e2e

// Command demo is `make demo`: on one machine, with a real containerd, it shows Tollgate
// letting a container whose image carries verified in-toto evidence start, and blocking one
// whose image does not.
//
// It drives the e2e harness (package e2e: containerd with NRI's required-plugin validator,
// a loopback OCI registry, crictl) through a testing.TB of its own (session), signs an
// image with the project's CLI (bin/tollgate), writes a node policy, runs bin/tollgated as
// the NRI plugin, and tries both containers. Everything is torn down at the end, also on
// failure and on Ctrl-C. Exit status: 0 when the signed container ran and the unsigned one
// was blocked, 1 otherwise, 130 when interrupted.
//
//	go build -tags e2e -o .cache/e2e-bin/demo ./test/e2e/demo && sudo .cache/e2e-bin/demo
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"tollgate.dev/tollgate/test/e2e"
	"tollgate.dev/tollgate/test/tools/testimage"
)

// demo holds what the steps share.
type demo struct {
	s      *session
	ctx    context.Context
	out    io.Writer
	step   int
	repo   string // repository root
	work   string // .cache/demo: keys, layout, links, policy, node dirs, logs (kept)
	bin    string // repository bin/ (make build): tollgate, tollgated
	env    *e2e.Env
	host   string // registry host:port
	listen string // tollgated's /metrics, /healthz, /readyz

	signed, unsigned *testimage.Pushed
	pod              *e2e.Pod
	signedID         string // container ID of the signed container
	blockMsg         string
	unsignedCreated  bool // the unsigned image's container was created: not blocked
	plugin           *e2e.Process
}

// numSteps is the number of step headers the demo prints.
const numSteps = 8

func main() { os.Exit(run()) }

func run() int {
	out := os.Stdout
	repo, err := e2e.RepoRoot()
	if err != nil {
		fmt.Fprintf(os.Stderr, "demo: run it from the repository (make demo): %v\n", err)
		return 1
	}
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "demo: must run as root: it starts containerd, runc containers and mounts (sudo make demo)")
		return 1
	}
	work := filepath.Join(repo, ".cache", "demo")
	logf, err := freshWorkDir(work)
	if err != nil {
		fmt.Fprintf(os.Stderr, "demo: %v\n", err)
		return 1
	}
	defer logf.Close()
	// A missing tool is a failure for the demo, and the harness says so in its message.
	_ = os.Setenv("TOLLGATE_REQUIRE_TOOLS", "1")

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	interrupted := watchSignals(cancel, out)

	d := &demo{s: newSession(ctx, logf), ctx: ctx, out: out, repo: repo, work: work, bin: filepath.Join(repo, "bin")}
	fmt.Fprintf(out, "%s\n", bold("Tollgate demo: a container with verified in-toto evidence runs, one without is blocked"))
	fmt.Fprintf(out, "(every detail goes to %s)\n", rel(repo, logf.Name()))

	start := time.Now()
	failure := d.play()
	if failure == "" && d.s.Failed() {
		failure = "a step reported an error (see the log)"
	}
	if interrupted() {
		failure = "interrupted"
	}
	failure = d.teardown(failure, logf.Name())
	d.result(failure, time.Since(start))
	d.next()
	switch {
	case interrupted():
		return 130
	case failure != "":
		return 1
	}
	return 0
}

// freshWorkDir empties work (the previous run's files) and opens the log in it.
func freshWorkDir(work string) (*os.File, error) {
	if err := os.RemoveAll(work); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(work, 0o755); err != nil {
		return nil, err
	}
	return os.Create(filepath.Join(work, "demo.log"))
}

// teardown runs every cleanup (the environment's checks that nothing is left included)
// and returns failure, or why the teardown failed when nothing else did.
func (d *demo) teardown(failure, logPath string) string {
	fmt.Fprintf(d.out, "\n%s\n", bold("Teardown"))
	if failure != "" && failure != "interrupted" && d.plugin != nil {
		fmt.Fprintf(d.out, "  last lines of tollgated's log:\n%s", indent(lastLines(d.plugin.Log(), 8), "    "))
	}
	start := time.Now()
	d.s.runCleanups()
	took := time.Since(start).Round(100 * time.Millisecond)
	if d.env != nil {
		if _, err := os.Stat(d.env.Dir); err == nil && os.Getenv("TOLLGATE_E2E_KEEP") != "1" {
			failure = orFirst(failure, "teardown left "+d.env.Dir)
		}
		fmt.Fprintf(d.out, "  stopped every process the demo started (tollgated, containerd, shims, containers),\n  unmounted and removed %s (%s)\n", d.env.Dir, took)
	} else {
		fmt.Fprintf(d.out, "  stopped and removed what the demo had started (%s)\n", took)
	}
	if d.s.Failed() && failure == "" {
		failure = "teardown: " + lastLines(readFile(logPath), 3)
	}
	return failure
}

// play runs the steps and returns why the demo failed ("" when it passed).
func (d *demo) play() (failure string) {
	defer func() {
		if r := recover(); r != nil {
			if st, ok := r.(stop); ok {
				failure = st.msg
				if d.ctx.Err() != nil {
					failure = "interrupted" // whatever failed, it failed because of that
				}
			} else {
				failure = fmt.Sprintf("internal error: %v", r)
			}
			fmt.Fprintf(d.out, "\n  %s %s\n", red("FAILED:"), failure)
		}
	}()
	d.startNode()
	d.signSupplyChain()
	d.pushHotfix()
	d.writePolicy()
	d.startTollgated()
	d.pullImages()
	d.runSigned()
	d.createUnsigned()
	return ""
}

// watchSignals cancels the demo on SIGINT or SIGTERM (the steps notice it and the
// teardown runs); a second signal exits at once, leaving what is left to the next run's
// sweep of dead environments.
func watchSignals(cancel context.CancelFunc, out io.Writer) (interrupted func() bool) {
	ch := make(chan os.Signal, 2)
	signal.Notify(ch, os.Interrupt, syscall.SIGTERM)
	got := make(chan struct{})
	go func() {
		<-ch
		close(got)
		fmt.Fprintf(out, "\n%s\n", red("interrupted: stopping and tearing everything down (interrupt again to quit at once)"))
		cancel()
		<-ch
		fmt.Fprintln(out, "quitting without teardown; the next `make demo` or `make e2e` sweeps what is left")
		os.Exit(130)
	}()
	return func() bool {
		select {
		case <-got:
			return true
		default:
			return false
		}
	}
}

// checkpoint ends the demo if it was interrupted.
func (d *demo) checkpoint() {
	if d.ctx.Err() != nil {
		panic(stop{"interrupted"})
	}
}

func (d *demo) fail(format string, args ...any) {
	d.s.Fatalf(format, args...)
}

func (d *demo) header(title string) {
	d.checkpoint()
	d.step++
	fmt.Fprintf(d.out, "\n%s\n", bold(fmt.Sprintf("[%d/%d] %s", d.step, numSteps, title)))
	d.s.Logf("==== step %d: %s", d.step, title)
}

func (d *demo) say(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	fmt.Fprintf(d.out, "  %s\n", msg)
	d.s.Logf("%s", msg)
}

// result prints the verdict.
func (d *demo) result(failure string, took time.Duration) {
	fmt.Fprintf(d.out, "\n%s\n", bold("Result"))
	signed, unsigned := red("✘")+" did not run", red("✘")+" not tried"
	if d.signedID != "" {
		signed = green("✔") + " ran: container RUNNING"
	}
	switch {
	case d.blockMsg != "":
		unsigned = green("✔") + " blocked at creation by tollgate"
	case d.unsignedCreated:
		unsigned = red("✘") + " was NOT blocked"
	}
	fmt.Fprintf(d.out, "  signed image   (%s) %s\n", signedTag, signed)
	fmt.Fprintf(d.out, "  unsigned image (%s) %s\n", unsignedTag, unsigned)
	if failure == "" {
		fmt.Fprintf(d.out, "  %s in %s\n", green("PASS"), took.Round(time.Second))
		return
	}
	fmt.Fprintf(d.out, "  %s: %s (details: %s)\n", red("FAIL"), failure, rel(d.repo, filepath.Join(d.work, "demo.log")))
}

// next tells the user where to go from here.
func (d *demo) next() {
	fmt.Fprintf(d.out, "\n%s\n", bold("Where to look next"))
	for _, l := range [][2]string{
		{"docs/architecture.md", "how and where the node decides (NRI validator hook, cache, pre-verification)"},
		{"docs/policy.md", "the policy files this demo wrote, in full; examples/policies/ for real registries"},
		{"examples/pipeline/", "the signing pipeline (keygen, layout, run, attest, attach, verify) as a script and CI workflow"},
		{"docs/operations.md", "running tollgated on a cluster; deploy/ holds the DaemonSet and the containerd drop-in"},
		{"make check", "every test: lint, unit, fuzz seeds, Python in-toto and cosign interop, real-containerd e2e"},
		{"make bench", "speed: in-process benchmarks and tollgate verify vs in-toto-verify"},
		{rel(d.repo, d.work) + "/", "this run's keys, layout, links, provenance, policy, audit log and logs"},
	} {
		fmt.Fprintf(d.out, "  %-22s %s\n", l[0], l[1])
	}
}

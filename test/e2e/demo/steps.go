//go:build e2e

package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"tollgate.dev/tollgate/test/e2e"
	"tollgate.dev/tollgate/test/tools/testimage"
)

// Names the demo uses.
const (
	signedTag   = "demo/app:1.0"
	unsignedTag = "demo/app:hotfix"
	policyName  = "demo-app"
	builderID   = "https://tollgate.dev/demo/builder"
	podName     = "demo"
)

func (d *demo) startNode() {
	d.header(`Start a loopback OCI registry and a real containerd that requires the "tollgate" NRI plugin`)
	d.env = e2e.Start(d.s, e2e.WithRequiredPlugin())
	d.host = d.env.Registry.Host
	// Runs before the environment's teardown (cleanups run newest first): keep the logs.
	d.s.Cleanup(d.keepLogs)
	ver, _ := exec.Command(d.env.Tools.Containerd, "--version").Output()
	d.say("registry    %s (in memory, OCI 1.1 referrers API)", d.host)
	d.say("containerd  %s", strings.TrimSpace(string(ver)))
	d.say("            root, state and sockets under %s; runc %s", d.env.Dir, d.env.Tools.Runc)
	d.say(`NRI         default_validator.required_plugins = ["tollgate"]: no container is created`)
	d.say(`            unless the tollgate plugin is connected and agrees (fail-closed)`)
}

// keepLogs copies the logs that the environment's teardown deletes into the work dir.
func (d *demo) keepLogs() {
	if d.env == nil {
		return
	}
	_ = os.WriteFile(filepath.Join(d.work, "containerd.log"), []byte(d.env.ContainerdLog()), 0o644)
	if d.plugin != nil {
		_ = os.WriteFile(filepath.Join(d.work, "tollgated.log"), []byte(d.plugin.Log()), 0o644)
	}
}

// pushHotfix pushes the unsigned image: someone bypassing the pipeline.
func (d *demo) pushHotfix() {
	d.header("Meanwhile, someone pushes a hotfix build by hand, bypassing the pipeline")
	var err error
	d.unsigned, err = d.env.PushImage(unsignedTag, testimage.Spec{Program: testimage.Sleeper, Variant: "hotfix"})
	if err != nil {
		d.fail("push %s: %v", unsignedTag, err)
	}
	w := max(len(d.signed.Ref), len(d.unsigned.Ref))
	d.say("%-*s  manifest %s  built and signed by the pipeline", w, d.signed.Ref, shortDigest(d.signed.Digest))
	d.say("%-*s  manifest %s  pushed by hand: no link, no provenance", w, d.unsigned.Ref, shortDigest(d.unsigned.Digest))
}

func (d *demo) dir(name string) string {
	p := filepath.Join(d.work, name)
	if err := os.MkdirAll(p, 0o755); err != nil {
		d.fail("%v", err)
	}
	return p
}

// tollgate runs bin/tollgate in dir, shows the command and its output, and fails the demo
// when it fails. Programs the pipeline runs are found in .cache/e2e-bin.
func (d *demo) tollgate(dir string, args ...string) string {
	d.checkpoint()
	shown := make([]string, len(args))
	for i, a := range args {
		shown[i] = rel(d.repo, a)
		if strings.ContainsAny(a, " \"'") {
			shown[i] = fmt.Sprintf("%q", a)
		}
	}
	line := "$ tollgate " + strings.Join(shown, " ")
	fmt.Fprintf(d.out, "  %s\n", dim(line))
	cmd := exec.CommandContext(d.ctx, filepath.Join(d.bin, "tollgate"), args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "PATH="+filepath.Join(d.repo, ".cache", "e2e-bin")+":"+os.Getenv("PATH"))
	out, err := cmd.CombinedOutput()
	d.s.Logf("(in %s) %s\n%s", dir, line, out)
	fmt.Fprint(d.out, indent(string(out), "    "))
	if err != nil {
		d.fail("tollgate %s: %v", args[0], err)
	}
	return string(out)
}

func (d *demo) signSupplyChain() {
	d.header("The pipeline: build, push and sign demo/app:1.0 with the tollgate CLI (what CI does)")
	p := d.dir("pipeline")
	// The build step's program: builds the image (no Docker needed) and pushes it.
	e2e.BuildBinary(d.s, "./test/tools/testimage/cmd/testimage")
	src, err := os.ReadFile(filepath.Join(d.repo, "test/tools/testimage/programs/sleeper/main.go"))
	if err == nil {
		err = os.MkdirAll(filepath.Join(p, "src"), 0o755)
	}
	if err == nil {
		err = os.WriteFile(filepath.Join(p, "src", "main.go"), src, 0o644)
	}
	if err != nil {
		d.fail("writing the sources: %v", err)
	}
	ref := d.env.Registry.Ref(signedTag)
	build := []string{"testimage", "--program", "sleeper", "--variant", "release-1.0", ref}
	layoutYAML := fmt.Sprintf(`expires: 720h
readme: demo/app is built from src/ by the builder; the image a node runs must be what build pushed
steps:
  - name: build
    functionaries: [builder.pub]
    expected_command: %s
    materials: [ALLOW src/*, DISALLOW *]
    products: [CREATE image, DISALLOW *]
inspections:
  - image: {from: build}   # synthesized by the node from the image it is about to run
`, strings.Join(build, " "))
	if err := os.WriteFile(filepath.Join(p, "layout.yaml"), []byte(layoutYAML), 0o644); err != nil {
		d.fail("%v", err)
	}
	d.say("keys: the layout owner, the build step's functionary, the CI provenance signer")
	d.tollgate(p, "keygen", "owner", "--type", "rsa", "--bits", "3072")
	d.tollgate(p, "keygen", "builder", "--type", "ed25519")
	d.tollgate(p, "keygen", "ci", "--type", "ecdsa")
	d.say(`the layout (layout.yaml): one step, build, by builder; its product "image" must be the image a node runs`)
	d.tollgate(p, "layout", "create", "--from", "layout.yaml", "--key", "owner", "--out", "app.layout")
	d.say("the build step, recorded as a signed link: sources as materials, the pushed image's digest as product")
	out := d.tollgate(p, append([]string{"run", "--step-name", "build", "--key", "builder", "--materials", "src",
		"--image-product", "image=" + ref, "--insecure-registry", d.host, "--out-dir", "links", "--"}, build...)...)
	d.signed = pushedFrom(out, ref)
	if d.signed == nil {
		d.fail("the build step did not print the pushed image (REF DIGEST CONFIG):\n%s", out)
	}
	d.say("SLSA v1 provenance for the image, signed by ci")
	d.tollgate(p, "attest", "--image", d.signed.DigestRef(), "--predicate-type", "slsa-v1", "--key", "ci",
		"--builder-id", builderID, "--source-uri", "git+https://example.com/acme/app@refs/heads/main",
		"--out", "app.slsa.dsse.json")
	d.say("attach the link and the provenance to the image in the registry")
	d.tollgate(p, "attach", "--image", d.signed.Ref, "--insecure-registry", d.host,
		"--link-dir", "links", "--attestation", "app.slsa.dsse.json")
}

// pushedFrom finds testimage's "REF DIGEST CONFIG-DIGEST" line for ref in out.
func pushedFrom(out, ref string) *testimage.Pushed {
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		if len(f) == 3 && f[0] == ref && strings.HasPrefix(f[1], "sha256:") && strings.HasPrefix(f[2], "sha256:") {
			repo := ref[:strings.LastIndex(ref, ":")] // a tag reference: the last ':' starts the tag
			return &testimage.Pushed{Ref: ref, Repository: repo, Digest: f[1], ManifestDigest: f[1], ConfigDigest: f[2]}
		}
	}
	return nil
}

func (d *demo) writePolicy() {
	d.header("Write the node's policy (layouts and keys are node-local, never taken from a registry)")
	p, pol := filepath.Join(d.work, "pipeline"), d.dir("policy")
	for _, f := range []string{"app.layout", "owner.pub", "ci.pub"} {
		b, err := os.ReadFile(filepath.Join(p, f))
		if err == nil {
			err = os.WriteFile(filepath.Join(pol, f), b, 0o644)
		}
		if err != nil {
			d.fail("copying %s into the policy directory: %v", f, err)
		}
	}
	yaml := fmt.Sprintf(`apiVersion: tollgate.dev/v1alpha1
kind: ImagePolicy
metadata:
  name: %s
spec:
  images: ["%s/demo/app"]
  mode: enforce
  layouts:
    - layout: app.layout
      keys: [owner.pub]
  attestations:
    - name: provenance
      predicateType: slsa-v1
      keys: [ci.pub]
      conditions:
        - provenance.builderId == "%s"
---
apiVersion: tollgate.dev/v1alpha1
kind: NodeDefaults
metadata:
  name: node
spec:
  unmatched: deny
  exemptions:
    repositories: ["%s/e2e/pause"]   # the pod sandbox image
`, policyName, d.host, builderID, d.host)
	if err := os.WriteFile(filepath.Join(pol, "demo.yaml"), []byte(yaml), 0o644); err != nil {
		d.fail("%v", err)
	}
	d.say("%s/: demo.yaml, app.layout, owner.pub, ci.pub", rel(d.repo, pol))
	fmt.Fprint(d.out, indent(dim(yaml), "    | "))
	d.say("the same check from a laptop, as the node will make it:")
	d.tollgate(d.work, "verify", "--image", d.signed.Ref, "--policy-dir", "policy", "--insecure-registry", d.host)
}

func (d *demo) startTollgated() {
	d.header("Start tollgated, attached to containerd as NRI plugin 10-tollgate")
	node := d.dir("node")
	d.listen = freeAddr(d)
	args := []string{
		"--nri-socket", d.env.NRISocket,
		"--policy-dir", filepath.Join(d.work, "policy"),
		"--evidence-dir", filepath.Join(node, "evidence"),
		"--cache-dir", filepath.Join(node, "cache"),
		"--listen", d.listen,
		"--audit-log", d.auditPath(),
		"--insecure-registry", d.host,
		"--containerd-socket", d.env.Socket,
		"--containerd-namespace", e2e.CRINamespace,
		"--node-name", "demo-node",
	}
	shown := make([]string, len(args))
	for i, a := range args {
		shown[i] = rel(d.repo, a)
	}
	fmt.Fprintf(d.out, "  %s\n", dim("$ tollgated "+strings.Join(shown, " ")))
	var err error
	d.plugin, err = d.env.StartNRIPlugin("tollgated", filepath.Join(d.bin, "tollgated"), args...)
	if err != nil {
		d.fail("tollgated: %v", err)
	}
	if err := d.waitReady(20 * time.Second); err != nil {
		d.fail("tollgated not ready: %v", err)
	}
	d.say("containerd: plugin connected and synchronized; tollgated /readyz: ok (http://%s)", d.listen)
}

func (d *demo) auditPath() string { return filepath.Join(d.work, "node", "audit.jsonl") }

// freeAddr picks a free loopback port for tollgated's HTTP endpoints.
func freeAddr(d *demo) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		d.fail("%v", err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func (d *demo) waitReady(limit time.Duration) error {
	deadline := time.Now().Add(limit)
	client := &http.Client{Timeout: time.Second}
	last := "no answer"
	for time.Now().Before(deadline) {
		d.checkpoint()
		if d.plugin.Exited() {
			return fmt.Errorf("tollgated exited:\n%s", lastLines(d.plugin.Log(), 20))
		}
		resp, err := client.Get("http://" + d.listen + "/readyz")
		if err == nil {
			body := make([]byte, 512)
			n, _ := resp.Body.Read(body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = fmt.Sprintf("%s: %s", resp.Status, strings.TrimSpace(string(body[:n])))
		} else {
			last = err.Error()
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("/readyz after %s: %s", limit, last)
}

func (d *demo) pullImages() {
	d.header("Pull both images (crictl pull); tollgated pre-verifies each one outside the NRI hook")
	for _, img := range []*testimage.Pushed{d.signed, d.unsigned} {
		fmt.Fprintf(d.out, "  %s\n", dim("$ crictl pull "+img.Ref))
		id, err := d.env.Pull(img.Ref)
		if err != nil {
			d.fail("crictl pull %s: %v", img.Ref, err)
		}
		fmt.Fprintf(d.out, "    Image is up to date for %s\n", id)
	}
	for _, img := range []*testimage.Pushed{d.signed, d.unsigned} {
		rec, err := d.waitAudit("preverify", img.ConfigDigest, 30*time.Second)
		if err != nil {
			d.fail("pre-verification of %s: %v", img.Ref, err)
		}
		d.say("pre-verified %s: %s", img.Ref, summary(rec))
	}
}

func (d *demo) runSigned() {
	d.header("Run a pod and the signed image's container (crictl runp, create, start)")
	fmt.Fprintf(d.out, "  %s\n", dim("$ crictl runp pod.json"))
	pod, err := d.env.TryRunPod(podName, e2e.WithPodNamespace("demo"))
	if err != nil {
		d.fail("crictl runp: %v", err)
	}
	fmt.Fprintf(d.out, "    %s\n", pod.ID)
	d.pod = pod
	fmt.Fprintf(d.out, "  %s\n", dim("$ crictl create --no-pull "+shortID(pod.ID)+" app.json pod.json    # image "+d.signed.Ref))
	id, err := d.env.CreateContainer(pod, "app", d.signed.Ref, e2e.WithArgs("1h"))
	if err != nil {
		var ce *e2e.CommandError
		if errors.As(err, &ce) {
			fmt.Fprint(d.out, indent(strings.TrimSpace(ce.Stderr), "    "))
		}
		d.fail("the signed container was refused: %v", err)
	}
	fmt.Fprintf(d.out, "    %s\n", id)
	fmt.Fprintf(d.out, "  %s\n", dim("$ crictl start "+shortID(id)))
	if err := d.env.StartContainer(id); err != nil {
		d.fail("crictl start: %v", err)
	}
	if err := d.env.WaitContainerState(id, e2e.StateRunning, 30*time.Second); err != nil {
		d.fail("%v", err)
	}
	d.signedID = id
	fmt.Fprintf(d.out, "  %s\n", dim("$ crictl ps --name app"))
	ps, err := d.env.Crictl("ps", "--name", "app")
	if err != nil {
		d.fail("crictl ps: %v", err)
	}
	fmt.Fprint(d.out, indent(ps, "    "))
	if err := d.env.WaitContainerLog(id, "sleeper:", 10*time.Second); err == nil {
		logs, _ := d.env.ContainerLogs(id)
		d.say("container output: %s", strings.TrimSpace(logs))
	}
	if rec, err := d.waitAudit("hook", d.signed.ConfigDigest, 10*time.Second); err == nil {
		d.say("tollgated audit record (%s):", rel(d.repo, d.auditPath()))
		fmt.Fprint(d.out, indent(auditView(rec), "    "))
	} else {
		d.fail("no audit record of the create: %v", err)
	}
}

func (d *demo) createUnsigned() {
	d.header("Try the unsigned image in the same pod (crictl create)")
	fmt.Fprintf(d.out, "  %s\n", dim("$ crictl create --no-pull "+shortID(d.pod.ID)+" hotfix.json pod.json    # image "+d.unsigned.Ref))
	id, err := d.env.CreateContainer(d.pod, "hotfix", d.unsigned.Ref, e2e.WithArgs("1h"))
	if err == nil {
		d.unsignedCreated = true
		d.fail("the unsigned container was created (%s): Tollgate did not block it", shortID(id))
	}
	var ce *e2e.CommandError
	if !errors.As(err, &ce) {
		d.fail("crictl create: %v", err)
	}
	// crictl's last line is its verdict (a klog line with the same error comes before it).
	fmt.Fprintf(d.out, "    %s\n", lastLines(strings.TrimSpace(ce.Stderr), 1))
	fmt.Fprintf(d.out, "    (crictl %v)\n", ce.Err)
	msg := ce.Message()
	if !strings.Contains(msg, "tollgate") || !strings.Contains(msg, "denied") {
		d.fail("the create failed, but not because Tollgate denied it: %s", msg)
	}
	d.blockMsg = msg
	d.say("%s", bold("the block message, as the kubelet reports it (CreateContainerError):"))
	_, reason, ok := strings.Cut(msg, "reason: ")
	if !ok {
		reason = msg
	}
	fmt.Fprintf(d.out, "    %s\n", red(reason))
	if line := d.decisionLogLine(d.unsigned.ConfigDigest); line != "" {
		// The hook served the verdict pre-verification cached, which is logged at debug
		// level; the decision itself was logged when it was made.
		d.say("tollgated decision log line (%s):", rel(d.repo, filepath.Join(d.work, "tollgated.log")))
		fmt.Fprintf(d.out, "    %s\n", line)
	}
	if rec, err := d.waitAudit("hook", d.unsigned.ConfigDigest, 10*time.Second); err == nil {
		d.say("tollgated audit record:")
		fmt.Fprint(d.out, indent(auditView(rec), "    "))
	} else {
		d.fail("no audit record of the denied create: %v", err)
	}
	ctrs, err := d.env.Containers()
	if err != nil {
		d.fail("crictl ps -a: %v", err)
	}
	for _, c := range ctrs {
		if c.Metadata.Name == "hotfix" {
			d.fail("a container %q exists (%s) although its create was refused", c.Metadata.Name, c.State)
		}
	}
	d.say("crictl ps -a: no container \"hotfix\" exists; the signed one is still %s", e2e.StateRunning)
}

func shortID(id string) string {
	if len(id) > 13 {
		return id[:13]
	}
	return id
}

// waitUntil polls f until it reports done, the limit passes or the demo is interrupted.
func (d *demo) waitUntil(limit time.Duration, f func() bool) bool {
	ctx, cancel := context.WithTimeout(d.ctx, limit)
	defer cancel()
	for {
		if f() {
			return true
		}
		select {
		case <-ctx.Done():
			d.checkpoint()
			return false
		case <-time.After(50 * time.Millisecond):
		}
	}
}

package systemd

import (
	"bytes"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/containerd/nri/pkg/api"

	"tollgate.dev/tollgate/test/toolcheck"
)

func here(t *testing.T) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("cannot locate test source")
	}
	return filepath.Dir(file)
}

// standInBinaries writes tiny executables named like the real ones.
func standInBinaries(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, b := range []string{"tollgated", "tollgate"} {
		if err := os.WriteFile(filepath.Join(dir, b), []byte("#!/bin/sh\necho "+b+"\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func install(t *testing.T, args ...string) string {
	t.Helper()
	var out bytes.Buffer
	cmd := exec.Command("bash", append([]string{filepath.Join(here(t), "install.sh")}, args...)...)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("install.sh %v: %v\n%s", args, err, out.String())
	}
	return out.String()
}

// tree lists every path under root with its permission bits.
func tree(t *testing.T, root string) map[string]fs.FileMode {
	t.Helper()
	out := map[string]fs.FileMode{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		out["/"+rel] = info.Mode().Perm()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestInstall(t *testing.T) {
	bin := standInBinaries(t)
	root := t.TempDir()
	// An upgrade from the release that split the CLI: its tollgate-full goes.
	stale := filepath.Join(root, "usr/local/bin/tollgate-full")
	if err := os.MkdirAll(filepath.Dir(stale), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(stale, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	install(t, "--prefix", root, "--bin-dir", bin, "--nri-preregister", "--containerd-dropin")

	got := tree(t, root)
	want := map[string]fs.FileMode{
		"/usr/local/bin/tollgated":                0o755,
		"/usr/local/bin/tollgate":                 0o755,
		"/etc/systemd/system/tollgated.service":   0o644,
		"/etc/default/tollgated":                  0o644,
		"/etc/tollgate":                           0o755,
		"/var/lib/tollgate":                       0o700,
		"/var/lib/tollgate/evidence":              0o700,
		"/var/lib/tollgate/cache":                 0o700,
		"/var/log/tollgate":                       0o750,
		"/opt/nri/plugins/10-tollgate":            0o755,
		"/etc/nri/conf.d/10-tollgate.conf":        0o644,
		"/etc/containerd/conf.d/10-tollgate.toml": 0o644,
	}
	for p, mode := range want {
		if m, ok := got[p]; !ok || m != mode {
			t.Errorf("%s: mode %v present=%v, want %v", p, m, ok, mode)
		}
	}

	if _, ok := got["/usr/local/bin/tollgate-full"]; ok {
		t.Error("a stale tollgate-full was left next to tollgate; the CLI is one binary")
	}

	// Idempotent: a second run changes nothing and keeps an operator's edits.
	env := filepath.Join(root, "etc/default/tollgated")
	if err := os.WriteFile(env, []byte("TOLLGATED_OPTS=--log-level=debug\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := install(t, "--prefix", root, "--bin-dir", bin, "--nri-preregister", "--containerd-dropin")
	if strings.Contains(out, "install -") {
		t.Errorf("second run installed something again:\n%s", out)
	}
	if b, _ := os.ReadFile(env); string(b) != "TOLLGATED_OPTS=--log-level=debug\n" {
		t.Errorf("operator's /etc/default/tollgated overwritten: %q", b)
	}
	if again := tree(t, root); len(again) != len(got) {
		t.Errorf("second run changed the tree: %d paths, then %d", len(got), len(again))
	}

	// A new binary is picked up.
	if err := os.WriteFile(filepath.Join(bin, "tollgated"), []byte("#!/bin/sh\necho v2\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	install(t, "--prefix", root, "--bin-dir", bin)
	if b, _ := os.ReadFile(filepath.Join(root, "usr/local/bin/tollgated")); !strings.Contains(string(b), "v2") {
		t.Error("upgrade did not replace tollgated")
	}
}

func TestInstallDryRunAndErrors(t *testing.T) {
	root := t.TempDir()
	out := install(t, "--prefix", root, "--bin-dir", standInBinaries(t), "--dry-run", "--nri-preregister")
	if len(tree(t, root)) != 1 {
		t.Errorf("--dry-run wrote files: %v", tree(t, root))
	}
	if !strings.Contains(out, "/usr/local/bin/tollgated") || !strings.Contains(out, "10-tollgate") {
		t.Errorf("--dry-run did not say what it would do:\n%s", out)
	}

	cmd := exec.Command("bash", filepath.Join(here(t), "install.sh"), "--prefix", root, "--bin-dir", t.TempDir())
	if b, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(b), "make build") {
		t.Errorf("missing binaries: want a failure that says to run make build, got %v: %s", err, b)
	}
	cmd = exec.Command("bash", filepath.Join(here(t), "install.sh"), "--bogus")
	if err := cmd.Run(); err == nil {
		t.Error("unknown flag accepted")
	}
}

// TestNRIPluginName: NRI derives index and name from the launcher's file name.
func TestNRIPluginName(t *testing.T) {
	idx, name, err := api.ParsePluginName("10-tollgate")
	if err != nil || idx != "10" || name != "tollgate" {
		t.Fatalf("ParsePluginName(10-tollgate) = %q, %q, %v", idx, name, err)
	}
	launcher := filepath.Join(here(t), "nri", "10-tollgate")
	if fi, err := os.Stat(launcher); err != nil || fi.Mode().Perm()&0o111 == 0 {
		t.Fatalf("%s must be executable: %v", launcher, err)
	}
	if out, err := exec.Command("sh", "-n", launcher).CombinedOutput(); err != nil {
		t.Fatalf("sh -n %s: %v\n%s", launcher, err, out)
	}
}

// TestUnitVerify runs systemd-analyze verify on the unit as installed in a temporary root
// (so ExecStart resolves), with the host's own system units for its dependencies. Any
// diagnostic about our unit fails the test, since systemd only warns about unknown keys.
func TestUnitVerify(t *testing.T) {
	analyze := toolcheck.Require(t, "systemd-analyze") // Debian package systemd
	root := t.TempDir()
	install(t, "--prefix", root, "--bin-dir", standInBinaries(t))
	sys := "/usr/lib/systemd/system"
	if _, err := os.Stat(filepath.Join(sys, "sysinit.target")); err != nil {
		toolcheck.Unavailable(t, "no system units in %s to verify against: %v", sys, err)
	}
	if err := os.MkdirAll(filepath.Join(root, "usr/lib/systemd"), 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("cp", "-a", sys, filepath.Join(root, "usr/lib/systemd")+"/").CombinedOutput(); err != nil {
		t.Fatalf("copy system units: %v\n%s", err, out)
	}
	cmd := exec.Command(analyze, "verify", "--root="+root, "/etc/systemd/system/tollgated.service")
	out, err := cmd.CombinedOutput()
	var ours []string
	for _, l := range strings.Split(string(out), "\n") {
		if strings.Contains(l, "tollgated") {
			ours = append(ours, l)
		}
	}
	if err != nil || len(ours) > 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
}

// TestUnitHardening pins the settings docs/operations.md promises.
func TestUnitHardening(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(here(t), "tollgated.service"))
	if err != nil {
		t.Fatal(err)
	}
	unit := string(b)
	for _, want := range []string{
		"After=containerd.service", "Before=kubelet.service", "Restart=on-failure",
		"ProtectSystem=strict", "ReadWritePaths=/var/lib/tollgate /var/log/tollgate -/var/run/nri",
		"ProtectHome=yes", "PrivateTmp=yes", "NoNewPrivileges=yes",
		"RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6", "CapabilityBoundingSet=\n",
	} {
		if !strings.Contains(unit, want) {
			t.Errorf("tollgated.service lacks %q", want)
		}
	}
}

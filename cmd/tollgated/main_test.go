package main

import (
	"bytes"
	"context"
	"flag"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"tollgate.dev/tollgate/daemon"
	"tollgate.dev/tollgate/daemon/admission"
)

func TestHelpNamesEveryFlag(t *testing.T) {
	var out, errb bytes.Buffer
	if code := realMain([]string{"--help"}, &out, &errb); code != exitOK {
		t.Fatalf("--help: exit %d, stderr %q", code, errb.String())
	}
	cfg := daemon.DefaultConfig()
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	cfg.RegisterFlags(fs)
	fs.VisitAll(func(f *flag.Flag) {
		if !strings.Contains(out.String(), "--"+f.Name+" ") && !strings.Contains(out.String(), "--"+f.Name+"\n") {
			t.Errorf("--help does not mention --%s", f.Name)
		}
		if !strings.Contains(out.String(), f.Usage) {
			t.Errorf("--help does not explain --%s", f.Name)
		}
	})
}

func TestWebhookHelpNamesEveryFlag(t *testing.T) {
	var out, errb bytes.Buffer
	if code := realMain([]string{"webhook", "--help"}, &out, &errb); code != exitOK {
		t.Fatalf("webhook --help: exit %d, stderr %q", code, errb.String())
	}
	if !strings.Contains(out.String(), "tollgated webhook [flags]") {
		t.Errorf("webhook --help has no usage line:\n%s", out.String())
	}
	cfg := admission.DefaultConfig()
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	cfg.RegisterFlags(fs)
	fs.VisitAll(func(f *flag.Flag) {
		if !strings.Contains(out.String(), "--"+f.Name+" ") && !strings.Contains(out.String(), "--"+f.Name+"\n") {
			t.Errorf("webhook --help does not mention --%s", f.Name)
		}
		if !strings.Contains(out.String(), f.Usage) {
			t.Errorf("webhook --help does not explain --%s", f.Name)
		}
	})
}

func TestWebhookUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"--no-such-flag"},
		{"--timeout", "20s"}, // at or above the webhook's timeoutSeconds
		{"--platform", "not-a-platform"},
		{"--config", "/nonexistent/webhook.yaml"},
		{"--listen", ":8443", "stray-argument"},
	} {
		var out, errb bytes.Buffer
		if code := realMain(append([]string{"webhook"}, args...), &out, &errb); code != exitUsage {
			t.Errorf("webhook %q: exit %d, want %d (stderr %q)", args, code, exitUsage, errb.String())
		}
		if !strings.Contains(errb.String(), "tollgated webhook:") {
			t.Errorf("webhook %q: stderr %q does not name the command", args, errb.String())
		}
	}
}

// A webhook that cannot start (here: no serving certificate) exits 1 with the cause.
func TestWebhookStartFailure(t *testing.T) {
	dir := t.TempDir()
	var out, errb bytes.Buffer
	code := realMain([]string{"webhook", "--log-level", "error",
		"--tls-cert-file", filepath.Join(dir, "tls.crt"), "--tls-key-file", filepath.Join(dir, "tls.key"),
		"--policy-dir", filepath.Join(dir, "policies"), "--cache-dir", filepath.Join(dir, "cache"),
		"--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0"}, &out, &errb)
	if code != exitFailed || !strings.Contains(errb.String(), "tls.crt") {
		t.Fatalf("webhook without a certificate: exit %d, stderr %q", code, errb.String())
	}
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"--no-such-flag"},
		{"--hook-deadline", "5s"},
		{"--policy-dir", "relative"},
		{"--config", "/nonexistent/tollgated.yaml"},
		{"stray-argument"},
	} {
		var out, errb bytes.Buffer
		if code := realMain(args, &out, &errb); code != exitUsage {
			t.Errorf("%q: exit %d, want %d", args, code, exitUsage)
		}
		if errb.Len() == 0 {
			t.Errorf("%q: no message on stderr", args)
		}
	}
}

// TestRunStopsCleanly starts the daemon with no containerd at all (it keeps retrying NRI,
// serves /healthz and reports not ready) and cancels it, as SIGTERM does.
func TestRunStopsCleanly(t *testing.T) {
	dir := t.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	cfg := daemon.DefaultConfig()
	cfg.NRISocket = filepath.Join(dir, "nri.sock")
	cfg.ContainerdSocket = filepath.Join(dir, "containerd.sock")
	cfg.PolicyDir = filepath.Join(dir, "policies")
	cfg.EvidenceDir = filepath.Join(dir, "evidence")
	cfg.CacheDir = filepath.Join(dir, "cache")
	cfg.AuditLog = filepath.Join(dir, "audit.jsonl")
	cfg.Listen = addr
	cfg.LogLevel = "error"
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, cfg) }()

	var readyCode int
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err == nil {
			readyCode = resp.StatusCode
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz never answered: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if readyCode != http.StatusServiceUnavailable {
		t.Errorf("/readyz without containerd: %d, want 503", readyCode)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run after cancel: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("run did not return after cancel")
	}
}

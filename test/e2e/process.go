//go:build e2e

package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Process is a helper process (an NRI plugin such as tollgated, usually) that the
// environment started and stops at cleanup, before containerd.
type Process struct {
	Name    string
	Cmd     *exec.Cmd
	LogPath string // stdout and stderr
	done    chan struct{}
	err     error
}

// StartProcess starts cmd with stdout and stderr in <Dir>/<name>.log and stops it at
// cleanup. The environment's NRI socket is exported as TOLLGATE_E2E_NRI_SOCKET; most
// plugins need it as a flag too, e.g. tollgated's --nri-socket env.NRISocket.
func (e *Env) StartProcess(name string, cmd *exec.Cmd) (*Process, error) {
	logPath := filepath.Join(e.Dir, name+".log")
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	cmd.Stdout, cmd.Stderr = logf, logf
	if cmd.Env == nil {
		cmd.Env = os.Environ()
	}
	cmd.Env = append(cmd.Env, "TOLLGATE_E2E_NRI_SOCKET="+e.NRISocket)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &Process{Name: name, Cmd: cmd, LogPath: logPath, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	e.procs = append(e.procs, p)
	e.t.Logf("e2e: started %s (pid %d): %s", name, cmd.Process.Pid, strings.Join(cmd.Args, " "))
	return p, nil
}

// StartNRIPlugin starts an NRI plugin binary with args and waits until containerd logs
// that a plugin registered. Pass the socket in args, e.g. "--nri-socket", env.NRISocket.
func (e *Env) StartNRIPlugin(name, path string, args ...string) (*Process, error) {
	before := strings.Count(e.ContainerdLog(), "connected and synchronized")
	p, err := e.StartProcess(name, exec.Command(path, args...))
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(15 * time.Second)
	for strings.Count(e.ContainerdLog(), "connected and synchronized") <= before {
		if p.Exited() || time.Now().After(deadline) {
			_ = p.Kill()
			return nil, fmt.Errorf("NRI plugin %s did not register with containerd (exited=%v):\n%s", name, p.Exited(), tail(p.Log(), 40))
		}
		time.Sleep(50 * time.Millisecond)
	}
	return p, nil
}

// Exited reports whether the process has ended.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Wait waits for the process to end and returns its exit error.
func (p *Process) Wait() error {
	<-p.done
	return p.err
}

// Stop sends SIGTERM, waits up to timeout, then kills. It returns the exit error.
func (p *Process) Stop(timeout time.Duration) error {
	if p.Exited() {
		return p.err
	}
	_ = p.Cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(timeout):
		_ = syscall.Kill(-p.Cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	}
	return p.err
}

// Kill sends SIGKILL to the process group, as a crash would, and waits for it.
func (p *Process) Kill() error {
	if !p.Exited() {
		_ = syscall.Kill(-p.Cmd.Process.Pid, syscall.SIGKILL)
	}
	<-p.done
	return nil
}

// Signal sends sig to the process (e.g. SIGSTOP to make a plugin hang).
func (p *Process) Signal(sig syscall.Signal) error { return p.Cmd.Process.Signal(sig) }

// Log returns the process's output so far.
func (p *Process) Log() string {
	b, _ := os.ReadFile(p.LogPath)
	return string(b)
}

//go:build e2e

package e2e

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
)

// MemSample is what the kernel says about one process's memory, in bytes: resident now
// (VmRSS) and at its peak so far (VmHWM), and the resident part split into anonymous
// memory (heap, stacks: what the process allocated) and file-backed pages (its binary's
// text and data, mapped files), from /proc/PID/status.
type MemSample struct {
	RSS, HWM, Anon, File, Shmem int64
}

// ReadMem reads pid's memory figures from /proc.
func ReadMem(pid int) (MemSample, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return MemSample{}, err
	}
	defer f.Close()
	var m MemSample
	fields := map[string]*int64{"VmRSS:": &m.RSS, "VmHWM:": &m.HWM, "RssAnon:": &m.Anon, "RssFile:": &m.File, "RssShmem:": &m.Shmem}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		w := strings.Fields(sc.Text())
		if len(w) < 2 {
			continue
		}
		if p := fields[w[0]]; p != nil {
			kb, err := strconv.ParseInt(w[1], 10, 64)
			if err != nil {
				return MemSample{}, fmt.Errorf("/proc/%d/status: %s: %w", pid, w[0], err)
			}
			*p = kb << 10
		}
	}
	if m.RSS == 0 {
		return MemSample{}, fmt.Errorf("/proc/%d/status: no VmRSS", pid)
	}
	return m, sc.Err()
}

// ScrapeMetrics reads a Prometheus text exposition from url and returns every sample by
// its series (name and labels as written, e.g. `tollgate_decisions_total{result="verified",...}`).
func ScrapeMetrics(url string) (map[string]float64, error) {
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, err
	}
	out := map[string]float64{}
	for _, l := range strings.Split(string(body), "\n") {
		if l == "" || l[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(l, ' ')
		if i < 0 {
			continue
		}
		if v, err := strconv.ParseFloat(l[i+1:], 64); err == nil {
			out[l[:i]] = v
		}
	}
	return out, nil
}

// SumMetric adds every series of the metric name (any labels).
func SumMetric(m map[string]float64, name string) float64 {
	var s float64
	for k, v := range m {
		if k == name || strings.HasPrefix(k, name+"{") {
			s += v
		}
	}
	return s
}

// MiB formats bytes as mebibytes.
func MiB(b float64) string { return fmt.Sprintf("%.1f", b/(1<<20)) }

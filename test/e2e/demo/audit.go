//go:build e2e

package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"time"
)

// auditRecord is the part of tollgated's audit record (daemon/audit.Record) the demo reads.
type auditRecord struct {
	Path         string  `json:"path"`
	ConfigDigest string  `json:"config_digest"`
	Policy       string  `json:"policy"`
	Outcome      string  `json:"outcome"`
	Allowed      bool    `json:"allowed"`
	Message      string  `json:"message"`
	Cached       bool    `json:"cached"`
	LatencyMS    float64 `json:"latency_ms"`
}

// waitAudit waits for the newest audit record of path ("hook", "preverify") about the
// image with configDigest, and returns it as written.
func (d *demo) waitAudit(path, configDigest string, limit time.Duration) (string, error) {
	var found string
	ok := d.waitUntil(limit, func() bool {
		f, err := os.Open(d.auditPath())
		if err != nil {
			return false
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 64<<10), 4<<20)
		for sc.Scan() {
			var r auditRecord
			if json.Unmarshal(sc.Bytes(), &r) == nil && r.Path == path && r.ConfigDigest == configDigest {
				found = sc.Text()
			}
		}
		return found != ""
	})
	if !ok {
		return "", fmt.Errorf("no %q record for %s in %s after %s", path, shortDigest(configDigest), d.auditPath(), limit)
	}
	return found, nil
}

// summary is one audit record in a few words.
func summary(line string) string {
	var r auditRecord
	if err := json.Unmarshal([]byte(line), &r); err != nil {
		return line
	}
	if r.Allowed {
		return fmt.Sprintf("%s, policy %q (%.1f ms)", r.Outcome, r.Policy, r.LatencyMS)
	}
	return fmt.Sprintf("%s: %s", r.Outcome, r.Message)
}

// auditView is an audit record without the fields a reader of the demo does not need.
func auditView(line string) string {
	return jsonLine(line, "time", "path", "namespace", "pod", "container", "image", "config_digest",
		"policy", "mode", "outcome", "allowed", "reasons", "message", "cached", "latency_ms")
}

// decisionLogLine is tollgated's newest "decision" log line about configDigest, abridged.
func (d *demo) decisionLogLine(configDigest string) string {
	if d.plugin == nil {
		return ""
	}
	var last string
	for _, l := range strings.Split(d.plugin.Log(), "\n") {
		if strings.Contains(l, `"decision"`) && strings.Contains(l, configDigest) {
			last = l
		}
	}
	if last == "" {
		return ""
	}
	return jsonLine(last, "level", "time", "logger", "msg", "path", "outcome", "allowed", "mode", "policy",
		"image", "namespace", "pod", "container", "cached", "message")
}

package deploy

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

// briefMetrics parses the metric list in BRIEF.md: name -> its labels.
func briefMetrics(t *testing.T) map[string][]string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot(t), "docs", "dev", "BRIEF.md"))
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	start := strings.Index(s, "- Metrics:")
	end := strings.Index(s[start:], "\n- Make targets")
	if start < 0 || end < 0 {
		t.Fatal("BRIEF.md: metrics section not found")
	}
	out := map[string][]string{}
	re := regexp.MustCompile("`([a-z_]+)(?:\\{([^}]*)\\})?`")
	for _, m := range re.FindAllStringSubmatch(s[start:start+end], -1) {
		var lbls []string
		for _, l := range strings.Split(m[2], ",") {
			if name, _, _ := strings.Cut(strings.TrimSpace(l), "="); name != "" {
				lbls = append(lbls, name)
			}
		}
		out[m[1]] = lbls
	}
	if len(out) < 14 {
		t.Fatalf("BRIEF.md: parsed only %d metrics: %v", len(out), out)
	}
	return out
}

var (
	metricRef = regexp.MustCompile(`\b((?:intoto|tollgate)_[a-z0-9_]+)(\{[^}]*\})?`)
	byClause  = regexp.MustCompile(`\bby \(([^)]*)\)`)
	matcher   = regexp.MustCompile(`([a-z_]+)\s*(?:=~|!~|!=|=)`)
)

// checkExpr fails when a PromQL expression names a Tollgate metric or label that BRIEF.md
// does not define. node comes from the ServiceMonitor's relabeling, le from histograms.
func checkExpr(t *testing.T, where, expr string, metrics map[string][]string) []string {
	t.Helper()
	allowed := map[string]bool{"node": true, "le": true}
	for _, ls := range metrics {
		for _, l := range ls {
			allowed[l] = true
		}
	}
	var used []string
	for _, m := range metricRef.FindAllStringSubmatch(expr, -1) {
		name := m[1]
		if _, ok := metrics[name]; !ok {
			base := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(name, "_bucket"), "_sum"), "_count")
			if _, ok := metrics[base]; !ok || !strings.HasSuffix(base, "_seconds") {
				t.Errorf("%s: metric %s is not in BRIEF.md", where, name)
			}
			name = base
		}
		used = append(used, name)
		for _, lm := range matcher.FindAllStringSubmatch(m[2], -1) {
			if lm[1] != "node" && !contains(metrics[name], lm[1]) {
				t.Errorf("%s: %s has no label %q in BRIEF.md", where, name, lm[1])
			}
		}
	}
	for _, m := range byClause.FindAllStringSubmatch(expr, -1) {
		for _, l := range strings.Split(m[1], ",") {
			if l = strings.TrimSpace(l); !allowed[l] {
				t.Errorf("%s: grouping by unknown label %q", where, l)
			}
		}
	}
	return used
}

// TestAlerts: the required alerts exist, use only BRIEF.md's metrics and labels, and link
// to a runbook section that exists.
func TestAlerts(t *testing.T) {
	r := renderKustomize(t, "monitoring")
	rule := get[*prometheusRule](t, r, "PrometheusRule", ns, "tollgate")
	metrics := briefMetrics(t)
	runbook, err := os.ReadFile(filepath.Join(repoRoot(t), "docs", "operations.md"))
	if err != nil {
		t.Fatal(err)
	}
	anchors := markdownAnchors(string(runbook))
	alerts := map[string]string{}
	for _, g := range rule.Spec.Groups {
		for _, a := range g.Rules {
			if a.Alert == "" || a.Expr == "" {
				t.Errorf("group %s: rule without alert name or expression: %+v", g.Name, a)
				continue
			}
			alerts[a.Alert] = a.Expr
			used := checkExpr(t, "alert "+a.Alert, a.Expr, metrics)
			if len(used) == 0 && !strings.HasPrefix(a.Expr, "up{") {
				t.Errorf("alert %s uses no Tollgate metric", a.Alert)
			}
			if s := a.Labels["severity"]; s != "warning" && s != "critical" {
				t.Errorf("alert %s: severity %q", a.Alert, s)
			}
			if a.Annotations["summary"] == "" {
				t.Errorf("alert %s: no summary", a.Alert)
			}
			_, anchor, _ := strings.Cut(a.Annotations["runbook_url"], "docs/operations.md#")
			if !anchors[anchor] {
				t.Errorf("alert %s: runbook_url %q: no such section in docs/operations.md", a.Alert, a.Annotations["runbook_url"])
			}
		}
	}
	for name, mustUse := range map[string]string{
		"AttestationVerificationFailure":  "intoto_verification_failures_total",
		"MissingAttestations":             "intoto_missing_attestations_total",
		"TollgateDenySpike":               `tollgate_decisions_total{result="denied"}`,
		"TollgatePluginDisconnected":      "tollgate_nri_connected",
		"TollgatePolicyReloadFailing":     "tollgate_policy_reload_errors_total",
		"TollgateLayoutExpiringSoon":      "tollgate_layout_expiry_timestamp_seconds",
		"TollgateTrustedRootExpiringSoon": "tollgate_trusted_root_remaining_seconds",
		"TollgateDecisionLatencyHigh":     `tollgate_decision_duration_seconds_bucket{path="hook"}`,
	} {
		if expr, ok := alerts[name]; !ok || !strings.Contains(expr, mustUse) {
			t.Errorf("alert %s: want an expression over %s, have %q", name, mustUse, expr)
		}
	}
	if !strings.Contains(alerts["TollgateLayoutExpiringSoon"], "14 * 86400") {
		t.Errorf("layout expiry alert must fire 14 days ahead: %s", alerts["TollgateLayoutExpiringSoon"])
	}
	if !strings.Contains(alerts["TollgatePluginDisconnected"], "== 0") {
		t.Errorf("plugin alert: %s", alerts["TollgatePluginDisconnected"])
	}

	sm := get[*serviceMonitor](t, r, "ServiceMonitor", ns, "tollgate")
	if len(sm.Spec.Endpoints) != 1 || sm.Spec.Endpoints[0].Port != metricsPortStr || sm.Spec.Endpoints[0].Path != "/metrics" {
		t.Errorf("ServiceMonitor endpoints %+v", sm.Spec.Endpoints)
	}
	if rl := sm.Spec.Endpoints[0].Relabelings; len(rl) == 0 || rl[0].TargetLabel != "node" {
		t.Errorf("ServiceMonitor must label series with node: %+v", rl)
	}
}

// markdownAnchors returns GitHub-style anchors of every heading.
func markdownAnchors(md string) map[string]bool {
	out := map[string]bool{}
	drop := regexp.MustCompile(`[^a-z0-9 _-]`)
	for _, line := range strings.Split(md, "\n") {
		if !strings.HasPrefix(line, "#") {
			continue
		}
		h := strings.ToLower(strings.TrimSpace(strings.TrimLeft(line, "#")))
		out[strings.ReplaceAll(drop.ReplaceAllString(h, ""), " ", "-")] = true
	}
	return out
}

// TestDashboard: the Grafana dashboard is valid JSON, uses only BRIEF.md's metrics, and
// covers what an operator looks at first.
func TestDashboard(t *testing.T) {
	r := renderKustomize(t, "monitoring")
	cm := get[*corev1.ConfigMap](t, r, "ConfigMap", ns, "tollgate-dashboard")
	if cm.Labels["grafana_dashboard"] != "1" {
		t.Error("dashboard ConfigMap lacks the grafana_dashboard label the Grafana sidecar looks for")
	}
	var dash struct {
		Title  string `json:"title"`
		UID    string `json:"uid"`
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal([]byte(cm.Data["tollgate-dashboard.json"]), &dash); err != nil {
		t.Fatalf("dashboard JSON: %v", err)
	}
	metrics := briefMetrics(t)
	var all strings.Builder
	for _, p := range dash.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			checkExpr(t, "panel "+p.Title, tg.Expr, metrics)
			all.WriteString(tg.Expr + "\n")
		}
	}
	for _, want := range []string{
		"sum by (node, result) (rate(tollgate_decisions_total",
		"histogram_quantile(0.5, sum by (path, le) (rate(tollgate_decision_duration_seconds_bucket",
		"histogram_quantile(0.99, sum by (path, le) (rate(tollgate_decision_duration_seconds_bucket",
		"tollgate_cache_hits_total", "tollgate_cache_misses_total", "tollgate_cache_entries",
		"tollgate_nri_connected", "tollgate_policy_generation",
	} {
		if !strings.Contains(all.String(), want) {
			t.Errorf("dashboard has no panel querying %q", want)
		}
	}
}

// TestMetricsDocumented: docs/metrics.md describes every metric BRIEF.md defines, with its labels.
func TestMetricsDocumented(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join(repoRoot(t), "docs", "metrics.md"))
	if err != nil {
		t.Fatal(err)
	}
	for name, lbls := range briefMetrics(t) {
		if !strings.Contains(string(doc), "`"+name+"`") {
			t.Errorf("docs/metrics.md does not describe %s", name)
		}
		for _, l := range lbls {
			if !strings.Contains(string(doc), "`"+l+"`") {
				t.Errorf("docs/metrics.md does not describe label %s of %s", l, name)
			}
		}
	}
}

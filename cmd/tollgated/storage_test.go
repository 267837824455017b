package main

import (
	"os"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"tollgate.dev/tollgate/daemon/metrics"
)

// Issue 12, item 6: a deleted disk cache, or an evidence directory that is a regular file,
// is reported once in the log, in tollgate_evidence_storage_fault and in /readyz, and the
// report clears when the directory is usable again.
func TestStorageFaultsReportedOnce(t *testing.T) {
	cfg := testConfig(t)
	core, logs := observer.New(zap.InfoLevel)
	n, err := newNode(cfg, zap.New(core), nodeParts{})
	if err != nil {
		t.Fatal(err)
	}
	defer n.close()
	must(t, os.MkdirAll(n.cache.Root(), 0o700))
	n.health.SetNRIConnected(true)
	n.store.Reload()
	n.storage.check()
	if ok, body := n.storage.Status(); !ok {
		t.Fatalf("usable stores reported: %s", body)
	}

	must(t, os.RemoveAll(cfg.CacheDir))
	must(t, os.WriteFile(cfg.EvidenceDir, []byte("not a directory"), 0o600))
	for range 3 {
		n.storage.check()
	}
	ok, body := n.health.Ready()
	if ok {
		t.Fatal("/readyz ready with the disk cache deleted and the evidence directory a file")
	}
	for _, want := range []string{"disk_cache", "does not exist", "evidence_dir", "is not a directory"} {
		if !strings.Contains(body, want) {
			t.Errorf("/readyz body lacks %q:\n%s", want, body)
		}
	}
	if n := logs.FilterMessage("evidence store unusable").Len(); n != 2 {
		t.Errorf("%d log lines for two faults seen three times, want 2", n)
	}
	for _, s := range []string{"evidence_dir", "disk_cache"} {
		if v := gaugeValue(t, n.metrics, `tollgate_evidence_storage_fault{store="`+s+`"}`); v != 1 {
			t.Errorf("tollgate_evidence_storage_fault{store=%q} = %v, want 1", s, v)
		}
	}

	must(t, os.Remove(cfg.EvidenceDir))
	must(t, os.MkdirAll(n.cache.Root(), 0o700))
	n.storage.check()
	if ok, body := n.storage.Status(); !ok {
		t.Errorf("after repair: %s", body)
	}
	if n := logs.FilterMessage("evidence store usable again").Len(); n != 2 {
		t.Errorf("%d recovery log lines, want 2", n)
	}
	if v := gaugeValue(t, n.metrics, `tollgate_evidence_storage_fault{store="disk_cache"}`); v != 0 {
		t.Errorf("fault gauge after repair = %v", v)
	}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// gaugeValue reads one series from m's registry.
func gaugeValue(t testing.TB, m *metrics.Metrics, series string) float64 {
	t.Helper()
	mfs, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, mm := range mf.GetMetric() {
			name := mf.GetName()
			if len(mm.GetLabel()) > 0 {
				var ls []string
				for _, l := range mm.GetLabel() {
					ls = append(ls, l.GetName()+`="`+l.GetValue()+`"`)
				}
				name += "{" + strings.Join(ls, ",") + "}"
			}
			if name == series && mm.GetGauge() != nil {
				return mm.GetGauge().GetValue()
			}
		}
	}
	return -1
}

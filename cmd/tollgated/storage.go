package main

import (
	"context"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"tollgate.dev/tollgate/daemon/metrics"
)

// storageCheckEvery is how often the evidence stores' directories are checked.
const storageCheckEvery = 10 * time.Second

// rootChecker is an evidence store whose directory can be checked (*evidence.Dir and
// *evidence.Cache).
type rootChecker interface {
	RootFault(required bool) error
}

// store is one evidence store the node watches.
type store struct {
	label    string // the metric's store label
	src      rootChecker
	required bool
}

// storage reports evidence stores whose directory became unusable (the disk cache
// deleted, an evidence directory replaced by a regular file): reads take both for "no
// evidence", so without it they pass unnoticed. Each change is logged once, sets
// tollgate_evidence_storage_fault, and shows in /readyz.
type storage struct {
	log     *zap.Logger
	metrics *metrics.Metrics
	stores  []store

	mu     sync.Mutex
	faults map[string]string // label -> the fault, while there is one
}

func newStorage(log *zap.Logger, m *metrics.Metrics, stores ...store) *storage {
	s := &storage{log: log, metrics: m, stores: stores, faults: map[string]string{}}
	for _, st := range stores {
		m.StorageFault(st.label, false)
	}
	return s
}

// check looks at every store once, reporting what changed.
func (s *storage) check() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, st := range s.stores {
		err := st.src.RootFault(st.required)
		was, had := s.faults[st.label]
		switch {
		case err != nil && (!had || was != err.Error()):
			s.faults[st.label] = err.Error()
			s.metrics.StorageFault(st.label, true)
			s.log.Error("evidence store unusable", zap.String("store", st.label), zap.Error(err))
		case err == nil && had:
			delete(s.faults, st.label)
			s.metrics.StorageFault(st.label, false)
			s.log.Info("evidence store usable again", zap.String("store", st.label))
		}
	}
}

// run checks now and every storageCheckEvery until ctx is done.
func (s *storage) run(ctx context.Context) {
	t := time.NewTicker(storageCheckEvery)
	defer t.Stop()
	for {
		s.check()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Status implements metrics.StatusReporter for /readyz.
func (s *storage) Status() (bool, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.faults) == 0 {
		return true, "evidence stores: usable"
	}
	var lines []string
	for _, st := range s.stores {
		if f, ok := s.faults[st.label]; ok {
			lines = append(lines, "evidence store "+st.label+": "+f)
		}
	}
	return false, strings.Join(lines, "\n")
}

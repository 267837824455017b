package policystore

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"
	"go.uber.org/zap"
)

// WatchOptions tune Watch.
type WatchOptions struct {
	// Debounce waits for a burst of file events to settle before reloading (default 500ms):
	// a ConfigMap update or an editor's save is several events.
	Debounce time.Duration
	// Poll reloads on a timer as well (default 30s), for file systems and mounts where
	// notifications do not arrive. Reload is cheap when nothing changed.
	Poll time.Duration
}

// Watch reloads the store whenever the policy directory changes, until ctx is done. It
// watches the directory and its subdirectories with fsnotify (a ConfigMap update replaces
// the "..data" symbolic link, an event in the directory itself) and polls as a fallback;
// it works, by polling alone, when fsnotify is unavailable or the directory is missing.
func (s *Store) Watch(ctx context.Context, o WatchOptions) {
	if o.Debounce <= 0 {
		o.Debounce = 500 * time.Millisecond
	}
	if o.Poll <= 0 {
		o.Poll = 30 * time.Second
	}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		s.log.Warn("policy directory: file notifications unavailable, polling only", zap.Error(err))
	} else {
		defer w.Close()
		s.addWatches(w)
	}
	var events <-chan fsnotify.Event
	var errs <-chan error
	if w != nil {
		events, errs = w.Events, w.Errors
	}
	poll := time.NewTicker(o.Poll)
	defer poll.Stop()
	debounce := time.NewTimer(time.Hour)
	debounce.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-events:
			if !ok {
				events = nil
				continue
			}
			s.log.Debug("policy directory event", zap.String("event", ev.String()))
			debounce.Reset(o.Debounce)
		case err, ok := <-errs:
			if !ok {
				errs = nil
				continue
			}
			s.log.Warn("policy directory watch error; polling continues", zap.Error(err))
		case <-debounce.C:
			s.Reload()
			if w != nil {
				s.addWatches(w) // new subdirectories, or the directory itself reappearing
			}
		case <-poll.C:
			s.Reload()
			if w != nil {
				s.addWatches(w)
			}
		}
	}
}

// addWatches watches the directory and every non-hidden subdirectory (adding a watch twice
// is harmless). Hidden entries such as "..2024_01_01" are ConfigMap internals: their swap
// shows as an event on "..data" in the directory itself.
func (s *Store) addWatches(w *fsnotify.Watcher) {
	_ = w.Add(s.dir)
	depth0 := strings.Count(filepath.Clean(s.dir), string(filepath.Separator))
	_ = filepath.WalkDir(s.dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || !d.IsDir() || p == s.dir {
			return nil
		}
		if strings.HasPrefix(d.Name(), ".") || strings.Count(p, string(filepath.Separator))-depth0 > s.limits.MaxDepth {
			return filepath.SkipDir
		}
		_ = w.Add(p)
		return nil
	})
}

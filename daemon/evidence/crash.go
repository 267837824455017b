package evidence

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Evidence that crashes the daemon while it is evaluated (an OOM kill, a runtime fault)
// would crash it again at every start, since start-up pre-verifies every image. So each
// evaluation of cached evidence is marked on disk while it runs: a marker
// <root>/.evaluating-<key> names the repository and digests, written and synced before the
// evaluation, removed after. A marker found at start-up means the daemon died evaluating
// that evidence: RecoverCrashed moves the entries aside into <root>/.crashed-<key>/ (with
// the marker), and the image is refused until an operator removes that directory.
//
// Not fetched again on its own: a hostile referrer would come back with the fetch and take
// the daemon down again on every node that pulls the image. Removing the directory (after
// looking at what is in it) lets the next decision fetch and evaluate it again.

// maxCrashMarkers bounds the markers read at start-up; there is one per evaluation running
// (the gate runs two at once), so more are not the daemon's.
const maxCrashMarkers = 64

// crashMarker is what a marker file holds.
type crashMarker struct {
	Repository string   `json:"repository"`
	Digests    []string `json:"digests"`
}

// Crash is one evidence set whose evaluation the daemon did not survive.
type Crash struct {
	Repository string
	Digests    []string
	Where      string // the directory it was moved to
}

func crashKey(repo string, digests []string) string {
	ds := slices.Clone(digests)
	slices.Sort(ds)
	h := sha256.Sum256([]byte(repo + "\x00" + strings.Join(ds, ",")))
	return hex.EncodeToString(h[:16])
}

// Evaluating marks the evidence of repo for digests as under evaluation until done is
// called. An error (the marker could not be written and synced) means the evaluation must
// not run: a crash in it would go unrecorded.
func (c *Cache) Evaluating(repo string, digests []string) (done func(), err error) {
	b, err := json.Marshal(crashMarker{Repository: repo, Digests: digests})
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(c.root, 0o700); err != nil {
		return nil, fmt.Errorf("disk cache: %w", err)
	}
	p := filepath.Join(c.root, ".evaluating-"+crashKey(repo, digests))
	os.Remove(p) // one left by an evaluation of the same set that is not running any more
	if err := writeFileSync(p, b); err != nil {
		return nil, fmt.Errorf("disk cache: marking the evaluation of %s: %w", repo, err)
	}
	syncDir(c.root)
	return func() { os.Remove(p) }, nil
}

// RecoverCrashed quarantines the evidence of every evaluation that a previous run of the
// daemon did not finish (see Evaluating), and returns them, for the start-up log. Each is
// counted in Quarantined.
func (c *Cache) RecoverCrashed() ([]Crash, error) {
	ents, err := os.ReadDir(c.root)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("disk cache: %w", err)
	}
	var out []Crash
	for _, e := range ents {
		key, ok := strings.CutPrefix(e.Name(), ".evaluating-")
		if !ok || len(out) == maxCrashMarkers {
			continue
		}
		marker := filepath.Join(c.root, e.Name())
		b, err := os.ReadFile(marker)
		var m crashMarker
		if err != nil || len(b) > 64<<10 || json.Unmarshal(b, &m) != nil || crashKey(m.Repository, m.Digests) != key {
			os.Remove(marker) // torn or foreign: no evidence set to name
			continue
		}
		out = append(out, c.quarantineCrashed(key, marker, &m))
	}
	return out, nil
}

// quarantineCrashed moves the entries m names, and the marker, into .crashed-<key>/.
func (c *Cache) quarantineCrashed(key, marker string, m *crashMarker) Crash {
	to := filepath.Join(c.root, ".crashed-"+key)
	cr := Crash{Repository: m.Repository, Digests: m.Digests, Where: to}
	if err := os.MkdirAll(to, 0o700); err != nil {
		cr.Where = fmt.Sprintf("%s (could not be made: %v)", to, err)
	}
	for _, dg := range m.Digests {
		rel, err := digestPath(dg)
		if err != nil {
			continue
		}
		os.Rename(filepath.Join(c.root, repoDir(m.Repository), filepath.FromSlash(rel)), filepath.Join(to, strings.ReplaceAll(dg, ":", "-")))
	}
	os.Rename(marker, filepath.Join(to, "marker.json"))
	syncDir(c.root)
	c.quarantined.Add(1)
	return cr
}

// CrashQuarantined returns where the evidence of repo for digests was moved when a
// previous run of the daemon died evaluating it, or "" when it was not (or an operator has
// removed it since).
func (c *Cache) CrashQuarantined(repo string, digests []string) string {
	p := filepath.Join(c.root, ".crashed-"+crashKey(repo, digests))
	if _, err := os.Stat(p); err != nil {
		return ""
	}
	return p
}

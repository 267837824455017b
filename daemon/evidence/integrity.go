package evidence

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"tollgate.dev/tollgate/policy"
)

// sumsFile records, beside a disk cache entry's files, the SHA-256 of each file as it was
// fetched. A hidden name: Dir never reads it as evidence.
const sumsFile = ".sums"

// ErrDamaged says a disk cache entry no longer holds what was fetched (a truncated or
// altered file, one missing or added). It is an infrastructure fault, never a verdict: the
// entry has been moved aside, and a fetch replaces it.
var ErrDamaged = errors.New("disk cache entry damaged")

// writeSums writes dir's sums file for files.
func writeSums(dir string, files map[string][]byte) error {
	var b bytes.Buffer
	for _, n := range slices.Sorted(maps.Keys(files)) {
		sum := sha256.Sum256(files[n])
		fmt.Fprintf(&b, "%s  %s\n", hex.EncodeToString(sum[:]), n)
	}
	return writeFileSync(filepath.Join(dir, sumsFile), b.Bytes())
}

// checkSums compares what was read from an entry with its sums file. An entry without one
// (written by an earlier version) is taken as it is.
func checkSums(dir string, files map[string][]byte) error {
	data, err := os.ReadFile(filepath.Join(dir, sumsFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("%w: read %s: %w", ErrDamaged, sumsFile, err)
	}
	want := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		sum, name, ok := strings.Cut(sc.Text(), "  ")
		if !ok || len(sum) != 64 {
			return fmt.Errorf("%w: its %s file is unreadable", ErrDamaged, sumsFile)
		}
		want[name] = sum
	}
	for name, b := range files {
		sum := sha256.Sum256(b)
		w, ok := want[name]
		switch {
		case !ok:
			return fmt.Errorf("%w: %s was not fetched", ErrDamaged, name)
		case w != hex.EncodeToString(sum[:]):
			return fmt.Errorf("%w: %s differs from what was fetched", ErrDamaged, name)
		}
	}
	if len(want) != len(files) {
		return fmt.Errorf("%w: %d of its %d fetched files are missing", ErrDamaged, len(want)-len(files), len(want))
	}
	return nil
}

// Load implements Source: the evidence fetched through repo for digests. No repository
// means nothing was ever fetched for the image: no evidence. An entry that no longer holds
// what was fetched is moved aside (quarantined, counted) and reported as ErrDamaged.
func (c *Cache) Load(ctx context.Context, repo string, digests []string) (policy.Evidence, error) {
	if repo == "" {
		return policy.Evidence{}, nil
	}
	tree := filepath.Join(c.root, repoDir(repo))
	return c.loadTreeChecked(ctx, tree, digests, func(dir string, files map[string][]byte) error {
		err := checkSums(dir, files)
		if err == nil {
			return nil
		}
		return fmt.Errorf("%w; %s", err, c.quarantine(dir, repoDir(repo)))
	})
}

// quarantine moves a damaged entry aside, for an operator to look at, and says where. The
// janitor removes quarantined entries after a day.
func (c *Cache) quarantine(dir, rd string) string {
	c.quarantined.Add(1)
	to := filepath.Join(c.root, fmt.Sprintf(".quarantine-%d-%s-%s", time.Now().UnixNano(), rd[:16], filepath.Base(dir)))
	if err := os.Rename(dir, to); err != nil {
		return fmt.Sprintf("moving it aside failed (%v); it is fetched again", err)
	}
	return "moved aside to " + to + "; it is fetched again"
}

// Quarantined is the number of damaged entries moved aside since the cache was opened.
func (c *Cache) Quarantined() uint64 { return c.quarantined.Load() }

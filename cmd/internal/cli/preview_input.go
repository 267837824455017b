package cli

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"

	"tollgate.dev/tollgate/policy"
)

// Bounds of an --images file (and of the images a preview decides).
const (
	maxImageListBytes = 1 << 20
	maxImageListRefs  = 10_000
)

// parseImageList reads an --images file: one image reference per line; blank lines and
// lines starting with # are ignored, and so is space around a reference. Anything else on
// a line, or a line that is not a reference, is an error naming the line.
func parseImageList(data []byte) ([]string, error) {
	if len(data) > maxImageListBytes {
		return nil, fmt.Errorf("%d bytes, over the limit of %d", len(data), maxImageListBytes)
	}
	var refs []string
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), maxImageListBytes)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if strings.ContainsAny(line, " \t") {
			return nil, fmt.Errorf("line %d: %q: one image reference per line (a comment starts its own line with #)", n, line)
		}
		if _, err := name.ParseReference(line); err != nil {
			return nil, fmt.Errorf("line %d: %q is not an image reference: %v", n, line, err)
		}
		if len(refs) == maxImageListRefs {
			return nil, fmt.Errorf("line %d: more than %d image references", n, maxImageListRefs)
		}
		refs = append(refs, line)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(refs) == 0 {
		return nil, fmt.Errorf("no image references")
	}
	return refs, nil
}

// readImageList reads and parses the --images file ("-": standard input).
func readImageList(e *env, file string) ([]string, error) {
	var data []byte
	var err error
	if file == "-" {
		data, err = io.ReadAll(io.LimitReader(e.stdin, maxImageListBytes+1))
	} else {
		var f *os.File
		if f, err = os.Open(file); err == nil {
			data, err = io.ReadAll(io.LimitReader(f, maxImageListBytes+1))
			f.Close()
		}
	}
	if err != nil {
		return nil, inputErr(err, "--images")
	}
	refs, err := parseImageList(data)
	if err != nil {
		return nil, usage("--images %s: %v", file, err)
	}
	return refs, nil
}

// fromList resolves each reference of the --images file at its registry, as `tollgate
// verify --image` does. A reference the registry cannot resolve is kept, with its error:
// the preview reports it and exits 1.
func (p *previewer) fromList(ctx context.Context, e *env, f *previewFlags) ([]previewTarget, error) {
	refs, err := readImageList(e, f.images)
	if err != nil {
		return nil, err
	}
	var list targetList
	for _, ref := range refs {
		img, _, err := resolveImage(ctx, p.registry, ref, f.platform)
		if err != nil {
			list.targets = append(list.targets, previewTarget{image: policy.Image{Ref: ref}, err: err})
			continue
		}
		list.add(img, "")
	}
	return list.targets, nil
}

// targetList collects images, each content once (config, repository and digests), with
// the containers that run it.
type targetList struct {
	targets []previewTarget
	index   map[string]int
}

func (l *targetList) add(img policy.Image, container string) {
	k := img.ConfigDigest + "|" + img.Repository + "|" + strings.Join(img.Digests, ",")
	if l.index == nil {
		l.index = map[string]int{}
	}
	i, ok := l.index[k]
	if !ok {
		i = len(l.targets)
		l.index[k] = i
		l.targets = append(l.targets, previewTarget{image: img})
	}
	if container != "" {
		l.targets[i].containers = append(l.targets[i].containers, container)
	}
}

// Package input reads what a tollgate command is given: files of bounded size, public
// keys, and Python in-toto's multi-value flags.
package input

import (
	"fmt"
	"io"
	"os"
	"strings"

	"tollgate.dev/tollgate/cmd/internal/exit"
	"tollgate.dev/tollgate/policy/keys"
)

// Bounds on the files a command reads: keys are a few KiB, links and layouts can hold
// 100,000 artifacts.
const (
	MaxKeyFile      = 256 << 10
	MaxDocumentFile = 64 << 20
)

// File reads a file of at most limit bytes, naming it in every error.
func File(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if st.IsDir() {
		return nil, fmt.Errorf("%s is a directory", path)
	}
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%s is larger than the limit of %d bytes", path, limit)
	}
	return data, nil
}

// PublicKey reads a public key file (PEM or securesystemslib JSON).
func PublicKey(path string) (*keys.Key, error) {
	data, err := File(path, MaxKeyFile)
	if err != nil {
		return nil, exit.Inputf(err, "reading public key")
	}
	k, err := keys.ParsePublic(data)
	if err != nil {
		return nil, exit.Inputf(err, "public key %s", path)
	}
	return k, nil
}

// PublicKeys reads each of paths with PublicKey.
func PublicKeys(paths []string) ([]*keys.Key, error) {
	out := make([]*keys.Key, 0, len(paths))
	for _, p := range paths {
		k, err := PublicKey(p)
		if err != nil {
			return nil, err
		}
		out = append(out, k)
	}
	return out, nil
}

// Digest checks a digest flag value: sha256:<64 lower-case hex>, the only algorithm image
// digests and in-toto artifacts use here. It returns the algorithm and hex apart.
func Digest(d string) (alg, hex string, err error) {
	alg, hex, ok := strings.Cut(d, ":")
	if !ok || alg != "sha256" || len(hex) != 64 || strings.Trim(hex, "0123456789abcdef") != "" {
		return "", "", fmt.Errorf("digest %q is not sha256:<64 lowercase hex>", d)
	}
	return alg, hex, nil
}

package cli

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"tollgate.dev/tollgate/policy/keys"
)

// Bounds on files the CLI reads: keys are a few KiB, links and layouts can hold 100,000
// artifacts.
const (
	maxKeyFile      = 256 << 10
	maxDocumentFile = 64 << 20
)

// readFile reads a file of at most limit bytes, naming it in every error.
func readFile(path string, limit int64) ([]byte, error) {
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

// passphraseFlags are --passphrase-env VAR and --prompt, shared by every command that
// reads or writes a private key.
type passphraseFlags struct {
	envVar string
	prompt bool
}

func (p *passphraseFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&p.envVar, "passphrase-env", "", "read the key passphrase from environment variable `VAR`")
	cmd.Flags().BoolVar(&p.prompt, "prompt", false, "read the key passphrase from standard input")
	cmd.MarkFlagsMutuallyExclusive("passphrase-env", "prompt")
}

// get returns the passphrase, or nil when none was asked for.
func (p *passphraseFlags) get(e *env, what string) ([]byte, error) {
	switch {
	case p.envVar != "":
		v, ok := e.environ[p.envVar]
		if !ok {
			return nil, usage("--passphrase-env %s: the environment variable is not set", p.envVar)
		}
		return []byte(v), nil
	case p.prompt:
		fmt.Fprintf(e.stderr, "Enter passphrase for %s: ", what)
		line, err := bufio.NewReader(e.stdin).ReadString('\n')
		if err != nil && !(errors.Is(err, io.EOF) && line != "") {
			return nil, usage("reading passphrase from standard input: %v", err)
		}
		fmt.Fprintln(e.stderr)
		return []byte(strings.TrimRight(line, "\r\n")), nil
	}
	return nil, nil
}

// loadSigner reads a private key file (PEM, securesystemslib JSON, cosign), decrypting it
// with the passphrase the flags give.
func loadSigner(e *env, path string, pf *passphraseFlags) (*keys.Signer, error) {
	data, err := readFile(path, maxKeyFile)
	if err != nil {
		return nil, inputErr(err, "reading private key")
	}
	pass, err := pf.get(e, path)
	if err != nil {
		return nil, err
	}
	s, err := keys.ParsePrivate(data, pass)
	switch {
	case errors.Is(err, keys.ErrPassphraseRequired):
		return nil, usage("private key %s is encrypted: pass --passphrase-env VAR or --prompt", path)
	case errors.Is(err, keys.ErrWrongPassphrase):
		return nil, usage("private key %s: wrong passphrase (or the encrypted key is corrupted)", path)
	case err != nil:
		return nil, inputErr(err, "private key %s", path)
	}
	return s, nil
}

// loadPublic reads a public key file (PEM or securesystemslib JSON).
func loadPublic(path string) (*keys.Key, error) {
	data, err := readFile(path, maxKeyFile)
	if err != nil {
		return nil, inputErr(err, "reading public key")
	}
	k, err := keys.ParsePublic(data)
	if err != nil {
		return nil, inputErr(err, "public key %s", path)
	}
	return k, nil
}

func loadPublics(paths []string) ([]*keys.Key, error) {
	out := make([]*keys.Key, 0, len(paths))
	for _, p := range paths {
		k, err := loadPublic(p)
		if err != nil {
			return nil, err
		}
		out = append(out, k)
	}
	return out, nil
}

// writeFile writes data to path with perm through a temporary file and a rename, so a
// reader never sees half a key or link.
func writeFile(path string, data []byte, perm os.FileMode) error {
	tmp, err := os.CreateTemp(dirOf(path), ".tollgate-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(perm); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

func dirOf(path string) string {
	if i := strings.LastIndexByte(path, '/'); i >= 0 {
		if i == 0 {
			return "/"
		}
		return path[:i]
	}
	return "."
}

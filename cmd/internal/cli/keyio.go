package cli

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"tollgate.dev/tollgate/cmd/internal/input"
	"tollgate.dev/tollgate/policy/keys"
)

// readFile is input's bounded read.
var readFile = input.File

const (
	maxKeyFile      = input.MaxKeyFile
	maxDocumentFile = input.MaxDocumentFile
)

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
		if f, ok := e.stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
			// A terminal does not echo what is typed; a pipe is read as a line below.
			pass, err := term.ReadPassword(int(f.Fd()))
			fmt.Fprintln(e.stderr)
			if err != nil {
				return nil, usage("reading passphrase from the terminal: %v", err)
			}
			return pass, nil
		}
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

package cli

import (
	"fmt"
	"os"
	"path/filepath"

	"tollgate.dev/tollgate/cmd/internal/verify"
	"tollgate.dev/tollgate/policy/envelope"
	"tollgate.dev/tollgate/policy/keys"
)

// writeVSA signs a verification summary of v with --vsa-key as DSSE (the envelope every
// Statement of Tollgate's travels in) and writes it to --vsa-out.
func writeVSA(e *env, f *verify.SummaryFlags, pf *passphraseFlags, v *verify.Verified) error {
	stmt, err := f.Statement(v)
	if err != nil {
		return err
	}
	s, err := loadSigner(e, f.Key, pf)
	if err != nil {
		return err
	}
	raw, err := signDSSE(s, stmt)
	if err != nil {
		return err
	}
	if err := writeOutput(f.Out, raw); err != nil {
		return err
	}
	fmt.Fprintf(e.stderr, "wrote %s (VSA: %s@%s PASSED by %s, policy digest %s, signed by %s)\n",
		f.Out, v.Name, v.Digests[0], f.VerifierID, v.PolicyDigest, s.Key)
	return nil
}

// signDSSE signs an in-toto Statement as a DSSE envelope.
func signDSSE(s *keys.Signer, stmt []byte) ([]byte, error) {
	env := envelope.NewDSSE(envelope.PayloadTypeInToto, stmt)
	if err := env.Sign(s); err != nil {
		return nil, failed(err)
	}
	raw, err := env.Marshal()
	if err != nil {
		return nil, failed(err)
	}
	return raw, nil
}

// writeOutput writes a signed document and a newline to path. As 'run --out-dir' does,
// it makes the directory: a pipeline names a fresh output directory and expects it made.
func writeOutput(path string, raw []byte) error {
	if dir := filepath.Dir(path); dir != "." {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return inputErr(err, "creating %s", dir)
		}
	}
	if err := writeFile(path, append(raw, '\n'), 0o644); err != nil {
		return inputErr(err, "writing %s", path)
	}
	return nil
}

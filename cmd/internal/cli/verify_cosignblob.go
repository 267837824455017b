package cli

import (
	"crypto/sha256"
	"fmt"
	"io"

	"tollgate.dev/tollgate/cmd/internal/exit"
	"tollgate.dev/tollgate/cmd/internal/input"
	"tollgate.dev/tollgate/cmd/internal/verify"
	"tollgate.dev/tollgate/policy/cosign"
	"tollgate.dev/tollgate/policy/sigstore"
)

// cosignBlobSignatures reports whether every --attestation is cosign's older sign-blob
// bundle (`cosign sign-blob --bundle` without --new-bundle-format), which --key verifies
// against --artifact with no trusted root: the key is the trust, as with `cosign
// verify-blob --key --insecure-ignore-tlog`.
func cosignBlobSignatures(f *verify.Flags) bool {
	if len(f.TrustedRoots) > 0 || len(f.Keys) == 0 || f.Artifact == "" || len(f.Attestations) == 0 {
		return false
	}
	for _, file := range f.Attestations {
		data, err := input.File(file, sigstore.MaxBundleBytes)
		if err != nil || !cosign.IsBlobBundle(data) {
			return false
		}
		if b, err := cosign.ParseBlobBundle(data); err != nil || b.Envelope != nil {
			return false
		}
	}
	return true
}

// verifyCosignBlob verifies cosign sign-blob bundles with --key over --artifact.
func verifyCosignBlob(w io.Writer, f *verify.Flags) error {
	trusted, err := input.PublicKeys(f.Keys)
	if err != nil {
		return err
	}
	artifact, err := input.File(f.Artifact, input.MaxDocumentFile)
	if err != nil {
		return exit.Inputf(err, "reading artifact")
	}
	var fail error
	for _, file := range f.Attestations {
		data, err := input.File(file, sigstore.MaxBundleBytes)
		if err != nil {
			return exit.Inputf(err, "reading bundle")
		}
		b, err := cosign.ParseBlobBundle(data)
		if err != nil {
			return exit.Inputf(err, "bundle %s", file)
		}
		k, err := b.VerifyBlob(artifact, trusted)
		if err != nil {
			fmt.Fprintf(w, "REFUSED: %s: %v\n", file, err)
			if fail == nil {
				fail = err
			}
			continue
		}
		fmt.Fprintf(w, "verified: %s: cosign signature over %s by %s\n", file, f.Artifact, k)
	}
	if fail != nil {
		return exit.Quiet(exit.Failed)
	}
	return nil
}

// restateCosignBundle turns cosign's older blob bundle into a Sigstore bundle v0.1 for the
// keyless path; other data is returned as is. A sign-blob bundle is bound to --artifact.
func restateCosignBundle(data []byte, f *verify.Flags) ([]byte, error) {
	if !cosign.IsBlobBundle(data) {
		return data, nil
	}
	b, err := cosign.ParseBlobBundle(data)
	if err != nil {
		return nil, err
	}
	var sum []byte
	if b.Envelope == nil && f.Artifact != "" {
		artifact, err := input.File(f.Artifact, input.MaxDocumentFile)
		if err != nil {
			return nil, err
		}
		s := sha256.Sum256(artifact)
		sum = s[:]
	}
	return b.SigstoreBundle(sum)
}

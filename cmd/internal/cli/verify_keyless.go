package cli

import (
	"crypto"
	"fmt"
	"io"
	"strings"

	"tollgate.dev/tollgate/cmd/internal/exit"
	"tollgate.dev/tollgate/cmd/internal/input"
	"tollgate.dev/tollgate/cmd/internal/report"
	"tollgate.dev/tollgate/cmd/internal/verify"
	"tollgate.dev/tollgate/policy/attest"
	"tollgate.dev/tollgate/policy/sigstore"
)

// keylessReport is what `tollgate verify --trusted-root` found, one entry per bundle.
type keylessReport struct {
	Verified bool            `json:"verified"`
	Bundles  []keylessBundle `json:"bundles"`
	Warnings []string        `json:"warnings"`
	Reason   *report.Reason  `json:"reason,omitempty"`
}

type keylessBundle struct {
	File          string   `json:"file"`
	Verified      bool     `json:"verified"`
	TrustedRoot   string   `json:"trustedRoot,omitempty"`
	Subject       string   `json:"subject,omitempty"`
	Issuer        string   `json:"issuer,omitempty"`
	KeyHint       string   `json:"keyHint,omitempty"`
	PredicateType string   `json:"predicateType,omitempty"`
	Subjects      []string `json:"subjects,omitempty"`
	Why           string   `json:"why,omitempty"`
}

// verifyKeyless verifies every --attestation as a Sigstore bundle against the
// --trusted-root instances, the signer against the --certificate-* identity (or --key),
// and the binding against --artifact or --image-digest. Every bundle must verify.
func verifyKeyless(w io.Writer, f *verify.Flags) error {
	if len(f.Attestations) == 0 {
		return exit.Usagef("--trusted-root and --certificate-* verify Sigstore bundles: give them with --attestation BUNDLE")
	}
	if cosignBlobSignatures(f) {
		return verifyCosignBlob(w, f)
	}
	if len(f.TrustedRoots) == 0 {
		return exit.Usagef("keyless verification needs --trusted-root (trusted_root.json, or `gh attestation trusted-root` output)")
	}
	if f.Layout != "" {
		return exit.Usagef("--layout and --trusted-root are separate verifications; run them one at a time")
	}
	pol, warnings, err := keylessPolicy(f)
	if err != nil {
		return err
	}
	art, err := keylessArtifact(f)
	if err != nil {
		return err
	}
	pt, err := verify.PredicateURI(f.PredicateType)
	if err != nil {
		return exit.Usagef("%v", err)
	}
	roots, err := readTrustedRoots(f.TrustedRoots)
	if err != nil {
		return err
	}
	if len(f.ImageDigests) == 0 && f.Artifact == "" {
		warnings = append(warnings, "no --artifact or --image-digest: a Statement's subjects were not checked against anything")
	}
	rep := &keylessReport{Bundles: []keylessBundle{}, Warnings: warnings}
	var fail error
	for _, file := range f.Attestations {
		data, err := input.File(file, sigstore.MaxBundleBytes)
		if err != nil {
			return exit.Inputf(err, "reading bundle")
		}
		if data, err = restateCosignBundle(data, f); err != nil {
			return exit.Inputf(err, "bundle %s", file)
		}
		b, err := checkBundle(roots, data, art, pol, pt)
		b.File = file
		if err != nil {
			b.Why = err.Error()
			if fail == nil {
				fail = fmt.Errorf("%s: %w", file, err)
			}
		}
		rep.Bundles = append(rep.Bundles, b)
	}
	rep.Verified = fail == nil
	rep.Reason = report.ReasonOf(fail)
	if f.Output == "json" {
		if err := report.JSON(w, rep); err != nil {
			return exit.Fail(err)
		}
	} else {
		rep.print(w)
	}
	if fail != nil {
		return exit.Quiet(exit.Failed)
	}
	return nil
}

func checkBundle(roots *sigstore.TrustedRoots, data []byte, art sigstore.Artifact, pol sigstore.Policy, pt string) (keylessBundle, error) {
	var b keylessBundle
	v, _, err := roots.Verify(data, art, pol)
	if v != nil {
		b.TrustedRoot, b.Subject, b.Issuer, b.KeyHint = v.Instance, v.Signer.Subject, v.Signer.Issuer, v.Signer.KeyHint
	}
	if err != nil {
		return b, err
	}
	if v.Envelope != nil {
		if v.Envelope.PayloadType != "application/vnd.in-toto+json" {
			if pt != "" {
				return b, fmt.Errorf("the bundle's payload type is %q, not an in-toto Statement", v.Envelope.PayloadType)
			}
		} else {
			st, err := attest.Parse(v.Envelope.Payload)
			if err != nil {
				return b, err
			}
			b.PredicateType, b.Subjects = st.PredicateType, st.SubjectDigests()
			if pt != "" && st.PredicateType != pt {
				return b, fmt.Errorf("predicate type is %q, want %q", st.PredicateType, pt)
			}
		}
	} else if pt != "" {
		return b, fmt.Errorf("the bundle holds a message signature, not a Statement of type %q", pt)
	}
	b.Verified = true
	return b, nil
}

func readTrustedRoots(files []string) (*sigstore.TrustedRoots, error) {
	var all []*sigstore.TrustedRoots
	for _, file := range files {
		data, err := input.File(file, sigstore.MaxTrustedRootBytes)
		if err != nil {
			return nil, exit.Inputf(err, "reading trusted root")
		}
		t, err := sigstore.ParseTrustedRoots(data)
		if err != nil {
			return nil, exit.Inputf(err, "trusted root %s", file)
		}
		all = append(all, t)
	}
	return sigstore.Join(all...), nil
}

// keylessPolicy reads the identity flags (one issuer and one subject, as cosign takes
// them) and --key.
func keylessPolicy(f *verify.Flags) (sigstore.Policy, []string, error) {
	var pol sigstore.Policy
	var warnings []string
	if len(f.Keys) > 0 {
		ks, err := input.PublicKeys(f.Keys)
		if err != nil {
			return pol, nil, err
		}
		for _, k := range ks {
			pol.Keys = append(pol.Keys, crypto.PublicKey(k.Public))
		}
	}
	subject := f.CertIdentity != "" || f.CertIdentityRE != ""
	issuer := f.CertIssuer != "" || f.CertIssuerRE != ""
	switch {
	case !subject && issuer:
		return pol, nil, exit.Usagef("--certificate-oidc-issuer needs --certificate-identity or --certificate-identity-regexp (who, not only where from)")
	case !subject && len(pol.Keys) == 0:
		return pol, nil, exit.Usagef("give the signer: --certificate-identity (or -regexp) with --certificate-oidc-issuer, or --key")
	case !subject:
		return pol, nil, nil
	}
	if !issuer {
		warnings = append(warnings, "no --certificate-oidc-issuer: the certificate's subject alone identifies the signer")
	}
	id, err := sigstore.NewIdentity(sigstore.Identity{
		Subject: sigstore.Value{Exact: f.CertIdentity, Regexp: f.CertIdentityRE},
		Issuer:  sigstore.Value{Exact: f.CertIssuer, Regexp: f.CertIssuerRE},
	})
	if err != nil {
		return pol, nil, exit.Usagef("--certificate-*: %v", err)
	}
	pol.Identities = []*sigstore.Identity{id}
	return pol, warnings, nil
}

func keylessArtifact(f *verify.Flags) (sigstore.Artifact, error) {
	switch {
	case f.Artifact != "" && len(f.ImageDigests) > 0:
		return sigstore.Artifact{}, exit.Usagef("give --artifact or --image-digest, not both")
	case len(f.ImageDigests) > 1:
		return sigstore.Artifact{}, exit.Usagef("keyless verification binds one --image-digest")
	case len(f.ImageDigests) == 1:
		a, err := sigstore.Digest(f.ImageDigests[0])
		if err != nil {
			return a, exit.Usagef("--image-digest: %v", err)
		}
		return a, nil
	case f.Artifact != "":
		data, err := input.File(f.Artifact, input.MaxDocumentFile)
		if err != nil {
			return sigstore.Artifact{}, exit.Inputf(err, "reading artifact")
		}
		return sigstore.Bytes(data), nil
	}
	return sigstore.Unbound(), nil
}

func (r *keylessReport) print(w io.Writer) {
	for _, b := range r.Bundles {
		who := b.Subject
		switch {
		case b.KeyHint != "" && b.Subject == "":
			who = "key " + b.KeyHint
		case b.Issuer != "":
			who += " (issuer " + b.Issuer + ")"
		}
		if b.Verified {
			fmt.Fprintf(w, "verified: %s: signed by %s, trusted root %s\n", b.File, who, b.TrustedRoot)
			if b.PredicateType != "" {
				fmt.Fprintf(w, "  statement %s about %s\n", b.PredicateType, strings.Join(b.Subjects, ", "))
			}
			continue
		}
		fmt.Fprintf(w, "REFUSED: %s: %s\n", b.File, b.Why)
	}
	for _, warn := range r.Warnings {
		fmt.Fprintf(w, "warning: %s\n", warn)
	}
}

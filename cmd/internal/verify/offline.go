package verify

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"tollgate.dev/tollgate/cmd/internal/exit"
	"tollgate.dev/tollgate/cmd/internal/input"
	"tollgate.dev/tollgate/cmd/internal/report"
	"tollgate.dev/tollgate/policy/attest"
	"tollgate.dev/tollgate/policy/envelope"
	"tollgate.dev/tollgate/policy/intoto"
	"tollgate.dev/tollgate/policy/keys"
	"tollgate.dev/tollgate/policy/reason"
)

// RunOffline verifies the files the flags name, as of now (or --at), and writes the
// report to w. inspections runs a layout's inspection commands for --run-inspections;
// without it the only inspection is the synthesized image one. A failed verification is
// an exit-1 error after the report; bad flags or unreadable input are exit 2.
//
// When verification passed and --vsa-out asks for a verification summary, it returns what
// was verified, for the caller to sign (nil otherwise).
func (f *Flags) RunOffline(w io.Writer, now time.Time, inspections intoto.InspectionRunner) (*Verified, error) {
	wantVSA, err := f.VSA.Wanted()
	if err != nil {
		return nil, err
	}
	now, err = f.When(now)
	if err != nil {
		return nil, err
	}
	img, err := f.imageIdentity()
	if err != nil {
		return nil, err
	}
	if wantVSA && img == nil {
		return nil, exit.Usagef("--vsa-out: a VSA is about an image; pass --image-digest so the verification binds one")
	}
	rep := &offlineReport{Time: now, Warnings: []string{}}
	var fail error
	if f.Layout != "" {
		lr, err := f.verifyLayout(img, now, inspections, rep)
		if exit.Code(err) == exit.Usage {
			return nil, err
		}
		rep.Layout = lr
		fail = err
	} else if len(f.LayoutKeys) > 0 {
		return nil, exit.Usagef("--layout-keys given without --layout")
	}
	if len(f.Attestations) > 0 {
		ar, err := f.verifyAttestations(img)
		if exit.Code(err) == exit.Usage {
			return nil, err
		}
		rep.Attestations = ar
		if fail == nil {
			fail = err
		}
		if ar != nil && !ar.SubjectBound {
			rep.Warnings = append(rep.Warnings, noSubjectBound)
		}
	} else if len(f.Keys) > 0 {
		return nil, exit.Usagef("--key given without --attestation (layout owner keys are --layout-keys)")
	}
	rep.Verified = fail == nil
	rep.Reason = report.ReasonOf(fail)
	if f.graph() {
		if err := f.writeGraph(w, rep.Layout); err != nil {
			return nil, exit.Fail(err)
		}
	} else if err := rep.write(w, f.Output); err != nil {
		return nil, err
	}
	if fail != nil {
		return nil, exit.Quiet(exit.Failed)
	}
	if !wantVSA {
		return nil, nil
	}
	return f.offlineVerified(rep, img.Digests, now)
}

func (f *Flags) verifyLayout(img *intoto.Image, now time.Time, inspections intoto.InspectionRunner, rep *offlineReport) (*layoutReport, error) {
	if len(f.LayoutKeys) == 0 {
		return nil, exit.Usagef("--layout needs --layout-keys (the layout owners' public keys)")
	}
	data, err := input.File(f.Layout, input.MaxDocumentFile)
	if err != nil {
		return nil, exit.Inputf(err, "reading layout")
	}
	signed, err := envelope.Parse(data)
	if err != nil {
		return nil, exit.Inputf(err, "layout %s", f.Layout)
	}
	owners, err := input.PublicKeys(f.LayoutKeys)
	if err != nil {
		return nil, err
	}
	if f.LayoutThreshold < 0 || f.LayoutThreshold > len(owners) {
		return nil, exit.Usagef("--layout-threshold %d: must be between 1 and the %d --layout-keys given", f.LayoutThreshold, len(owners))
	}
	opts, err := f.layoutOptions(img, now)
	if err != nil {
		return nil, err
	}
	files, err := readLinkDir(f.LinkDir)
	if err != nil {
		return nil, err
	}
	links, err := intoto.NewLinks(files)
	if err != nil {
		return nil, exit.Inputf(err, "link directory %s", f.LinkDir)
	}
	lr := &layoutReport{File: f.Layout, LinkDir: f.LinkDir, LinkFiles: len(files), Threshold: f.LayoutThreshold,
		Inspections: "only the image inspection (synthesized; nothing runs)"}
	if lr.Threshold == 0 {
		lr.Threshold = len(owners)
	}
	for _, k := range owners {
		lr.Keys = append(lr.Keys, k.ID)
	}
	if f.RunInspections {
		if inspections == nil {
			return nil, exit.Usagef("--run-inspections is not available here")
		}
		lr.Inspections = "run locally in the current directory (--run-inspections; UNSAFE on nodes)"
		opts = append(opts, intoto.WithInspectionRunner(inspections))
		rep.Warnings = append(rep.Warnings, "--run-inspections: inspection commands from the layout ran on this machine; nodes never do this")
	}
	if f.graph() {
		lr.trace = &intoto.Trace{}
		lr.layout, _ = intoto.ParseLayout(signed) // drawn even when unauthenticated: the graph says it failed
		opts = append(opts, intoto.WithTrace(lr.trace))
	}
	res, err := intoto.Verify(signed, owners, links, opts...)
	if err != nil {
		return lr, err
	}
	lr.Verified = true
	lr.Expires = res.Expires
	lr.Functionaries = res.Functionaries
	lr.ImageDigest = res.ImageDigest
	rep.Warnings = append(rep.Warnings, res.Warnings...)
	return lr, nil
}

// layoutOptions turns the flags into verifier options: time, parameters, layout
// threshold, and the image for the image inspection.
func (f *Flags) layoutOptions(img *intoto.Image, now time.Time) ([]intoto.Option, error) {
	params, err := f.parameters()
	if err != nil {
		return nil, err
	}
	opts := []intoto.Option{intoto.WithTime(now), intoto.WithParameters(params)}
	if f.LayoutThreshold > 0 {
		opts = append(opts, intoto.WithLayoutThreshold(f.LayoutThreshold))
	}
	if img != nil {
		if img.ConfigDigest == "" {
			return nil, exit.Usagef("the layout's image inspection needs --image-config-digest as well as --image-digest")
		}
		opts = append(opts, intoto.WithImage(*img))
	}
	return opts, nil
}

// readLinkDir reads the *.link and *.json files under dir (sublayout directories
// included), bounded as the verifier bounds evidence.
func readLinkDir(dir string) (map[string][]byte, error) {
	st, err := os.Stat(dir)
	if err != nil {
		return nil, exit.Inputf(err, "link directory")
	}
	if !st.IsDir() {
		return nil, exit.Usagef("--link-dir %s is not a directory", dir)
	}
	files := map[string][]byte{}
	total := 0
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		depth := strings.Count(filepath.ToSlash(rel), "/")
		if d.IsDir() {
			if rel != "." && (strings.HasPrefix(d.Name(), ".") || depth >= intoto.MaxSublayoutDepth) {
				return filepath.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() || strings.HasPrefix(d.Name(), ".") {
			return nil
		}
		if !strings.HasSuffix(p, ".link") && !strings.HasSuffix(p, ".json") {
			return nil
		}
		if len(files) >= intoto.MaxEvidenceFiles {
			return fmt.Errorf("more than %d link files", intoto.MaxEvidenceFiles)
		}
		data, err := input.File(p, input.MaxDocumentFile)
		if err != nil {
			return err
		}
		total += len(data)
		if total > intoto.MaxEvidenceBytes {
			return fmt.Errorf("link files total over %d bytes", intoto.MaxEvidenceBytes)
		}
		files[filepath.ToSlash(rel)] = data
		return nil
	})
	if err != nil {
		return nil, exit.Inputf(err, "reading link directory %s", dir)
	}
	return files, nil
}

// noSubjectBound says plainly what a Statement verified without --image-digest proves.
const noSubjectBound = "no subject was bound: the Statements were checked for signatures and predicate type only, not against any image (pass --image-digest)"

// verifyAttestations checks that at least one Statement, signed by --threshold of the
// --key keys, has the required predicate type and (with --image-digest) names the image.
func (f *Flags) verifyAttestations(img *intoto.Image) (*attestationsReport, error) {
	if len(f.Keys) == 0 {
		return nil, exit.Usagef("--attestation needs --key (the public keys trusted to sign it)")
	}
	if f.Threshold < 1 {
		return nil, exit.Usagef("--threshold %d: must be at least 1", f.Threshold)
	}
	pt, err := PredicateURI(f.PredicateType)
	if err != nil {
		return nil, exit.Usagef("%v", err)
	}
	trusted, err := input.PublicKeys(f.Keys)
	if err != nil {
		return nil, err
	}
	ar := &attestationsReport{Files: f.Attestations, PredicateType: pt, Threshold: f.Threshold, SubjectBound: img != nil && len(img.Digests) > 0}
	var first error
	for _, file := range f.Attestations {
		data, err := input.File(file, input.MaxDocumentFile)
		if err != nil {
			return nil, exit.Inputf(err, "reading attestation")
		}
		envs, err := attest.Unwrap(data)
		if err != nil {
			return nil, exit.Inputf(err, "attestation %s", file)
		}
		for _, env := range envs {
			acc, err := checkStatement(env, trusted, f.Threshold, pt, img)
			if err != nil {
				ar.Rejected = append(ar.Rejected, rejectedEnvelope{File: file, Why: err.Error()})
				if first == nil {
					first = err
				}
				continue
			}
			acc.File, acc.sha256 = file, sha256Hex(data)
			ar.Accepted = append(ar.Accepted, *acc)
		}
	}
	if len(ar.Accepted) > 0 {
		ar.Verified = true
		return ar, nil
	}
	if first == nil {
		first = reason.New(reason.MissingEvidence, "no attestation found in %s", strings.Join(f.Attestations, ", "))
	}
	return ar, first
}

func checkStatement(env *envelope.Signed, trusted []*keys.Key, threshold int, pt string, img *intoto.Image) (*acceptedStatement, error) {
	signers, err := env.Verify(trusted, threshold)
	if err != nil {
		return nil, err
	}
	st, err := attest.FromEnvelope(env) // the node's rules: DSSE, in-toto payload type, no duplicate members
	if err != nil {
		return nil, err
	}
	if pt != "" && st.PredicateType != pt {
		return nil, reason.New(reason.MissingEvidence, "predicate type is %q, want %q", st.PredicateType, pt)
	}
	if img != nil && !st.BoundTo(img.Digests...) {
		return nil, reason.New(reason.BindingMismatch, "no subject names the image digest %s (subjects: %s)",
			strings.Join(img.Digests, ", "), strings.Join(st.SubjectDigests(), ", "))
	}
	acc := &acceptedStatement{PredicateType: st.PredicateType, Subjects: st.SubjectDigests()}
	for _, k := range signers {
		acc.SignedBy = append(acc.SignedBy, k.ID)
	}
	sort.Strings(acc.SignedBy)
	return acc, nil
}

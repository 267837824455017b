package cli

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"tollgate.dev/tollgate/policy/attest"
	"tollgate.dev/tollgate/policy/envelope"
	"tollgate.dev/tollgate/policy/intoto"
	"tollgate.dev/tollgate/policy/keys"
	"tollgate.dev/tollgate/policy/reason"
)

// offlineReport is what offline verification found.
type offlineReport struct {
	Verified     bool                `json:"verified"`
	Time         time.Time           `json:"time"`
	Layout       *layoutReport       `json:"layout,omitempty"`
	Attestations *attestationsReport `json:"attestations,omitempty"`
	Warnings     []string            `json:"warnings"`
	Reason       *reasonView         `json:"reason,omitempty"`
}

type layoutReport struct {
	File          string              `json:"file"`
	Keys          []string            `json:"keys"`
	Threshold     int                 `json:"threshold"`
	LinkDir       string              `json:"linkDir"`
	LinkFiles     int                 `json:"linkFiles"`
	Verified      bool                `json:"verified"`
	Expires       time.Time           `json:"expires,omitzero"`
	Functionaries map[string][]string `json:"functionaries,omitempty"`
	ImageDigest   string              `json:"imageDigest,omitempty"`
	Inspections   string              `json:"inspections"`
}

type attestationsReport struct {
	Files         []string          `json:"files"`
	PredicateType string            `json:"predicateType,omitempty"`
	Threshold     int               `json:"threshold"`
	Verified      bool              `json:"verified"`
	Accepted      []acceptedStmt    `json:"accepted,omitempty"`
	Rejected      []rejectedEnvelop `json:"rejected,omitempty"`
}

type acceptedStmt struct {
	File          string   `json:"file"`
	PredicateType string   `json:"predicateType"`
	Subjects      []string `json:"subjects"`
	SignedBy      []string `json:"signedBy"`
}

type rejectedEnvelop struct {
	File string `json:"file"`
	Why  string `json:"why"`
}

func verifyOffline(cmd *cobra.Command, e *env, f *verifyFlags) error {
	now, err := f.when(e)
	if err != nil {
		return err
	}
	img, err := f.imageIdentity()
	if err != nil {
		return err
	}
	rep := &offlineReport{Time: now, Warnings: []string{}}
	var fail error
	if f.layout != "" {
		lr, err := verifyLayoutFiles(e, f, img, now, rep)
		if exitCode(err) == ExitUsage {
			return err
		}
		rep.Layout = lr
		fail = err
	} else if len(f.layoutKeys) > 0 {
		return usage("--layout-keys given without --layout")
	}
	if len(f.attestations) > 0 {
		ar, err := verifyAttestationFiles(f, img)
		if exitCode(err) == ExitUsage {
			return err
		}
		rep.Attestations = ar
		if fail == nil {
			fail = err
		}
	} else if len(f.keys) > 0 {
		return usage("--key given without --attestation (layout owner keys are --layout-keys)")
	}
	rep.Verified = fail == nil
	rep.Reason = viewReason(fail)
	if f.output == "json" {
		if err := writeJSON(e.stdout, rep); err != nil {
			return failed(err)
		}
	} else {
		printOffline(e.stdout, rep)
	}
	if fail != nil {
		return &exitError{code: ExitFailed}
	}
	return nil
}

// exitCode is the code an error from a helper asks for (0 for nil, 1 by default).
func exitCode(err error) int {
	if err == nil {
		return 0
	}
	if ee, ok := err.(*exitError); ok {
		return ee.code
	}
	return ExitFailed
}

// imageIdentity reads --image-digest and --image-config-digest.
func (f *verifyFlags) imageIdentity() (*intoto.Image, error) {
	if len(f.imageDigests) == 0 && f.imageConfigDigest == "" {
		return nil, nil
	}
	if len(f.imageDigests) == 0 {
		return nil, usage("--image-config-digest needs --image-digest too")
	}
	for _, d := range append(append([]string{}, f.imageDigests...), f.imageConfigDigest) {
		if d == "" {
			continue
		}
		if _, err := digestHashObj(d); err != nil {
			return nil, usage("%v", err)
		}
	}
	return &intoto.Image{Digests: f.imageDigests, ConfigDigest: f.imageConfigDigest}, nil
}

func (f *verifyFlags) parameters() (map[string]string, error) {
	if len(f.params) == 0 {
		return nil, nil
	}
	out := map[string]string{}
	for _, kv := range f.params {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, usage("--param %q: want NAME=VALUE", kv)
		}
		out[k] = v
	}
	return out, nil
}

func verifyLayoutFiles(e *env, f *verifyFlags, img *intoto.Image, now time.Time, rep *offlineReport) (*layoutReport, error) {
	if len(f.layoutKeys) == 0 {
		return nil, usage("--layout needs --layout-keys (the layout owners' public keys)")
	}
	data, err := readFile(f.layout, maxDocumentFile)
	if err != nil {
		return nil, inputErr(err, "reading layout")
	}
	signed, err := envelope.Parse(data)
	if err != nil {
		return nil, inputErr(err, "layout %s", f.layout)
	}
	owners, err := loadPublics(f.layoutKeys)
	if err != nil {
		return nil, err
	}
	if f.layoutThreshold < 0 || f.layoutThreshold > len(owners) {
		return nil, usage("--layout-threshold %d: must be between 1 and the %d --layout-keys given", f.layoutThreshold, len(owners))
	}
	params, err := f.parameters()
	if err != nil {
		return nil, err
	}
	files, err := readLinkDir(f.linkDir)
	if err != nil {
		return nil, err
	}
	links, err := intoto.NewLinks(files)
	if err != nil {
		return nil, inputErr(err, "link directory %s", f.linkDir)
	}
	lr := &layoutReport{File: f.layout, LinkDir: f.linkDir, LinkFiles: len(files), Threshold: f.layoutThreshold,
		Inspections: "only the image inspection (synthesized; nothing runs)"}
	if lr.Threshold == 0 {
		lr.Threshold = len(owners)
	}
	for _, k := range owners {
		lr.Keys = append(lr.Keys, k.ID)
	}
	opts := []intoto.Option{intoto.WithTime(now), intoto.WithParameters(params)}
	if f.layoutThreshold > 0 {
		opts = append(opts, intoto.WithLayoutThreshold(f.layoutThreshold))
	}
	if img != nil {
		if img.ConfigDigest == "" {
			return nil, usage("the layout's image inspection needs --image-config-digest as well as --image-digest")
		}
		opts = append(opts, intoto.WithImage(*img))
	}
	if f.runInspections {
		lr.Inspections = "run locally in the current directory (--run-inspections; UNSAFE on nodes)"
		opts = append(opts, intoto.WithInspectionRunner(&localInspections{e: e}))
		rep.Warnings = append(rep.Warnings, "--run-inspections: inspection commands from the layout ran on this machine; nodes never do this")
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

// readLinkDir reads the *.link and *.json files under dir (sublayout directories
// included), bounded as the verifier bounds evidence.
func readLinkDir(dir string) (map[string][]byte, error) {
	st, err := os.Stat(dir)
	if err != nil {
		return nil, inputErr(err, "link directory")
	}
	if !st.IsDir() {
		return nil, usage("--link-dir %s is not a directory", dir)
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
		data, err := readFile(p, maxDocumentFile)
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
		return nil, inputErr(err, "reading link directory %s", dir)
	}
	return files, nil
}

// verifyAttestationFiles checks that at least one Statement, signed by --threshold of the
// --key keys, has the required predicate type and (with --image-digest) names the image.
func verifyAttestationFiles(f *verifyFlags, img *intoto.Image) (*attestationsReport, error) {
	if len(f.keys) == 0 {
		return nil, usage("--attestation needs --key (the public keys trusted to sign it)")
	}
	if f.threshold < 1 {
		return nil, usage("--threshold %d: must be at least 1", f.threshold)
	}
	pt, err := predicateURI(f.predicateType)
	if err != nil {
		return nil, usage("%v", err)
	}
	trusted, err := loadPublics(f.keys)
	if err != nil {
		return nil, err
	}
	ar := &attestationsReport{Files: f.attestations, PredicateType: pt, Threshold: f.threshold}
	var first error
	for _, file := range f.attestations {
		data, err := readFile(file, maxDocumentFile)
		if err != nil {
			return nil, inputErr(err, "reading attestation")
		}
		envs, err := attest.Unwrap(data)
		if err != nil {
			return nil, inputErr(err, "attestation %s", file)
		}
		for _, env := range envs {
			acc, err := checkStatement(env, trusted, f.threshold, pt, img)
			if err != nil {
				ar.Rejected = append(ar.Rejected, rejectedEnvelop{File: file, Why: err.Error()})
				if first == nil {
					first = err
				}
				continue
			}
			acc.File = file
			ar.Accepted = append(ar.Accepted, *acc)
		}
	}
	if len(ar.Accepted) > 0 {
		ar.Verified = true
		return ar, nil
	}
	if first == nil {
		first = reason.New(reason.MissingEvidence, "no attestation found in %s", strings.Join(f.attestations, ", "))
	}
	return ar, first
}

func checkStatement(env *envelope.Signed, trusted []*keys.Key, threshold int, pt string, img *intoto.Image) (*acceptedStmt, error) {
	signers, err := env.Verify(trusted, threshold)
	if err != nil {
		return nil, err
	}
	st, err := attest.Parse(env.Payload)
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
	acc := &acceptedStmt{PredicateType: st.PredicateType, Subjects: st.SubjectDigests()}
	for _, k := range signers {
		acc.SignedBy = append(acc.SignedBy, k.ID)
	}
	sort.Strings(acc.SignedBy)
	return acc, nil
}

func printOffline(w io.Writer, rep *offlineReport) {
	if lr := rep.Layout; lr != nil {
		fmt.Fprintf(w, "Layout %s: %d of %d owner key(s) must have signed; links from %s (%d files)\n",
			lr.File, lr.Threshold, len(lr.Keys), lr.LinkDir, lr.LinkFiles)
		fmt.Fprintf(w, "  inspections: %s\n", lr.Inspections)
		if lr.Verified {
			fmt.Fprintf(w, "  layout expires %s\n", lr.Expires.Format(time.RFC3339))
			steps := make([]string, 0, len(lr.Functionaries))
			for s := range lr.Functionaries {
				steps = append(steps, s)
			}
			sort.Strings(steps)
			for _, s := range steps {
				fmt.Fprintf(w, "  step %-20s ok, signed by %s\n", s, strings.Join(short8(lr.Functionaries[s]), ", "))
			}
			if lr.ImageDigest != "" {
				fmt.Fprintf(w, "  image %s bound through the image inspection\n", lr.ImageDigest)
			}
		} else {
			fmt.Fprintf(w, "  FAILED\n")
		}
	}
	if ar := rep.Attestations; ar != nil {
		want := ar.PredicateType
		if want == "" {
			want = "any predicate type"
		}
		fmt.Fprintf(w, "Attestations (%s, %d distinct key(s) required): %d accepted, %d rejected\n",
			want, ar.Threshold, len(ar.Accepted), len(ar.Rejected))
		for _, a := range ar.Accepted {
			fmt.Fprintf(w, "  ok  %s: %s about %s, signed by %s\n", a.File, a.PredicateType, strings.Join(a.Subjects, ", "), strings.Join(short8(a.SignedBy), ", "))
		}
		for _, r := range ar.Rejected {
			fmt.Fprintf(w, "  no  %s: %s\n", r.File, r.Why)
		}
	}
	for _, warn := range rep.Warnings {
		fmt.Fprintf(w, "warning: %s\n", warn)
	}
	if rep.Verified {
		fmt.Fprintln(w, "VERIFIED")
	} else {
		fmt.Fprintf(w, "FAILED (%s): %s\n", rep.Reason.Kind, rep.Reason.Message)
	}
}

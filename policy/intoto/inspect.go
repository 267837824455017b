package intoto

import (
	"strconv"
	"strings"

	"tollgate.dev/tollgate/policy/reason"
)

// inspections synthesizes or obtains the links of the layout's inspections and checks
// their rules, which may refer to step and inspection links alike. The "image" inspection
// is tried once per digest in Image.Digests; it passes if one of them passes.
func (v *verifier) inspections(items []*compiledItem, steps map[string]*Link, prefix string) error {
	if len(items) == 0 {
		return nil
	}
	combined := make(map[string]*Link, len(steps)+len(items))
	for name, l := range steps {
		combined[name] = l
	}
	hasImage := false
	for _, it := range items {
		if it.name == imageInspectionName {
			hasImage = true
			continue
		}
		if v.opts.runner == nil {
			return reason.New(reason.Malformed,
				"layout inspection would run %q; Tollgate never runs inspection commands, and the only supported inspection is the one named %q",
				strings.Join(it.command, " "), imageInspectionName).InStep(it.name)
		}
		l, err := v.opts.runner.RunInspection(it.name, it.command)
		if err != nil {
			return reason.New(reason.RuleViolation, "inspection failed").Wrap(err).InStep(it.name)
		}
		if l == nil || l.mat == nil || l.prod == nil {
			return reason.New(reason.Malformed, "inspection runner returned no usable link (build it with NewLink)").InStep(it.name)
		}
		combined[it.name] = l
	}
	if !hasImage {
		return checkInspectionRules(items, combined)
	}
	img := v.opts.image
	if img == nil {
		return reason.New(reason.MissingEvidence, "layout binds the image through the %q inspection, but no image identity was given", imageInspectionName).InStep(imageInspectionName)
	}
	if len(img.Digests) == 0 {
		return reason.New(reason.MissingEvidence, "no manifest digest is known for the image").InStep(imageInspectionName)
	}
	var first error
	for _, d := range img.Digests {
		combined[imageInspectionName] = imageLink(d, img.ConfigDigest)
		err := checkInspectionRules(items, combined)
		if err == nil {
			if prefix == "" {
				v.res.ImageDigest = d
			}
			return nil
		}
		if reason.KindOf(err) != reason.BindingMismatch && reason.KindOf(err) != reason.RuleViolation {
			return err
		}
		if first == nil {
			first = err
		}
	}
	if len(img.Digests) > 1 {
		e := *reason.As(first)
		e.Msg += " (no image digest of " + strconv.Itoa(len(img.Digests)) + " matched)"
		return &e
	}
	return first
}

func checkInspectionRules(items []*compiledItem, links map[string]*Link) error {
	for _, it := range items {
		kind := reason.RuleViolation
		if it.name == imageInspectionName {
			kind = reason.BindingMismatch
		}
		if err := verifyItemRules(it.name, false, it.materials, links, kind); err != nil {
			return err
		}
		if err := verifyItemRules(it.name, true, it.products, links, kind); err != nil {
			return err
		}
	}
	return nil
}

// imageLink is the synthesized link of the "image" inspection. Like the link of an
// inspection Python runs (which records the same tree before and after), its materials
// and products are the same: "image" (manifest or index digest) and "image-config".
func imageLink(digest, config string) *Link {
	arts := map[string]HashObj{"image": digestHash(digest), "image-config": digestHash(config)}
	return newLink(imageInspectionName, nil, arts, arts)
}

func digestHash(d string) HashObj {
	alg, hex, _ := strings.Cut(d, ":")
	return HashObj{alg: hex}
}

func checkImage(img *Image) error {
	if len(img.Digests) > MaxImageDigests {
		return malformed("%d image digests, over the limit of %d", len(img.Digests), MaxImageDigests)
	}
	for _, d := range append([]string{img.ConfigDigest}, img.Digests...) {
		alg, hex, ok := strings.Cut(d, ":")
		if !ok || alg == "" || !isHex(hex) {
			return malformed("image digest %q is not of the form sha256:<hex>", d)
		}
	}
	return nil
}

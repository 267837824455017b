package admission

import (
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// The well-known node labels the kubelet sets from its own GOOS and GOARCH: a pod that
// selects on them says which platform's manifest its node will pull.
const (
	labelOS   = "kubernetes.io/os"
	labelArch = "kubernetes.io/arch"
)

// Bounds on what a pod spec can make one review check. The values are the pod's own
// strings, so they only ever choose among an index's manifests, and only when they look
// like an os or architecture name.
const (
	maxPodPlatforms     = 4  // index manifests checked per image; past it, the first in order
	maxLabelValues      = 16 // distinct values of one label; past it the pod may run anywhere
	maxLabelValueLength = 32 // GOOS/GOARCH names are far shorter
)

// placement is the platforms an index is checked for, for one pod spec.
type placement struct {
	platforms []platform // never empty, at most maxPodPlatforms
	chosen    bool       // the pod spec chose them: messages name the platform
}

// podPlatforms returns the platforms the pod may run on, as far as its nodeSelector and
// required node affinity confine the well-known labels, or just def when they do not (a
// pod that may land anywhere is checked as before, for --platform). An os or arch the
// spec does not confine is def's; def's variant is kept only with def's arch, since a
// variant means nothing for another architecture.
func podPlatforms(spec *corev1.PodSpec, def platform) placement {
	unpinned := placement{platforms: []platform{def}}
	if spec == nil {
		return unpinned
	}
	oses, arches := allowedValues(spec, labelOS), allowedValues(spec, labelArch)
	if oses == nil && arches == nil {
		return unpinned
	}
	if oses == nil {
		oses = []string{def.OS}
	}
	if arches == nil {
		arches = []string{def.Arch}
	}
	var ps []platform
	for _, os := range oses {
		for _, arch := range arches {
			p := platform{OS: os, Arch: arch}
			if arch == def.Arch {
				p.Variant = def.Variant
			}
			ps = append(ps, p)
		}
	}
	// The configured platform first (it is what the cap keeps for sure), then by name, so
	// that the same spec always checks the same platforms in the same order.
	slices.SortFunc(ps, func(a, b platform) int {
		if (a == def) != (b == def) {
			if a == def {
				return -1
			}
			return 1
		}
		return strings.Compare(a.String(), b.String())
	})
	ps = ps[:min(len(ps), maxPodPlatforms)]
	return placement{platforms: ps, chosen: len(ps) > 1 || ps[0] != def}
}

// valueSet is the values a node label may have on the pod's node; nil means any value.
type valueSet map[string]bool

// allowedValues returns, sorted, the values of label that the pod's node may have, or nil
// when the pod may run on a node with any value (or names one we do not trust). The
// nodeSelector and the required affinity must both hold, so their sets intersect.
func allowedValues(spec *corev1.PodSpec, label string) []string {
	var sel valueSet
	if v, ok := spec.NodeSelector[label]; ok && saneLabelValue(v) {
		sel = valueSet{v: true}
	}
	set := intersect(sel, affinityValues(spec.Affinity, label))
	if len(set) == 0 || len(set) > maxLabelValues {
		// Any value, or none: a pod no node can take never runs, so the configured
		// platform is as good an answer as any.
		return nil
	}
	out := make([]string, 0, len(set))
	for v := range set {
		out = append(out, v)
	}
	slices.Sort(out)
	return out
}

// affinityValues returns the values of label the required node affinity allows: the union
// over its terms (a node need match only one), each term confining label through an In
// expression. A term that does not confine label lets the pod run anywhere: nil.
func affinityValues(a *corev1.Affinity, label string) valueSet {
	if a == nil || a.NodeAffinity == nil || a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution == nil {
		return nil
	}
	terms := a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms
	if len(terms) == 0 {
		return nil
	}
	union := valueSet{}
	for _, t := range terms {
		tv := termValues(t, label)
		if tv == nil {
			return nil
		}
		for v := range tv {
			union[v] = true
		}
		if len(union) > maxLabelValues {
			return nil
		}
	}
	return union
}

// termValues returns the values of label one node selector term allows: the intersection
// of its In expressions on label (a term's expressions all hold), or nil when it has none
// or one we do not trust. NotIn, Exists and the others do not name a finite set: ignored.
func termValues(t corev1.NodeSelectorTerm, label string) valueSet {
	var set valueSet
	for _, e := range t.MatchExpressions {
		if e.Key != label || e.Operator != corev1.NodeSelectorOpIn {
			continue
		}
		if len(e.Values) > maxLabelValues {
			return nil
		}
		vs := valueSet{}
		for _, v := range e.Values {
			if !saneLabelValue(v) {
				return nil
			}
			vs[v] = true
		}
		if set == nil {
			set = vs
		} else {
			set = intersect(set, vs)
		}
	}
	return set
}

// intersect returns the values in both sets, nil standing for any value.
func intersect(a, b valueSet) valueSet {
	switch {
	case a == nil:
		return b
	case b == nil:
		return a
	}
	out := valueSet{}
	for v := range a {
		if b[v] {
			out[v] = true
		}
	}
	return out
}

// saneLabelValue reports whether v looks like a GOOS or GOARCH name: what the kubelet puts
// in the well-known labels. Anything else (a path, a long string, upper case) matches no
// node the kubelet labelled, and is never passed on as a platform.
func saneLabelValue(v string) bool {
	if v == "" || len(v) > maxLabelValueLength {
		return false
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '_' && i > 0) {
			return false
		}
	}
	return true
}

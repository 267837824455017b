package cli

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"tollgate.dev/tollgate/cmd/internal/report"
	"tollgate.dev/tollgate/policy/envelope"
	"tollgate.dev/tollgate/policy/intoto"
)

type layoutView struct {
	Format      string           `json:"format"`
	Expires     time.Time        `json:"expires"`
	Expired     bool             `json:"expired"`
	Readme      string           `json:"readme,omitempty"`
	SignedBy    []string         `json:"signedBy"`
	Steps       []stepView       `json:"steps"`
	Inspections []inspectionView `json:"inspections"`
}

type stepView struct {
	Name            string    `json:"name"`
	Threshold       int       `json:"threshold"`
	Functionaries   []keyView `json:"functionaries"`
	ExpectedCommand []string  `json:"expectedCommand"`
	Materials       []string  `json:"materials"`
	Products        []string  `json:"products"`
}

type keyView struct {
	KeyID  string `json:"keyid"`
	Type   string `json:"type"`
	Scheme string `json:"scheme"`
}

type inspectionView struct {
	Name      string   `json:"name"`
	Run       []string `json:"run"`
	Materials []string `json:"materials"`
	Products  []string `json:"products"`
	Reserved  bool     `json:"reserved"`
}

func layoutSummary(env *envelope.Signed, l *intoto.Layout, now time.Time) layoutView {
	v := layoutView{Format: env.Format.String(), Expires: l.Expires, Expired: l.Expires.Before(now), Readme: l.Readme,
		SignedBy: []string{}, Steps: []stepView{}, Inspections: []inspectionView{}}
	for _, s := range env.Signatures {
		v.SignedBy = append(v.SignedBy, s.KeyID)
	}
	for _, st := range l.Steps {
		sv := stepView{Name: st.Name, Threshold: st.Threshold, ExpectedCommand: st.ExpectedCommand,
			Materials: ruleStrings(st.ExpectedMaterials), Products: ruleStrings(st.ExpectedProducts)}
		ids := append([]string(nil), st.PubKeys...)
		sort.Strings(ids)
		for _, id := range ids {
			kv := keyView{KeyID: id, Type: "unknown (not in layout keys)"}
			if k := l.Keys[id]; k != nil {
				kv.Type, kv.Scheme = k.Type, k.Scheme
			}
			sv.Functionaries = append(sv.Functionaries, kv)
		}
		v.Steps = append(v.Steps, sv)
	}
	for _, in := range l.Inspections {
		v.Inspections = append(v.Inspections, inspectionView{Name: in.Name, Run: in.Run,
			Materials: ruleStrings(in.ExpectedMaterials), Products: ruleStrings(in.ExpectedProducts),
			Reserved: in.Name == "image"})
	}
	return v
}

func ruleStrings(rules [][]string) []string {
	out := make([]string, 0, len(rules))
	for _, r := range rules {
		out = append(out, strings.Join(r, " "))
	}
	return out
}

func printLayout(w io.Writer, env *envelope.Signed, l *intoto.Layout, now time.Time) {
	v := layoutSummary(env, l, now)
	exp := "expires " + v.Expires.Format(time.RFC3339)
	if v.Expired {
		exp = "EXPIRED on " + v.Expires.Format(time.RFC3339)
	} else {
		exp += fmt.Sprintf(" (in %s)", roundDuration(v.Expires.Sub(now)))
	}
	fmt.Fprintf(w, "Layout (%s), %s\n", v.Format, exp)
	if v.Readme != "" {
		fmt.Fprintf(w, "Readme: %s\n", v.Readme)
	}
	fmt.Fprintf(w, "Signed by: %s\n", orNone(report.ShortIDs(v.SignedBy)))
	fmt.Fprintf(w, "\nSteps (%d):\n", len(v.Steps))
	for i, st := range v.Steps {
		fmt.Fprintf(w, "  %d. %s — %d of %d functionaries must sign\n", i+1, st.Name, st.Threshold, len(st.Functionaries))
		for _, k := range st.Functionaries {
			fmt.Fprintf(w, "       key %s (%s %s)\n", k.KeyID, k.Type, k.Scheme)
		}
		if len(st.ExpectedCommand) > 0 {
			fmt.Fprintf(w, "     expected command: %s\n", strings.Join(st.ExpectedCommand, " "))
		}
		printRules(w, "materials", st.Materials)
		printRules(w, "products", st.Products)
	}
	fmt.Fprintf(w, "\nInspections (%d):\n", len(v.Inspections))
	for _, in := range v.Inspections {
		if in.Reserved {
			fmt.Fprintf(w, "  - image: synthesized by the verifier from the image (materials image, image-config); nothing runs\n")
		} else {
			fmt.Fprintf(w, "  - %s: runs %q — UNSAFE for nodes: tollgated rejects this layout\n", in.Name, strings.Join(in.Run, " "))
		}
		printRules(w, "materials", in.Materials)
		printRules(w, "products", in.Products)
	}
}

func printRules(w io.Writer, what string, rules []string) {
	if len(rules) == 0 {
		fmt.Fprintf(w, "     %s: (no rules: anything allowed)\n", what)
		return
	}
	fmt.Fprintf(w, "     %s:\n", what)
	for _, r := range rules {
		fmt.Fprintf(w, "       %s\n", r)
	}
}

func orNone(list []string) string {
	if len(list) == 0 {
		return "(none)"
	}
	return strings.Join(list, ", ")
}

func roundDuration(d time.Duration) string {
	if d > 48*time.Hour {
		return fmt.Sprintf("%d days", int(d.Hours()/24))
	}
	return d.Round(time.Minute).String()
}

package layoutgraph

import (
	"fmt"

	"tollgate.dev/tollgate/policy/intoto"
	"tollgate.dev/tollgate/policy/reason"
)

// maxNote bounds the failure reason written into a node; the full one is in the text and
// JSON reports.
const maxNote = 120

// Mark colours the graph with the outcome of one verification traced into tr. A step is
// verified, failed (with a short reason), below threshold, or not reached (verification
// stopped earlier, or its links met the threshold but its rules were never checked).
func (g *Graph) Mark(tr *intoto.Trace) {
	failedHere := false
	for i := range g.Nodes {
		n := &g.Nodes[i]
		switch n.Kind {
		case Step, Inspection:
			failedHere = markItem(n, tr) || failedHere
		case Product:
			n.Status, n.Note = Verified, ""
			if tr.Err != nil {
				n.Status, n.Note = NotReached, "not verified"
			}
		}
	}
	g.Status = Verified
	if tr.Err == nil {
		g.Title = append(g.Title, "VERIFIED")
		return
	}
	g.Status = Failed
	line := "FAILED: " + short(tr.Err)
	if !failedHere {
		line = "FAILED before any step: " + short(tr.Err)
	}
	g.Title = append(g.Title, wrap(line)...)
}

// markItem sets one step's or inspection's status and reports whether verification
// failed at it.
func markItem(n *Node, tr *intoto.Trace) bool {
	if tr.Failed == n.Name && tr.Stages[n.Name] == intoto.Failed {
		e := *reason.As(tr.Err)
		e.Step = "" // the box names the step already
		n.Status, n.Note = Failed, short(&e)
		if e.Kind == reason.Threshold {
			n.Status, n.Note = BelowThreshold, clip(e.Error())
		}
		return true
	}
	switch tr.Stages[n.Name] {
	case intoto.Passed:
		n.Status, n.Note = Verified, ""
		if ids := tr.Signers[n.Name]; len(ids) > 0 {
			n.Note = fmt.Sprintf("signed by %d: %s", len(ids), shortID(ids[0]))
		}
	case intoto.Signed:
		n.Status, n.Note = NotReached, "signed; rules not checked"
	default:
		n.Status, n.Note = NotReached, ""
	}
	return false
}

// short is an error as kind and message, clipped.
func short(err error) string {
	e := reason.As(err)
	return string(e.Kind) + ": " + clip(e.Error())
}

func clip(msg string) string {
	if r := []rune(msg); len(r) > maxNote {
		msg = string(r[:maxNote-1]) + "…"
	}
	return msg
}

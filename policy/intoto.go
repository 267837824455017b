package policy

import (
	"time"

	"tollgate.dev/tollgate/policy/intoto"
	"tollgate.dev/tollgate/policy/reason"
)

// intotoLinks returns the evidence's links indexed for layout verification, once per
// Evaluate, from the envelopes classify parsed.
func (c *classified) intotoLinks() (*intoto.Links, error) {
	if c.parsedLinks != nil || c.linksErr != nil {
		return c.parsedLinks, c.linksErr
	}
	c.parsedLinks, c.linksErr = intoto.NewLinksFromSigned(c.links)
	return c.parsedLinks, c.linksErr
}

// verifyLayout runs in-toto verification of one required layout against the evidence,
// binding it to the image through the layout's "image" inspection.
func verifyLayout(l *layoutReq, img Image, evd *classified, now time.Time) ([]string, error) {
	links, err := evd.intotoLinks()
	if err != nil {
		return nil, err
	}
	// The layout's signatures and rules were checked and compiled at Load.
	res, err := l.verifier.Verify(links,
		intoto.WithTime(now),
		intoto.WithImage(intoto.Image{Digests: img.Digests, ConfigDigest: img.ConfigDigest}),
		intoto.WithSignatureBudget(evd.budget), // shared with the decision's Statements
	)
	if err != nil {
		return nil, reason.As(err)
	}
	return res.Warnings, nil
}

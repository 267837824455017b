package policy

import (
	"fmt"
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
		e := reason.As(err)
		if why := evd.linkSetAside; why != nil {
			// The link the layout missed may be among those: say why the first was not read.
			c := *e
			c.Msg = fmt.Sprintf("%s; a link was set aside: %v", c.Msg, why)
			if c.Kind == reason.MissingEvidence {
				c.Kind = why.Kind // a link was there; its signature is what failed
			}
			e = &c
		}
		return nil, e
	}
	return res.Warnings, nil
}

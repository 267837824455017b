package policy

import (
	"time"

	"tollgate.dev/tollgate/policy/intoto"
	"tollgate.dev/tollgate/policy/reason"
)

// links returns the evidence's links parsed for layout verification, once per Evaluate.
func (c *classified) intotoLinks() (*intoto.Links, error) {
	if c.parsedLinks != nil || c.linksErr != nil {
		return c.parsedLinks, c.linksErr
	}
	c.parsedLinks, c.linksErr = intoto.NewLinks(c.links)
	return c.parsedLinks, c.linksErr
}

// verifyLayout runs in-toto verification of one required layout against the evidence,
// binding it to the image through the layout's "image" inspection.
func verifyLayout(l *layoutReq, img Image, evd *classified, now time.Time) ([]string, error) {
	links, err := evd.intotoLinks()
	if err != nil {
		return nil, err
	}
	res, err := intoto.Verify(l.env, l.keys, links,
		intoto.WithTime(now),
		intoto.WithImage(intoto.Image{Digests: img.Digests, ConfigDigest: img.ConfigDigest}),
		intoto.WithParameters(l.params),
		intoto.WithLayoutThreshold(l.threshold),
	)
	if err != nil {
		return nil, reason.As(err)
	}
	return res.Warnings, nil
}

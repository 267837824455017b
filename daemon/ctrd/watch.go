package ctrd

import (
	"context"
	"errors"
	"math/rand/v2"
	"strconv"
	"time"

	eventtypes "github.com/containerd/containerd/api/events"
	"github.com/containerd/containerd/v2/core/events"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/typeurl/v2"
	digest "github.com/opencontainers/go-digest"
	"go.uber.org/zap"

	"tollgate.dev/tollgate/policy"
)

// Image event topics containerd publishes.
const (
	topicCreate = "/images/create"
	topicUpdate = "/images/update"
	topicDelete = "/images/delete"
)

// Watch keeps the catalog in step with containerd's image events and calls fn with every
// image config that an event adds or changes, for pre-verification. It runs until ctx is
// cancelled and returns ctx.Err(). When the event stream breaks (containerd restarting) it
// resubscribes with backoff and then re-lists the images, so no change is missed; fn is
// called for whatever changed meanwhile (on the first subscription: every image List has
// not already returned). fn runs on the event loop: it should hand the
// work off rather than verify inline.
func (c *Client) Watch(ctx context.Context, fn func(policy.Image)) error {
	const minDelay, maxDelay = 200 * time.Millisecond, 10 * time.Second
	delay := minDelay
	for {
		start := time.Now()
		err := c.watchOnce(ctx, fn)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if time.Since(start) > maxDelay {
			delay = minDelay
		}
		wait := delay/2 + rand.N(delay/2)
		c.log.Warn("containerd image event stream ended; resubscribing",
			zap.Error(err), zap.Duration("retry_in", wait))
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
		delay = min(2*delay, maxDelay)
	}
}

func (c *Client) watchOnce(ctx context.Context, fn func(policy.Image)) error {
	be, ref, err := c.connect()
	if err != nil {
		return err
	}
	sctx, cancel := context.WithCancel(namespaces.WithNamespace(ctx, c.namespace))
	defer cancel()
	ns := "namespace==" + strconv.Quote(c.namespace) + ",topic=="
	ch, errs := be.events.Subscribe(sctx,
		ns+strconv.Quote(topicCreate), ns+strconv.Quote(topicUpdate), ns+strconv.Quote(topicDelete))

	// Subscribed first, listed second: whatever happened before the subscription is in the
	// list, whatever happens after arrives as an event.
	lctx, lcancel := c.ctx(ctx)
	changed, err := ref.sync(lctx, be.images)
	lcancel()
	if err != nil {
		return err
	}
	c.notify(ref, changed, fn)
	ref.watching.Add(1)
	defer ref.watching.Add(-1)

	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err, ok := <-errs:
			if !ok || err == nil {
				return errors.New("event stream closed")
			}
			return err
		case env := <-ch:
			c.handle(ctx, be, ref, env, fn)
		}
	}
}

// handle applies one image event.
func (c *Client) handle(ctx context.Context, be *backend, ref *refresher, env *events.Envelope, fn func(policy.Image)) {
	if env == nil || env.Namespace != c.namespace {
		return
	}
	name, err := eventImageName(env)
	if err != nil || name == "" {
		c.log.Debug("ignoring image event", zap.String("topic", env.Topic), zap.Error(err))
		return
	}
	ectx, cancel := c.ctx(ctx)
	defer cancel()
	var changed bool
	if env.Topic == topicDelete {
		changed = ref.cat.put(name, nil)
	} else if changed, err = ref.refreshName(ectx, be.images, name); err != nil {
		c.log.Warn("cannot bind image record to its configs", zap.String("image", name), zap.Error(err))
	}
	if changed {
		c.notify(ref, []string{name}, fn)
	}
}

// notify calls fn once for each config that the named records lead to.
func (c *Client) notify(ref *refresher, names []string, fn func(policy.Image)) {
	if fn == nil {
		return
	}
	seen := map[digest.Digest]bool{}
	for _, name := range names {
		e, ok := ref.cat.get(name)
		if !ok {
			continue
		}
		for _, b := range e.binds {
			if seen[b.Config] {
				continue
			}
			seen[b.Config] = true
			if digests, all, ok := ref.cat.lookup(b.Config); ok {
				fn(imageFor(b.Config, digests, all, []string{name}))
			}
		}
	}
}

// eventImageName returns the image record name an image event is about.
func eventImageName(env *events.Envelope) (string, error) {
	if env.Event == nil {
		return "", errors.New("event without payload")
	}
	switch env.Topic {
	case topicCreate:
		var e eventtypes.ImageCreate
		err := typeurl.UnmarshalTo(env.Event, &e)
		return e.Name, err
	case topicUpdate:
		var e eventtypes.ImageUpdate
		err := typeurl.UnmarshalTo(env.Event, &e)
		return e.Name, err
	case topicDelete:
		var e eventtypes.ImageDelete
		err := typeurl.UnmarshalTo(env.Event, &e)
		return e.Name, err
	}
	return "", errors.New("not an image event")
}

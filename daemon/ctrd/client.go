// Package ctrd reads image identity from containerd: which manifests and indexes provably
// lead to the image config a container is built from, read from containerd's own content
// store and never from a registry. It also feeds pre-verification from image events.
//
// The hook path is a map lookup once the catalog is warm: image events keep it current,
// and a miss (an image pulled a moment ago) costs one image-list call plus the reads of the
// new image's manifests.
package ctrd

import (
	"context"
	_ "crypto/sha256" // digest algorithms used by image content
	_ "crypto/sha512"
	"errors"
	"fmt"
	"sync"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/events"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"go.uber.org/zap"
)

// Defaults match tollgated's flags (docs/dev/BRIEF.md).
const (
	DefaultAddress   = "/run/containerd/containerd.sock"
	DefaultNamespace = "k8s.io"
)

// imageStore is the part of containerd's image service ctrd uses.
type imageStore interface {
	Get(ctx context.Context, name string) (images.Image, error)
	List(ctx context.Context, filters ...string) ([]images.Image, error)
}

// backend is the containerd connection: image records, content and events, and the
// container records and tasks that RunningContainers reads.
type backend struct {
	images     imageStore
	content    content.Provider
	events     events.Subscriber
	containers containerStore
	tasks      taskLister
	close      func() error
}

// Client resolves image identity against one containerd namespace. It is safe for
// concurrent use. The connection is made on first use; gRPC re-establishes it after
// containerd restarts.
type Client struct {
	address   string
	namespace string
	timeout   time.Duration
	limits    Limits
	log       *zap.Logger
	dial      func() (*backend, error)

	mu      sync.Mutex
	be      *backend
	ref     *refresher
	dialErr error
	dialAt  time.Time
}

// Option configures a Client.
type Option func(*Client)

// WithAddress sets containerd's socket (default /run/containerd/containerd.sock).
func WithAddress(a string) Option { return func(c *Client) { c.address = a } }

// WithNamespace sets the containerd namespace (default k8s.io, the CRI plugin's).
func WithNamespace(ns string) Option { return func(c *Client) { c.namespace = ns } }

// WithLogger sets the logger.
func WithLogger(l *zap.Logger) Option { return func(c *Client) { c.log = l } }

// New returns a Client. It does not connect yet.
func New(opts ...Option) *Client {
	c := &Client{address: DefaultAddress, namespace: DefaultNamespace, timeout: 5 * time.Second,
		limits: DefaultLimits, log: zap.NewNop()}
	for _, o := range opts {
		o(c)
	}
	c.dial = c.dialContainerd
	return c
}

func (c *Client) dialContainerd() (*backend, error) {
	cl, err := containerd.New(c.address, containerd.WithDefaultNamespace(c.namespace),
		containerd.WithTimeout(c.timeout))
	if err != nil {
		return nil, err
	}
	return &backend{images: cl.ImageService(), content: cl.ContentStore(),
		events: cl.EventService(), containers: cl.ContainerService(), tasks: cl.TaskService(),
		close: cl.Close}, nil
}

// connect returns the backend and the refresher, creating them on first use. A failed
// dial is retried at most once a second, so a missing socket costs the hook nothing.
func (c *Client) connect() (*backend, *refresher, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.be != nil {
		return c.be, c.ref, nil
	}
	if c.dialErr != nil && time.Since(c.dialAt) < time.Second {
		return nil, nil, c.dialErr
	}
	be, err := c.dial()
	c.dialAt = time.Now()
	if err != nil {
		c.dialErr = fmt.Errorf("connecting to containerd at %s: %w", c.address, err)
		return nil, nil, c.dialErr
	}
	c.be, c.dialErr = be, nil
	c.ref = &refresher{cat: newCatalog(), binder: newBinder(be.content, c.limits), log: c.log}
	return c.be, c.ref, nil
}

// Close releases the containerd connection.
func (c *Client) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.be == nil || c.be.close == nil {
		return nil
	}
	err := c.be.close()
	c.be = nil
	return err
}

// ctx puts the namespace on ctx and bounds it by the client's timeout.
func (c *Client) ctx(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx = namespaces.WithNamespace(ctx, c.namespace)
	return context.WithTimeout(ctx, c.timeout)
}

// errNoIdentity is returned when a container carries neither a config digest nor a name.
var errNoIdentity = errors.New("the runtime reported neither the image config digest nor the image name")

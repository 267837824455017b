package registry

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"unicode/utf8"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// maxCauseBytes bounds a failure cause quoted in another message.
const maxCauseBytes = 200

// oneLine renders err on one line of at most maxCauseBytes bytes.
func oneLine(err error) string {
	s := strings.Join(strings.Fields(err.Error()), " ")
	if len(s) <= maxCauseBytes {
		return s
	}
	s = s[:maxCauseBytes]
	for len(s) > 0 && !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s + "…"
}

// opError is the error of an operation on repo: one line naming the registry, the
// repository, the operation and the cause, however many attempts (HTTPS and HTTP,
// retries) go-containerregistry made. It unwraps to err, so statuses and limits still
// classify it, and to ErrPlainHTTP when the cause is the insecure list.
func (c *Client) opError(repo name.Repository, op string, err error) error {
	cause, kind := c.cause(repo.RegistryStr(), err)
	return &opErr{
		msg:  fmt.Sprintf("registry %s, repository %s: %s: %s", repo.RegistryStr(), repo.RepositoryStr(), op, cause),
		err:  err,
		kind: kind,
	}
}

type opErr struct {
	msg  string
	err  error
	kind error // a sentinel the cause is, or nil
}

func (e *opErr) Error() string { return e.msg }

func (e *opErr) Unwrap() []error {
	if e.kind != nil {
		return []error{e.kind, e.err}
	}
	return []error{e.err}
}

// cause names what made err: the refusal of a registry that speaks only plain HTTP, a
// limit, an open circuit, the registry's own error answer, or the first network failure.
func (c *Client) cause(host string, err error) (string, error) {
	var (
		terr *transport.Error
		uerr *url.Error
	)
	switch {
	case errors.Is(err, http.ErrSchemeMismatch) && !c.insecure[strings.ToLower(host)]:
		return fmt.Sprintf("the registry answers plain HTTP only, and is not in the insecure list (--insecure-registry %s): refused by configuration", host), ErrPlainHTTP
	case errors.Is(err, ErrLimitExceeded), errors.Is(err, ErrCircuitOpen):
		// Already one sentence; its innermost wrapper names the request.
		return oneLine(err), nil
	case errors.As(err, &terr):
		return oneLine(terr), nil
	case errors.As(err, &uerr):
		return oneLine(fmt.Errorf("%s %s: %w", uerr.Op, uerr.URL, innermost(uerr.Err))), nil
	}
	return oneLine(err), nil
}

// innermost is the end of a chain of single wraps: "connection refused" rather than
// "dial tcp 127.0.0.1:1: connect: connection refused" would lose the address, so it stops
// at the network operation.
func innermost(err error) error {
	for {
		var op *net.OpError
		if errors.As(err, &op) {
			return op
		}
		next := errors.Unwrap(err)
		if next == nil {
			return err
		}
		err = next
	}
}

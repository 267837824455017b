package metrics

import (
	"net/http"
	"testing"
)

// The metrics and health listener runs on the host network of every node. Without read,
// write and idle bounds, anyone who reaches the port can hold connections (and their file
// descriptors) open forever by trickling a body or idling on keep-alive.
func TestHealthServerIsBounded(t *testing.T) {
	srv := NewServer(http.NotFoundHandler(), nil)
	if srv.ReadHeaderTimeout <= 0 || srv.ReadTimeout <= 0 || srv.WriteTimeout <= 0 ||
		srv.IdleTimeout <= 0 || srv.MaxHeaderBytes <= 0 || srv.MaxHeaderBytes > 1<<20 {
		t.Errorf("unbounded server: read header %v, read %v, write %v, idle %v, max header bytes %d",
			srv.ReadHeaderTimeout, srv.ReadTimeout, srv.WriteTimeout, srv.IdleTimeout, srv.MaxHeaderBytes)
	}
}

// Command pause is the sandbox ("pause") process of Tollgate's test images: it blocks until
// SIGTERM or SIGINT and then exits 0. It is static (CGO_ENABLED=0) and needs nothing from
// the image but itself. testimage embeds this file and compiles it on demand.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	<-sig
}

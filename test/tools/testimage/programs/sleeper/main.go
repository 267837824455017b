// Command sleeper is the workload of Tollgate's test images: it prints one line naming its
// image variant (env TOLLGATE_VARIANT) and sleeps until SIGTERM or SIGINT, or for the
// duration given as its first argument (Go syntax, e.g. "30s"). testimage embeds this file
// and compiles it on demand.
package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	wait := 24 * time.Hour
	if len(os.Args) > 1 {
		d, err := time.ParseDuration(os.Args[1])
		if err != nil {
			fmt.Fprintln(os.Stderr, "sleeper:", err)
			os.Exit(2)
		}
		wait = d
	}
	fmt.Printf("sleeper: variant=%q pid=%d sleeping %s\n", os.Getenv("TOLLGATE_VARIANT"), os.Getpid(), wait)
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	select {
	case <-sig:
	case <-time.After(wait):
	}
}

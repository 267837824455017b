// Command image builds Tollgate's container image as an OCI image layout, without a
// container engine: the same image the Dockerfile describes (static binaries, non-root
// default user, tollgated as entrypoint), assembled with go-containerregistry from the
// binaries `make build` leaves in bin/.
//
//	go run ./deploy/image -out out/image
//	go run ./deploy/image -push ghcr.io/tollgate-dev/tollgate:v1.2.3
//
// -push REF writes the image to a registry (credentials from the Docker config; -insecure
// for a plain-HTTP registry) and prints the pushed image as REPOSITORY@sha256:... on the
// last line of stdout, for the steps that sign it. The OCI layout is then written only when
// -out is given too. The layout can also be pushed with `crane push out/image REF`,
// imported with `ctr images import`, or copied with skopeo (oci:out/image).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"syscall"
	"time"
)

func main() {
	var (
		o        options
		pushRef  string
		insecure bool
	)
	flag.StringVar(&o.out, "out", "out/image", "OCI layout directory to write (replaced if present)")
	flag.StringVar(&o.binDir, "bin", "bin", "directory holding the tollgated and tollgate binaries")
	flag.StringVar(&o.ref, "ref", "ghcr.io/tollgate-dev/tollgate:"+envOr("VERSION", "dev"), "reference recorded in the layout's index")
	flag.StringVar(&o.version, "version", envOr("VERSION", "dev"), "org.opencontainers.image.version label")
	flag.StringVar(&o.revision, "revision", os.Getenv("REVISION"), "org.opencontainers.image.revision label (a commit)")
	flag.StringVar(&o.arch, "arch", runtime.GOARCH, "architecture the binaries were built for")
	flag.StringVar(&o.caCerts, "ca-certs", "/etc/ssl/certs/ca-certificates.crt", "CA bundle to include for registry TLS (\"\" for none)")
	flag.StringVar(&pushRef, "push", "", "push the image to this `REF` and print REPOSITORY@DIGEST last on stdout")
	flag.BoolVar(&insecure, "insecure", false, "speak plain HTTP to the -push registry")
	flag.Parse()
	set := map[string]bool{}
	flag.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if flag.NArg() > 0 {
		fatal(fmt.Errorf("unexpected arguments %q", flag.Args()))
	}
	if pushRef != "" && !set["ref"] {
		o.ref = pushRef
	}

	// Reproducible by default: the creation time comes from SOURCE_DATE_EPOCH when set.
	o.created = time.Unix(0, 0).UTC()
	if s := os.Getenv("SOURCE_DATE_EPOCH"); s != "" {
		sec, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			fatal(fmt.Errorf("SOURCE_DATE_EPOCH=%q: %w", s, err))
		}
		o.created = time.Unix(sec, 0).UTC()
	}

	img, err := build(o)
	if err != nil {
		fatal(err)
	}
	// Without -push the layout is the result; with it, only when -out asks for one too.
	if pushRef == "" || set["out"] {
		digest, err := writeLayout(o.out, o.ref, img)
		if err != nil {
			fatal(err)
		}
		fmt.Printf("image: wrote %s (%s) to %s\n", o.ref, digest, o.out)
	}
	if pushRef != "" {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		pushed, err := push(ctx, pushRef, img, insecure)
		if err != nil {
			stop()
			fatal(err)
		}
		fmt.Fprintf(os.Stderr, "image: pushed %s\n", pushRef)
		fmt.Println(pushed)
	}
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "image:", err)
	os.Exit(1)
}

// Command image builds Tollgate's container image as an OCI image layout, without a
// container engine: the same image the Dockerfile describes (static binaries, non-root
// default user, tollgated as entrypoint), assembled with go-containerregistry from the
// binaries `make build` leaves in bin/.
//
//	go run ./deploy/image -out out/image
//
// The result can be pushed with `crane push out/image REF`, imported with
// `ctr images import`, or copied with skopeo (oci:out/image).
package main

import (
	"flag"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"time"
)

func main() {
	var o options
	flag.StringVar(&o.out, "out", "out/image", "OCI layout directory to write (replaced if present)")
	flag.StringVar(&o.binDir, "bin", "bin", "directory holding the tollgated and tollgate binaries")
	flag.StringVar(&o.ref, "ref", "ghcr.io/tollgate-dev/tollgate:"+envOr("VERSION", "dev"), "reference recorded in the layout's index")
	flag.StringVar(&o.version, "version", envOr("VERSION", "dev"), "org.opencontainers.image.version label")
	flag.StringVar(&o.revision, "revision", os.Getenv("REVISION"), "org.opencontainers.image.revision label (a commit)")
	flag.StringVar(&o.arch, "arch", runtime.GOARCH, "architecture the binaries were built for")
	flag.StringVar(&o.caCerts, "ca-certs", "/etc/ssl/certs/ca-certificates.crt", "CA bundle to include for registry TLS (\"\" for none)")
	flag.Parse()

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
	digest, err := writeLayout(o.out, o.ref, img)
	if err != nil {
		fatal(err)
	}
	fmt.Printf("image: wrote %s (%s) to %s\n", o.ref, digest, o.out)
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

// Command testimage builds one of Tollgate's tiny test images and pushes it to a registry:
//
//	testimage --program sleeper --variant signed 127.0.0.1:5000/e2e/app:signed
//	testimage --program pause --index 127.0.0.1:5000/e2e/pause:1
//
// It prints "REF DIGEST CONFIG-DIGEST" on success.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"

	"tollgate.dev/tollgate/test/tools/testimage"
)

func main() {
	program := flag.String("program", "sleeper", "program in the image: pause or sleeper")
	variant := flag.String("variant", "", "variant label/env; different variants have different digests")
	index := flag.Bool("index", false, "push a multi-platform index instead of a single image")
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: testimage [flags] REGISTRY/REPO:TAG")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() != 1 {
		flag.Usage()
		os.Exit(2)
	}
	work, err := os.MkdirTemp("", "testimage-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "testimage:", err)
		os.Exit(1)
	}
	defer os.RemoveAll(work)

	b := testimage.NewBuilder(work)
	spec := testimage.Spec{Program: testimage.Program(*program), Variant: *variant}
	push := b.Push
	if *index {
		push = b.PushIndex
	}
	p, err := push(context.Background(), flag.Arg(0), spec)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println(p.Ref, p.Digest, p.ConfigDigest)
}

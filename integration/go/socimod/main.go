// Command socimod stands in for SOCI's own programs, which live in a nested
// module (cmd/) that the Go module proxy does not serve; the library module
// github.com/awslabs/soci-snapshotter is served, and every step here is its
// code, composed the way its daemon and CLI compose it:
//
//	socimod serve   --root DIR --address SOCK [--plain-http H1,H2] [--log-level L]
//	    the snapshotter (service.NewSociSnapshotterService with a bbolt metadata
//	    store and SOCI's default config) over containerd's Snapshots gRPC API,
//	    as soci-snapshotter-grpc does;
//	socimod convert --address SOCK --namespace NS --root DIR SRC DST
//	    `soci convert`: SOCI index v2 for SRC (already in containerd's content
//	    store) built by its IndexBuilder.Convert, stored as image DST (push it
//	    with `ctr images push`);
//	socimod rpull   --address SOCK --namespace NS [--plain-http] REF
//	    `soci image rpull`: containerd's client pull with unpack into the `soci`
//	    snapshotter, layers labelled by containerd's AppendInfoHandlerWrapper
//	    (image ref, manifest digest, layer digest), so layers mount lazily.
package main

import (
	"fmt"
	"os"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	var err error
	switch os.Args[1] {
	case "serve":
		err = serve(os.Args[2:])
	case "convert":
		err = convert(os.Args[2:])
	case "rpull":
		err = rpull(os.Args[2:])
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "socimod %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: socimod serve|convert|rpull [flags] (see the package comment)")
	os.Exit(2)
}

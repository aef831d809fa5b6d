// Command overlayref serves containerd's built-in overlayfs snapshotter over
// the containerd.services.snapshots.v1.Snapshots gRPC API on a unix socket.
//
// It is the reference the clip snapshotter is measured against: the
// conformance suite and the RPC benchmark talk to both through the same proxy
// protocol, so any difference is the snapshotter, not the transport. Its
// flags have the same shape as `clip-snapshotter serve`, so the harness can
// start either one with the same arguments.
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/containerd/containerd/contrib/snapshotservice"
	"github.com/containerd/containerd/snapshots/overlay"

	"../proxyserve"
)

func main() {
	root := flag.String("root", "/var/lib/overlayref", "snapshotter state directory")
	address := flag.String("address", "/run/overlayref/overlayref.sock", "unix socket to serve on")
	// Accepted and ignored so a harness can pass the clip daemon's flags unchanged.
	flag.String("log-level", "", "ignored")
	flag.Parse()

	if err := run(*root, *address); err != nil {
		fmt.Fprintf(os.Stderr, "overlayref: %v\n", err)
		os.Exit(1)
	}
}

func run(root, address string) error {
	sn, err := overlay.NewSnapshotter(root)
	if err != nil {
		return fmt.Errorf("overlay snapshotter on %s: %w", root, err)
	}
	defer sn.Close()

	return proxyserve.Serve(snapshotservice.FromSnapshotter(sn), address)
}

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
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	snapshotsapi "github.com/containerd/containerd/api/services/snapshots/v1"
	"github.com/containerd/containerd/contrib/snapshotservice"
	"github.com/containerd/containerd/snapshots/overlay"
	"google.golang.org/grpc"
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

	l, err := listen(address)
	if err != nil {
		return err
	}
	srv := grpc.NewServer()
	snapshotsapi.RegisterSnapshotsServer(srv, snapshotservice.FromSnapshotter(sn))

	// Exit 0 on SIGTERM/SIGINT: the harness treats any other exit as a crash.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-sig
		srv.Stop()
	}()

	if err := srv.Serve(l); err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	// Closing a unix listener normally unlinks the socket already.
	if err := os.Remove(address); err != nil && !os.IsNotExist(err) {
		return err
	}
	return nil
}

// listen replaces a stale socket file left by a killed predecessor and keeps
// the socket private to root, as the clip daemon does.
func listen(address string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(address), 0o700); err != nil {
		return nil, err
	}
	if err := os.Remove(address); err != nil && !os.IsNotExist(err) {
		return nil, fmt.Errorf("remove stale socket: %w", err)
	}
	l, err := net.Listen("unix", address)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", address, err)
	}
	if err := os.Chmod(address, 0o600); err != nil {
		l.Close()
		return nil, err
	}
	return l, nil
}

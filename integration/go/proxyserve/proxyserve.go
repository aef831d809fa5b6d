// Package proxyserve serves a containerd snapshotter over the
// containerd.services.snapshots.v1.Snapshots gRPC API on a unix socket, the
// way the reference snapshotters of the test and benchmark harness run:
// a stale socket is replaced, the socket is private to root, and SIGTERM or
// SIGINT ends serving with exit status 0 (the harness treats any other exit
// as a crash).
//
// It imports neither containerd nor a snapshotter, only the Snapshots API
// (whose import path is the same in containerd 1.x and 2.x), so the mains
// built in GOPATH mode from Debian's containerd 1.x (`"../proxyserve"`) and
// the ones built in module mode against containerd 2.x (through a replace
// directive, see go.mod) serve the same way.
package proxyserve

import (
	"fmt"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	snapshotsapi "github.com/containerd/containerd/api/services/snapshots/v1"
	"google.golang.org/grpc"
)

// Serve serves svc (a snapshotter wrapped by its containerd version's
// snapshotservice.FromSnapshotter) until a termination signal, then removes
// the socket. It does not close the snapshotter: the caller decides when
// (before or after its own cleanup).
func Serve(svc snapshotsapi.SnapshotsServer, address string) error {
	l, err := listen(address)
	if err != nil {
		return err
	}
	srv := grpc.NewServer()
	snapshotsapi.RegisterSnapshotsServer(srv, svc)

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

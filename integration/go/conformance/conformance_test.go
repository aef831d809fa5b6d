// Package conformance runs containerd's own snapshotter conformance suite
// (snapshots/testsuite, containerd 1.6.20) against an out-of-process
// snapshotter reached over the Snapshots gRPC API, exactly as containerd
// reaches a proxy plugin.
//
// CLIP_SNAPSHOTTER_CMD names the daemon, e.g.
//
//	CLIP_SNAPSHOTTER_CMD="node snapshotter/bin/clip-snapshotter serve --log-level warn"
//
// It is run by /bin/sh, so it may hold several words; `--root ROOT --address
// ROOT/s.sock` is appended. Every test of the suite gets a fresh process on a
// fresh root. Run the compiled binary as root with `-test.root -test.v`.
package conformance

import (
	"syscall"
	"testing"

	snapshotsapi "github.com/containerd/containerd/api/services/snapshots/v1"
	"github.com/containerd/containerd/mount"
	"github.com/containerd/containerd/pkg/testutil"
	"github.com/containerd/containerd/snapshots"
	"github.com/containerd/containerd/snapshots/proxy"
	"github.com/containerd/containerd/snapshots/testsuite"

	"../snapshotterd"
)

func TestSnapshotterConformance(t *testing.T) {
	testutil.RequiresRoot(t)
	snapshotterd.Run(t, "Clip", testsuite.SnapshotterSuite,
		func(c snapshotsapi.SnapshotsClient) snapshots.Snapshotter { return proxy.NewSnapshotter(c, "clip") },
		func(target string) error { return mount.Unmount(target, syscall.MNT_DETACH) })
}

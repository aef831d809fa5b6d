// Package conformance2 runs containerd 2's own snapshotter conformance suite
// (core/snapshots/testsuite of the containerd/v2 version in go.mod, or of the
// version build-go-modules.sh substitutes) against an out-of-process
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
package conformance2

import (
	"syscall"
	"testing"

	"clip-snapshotter/integration/snapshotterd"
	snapshotsapi "github.com/containerd/containerd/api/services/snapshots/v1"
	"github.com/containerd/containerd/v2/core/mount"
	"github.com/containerd/containerd/v2/core/snapshots"
	"github.com/containerd/containerd/v2/core/snapshots/proxy"
	"github.com/containerd/containerd/v2/core/snapshots/testsuite"
	"github.com/containerd/containerd/v2/pkg/testutil"
)

func TestSnapshotterConformance(t *testing.T) {
	testutil.RequiresRoot(t)
	// The name selects the suite's per-snapshotter variants, and only Rename has one: for
	// overlay-based snapshotters it leaves out renaming a directory of a lower layer, which the
	// kernel refuses with EXDEV unless overlayfs runs with redirect_dir (off here, and containerd
	// never enables it). clip's active snapshots are plain kernel overlayfs mounts of its layers,
	// so it gets the same variant as containerd's own overlayfs snapshotter.
	snapshotterd.Run(t, "overlayfs", testsuite.SnapshotterSuite,
		func(c snapshotsapi.SnapshotsClient) snapshots.Snapshotter { return proxy.NewSnapshotter(c, "clip") },
		func(target string) error { return mount.Unmount(target, syscall.MNT_DETACH) })
}

// Command stargzref serves stargz-snapshotter's remote snapshotter over the
// containerd.services.snapshots.v1.Snapshots gRPC API on a unix socket.
//
// It is the lazy-pull peer the cold-start benchmark measures clip against.
// Debian packages stargz-snapshotter's library but not its daemon, and the
// library's `service` package cannot be built here (its CRI keychain and
// resolver import k8s.io/cri-api, which Debian does not package), so this
// main composes the same two parts that package does: the stargz FUSE
// filesystem (`fs`) under the overlay-based remote snapshotter (`snapshot`),
// with the filesystem's default settings (prefetch and background fetch on,
// as the upstream daemon runs with an empty config). Layers are found from
// the labels `ctr-remote images rpull` sets; CRI labels are not read. Its
// flags have the same shape as `clip-snapshotter serve`, so a harness can
// start either.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/containerd/containerd/contrib/snapshotservice"
	"github.com/containerd/containerd/log"
	"github.com/containerd/containerd/reference"
	"github.com/containerd/containerd/remotes/docker"
	"github.com/containerd/containerd/snapshots"
	"github.com/containerd/containerd/snapshots/overlay/overlayutils"
	stargzfs "github.com/containerd/stargz-snapshotter/fs"
	"github.com/containerd/stargz-snapshotter/fs/config"
	"github.com/containerd/stargz-snapshotter/fs/layer"
	"github.com/containerd/stargz-snapshotter/fs/source"
	"github.com/containerd/stargz-snapshotter/snapshot"
	"github.com/sirupsen/logrus"

	"../proxyserve"
	"../stargzpeer"
)

func main() {
	options := stargzpeer.Flags("stargzref")
	noBackgroundFetch := flag.Bool("no-background-fetch", false, "do not fetch whole layers in the background after mounting")
	flag.Parse()
	o := options()

	if lvl, err := logrus.ParseLevel(o.LogLevel); err == nil {
		logrus.SetLevel(lvl)
	}
	cfg := config.Config{NoBackgroundFetch: *noBackgroundFetch}
	if err := run(o.Root, o.Address, registryHosts(o), cfg); err != nil {
		fmt.Fprintf(os.Stderr, "stargzref: %v\n", err)
		os.Exit(1)
	}
}

// registryHosts resolves a reference's registry to one host (stargzpeer says
// how it is reached); docker.io is served by registry-1.docker.io.
func registryHosts(o stargzpeer.Options) source.RegistryHosts {
	return func(ref reference.Spec) ([]docker.RegistryHost, error) {
		host := ref.Hostname()
		local, _ := docker.MatchLocalhost(host)
		scheme := o.Scheme(host, local)
		if host == "docker.io" {
			host = "registry-1.docker.io"
		}
		client := stargzpeer.Client()
		auth := docker.NewDockerAuthorizer(docker.WithAuthClient(client))
		return []docker.RegistryHost{{Client: client, Authorizer: auth, Host: host, Scheme: scheme, Path: "/v2",
			Capabilities: docker.HostCapabilityPull | docker.HostCapabilityResolve}}, nil
	}
}

func run(root, address string, hosts source.RegistryHosts, cfg config.Config) error {
	ctx := log.WithLogger(context.Background(), logrus.NewEntry(logrus.StandardLogger()))
	snRoot := filepath.Join(root, "snapshotter")
	if err := os.MkdirAll(snRoot, 0o700); err != nil {
		return err
	}
	if err := overlayutils.Supported(snRoot); err != nil {
		return fmt.Errorf("overlayfs under %s: %w", snRoot, err)
	}
	// The snapshotter stacks overlayfs on the FUSE layers; the whiteout
	// xattrs the filesystem shows must be the kind this overlayfs reads.
	opaque := layer.OverlayOpaqueTrusted
	if userxattr, err := overlayutils.NeedsUserXAttr(snRoot); err != nil {
		log.G(ctx).WithError(err).Warn("cannot tell whether overlayfs needs userxattr; assuming not")
	} else if userxattr {
		opaque = layer.OverlayOpaqueUser
	}
	fs, err := stargzfs.NewFilesystem(filepath.Join(root, "stargz"), cfg,
		stargzfs.WithGetSources(source.FromDefaultLabels(hosts)), stargzfs.WithOverlayOpaqueType(opaque))
	if err != nil {
		return fmt.Errorf("stargz filesystem: %w", err)
	}
	sn, err := snapshot.NewSnapshotter(ctx, snRoot, fs, snapshot.AsynchronousRemove)
	if err != nil {
		return fmt.Errorf("stargz snapshotter on %s: %w", snRoot, err)
	}

	serveErr := proxyserve.Serve(snapshotservice.FromSnapshotter(sn), address)
	// Close unmounts every FUSE layer mount, so nothing is left under root.
	closeSnapshotter(sn)
	return serveErr
}

func closeSnapshotter(sn snapshots.Snapshotter) {
	if err := sn.Close(); err != nil {
		fmt.Fprintf(os.Stderr, "stargzref: close: %v\n", err)
	}
}

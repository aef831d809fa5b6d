// Command stargzmod serves the current stargz-snapshotter release's remote
// snapshotter (its `service` package, as its own containerd-stargz-grpc daemon
// composes it) over the containerd.services.snapshots.v1.Snapshots gRPC API on
// a unix socket, with the default configuration (prefetch and background fetch
// on). The upstream daemon's main lives in a module the Go proxy does not
// serve, so this small main stands in for it. Flags match stargzref's, so the
// benchmark starts either the same way.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"

	"clip-snapshotter/integration/proxyserve"
	"clip-snapshotter/integration/stargzpeer"
	"github.com/containerd/containerd/v2/contrib/snapshotservice"
	"github.com/containerd/containerd/v2/core/remotes/docker"
	"github.com/containerd/containerd/v2/pkg/reference"
	"github.com/containerd/log"
	"github.com/containerd/stargz-snapshotter/fs/source"
	"github.com/containerd/stargz-snapshotter/service"
)

func main() {
	options := stargzpeer.Flags("stargzmod")
	flag.Parse()
	o := options()
	if err := log.SetLevel(o.LogLevel); err != nil {
		fmt.Fprintf(os.Stderr, "stargzmod: %v\n", err)
		os.Exit(2)
	}
	if err := run(o.Root, o.Address, hostsFor(o)); err != nil {
		fmt.Fprintf(os.Stderr, "stargzmod: %v\n", err)
		os.Exit(1)
	}
}

// hostsFor resolves a reference's registry to one host, reached as stargzpeer
// says.
func hostsFor(o stargzpeer.Options) source.RegistryHosts {
	return func(ref reference.Spec) ([]docker.RegistryHost, error) {
		host := ref.Hostname()
		local, _ := docker.MatchLocalhost(host)
		client := stargzpeer.Client()
		auth := docker.NewDockerAuthorizer(docker.WithAuthClient(client))
		return []docker.RegistryHost{{Client: client, Authorizer: auth, Host: host, Scheme: o.Scheme(host, local), Path: "/v2",
			Capabilities: docker.HostCapabilityPull | docker.HostCapabilityResolve}}, nil
	}
}

func run(root, address string, hosts source.RegistryHosts) error {
	ctx := context.Background()
	if err := os.MkdirAll(root, 0o700); err != nil {
		return err
	}
	sn, err := service.NewStargzSnapshotterService(ctx, root, &service.Config{}, service.WithCustomRegistryHosts(hosts))
	if err != nil {
		return err
	}
	serveErr := proxyserve.Serve(snapshotservice.FromSnapshotter(sn), address)
	// Closing the snapshotter unmounts its FUSE layers.
	if err := sn.Close(); err != nil {
		return err
	}
	return serveErr
}

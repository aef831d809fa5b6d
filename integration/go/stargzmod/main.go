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
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	snapshotsapi "github.com/containerd/containerd/api/services/snapshots/v1"
	"github.com/containerd/containerd/v2/contrib/snapshotservice"
	"github.com/containerd/containerd/v2/core/remotes/docker"
	"github.com/containerd/containerd/v2/pkg/reference"
	"github.com/containerd/log"
	"github.com/containerd/stargz-snapshotter/fs/source"
	"github.com/containerd/stargz-snapshotter/service"
	"github.com/hashicorp/go-retryablehttp"
	"google.golang.org/grpc"
)

func main() {
	root := flag.String("root", "/var/lib/stargzmod", "snapshotter state directory")
	address := flag.String("address", "/run/stargzmod/stargzmod.sock", "unix socket to serve on")
	logLevel := flag.String("log-level", "info", "log level (debug, info, warn, error)")
	plainHTTP := flag.String("plain-http", "", "comma-separated registry host:port list reached over plain HTTP")
	flag.Parse()
	if err := log.SetLevel(*logLevel); err != nil {
		fmt.Fprintf(os.Stderr, "stargzmod: %v\n", err)
		os.Exit(2)
	}
	if err := run(*root, *address, hostsFor(*plainHTTP)); err != nil {
		fmt.Fprintf(os.Stderr, "stargzmod: %v\n", err)
		os.Exit(1)
	}
}

// hostsFor resolves a reference's registry to one host: plain HTTP for
// localhost and the listed test registries, https otherwise, through a
// retrying client with the 30 s request timeout the upstream resolver uses.
func hostsFor(list string) source.RegistryHosts {
	plain := map[string]bool{}
	for _, h := range strings.Split(list, ",") {
		if h = strings.TrimSpace(h); h != "" {
			plain[h] = true
		}
	}
	return func(ref reference.Spec) ([]docker.RegistryHost, error) {
		host := ref.Hostname()
		rc := retryablehttp.NewClient()
		rc.Logger = nil
		client := rc.StandardClient()
		client.Timeout = 30 * time.Second
		scheme := "https"
		if local, _ := docker.MatchLocalhost(host); local || plain[host] {
			scheme = "http"
		}
		return []docker.RegistryHost{{
			Client:       client,
			Authorizer:   docker.NewDockerAuthorizer(docker.WithAuthClient(client)),
			Host:         host,
			Scheme:       scheme,
			Path:         "/v2",
			Capabilities: docker.HostCapabilityPull | docker.HostCapabilityResolve,
		}}, nil
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
	if err := os.MkdirAll(filepath.Dir(address), 0o700); err != nil {
		return err
	}
	_ = os.Remove(address)
	l, err := net.Listen("unix", address)
	if err != nil {
		return err
	}
	srv := grpc.NewServer()
	snapshotsapi.RegisterSnapshotsServer(srv, snapshotservice.FromSnapshotter(sn))
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-stop
		srv.Stop()
	}()
	serveErr := srv.Serve(l)
	// Closing the snapshotter unmounts its FUSE layers.
	if err := sn.Close(); err != nil {
		return err
	}
	if serveErr != nil && serveErr != grpc.ErrServerStopped {
		return serveErr
	}
	return nil
}

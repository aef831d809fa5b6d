// Command pullclient pulls and unpacks an image through containerd's Go
// client into a named snapshotter:
//
//	client.Pull(ctx, ref, WithPullUnpack, WithPullSnapshotter(name), WithResolver(...))
//
// This is the path nerdctl takes for a snapshotter it has no special support
// for: the unpacker labels each layer's Prepare with containerd.io/snapshot.ref
// only (no CRI or stargz labels), so the snapshotter has to find the layer's
// source on its own. ctr and ctr-remote take different paths; the end-to-end
// tests cover each.
//
// On success it prints "<image name> <target digest>".
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/containerd/containerd"
	"github.com/containerd/containerd/remotes/docker"
)

func main() {
	address := flag.String("address", "/run/containerd/containerd.sock", "containerd gRPC socket")
	namespace := flag.String("namespace", "default", "containerd namespace")
	snapshotter := flag.String("snapshotter", "clip", "snapshotter to unpack into")
	plainHTTP := flag.Bool("plain-http", false, "talk to every registry over plain HTTP (a loopback test registry)")
	timeout := flag.Duration("timeout", 10*time.Minute, "give up after this long")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: %s [flags] REF\n", os.Args[0])
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() != 1 {
		flag.Usage()
		os.Exit(2)
	}
	if err := pull(*address, *namespace, *snapshotter, *plainHTTP, *timeout, flag.Arg(0)); err != nil {
		fmt.Fprintf(os.Stderr, "pullclient: %v\n", err)
		os.Exit(1)
	}
}

func pull(address, namespace, snapshotter string, plainHTTP bool, timeout time.Duration, ref string) error {
	client, err := containerd.New(address, containerd.WithDefaultNamespace(namespace))
	if err != nil {
		return fmt.Errorf("connect to containerd at %s: %w", address, err)
	}
	defer client.Close()

	var hostOpts []docker.RegistryOpt
	if plainHTTP {
		hostOpts = append(hostOpts, docker.WithPlainHTTP(docker.MatchAllHosts))
	}
	resolver := docker.NewResolver(docker.ResolverOptions{Hosts: docker.ConfigureDefaultRegistries(hostOpts...)})

	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	img, err := client.Pull(ctx, ref,
		containerd.WithPullUnpack,
		containerd.WithPullSnapshotter(snapshotter),
		containerd.WithResolver(resolver),
	)
	if err != nil {
		return fmt.Errorf("pull %s into snapshotter %q: %w", ref, snapshotter, err)
	}
	fmt.Printf("%s %s\n", img.Name(), img.Target().Digest)
	return nil
}

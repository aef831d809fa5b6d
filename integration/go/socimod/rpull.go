package main

import (
	"context"
	"flag"
	"fmt"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/remotes/docker"
	"github.com/containerd/containerd/v2/pkg/snapshotters"
	"github.com/containerd/containerd/v2/pkg/namespaces"
)

// rpull pulls REF and unpacks it into the `soci` snapshotter with the labels
// SOCI reads (containerd's AppendInfoHandlerWrapper: image ref, manifest
// digest, layer digest, image layers); layers the snapshotter mounts remotely
// are not fetched.
func rpull(args []string) error {
	fl := flag.NewFlagSet("rpull", flag.ExitOnError)
	address := fl.String("address", "/run/containerd/containerd.sock", "containerd socket")
	namespace := fl.String("namespace", "default", "containerd namespace")
	snapshotter := fl.String("snapshotter", "soci", "snapshotter to unpack into")
	plainHTTP := fl.Bool("plain-http", false, "talk to the registry over plain HTTP")
	timeout := fl.Duration("timeout", 30*time.Minute, "give up after this long")
	if err := fl.Parse(args); err != nil {
		return err
	}
	if fl.NArg() != 1 {
		return fmt.Errorf("want one image reference")
	}
	ref := fl.Arg(0)
	ctx, cancel := context.WithTimeout(namespaces.WithNamespace(context.Background(), *namespace), *timeout)
	defer cancel()
	client, err := containerd.New(*address)
	if err != nil {
		return fmt.Errorf("connect %s: %w", *address, err)
	}
	defer client.Close()
	hostOpts := []docker.RegistryOpt{}
	if *plainHTTP {
		hostOpts = append(hostOpts, docker.WithPlainHTTP(func(string) (bool, error) { return true, nil }))
	}
	resolver := docker.NewResolver(docker.ResolverOptions{Hosts: docker.ConfigureDefaultRegistries(hostOpts...)})
	_, err = client.Pull(ctx, ref,
		containerd.WithResolver(resolver),
		containerd.WithPullUnpack,
		containerd.WithPullSnapshotter(*snapshotter),
		containerd.WithImageHandlerWrapper(snapshotters.AppendInfoHandlerWrapper(ref)),
	)
	return err
}

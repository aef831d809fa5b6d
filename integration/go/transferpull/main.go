// Command transferpull pulls an image through containerd's transfer service with unpack into a
// snapshotter — the request nerdctl >= 2.3 sends on containerd 2 (an OCI registry source, an image
// store with one platform and WithUnpack(platform, snapshotter)). nerdctl itself cannot be built
// from the module proxy here (a dependency is refused), so the tests drive this instead.
//
//	transferpull --address SOCK --namespace NS --snapshotter clip [--hosts-dir DIR] [--plain-http] REF
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/transfer"
	transferimage "github.com/containerd/containerd/v2/core/transfer/image"
	"github.com/containerd/containerd/v2/core/transfer/registry"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/platforms"
)

func main() {
	address := flag.String("address", "/run/containerd/containerd.sock", "containerd socket")
	namespace := flag.String("namespace", "default", "containerd namespace")
	snapshotter := flag.String("snapshotter", "", "snapshotter to unpack into (required)")
	platform := flag.String("platform", "linux/amd64", "platform to pull and unpack")
	hostsDir := flag.String("hosts-dir", "", "hosts.toml directory for the registry")
	plainHTTP := flag.Bool("plain-http", false, "talk to the registry over plain HTTP")
	timeout := flag.Duration("timeout", 5*time.Minute, "give up after this long")
	flag.Parse()
	if flag.NArg() != 1 || *snapshotter == "" {
		fmt.Fprintln(os.Stderr, "usage: transferpull --address SOCK --namespace NS --snapshotter NAME [--hosts-dir DIR] [--plain-http] REF")
		os.Exit(2)
	}
	if err := pull(*address, *namespace, *snapshotter, *platform, *hostsDir, *plainHTTP, *timeout, flag.Arg(0)); err != nil {
		fmt.Fprintf(os.Stderr, "transferpull: %v\n", err)
		os.Exit(1)
	}
}

func pull(address, namespace, snapshotter, platform, hostsDir string, plainHTTP bool, timeout time.Duration, ref string) error {
	ctx, cancel := context.WithTimeout(namespaces.WithNamespace(context.Background(), namespace), timeout)
	defer cancel()
	client, err := containerd.New(address)
	if err != nil {
		return fmt.Errorf("connect %s: %w", address, err)
	}
	defer client.Close()
	p, err := platforms.Parse(platform)
	if err != nil {
		return err
	}
	store := transferimage.NewStore(ref, transferimage.WithPlatforms(p), transferimage.WithUnpack(p, snapshotter))
	var opts []registry.Opt
	if hostsDir != "" {
		opts = append(opts, registry.WithHostDir(hostsDir))
	}
	if plainHTTP {
		opts = append(opts, registry.WithDefaultScheme("http"))
	}
	source, err := registry.NewOCIRegistry(ctx, ref, opts...)
	if err != nil {
		return err
	}
	return client.Transfer(ctx, source, store, transfer.WithProgress(func(p transfer.Progress) {
		if p.Name != "" {
			fmt.Fprintf(os.Stderr, "%s %s\n", p.Event, p.Name)
		}
	}))
}

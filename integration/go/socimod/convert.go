package main

import (
	"context"
	"flag"
	"fmt"
	"os"

	"github.com/awslabs/soci-snapshotter/config"
	"github.com/awslabs/soci-snapshotter/soci"
	"github.com/awslabs/soci-snapshotter/soci/store"
	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/errdefs"
)

// convert builds a SOCI index v2 for image SRC (its layers in containerd's
// content store) with SOCI's default span and minimum layer sizes, and records
// the converted image (an OCI index naming SRC's manifest annotated with the
// SOCI index, and the SOCI index manifest) as DST. Prints DST's digest.
func convert(args []string) error {
	fl := flag.NewFlagSet("convert", flag.ExitOnError)
	address := fl.String("address", "/run/containerd/containerd.sock", "containerd socket")
	namespace := fl.String("namespace", "default", "containerd namespace")
	root := fl.String("root", "", "directory for SOCI's artifacts database (required)")
	if err := fl.Parse(args); err != nil {
		return err
	}
	if fl.NArg() != 2 || *root == "" {
		return fmt.Errorf("want --root DIR SRC DST")
	}
	src, dst := fl.Arg(0), fl.Arg(1)
	ctx := namespaces.WithNamespace(context.Background(), *namespace)
	client, err := containerd.New(*address)
	if err != nil {
		return fmt.Errorf("connect %s: %w", *address, err)
	}
	defer client.Close()
	// SOCI writes the index without gc roots (the image record made below is the root): a lease
	// keeps everything it writes until then, as `soci convert` holds one.
	ctx, done, err := client.WithLease(ctx)
	if err != nil {
		return err
	}
	defer done(ctx)
	img, err := client.ImageService().Get(ctx, src)
	if err != nil {
		return fmt.Errorf("image %s: %w", src, err)
	}
	if err := os.MkdirAll(*root, 0o700); err != nil {
		return err
	}
	db, err := soci.NewDB(soci.ArtifactsDbPath(*root))
	if err != nil {
		return err
	}
	blobs, err := store.NewContainerdStore(store.NewStoreConfig(store.WithType(config.ContainerdContentStoreType), store.WithContainerdAddress(*address)))
	if err != nil {
		return err
	}
	builder, err := soci.NewIndexBuilder(client.ContentStore(), blobs, soci.WithArtifactsDb(db))
	if err != nil {
		return err
	}
	desc, err := builder.Convert(ctx, img)
	if err != nil {
		return fmt.Errorf("convert %s: %w", src, err)
	}
	out := images.Image{Name: dst, Target: *desc}
	if _, err := client.ImageService().Create(ctx, out); err != nil {
		if !errdefs.IsAlreadyExists(err) {
			return err
		}
		if _, err := client.ImageService().Update(ctx, out, "target"); err != nil {
			return err
		}
	}
	fmt.Println(desc.Digest)
	return nil
}

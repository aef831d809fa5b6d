package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"clip-snapshotter/integration/proxyserve"
	"github.com/awslabs/soci-snapshotter/config"
	socifs "github.com/awslabs/soci-snapshotter/fs"
	"github.com/awslabs/soci-snapshotter/metadata"
	"github.com/awslabs/soci-snapshotter/service"
	"github.com/awslabs/soci-snapshotter/ztoc"
	"github.com/containerd/containerd/v2/contrib/snapshotservice"
	"github.com/containerd/log"
	"github.com/sirupsen/logrus"
	bolt "go.etcd.io/bbolt"
)

// serve runs SOCI's snapshotter until SIGTERM/SIGINT.
func serve(args []string) error {
	fl := flag.NewFlagSet("serve", flag.ExitOnError)
	root := fl.String("root", "/var/lib/socimod", "snapshotter state directory")
	address := fl.String("address", "/run/socimod/socimod.sock", "unix socket to serve on")
	logLevel := fl.String("log-level", "info", "log level (debug, info, warn, error)")
	plainHTTP := fl.String("plain-http", "", "comma-separated registry host:port list reached over plain HTTP")
	if err := fl.Parse(args); err != nil {
		return err
	}
	lvl, err := logrus.ParseLevel(*logLevel)
	if err != nil {
		return err
	}
	logrus.SetLevel(lvl)
	logrus.SetFormatter(&logrus.JSONFormatter{TimestampFormat: log.RFC3339NanoFixed})
	ctx := log.WithLogger(context.Background(), log.L)

	if err := os.MkdirAll(*root, 0o700); err != nil {
		return err
	}
	if err := service.Supported(*root); err != nil {
		return fmt.Errorf("snapshotter not supported here: %w", err)
	}
	cfg := config.NewConfig()
	if cfg == nil {
		return fmt.Errorf("SOCI's default config did not parse")
	}
	// SOCI reaches a registry over plain HTTP only when a mirror of that host
	// says insecure (loopback hosts are plain already); the bench's shaped-link
	// registry is not on loopback.
	for _, h := range strings.Split(*plainHTTP, ",") {
		if h = strings.TrimSpace(h); h != "" {
			if cfg.ResolverConfig.Host == nil {
				cfg.ResolverConfig.Host = map[string]config.HostConfig{}
			}
			cfg.ResolverConfig.Host[h] = config.HostConfig{Mirrors: []config.MirrorConfig{{Host: "http://" + h, Insecure: true}}}
		}
	}
	// The metadata store SOCI's daemon configures by default ("db").
	db, err := bolt.Open(filepath.Join(*root, "metadata.db"), 0o600, &bolt.Options{NoFreelistSync: true, InitialMmapSize: 64 << 20, FreelistType: bolt.FreelistMapType})
	if err != nil {
		return err
	}
	defer db.Close()
	store := func(sr *io.SectionReader, toc ztoc.TOC, opts ...metadata.Option) (metadata.Reader, error) {
		return metadata.NewReader(db, sr, toc, opts...)
	}
	sn, err := service.NewSociSnapshotterService(ctx, *root, &cfg.ServiceConfig, service.WithFilesystemOptions(socifs.WithMetadataStore(store)))
	if err != nil {
		return err
	}
	serveErr := proxyserve.Serve(snapshotservice.FromSnapshotter(sn), *address)
	// Closing the snapshotter unmounts its FUSE layers.
	if err := sn.Close(); err != nil {
		return err
	}
	return serveErr
}

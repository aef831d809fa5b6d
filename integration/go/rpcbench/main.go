// Command rpcbench measures per-RPC latency of a snapshotter served over the
// containerd.services.snapshots.v1.Snapshots gRPC API, through containerd's
// own proxy client (the code path containerd uses for a proxy plugin).
//
// The workload is what an image pull and container start do: layers are
// prepared on top of each other, their mounts read, committed, stated,
// viewed, listed, and finally removed. Chains restart every --depth layers
// so that chain length, which the cost of Prepare and Mounts grows with,
// stays realistic while n grows.
//
// Output (stdout) is JSON: {"Prepare": {"p50_us": 81.2, "p99_us": 240.5, "n": 500}, ...}.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"os"
	"sort"
	"time"

	snapshotsapi "github.com/containerd/containerd/api/services/snapshots/v1"
	"github.com/containerd/containerd/namespaces"
	"github.com/containerd/containerd/pkg/dialer"
	"github.com/containerd/containerd/snapshots"
	"github.com/containerd/containerd/snapshots/proxy"
	"google.golang.org/grpc"
)

type stats struct {
	P50 float64 `json:"p50_us"`
	P99 float64 `json:"p99_us"`
	N   int     `json:"n"`
}

// recorder collects latencies per RPC name; a nil recorder discards them (warm-up).
type recorder map[string][]time.Duration

func (r recorder) time(rpc string, fn func() error) error {
	start := time.Now()
	err := fn()
	if err != nil {
		return fmt.Errorf("%s: %w", rpc, err)
	}
	if r != nil {
		r[rpc] = append(r[rpc], time.Since(start))
	}
	return nil
}

func main() {
	address := flag.String("address", "", "snapshotter gRPC unix socket")
	n := flag.Int("n", 500, "layers to create (each one Prepare, Mounts, Commit, Stat, View, List, 2× Remove)")
	depth := flag.Int("depth", 10, "layers per chain before starting a new one")
	warmup := flag.Int("warmup", 20, "unrecorded layers first, so JIT and caches warm up in both daemons alike")
	ns := flag.String("namespace", "rpcbench", "containerd namespace sent with each request")
	flag.Parse()
	if *address == "" || *n < 1 || *depth < 1 {
		fmt.Fprintln(os.Stderr, "usage: rpcbench --address SOCK [--n 500] [--depth 10] [--warmup 20]")
		os.Exit(2)
	}
	if err := run(*address, *ns, *n, *depth, *warmup); err != nil {
		fmt.Fprintf(os.Stderr, "rpcbench: %v\n", err)
		os.Exit(1)
	}
}

func run(address, ns string, n, depth, warmup int) error {
	ctx := namespaces.WithNamespace(context.Background(), ns)
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, err := grpc.DialContext(dctx, dialer.DialAddress(address),
		grpc.WithInsecure(), grpc.WithBlock(), grpc.WithContextDialer(dialer.ContextDialer))
	if err != nil {
		return fmt.Errorf("dial %s: %w", address, err)
	}
	defer conn.Close()
	sn := proxy.NewSnapshotter(snapshotsapi.NewSnapshotsClient(conn), "bench")

	// A per-run prefix keeps repeated runs against one daemon from colliding.
	prefix := fmt.Sprintf("rpcbench-%d", time.Now().UnixNano())
	if warmup > 0 {
		if err := workload(ctx, sn, prefix+"-warm", warmup, depth, nil); err != nil {
			return err
		}
	}
	rec := recorder{}
	if err := workload(ctx, sn, prefix, n, depth, rec); err != nil {
		return err
	}
	out := map[string]stats{}
	for rpc, ds := range rec {
		out[rpc] = summarize(ds)
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

// workload creates n committed layers in chains of depth, then removes them
// all (children first, as containerd's GC does), leaving the daemon as it was.
func workload(ctx context.Context, sn snapshots.Snapshotter, prefix string, n, depth int, rec recorder) error {
	// Labels as containerd's unpacker sets them; they must be stored and copied.
	labels := snapshots.WithLabels(map[string]string{"containerd.io/gc.root": prefix})
	var committed []string
	parent := ""
	for i := 0; i < n; i++ {
		if i%depth == 0 {
			parent = ""
		}
		active := fmt.Sprintf("%s-active-%d", prefix, i)
		name := fmt.Sprintf("%s-layer-%d", prefix, i)
		view := fmt.Sprintf("%s-view-%d", prefix, i)
		steps := []struct {
			rpc string
			fn  func() error
		}{
			{"Prepare", func() error { _, err := sn.Prepare(ctx, active, parent, labels); return err }},
			{"Mounts", func() error { _, err := sn.Mounts(ctx, active); return err }},
			{"Commit", func() error { return sn.Commit(ctx, name, active, labels) }},
			{"Stat", func() error { _, err := sn.Stat(ctx, name); return err }},
			{"View", func() error { _, err := sn.View(ctx, view, name); return err }},
			{"List", func() error { return sn.Walk(ctx, func(context.Context, snapshots.Info) error { return nil }) }},
			{"Remove", func() error { return sn.Remove(ctx, view) }},
		}
		for _, s := range steps {
			if err := rec.time(s.rpc, s.fn); err != nil {
				return err
			}
		}
		committed = append(committed, name)
		parent = name
	}
	for i := len(committed) - 1; i >= 0; i-- {
		if err := rec.time("Remove", func() error { return sn.Remove(ctx, committed[i]) }); err != nil {
			return err
		}
	}
	return nil
}

// summarize uses nearest-rank percentiles, so every reported value is a real sample.
func summarize(ds []time.Duration) stats {
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	rank := func(p float64) float64 {
		i := int(math.Ceil(p*float64(len(ds)))) - 1
		if i < 0 {
			i = 0
		}
		return math.Round(float64(ds[i].Nanoseconds())/100) / 10 // µs, one decimal
	}
	return stats{P50: rank(0.50), P99: rank(0.99), N: len(ds)}
}

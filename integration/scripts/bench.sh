#!/usr/bin/env bash
# `make bench`: per-RPC latency and conformance time vs overlayfs, clip index build/size/lookups,
# FUSE read throughput vs native, reads in a container started after its layers completed vs native,
# cold start over a shaped 100 Mbit/s link vs an overlayfs full pull, `clip-snapshotter pull` latency
# per phase on a cold node, daemon RSS, and the ML-sized image (import + 1 GiB weights read;
# overlayfs, stargz, SOCI, clip cold /
# ContentCache-warm / disk-warm; pull phases). Writes bench-results/results.json, results.md and chart.svg.
# --quick (or `make bench-quick`): fewer iterations, busybox image, 3 runs, 128 MiB weights, 1 ML run.
# The ML image (and its eStargz copy) is built once per machine into /var/cache/clip-snapshotter/bench-images.
set -euo pipefail
cd "$(dirname "$0")/../.."
[ "$(id -u)" -eq 0 ] || { echo "bench: must run as root (mounts, network namespaces, containers)" >&2; exit 1; }
for tool in containerd ctr runc docker-registry redis-server redis-cli skopeo ip tc node; do
  command -v "$tool" >/dev/null || { echo "bench: '$tool' not found; run 'make deps'" >&2; exit 1; }
done
for bin in rpcbench overlayref conformance.test; do
  [ -x ".work/bin/$bin" ] || { echo "bench: .work/bin/$bin is missing; run 'make go-tools'" >&2; exit 1; }
done
[ -f build/integration/bench/bench.js ] || { echo "bench: build/ is missing; run 'make build'" >&2; exit 1; }
# A bare tsc rewrites the compiled pull command but not its bundle, and a pull then loads module by
# module (≈ 90 ms more in every pull timing). The same rule as the command's own (pull-bundle.ts):
# a bundle older than the compiled command is stale. Bundle it again here rather than measure that.
bundle=build/snapshotter/src/cli/pull-command.bundle.cjs
compiled=build/snapshotter/src/cli/pull-command.js
if [ ! -f "$bundle" ] || [ "$bundle" -ot "$compiled" ]; then
  echo "bench: the pull bundle is missing or older than $compiled; bundling it (make build does this)" >&2
  node build/snapshotter/src/cli/bundle-pull-command.js
fi
exec node build/integration/bench/bench.js "$@"

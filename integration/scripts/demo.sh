#!/usr/bin/env bash
# `make demo`: a private stack on loopback (registry, Redis, Jaeger or an OTLP receiver, two containerd nodes
# each with a clip daemon), a Debian + python3 image built and pushed, pulled and run on node A
# then node B, and a summary. Ctrl-C tears everything down.
# DEMO_QUICK=1 (or --quick) uses a busybox image instead of debootstrapping Debian.
set -euo pipefail
cd "$(dirname "$0")/../.."

if [ "$(id -u)" -ne 0 ]; then
  echo "demo: must run as root (it mounts, runs containerd and containers)" >&2
  exit 1
fi
for tool in containerd ctr runc docker-registry redis-server skopeo debootstrap node; do
  command -v "$tool" >/dev/null || { echo "demo: '$tool' not found; run 'make deps'" >&2; exit 1; }
done
[ -e /dev/fuse ] || { echo "demo: /dev/fuse is missing" >&2; exit 1; }
[ -f build/integration/demo/demo.js ] || { echo "demo: build/ is missing; run 'make build'" >&2; exit 1; }

args=()
if [ "${DEMO_QUICK:-0}" = "1" ]; then args+=(--quick); fi
args+=("$@")

cat <<MSG
clip-snapshotter demo
  - starts docker-registry, redis-server, Jaeger (built by make deps; else an OTLP receiver) and two private containerd instances
    ("node-a", "node-b"), each with its own clip-snapshotter, all on 127.0.0.1 under /tmp/clip-demo-*
  - $( [ "${DEMO_QUICK:-0}" = "1" ] && echo "builds a busybox image" || echo "builds Debian bookworm minbase + python3 with debootstrap (cached in .work/images by week)" ) and pushes it
  - pulls it with 'clip-snapshotter pull' and runs it with 'ctr run --snapshotter clip' on node A, then on node B
  - prints time to first output, registry bytes and 'clip-snapshotter status' per node, and the
    Jaeger URL with one start trace per node; logs and traces are kept in .work/demo/
MSG
# exec: Ctrl-C reaches node directly, which tears the stack down before exiting.
exec node build/integration/demo/demo.js "${args[@]}"

#!/usr/bin/env bash
# containerd 1.6's snapshotter conformance suite (snapshots/testsuite) through its proxy client,
# against a fresh clip-snapshotter daemon per test. Output: go test -v lines.
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=.work/bin/conformance.test
[ -x "$bin" ] || { echo "missing $bin: run 'make go-tools'" >&2; exit 1; }
tmp=$(mktemp -d /tmp/clip-conformance.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
# The suite never mounts a lazy layer, and a FUSE server the daemon starts with itself would hold
# the stderr pipe the suite waits on (and outlive each test's daemon): started at a first mount only.
printf '[fuse_server]\nstart = "first_mount"\n' > "$tmp/clip.toml"
export CLIP_SNAPSHOTTER_CMD="${CLIP_SNAPSHOTTER_CMD:-node $PWD/snapshotter/bin/clip-snapshotter serve --log-level warn --config $tmp/clip.toml}"
cd "$tmp"
"$OLDPWD/$bin" -test.root -test.v -test.timeout 20m "$@"

#!/usr/bin/env bash
# containerd 2.x's snapshotter conformance suite (core/snapshots/testsuite) through its proxy
# client, against a fresh clip-snapshotter daemon per test, for one containerd version from
# integration/go-modules.env. Output: go test -v lines.
# Usage: run-conformance2.sh VERSION [go test flags...]
set -euo pipefail
cd "$(dirname "$0")/../.."
version=${1:?usage: run-conformance2.sh VERSION (a CONTAINERD2_VERSIONS entry of integration/go-modules.env)}
shift
bin=.work/bin/conformance2-$version.test
[ -x "$bin" ] || { echo "missing $bin: run 'make go-tools' (integration/scripts/build-go-modules.sh)" >&2; exit 1; }
tmp=$(mktemp -d /tmp/clip-conformance2.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
# The suite never mounts a lazy layer, and a FUSE server the daemon starts with itself would hold
# the stderr pipe the suite waits on (and outlive each test's daemon): started at a first mount only.
printf '[fuse_server]\nstart = "first_mount"\n' > "$tmp/clip.toml"
export CLIP_SNAPSHOTTER_CMD="${CLIP_SNAPSHOTTER_CMD:-node $PWD/snapshotter/bin/clip-snapshotter serve --log-level warn --config $tmp/clip.toml}"
cd "$tmp"
"$OLDPWD/$bin" -test.root -test.v -test.timeout 20m "$@"

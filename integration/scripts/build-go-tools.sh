#!/usr/bin/env bash
# Builds the Go side of the test and benchmark harness into .work/bin/, in GOPATH mode from
# Debian's Go packages (no module downloads: this machine has no Go proxy):
#   conformance.test  containerd 1.6's snapshots/testsuite against CLIP_SNAPSHOTTER_CMD
#   overlayref        containerd's overlayfs snapshotter served over gRPC (the reference)
#   rpcbench          per-RPC latency client
#   pullclient        containerd Go client Pull+unpack (the nerdctl path)
#   ctr-remote        stargz-snapshotter's client (rpull with stargz-style labels, eStargz convert)
#   stargzref         stargz-snapshotter's remote snapshotter served over gRPC (the lazy-pull peer)
# Idempotent: an output newer than its sources and the Debian packages it builds from is kept.
# Then (unless --no-modules or TOOLs are named) build-go-modules.sh builds containerd 2.x, crictl,
# nerdctl and the containerd 2 conformance harness from Go modules (cached per machine).
# Usage: build-go-tools.sh [--force] [--no-modules] [TOOL...]
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
cd "$repo"

force=0 modules=1
while [ $# -gt 0 ]; do
  case "$1" in
    --force) force=1; shift ;;
    --no-modules) modules=0; shift ;;
    *) break ;;
  esac
done

# Every Debian package the tools are built from; checked up front so a missing one is named.
packages=(golang-go golang-github-containerd-containerd-dev golang-github-containerd-stargz-snapshotter-dev
  golang-github-gogo-protobuf-dev golang-google-grpc-dev golang-github-moby-sys-dev
  golang-github-hashicorp-go-retryablehttp-dev golang-github-sirupsen-logrus-dev)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "build-go-tools: missing Debian package(s): ${missing[*]}" >&2
  echo "build-go-tools: install them with: apt-get install -y ${missing[*]}  (or: make deps)" >&2
  exit 1
fi
command -v go >/dev/null || { echo "build-go-tools: 'go' not on PATH although golang-go is installed" >&2; exit 1; }

export GO111MODULE=off GOFLAGS= GOPATH="$repo/.gopath:/usr/share/gocode"
# A build cache inside .work keeps CI machines without HOME working and `make clean` thorough.
export GOCACHE="${GOCACHE:-$repo/.work/go-build-cache}"
mkdir -p .work/bin .gopath

# The dpkg file lists change whenever a package is installed or upgraded.
debian_inputs=()
for p in "${packages[@]}"; do
  for f in /var/lib/dpkg/info/"$p".list /var/lib/dpkg/info/"$p":*.list; do
    [ -e "$f" ] && debian_inputs+=("$f")
  done
done

# up_to_date OUT INPUT...: OUT exists and no input (file, or file under a directory) is newer.
up_to_date() {
  local out=$1; shift
  [ "$force" -eq 0 ] && [ -e "$out" ] || return 1
  [ -z "$(find "$@" "$0" -newer "$out" -print -quit 2>/dev/null)" ]
}

# build NAME test|bin PACKAGE SOURCE...: every SOURCE (file or directory) is an input of NAME.
build() {
  local name=$1 kind=$2 pkg=$3
  shift 3
  local out=".work/bin/$name"
  if up_to_date "$out" "$@" "${debian_inputs[@]}"; then
    echo "up to date: $out"
    return
  fi
  local start=$SECONDS
  if [ "$kind" = test ]; then
    go test -c -o "$out" "$pkg"
  else
    go build -o "$out" "$pkg"
  fi
  echo "built: $out ($((SECONDS - start)) s)"
}

want() { [ ${#selected[@]} -eq 0 ] || [[ " ${selected[*]} " == *" $1 "* ]]; }
selected=("$@")
stargz=/usr/share/gocode/src/github.com/containerd/stargz-snapshotter/cmd/ctr-remote
want conformance.test && build conformance.test test ./integration/go/conformance integration/go/conformance integration/go/snapshotterd
want overlayref && build overlayref bin ./integration/go/overlayref integration/go/overlayref integration/go/proxyserve
want rpcbench && build rpcbench bin ./integration/go/rpcbench integration/go/rpcbench
want pullclient && build pullclient bin ./integration/go/pullclient integration/go/pullclient
want stargzref && build stargzref bin ./integration/go/stargzref integration/go/stargzref integration/go/proxyserve integration/go/stargzpeer
want ctr-remote && build ctr-remote bin github.com/containerd/stargz-snapshotter/cmd/ctr-remote "$stargz"
if [ "$modules" -eq 1 ] && [ ${#selected[@]} -eq 0 ]; then
  bash integration/scripts/build-go-modules.sh $([ "$force" -eq 1 ] && echo --force)
fi
exit 0

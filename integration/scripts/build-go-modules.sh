#!/usr/bin/env bash
# Builds the real components the tests run from Go modules at the versions pinned in
# integration/go-modules.env, once per machine, into a cache outside the repository
# (CI runs on a fresh clone of this same machine):
#   $CLIP_GO_CACHE/<module>@<version>/bin/<program>     (default CLIP_GO_CACHE=/var/cache/clip-snapshotter/go)
#     github.com/containerd/containerd/v2@V: containerd, ctr, containerd-shim-runc-v2   (each CONTAINERD2_VERSIONS)
#     sigs.k8s.io/cri-tools@V: crictl
#   $CLIP_GO_CACHE/clip-<name>/<containerd version>-<source hash>/, per containerd version, copied to
#   .work/bin/<name>-<containerd version>[.test]:
#     conformance2.test  containerd 2's core/snapshots/testsuite harness (integration/go/conformance2)
#     transferpull       nerdctl >= 2.3's transfer-service pull (integration/go/transferpull); nerdctl
#                        itself does not build from the proxy (see integration/go-modules.env)
#   $CLIP_GO_CACHE/clip-<name>/<module version>-<source hash>/<name>, copied to .work/bin/<name>:
#     stargzmod          the stargz-snapshotter release's snapshotter over gRPC (integration/go/stargzmod)
#     socimod            SOCI's snapshotter, index conversion and lazy pull (integration/go/socimod)
# A program is rebuilt only when its stamp (go version, tags, flags) differs. Concurrent runs
# (several worktrees on one machine) serialise per program on a lock file.
# A failed build names the module and version and quotes the end of the build log.
# Usage: build-go-modules.sh [--force] [--print-versions]
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
cd "$repo"

force=0 print=0
for a in "$@"; do
  case "$a" in
    --force) force=1 ;;
    --print-versions) print=1 ;;
    *) echo "build-go-modules: unknown argument $a" >&2; exit 2 ;;
  esac
done

source "$repo/integration/scripts/go-pins.sh"
read_pins build-go-modules GO_MODULE_TOOLCHAIN CONTAINERD2_VERSIONS CRI_TOOLS_VERSION STARGZ_MODULE STARGZ_VERSION SOCI_MODULE SOCI_VERSION
go=${pin[GO_MODULE_TOOLCHAIN]}
[ -x "$go" ] || { echo "build-go-modules: Go toolchain $go not found (integration/go-modules.env GO_MODULE_TOOLCHAIN)" >&2; exit 1; }

cache=${CLIP_GO_CACHE:-/var/cache/clip-snapshotter/go}
mkdir -p "$cache"
export GOMODCACHE="$cache/mod" GOCACHE="$cache/gocache" GOFLAGS= GO111MODULE=on GOTOOLCHAIN=local
export CGO_ENABLED=1
gover=$("$go" env GOVERSION)

containerd_mod=github.com/containerd/containerd/v2
# No btrfs headers here; devmapper/zfs are not used by the tests and need host tools.
containerd_tags="no_btrfs no_devmapper no_zfs urfave_cli_no_docs"

# prog_path MODULE VERSION PROGRAM: where the cache keeps PROGRAM built from MODULE@VERSION.
prog_path() { echo "$cache/$1@$2/bin/$3"; }

print_versions() {
  echo "Go module components (integration/go-modules.env; cache $cache):"
  local v
  for v in ${pin[CONTAINERD2_VERSIONS]}; do
    echo "  containerd $v: $("$(prog_path "$containerd_mod" "$v" containerd)" --version 2>&1 | head -1)"
    echo "  ctr $v: $("$(prog_path "$containerd_mod" "$v" ctr)" --version 2>&1 | head -1)"
  done
  echo "  crictl: $("$(prog_path sigs.k8s.io/cri-tools "${pin[CRI_TOOLS_VERSION]}" crictl)" --version 2>&1 | head -1)"
  echo "  containerd 1.6 (Debian): $(containerd --version 2>&1 | head -1)"
}

failures=()

# cached_build LOCK OUT STAMP WANT LOG WHAT CMD...: runs CMD (which makes OUT) holding LOCK, unless
# OUT exists and STAMP holds WANT (STAMP "-": OUT's path already names everything it depends on).
# A failure names WHAT, quotes the end of LOG and is collected in `failures`.
cached_build() {
  local lock=$1 out=$2 stamp=$3 want=$4 log=$5 what=$6
  shift 6
  (
    flock 9
    if [ "$force" -eq 0 ] && [ -x "$out" ] && { [ "$stamp" = - ] || [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; }; then
      echo "up to date: $out"
      exit 0
    fi
    local start=$SECONDS
    [ "$stamp" = - ] || rm -f "$stamp"
    if "$@" >"$log" 2>&1; then
      [ "$stamp" = - ] || echo "$want" >"$stamp"
      echo "built: $out ($((SECONDS - start)) s)"
    else
      echo "build-go-modules: FAILED to build $what (log $log):" >&2
      tail -40 "$log" >&2
      exit 1
    fi
  ) 9>"$lock" || { failures+=("$what"); return 1; }
}

# go_install MODULE VERSION PACKAGE TAGS LDFLAGS: `go install PACKAGE@VERSION` into the cache.
go_install() {
  local module=$1 version=$2 pkg=$3 tags=$4 ldflags=$5
  local dir="$cache/$module@$version" name=${pkg##*/}
  mkdir -p "$dir/bin"
  cached_build "$dir/.lock-$name" "$dir/bin/$name" "$dir/bin/.$name.stamp" "$gover|$pkg@$version|$tags|$ldflags" \
    "$dir/build-$name.log" "$pkg from module $module $version" \
    env GOBIN="$dir/bin" "$go" install -trimpath -tags "$tags" -ldflags "$ldflags" "$pkg@$version" || true
}

# source_hash SRC [LOCAL...] BUILDFN: the cache key of a module build: the Go sources and go.mod
# of SRC and of each integration/go/LOCAL it requires, and the build function's text.
source_hash() {
  local src=$1
  shift
  local fn=${!#} d
  local dirs=("$src")
  for d in "${@:1:$#-1}"; do dirs+=("integration/go/$d"); done
  { for d in "${dirs[@]}"; do cat "$d"/*.go "$d"/go.mod; done; declare -f "$fn"; } | sha256sum | cut -c1-16
}

# harness_build SRC KIND VERSION DIR OUT: the build of one module harness (see module_harness).
harness_build() {
  local src=$1 kind=$2 version=$3 dir=$4 out=$5
  cp "$src/go.mod" "$dir/go.mod"
  rm -f "$dir/go.sum"
  local build=(build -trimpath -modfile="$dir/go.mod" -tags "$containerd_tags" -o "$out.tmp" .)
  [ "$kind" = test ] && build=(test -c -trimpath -modfile="$dir/go.mod" -tags "$containerd_tags" -o "$out.tmp" .)
  (cd "$src" && "$go" mod edit -modfile="$dir/go.mod" -require="$containerd_mod@$version" &&
    "$go" mod tidy -modfile="$dir/go.mod" &&
    got=$("$go" list -modfile="$dir/go.mod" -m -f '{{.Version}}' "$containerd_mod") &&
    { [ "$got" = "$version" ] || { echo "tidy selected $containerd_mod $got, not $version"; false; }; } &&
    "$go" "${build[@]}") && mv "$out.tmp" "$out"
}

# module_harness NAME test|bin VERSION [LOCAL...]: integration/go/NAME built against
# containerd/v2@VERSION (conformance2: containerd 2's snapshotter testsuite; transferpull: nerdctl
# >= 2.3's pull). The committed go.mod requires only the local packages integration/go/LOCAL
# (replace directives); each version gets a generated one (-modfile), tidied from that version's
# own requirements, checked to have selected exactly VERSION. The result is cached by the hash of
# its and the local packages' sources and copied to .work/bin/NAME-VERSION[.test].
module_harness() {
  local name=$1 kind=$2 version=$3 src=integration/go/$1
  shift 3
  local hash
  hash=$(source_hash "$src" "$@" harness_build)
  local dir="$cache/clip-$name/$version-$hash"
  local suffix="" ; [ "$kind" = test ] && suffix=.test
  local out="$dir/$name$suffix"
  mkdir -p "$dir" .work/bin
  cached_build "$dir/.lock" "$out" - "" "$dir/build.log" "integration/go/$name against module $containerd_mod $version" \
    harness_build "$src" "$kind" "$version" "$dir" "$out" &&
    install -m 0755 "$out" ".work/bin/$name-$version$suffix" || true
}

# program_build SRC MODULE VERSION DIR OUT: integration/go/NAME built against MODULE@VERSION.
program_build() {
  local src=$1 module=$2 version=$3 dir=$4 out=$5
  cp "$src/go.mod" "$dir/go.mod"
  rm -f "$dir/go.sum"
  (cd "$src" && "$go" mod edit -modfile="$dir/go.mod" -require="$module@$version" &&
    "$go" mod tidy -modfile="$dir/go.mod" &&
    got=$("$go" list -modfile="$dir/go.mod" -m -f '{{.Version}}' "$module") &&
    { [ "$got" = "$version" ] || { echo "tidy selected $module $got, not $version"; false; }; } &&
    "$go" build -trimpath -modfile="$dir/go.mod" -tags "$containerd_tags" -o "$out.tmp" .) && mv "$out.tmp" "$out"
}

# module_program NAME MODULE VERSION [LOCAL...]: integration/go/NAME (a main whose committed go.mod
# requires only the local packages integration/go/LOCAL, through replace directives) built against
# MODULE@VERSION from a generated, tidied go.mod, cached by the hash of its and the local packages'
# sources and copied to .work/bin/NAME.
module_program() {
  local name=$1 module=$2 version=$3 src=integration/go/$1
  shift 3
  local hash
  hash=$(source_hash "$src" "$@" program_build)
  local dir="$cache/clip-$name/$version-$hash"
  mkdir -p "$dir" .work/bin
  cached_build "$dir/.lock" "$dir/$name" - "" "$dir/build.log" "integration/go/$name against module $module $version" \
    program_build "$src" "$module" "$version" "$dir" "$dir/$name" &&
    install -m 0755 "$dir/$name" ".work/bin/$name" || true
}

if [ "$print" -eq 1 ]; then
  print_versions
  exit 0
fi

for v in ${pin[CONTAINERD2_VERSIONS]}; do
  x="-s -w -X $containerd_mod/version.Version=$v -X $containerd_mod/version.Package=$containerd_mod"
  go_install "$containerd_mod" "$v" "$containerd_mod/cmd/containerd" "$containerd_tags" "$x"
  go_install "$containerd_mod" "$v" "$containerd_mod/cmd/ctr" "$containerd_tags" "$x"
  go_install "$containerd_mod" "$v" "$containerd_mod/cmd/containerd-shim-runc-v2" "$containerd_tags no_grpc" "$x"
done
v=${pin[CRI_TOOLS_VERSION]}
go_install sigs.k8s.io/cri-tools "$v" sigs.k8s.io/cri-tools/cmd/crictl "" "-s -w -X sigs.k8s.io/cri-tools/pkg/version.Version=$v"
for v in ${pin[CONTAINERD2_VERSIONS]}; do
  module_harness conformance2 test "$v" snapshotterd
  module_harness transferpull bin "$v"
done
module_program stargzmod "${pin[STARGZ_MODULE]}" "${pin[STARGZ_VERSION]}" proxyserve stargzpeer
module_program socimod "${pin[SOCI_MODULE]}" "${pin[SOCI_VERSION]}" proxyserve

if [ ${#failures[@]} -gt 0 ]; then
  echo "build-go-modules: failed: ${failures[*]}" >&2
  exit 1
fi
exit 0

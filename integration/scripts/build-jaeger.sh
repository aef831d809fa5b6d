#!/usr/bin/env bash
# Builds Jaeger (github.com/jaegertracing/jaeger/cmd/jaeger, all-in-one) at the version pinned in
# integration/go-modules.env, once per machine, into a cache outside the repository:
#   $CLIP_GO_CACHE/<module>@<version>/bin/jaeger   (default CLIP_GO_CACHE=/var/cache/clip-snapshotter/go)
# Jaeger's go.mod has replace directives, so `go install pkg@version` refuses it: the build runs in
# a throw-away module beside the binary (`go get -tool`, then `go build`). Concurrent runs
# (several worktrees on one machine) serialise on a lock file; a finished build is kept while its
# stamp (go version, package@version) matches. A failure names the module and version.
# Usage: build-jaeger.sh [--force] [--print-path]
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)

force=0 print=0
for a in "$@"; do
  case "$a" in
    --force) force=1 ;;
    --print-path) print=1 ;;
    *) echo "build-jaeger: unknown argument $a" >&2; exit 2 ;;
  esac
done

source "$repo/integration/scripts/go-pins.sh"
read_pins build-jaeger GO_MODULE_TOOLCHAIN JAEGER_MODULE JAEGER_VERSION
module=${pin[JAEGER_MODULE]} version=${pin[JAEGER_VERSION]} go=${pin[GO_MODULE_TOOLCHAIN]}
cache=${CLIP_GO_CACHE:-/var/cache/clip-snapshotter/go}
dir="$cache/$module@$version"
out="$dir/bin/jaeger"
if [ "$print" -eq 1 ]; then echo "$out"; exit 0; fi
[ -x "$go" ] || { echo "build-jaeger: Go toolchain $go not found (integration/go-modules.env GO_MODULE_TOOLCHAIN)" >&2; exit 1; }

pkg="$module/cmd/jaeger"
export GOFLAGS= GO111MODULE=on GOTOOLCHAIN=local
# The machine's shared build cache: other helpers' and CI's Go builds reuse its objects.
export GOCACHE="${GOCACHE:-/root/.cache/go-build}"
want="$("$go" env GOVERSION)|$pkg@$version"
mkdir -p "$dir/bin" "$dir/mod"
(
  flock 9
  if [ "$force" -eq 0 ] && [ -x "$out" ] && [ "$(cat "$dir/bin/.jaeger.stamp" 2>/dev/null)" = "$want" ]; then
    echo "up to date: $out"
    exit 0
  fi
  start=$SECONDS log="$dir/build.log"
  rm -f "$dir/bin/.jaeger.stamp"
  echo "building $pkg@$version into $out (once per machine; about 15 min on 2 cores)"
  if (cd "$dir/mod" && { [ -f go.mod ] || "$go" mod init clip-snapshotter/jaeger-build; } &&
      "$go" get -tool "$pkg@$version" &&
      "$go" build -o "$out.tmp" "$pkg") >"$log" 2>&1; then
    mv "$out.tmp" "$out"
    echo "$want" >"$dir/bin/.jaeger.stamp"
    echo "built: $out ($((SECONDS - start)) s)"
  else
    echo "build-jaeger: FAILED to build $pkg from module $module $version (log $log):" >&2
    tail -30 "$log" >&2
    exit 1
  fi
) 9>"$dir/.lock"

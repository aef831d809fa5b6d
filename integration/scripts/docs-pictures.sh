#!/usr/bin/env bash
# `make docs-pictures`: refresh docs/jaeger-trace.png — a real trace in Jaeger, screenshotted by
# headless Chromium (Debian's `chromium`, installed here if missing). Runs as root (containerd, FUSE).
set -euo pipefail
cd "$(dirname "$0")/../.."
[ "$(id -u)" -eq 0 ] || { echo "docs-pictures: must run as root" >&2; exit 1; }
if ! command -v chromium >/dev/null; then
  echo "docs-pictures: installing Debian's chromium"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium
fi
jaeger=$(bash integration/scripts/build-jaeger.sh --print-path)
[ -x "$jaeger" ] || { echo "docs-pictures: $jaeger missing; run 'make jaeger'" >&2; exit 1; }
exec node build/integration/docs/pictures.js "$@"

#!/usr/bin/env bash
# `make test`: unit tests, containerd's conformance suite, then end-to-end tests. Every stage runs
# even when an earlier one fails; the last line is "N passed, N failed" for CI.
set -uo pipefail
cd "$(dirname "$0")/../.."
mkdir -p .work/test-logs
passed=0 failed=0 skipped=0 status=0

# tap prints "# { total: N, pass: P, fail: F, skip: S, ... }" at the end.
count_tap() {
  local line
  line=$(grep -E '^# \{ total:' "$1" | tail -1)
  [ -n "$line" ] || { failed=$((failed + 1)); echo "no tap summary in $1" >&2; return; }
  passed=$((passed + $(sed -nE 's/.*pass: ([0-9]+).*/\1/p' <<<"$line" | grep . || echo 0)))
  failed=$((failed + $(sed -nE 's/.*fail: ([0-9]+).*/\1/p' <<<"$line" | grep . || echo 0)))
  skipped=$((skipped + $(sed -nE 's/.*skip: ([0-9]+).*/\1/p' <<<"$line" | grep . || echo 0)))
}

stage() {
  echo "=== $1"
}

stage "unit tests"
npx tap --disable-coverage --reporter=tap --timeout=300 'build/snapshotter/test/**/*.test.js' 2>&1 | tee .work/test-logs/unit.tap
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1
count_tap .work/test-logs/unit.tap

stage "go tools"
if bash integration/scripts/build-go-tools.sh > .work/test-logs/go-tools.log 2>&1; then
  stage "conformance suite (containerd 1.6 snapshots/testsuite)"
  bash integration/scripts/run-conformance.sh 2>&1 | tee .work/test-logs/conformance.log
  [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
  p=$(grep -cE '^\s+--- PASS' .work/test-logs/conformance.log)
  f=$(grep -cE '^\s*--- FAIL' .work/test-logs/conformance.log)
  s=$(grep -cE '^\s+--- SKIP' .work/test-logs/conformance.log)
  [ "$p" -gt 0 ] || { f=$((f + 1)); echo "conformance suite ran no test" >&2; }
  passed=$((passed + p)) failed=$((failed + f)) skipped=$((skipped + s))
else
  cat .work/test-logs/go-tools.log
  echo "building the Go test tools failed" >&2
  status=1 failed=$((failed + 1))
fi

stage "integration tests (real containerd, runc, registry)"
# The clip index is also checked against a real Debian root file system (debootstrap, ~1 min).
export CLIP_TEST_DEBOOTSTRAP="${CLIP_TEST_DEBOOTSTRAP:-1}"
npx tap --disable-coverage --reporter=tap --timeout=1200 --jobs=1 'build/integration/**/*.test.js' 2>&1 | tee .work/test-logs/integration.tap
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1
count_tap .work/test-logs/integration.tap

[ "$failed" -eq 0 ] || status=1
echo "${passed} passed, ${failed} failed, ${skipped} skipped"
exit $status

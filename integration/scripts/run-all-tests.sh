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

# count_go_test LOG: add go test -v results (one line per test and subtest).
count_go_test() {
  local p f s
  p=$(grep -cE '^\s+--- PASS' "$1")
  f=$(grep -cE '^\s*--- FAIL' "$1")
  s=$(grep -cE '^\s+--- SKIP' "$1")
  [ "$p" -gt 0 ] || { f=$((f + 1)); echo "$2 ran no test" >&2; }
  passed=$((passed + p)) failed=$((failed + f)) skipped=$((skipped + s))
}

stage "go tools"
if bash integration/scripts/build-go-tools.sh --no-modules > .work/test-logs/go-tools.log 2>&1; then
  stage "conformance suite (containerd 1.6 snapshots/testsuite)"
  bash integration/scripts/run-conformance.sh 2>&1 | tee .work/test-logs/conformance.log
  [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
  count_go_test .work/test-logs/conformance.log "conformance suite (1.6)"
else
  cat .work/test-logs/go-tools.log
  echo "building the Go test tools failed" >&2
  status=1 failed=$((failed + 1))
fi

stage "go modules (containerd 2.x, crictl, the transfer-pull client standing in for nerdctl; pinned in integration/go-modules.env)"
started=$SECONDS
if bash integration/scripts/build-go-modules.sh > .work/test-logs/go-modules.log 2>&1; then
  echo "go modules ready ($((SECONDS - started)) s)"
else
  cat .work/test-logs/go-modules.log
  echo "building the Go module components failed (see above for the module and version)" >&2
  status=1 failed=$((failed + 1))
fi
bash integration/scripts/build-go-modules.sh --print-versions
for v in $(sed -nE 's/^CONTAINERD2_VERSIONS=//p' integration/go-modules.env); do
  [ -x ".work/bin/conformance2-$v.test" ] || continue
  stage "conformance suite (containerd $v core/snapshots/testsuite)"
  started=$SECONDS
  bash integration/scripts/run-conformance2.sh "$v" 2>&1 | tee ".work/test-logs/conformance2-$v.log"
  [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
  count_go_test ".work/test-logs/conformance2-$v.log" "conformance suite ($v)"
  echo "conformance $v: $((SECONDS - started)) s"
done

stage "integration tests (real containerd, runc, registry)"
# The clip index is also checked against a real Debian root file system (debootstrap, ~1 min).
export CLIP_TEST_DEBOOTSTRAP="${CLIP_TEST_DEBOOTSTRAP:-1}"
npx tap --disable-coverage --reporter=tap --timeout=1200 --jobs=1 'build/integration/**/*.test.js' 2>&1 | tee .work/test-logs/integration.tap
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1
count_tap .work/test-logs/integration.tap

# CI keeps only the last lines of the output, so the failures are named again right above the count.
summarize_failures() {
  local log
  for log in .work/test-logs/unit.tap .work/test-logs/integration.tap; do
    [ -f "$log" ] || continue
    grep -nE '^[[:space:]]*not ok ' "$log" | grep -vE '# (TODO|SKIP)' | sed -E 's/[[:space:]]+/ /g' | cut -c1-200 | head -8 | sed "s|^|failed in $(basename "$log"): |"
  done
  for log in .work/test-logs/conformance*.log; do
    [ -f "$log" ] || continue
    grep -E -- '--- FAIL' "$log" | sed -E 's/[[:space:]]+/ /g' | head -4 | sed "s|^|failed in $(basename "$log"): |"
  done
}
if [ "$failed" -ne 0 ]; then
  echo "=== failures (full logs in .work/test-logs/)"
  summarize_failures
fi

[ "$failed" -eq 0 ] || status=1
echo "${passed} passed, ${failed} failed, ${skipped} skipped"
exit $status

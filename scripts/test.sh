#!/usr/bin/env bash
# Sets everything up and runs the whole test suite: unit, integration (real QEMU
# under TCG or KVM) and end-to-end (real Chromium). Ends with "N passed, N failed".
#   scripts/test.sh                  everything
#   scripts/test.sh tests/unit/x.test.ts …   only these files (setup still runs)
# Stopped early (Ctrl-C, a signal), it still stops every QEMU, agent, web server and
# browser the tests started, and unmounts what they mounted.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh --test
echo "test: type-checking"
npx tsc --noEmit
echo "test: building the web app"
node scripts/public-assets.mjs
NODE_ENV=production npx next build >/dev/null

if [ $# -gt 0 ]; then files=("$@"); else files=(tests/unit/*.test.ts tests/integration/*.test.ts tests/hostile/*.test.ts tests/e2e/*.test.ts); fi
mkdir -p .cache
tap=.cache/test-results.tap
rm -f "$tap"

# Everything the tests start keeps its files under this folder (their data folders,
# sockets, browser profiles, mounts), so whatever outlives an interrupted run can be
# found by it and stopped.
run_dir=$(mktemp -d /tmp/ghtest.XXXXXX)
# Searchable (not listable) by others: guests' QEMUs run as users of their own and make
# their sockets in run folders below it.
chmod 0711 "$run_dir"
export TMPDIR="$run_dir"
runner=""
cleanup() {
  local status=$?
  trap - EXIT INT TERM
  if [ -n "$runner" ] && kill -0 "$runner" 2>/dev/null; then
    echo "test: stopping the tests" >&2
    kill -TERM -- "-$runner" 2>/dev/null || true
    for _ in $(seq 1 30); do kill -0 "$runner" 2>/dev/null || break; sleep 0.1; done
    kill -KILL -- "-$runner" 2>/dev/null || true
  fi
  # QEMU runs in process groups of its own, and browsers too: found by the folder they name.
  local left=()
  for cmdline in /proc/[0-9]*/cmdline; do
    if grep -qF "$run_dir" "$cmdline" 2>/dev/null; then
      pid=${cmdline#/proc/}; pid=${pid%/cmdline}
      name=$(tr '\0' ' ' <"$cmdline" 2>/dev/null | cut -c1-160)
      kill -KILL "$pid" 2>/dev/null && left+=("$pid: $name")
    fi
  done
  if [ ${#left[@]} -gt 0 ]; then
    echo "test: stopped ${#left[@]} process(es) the tests left running:" >&2
    printf 'test:   %s\n' "${left[@]}" >&2
  fi
  awk -v dir="$run_dir" 'index($2, dir) == 1 { print $2 }' /proc/mounts | sort -r | while read -r mount; do umount -l "$mount" || true; done
  rm -rf "$run_dir"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Which accelerator this run's guests get, and why: probed once (server/agent/kvm-probe.ts)
# and kept where every agent of the run finds it. A verdict the probe does not keep (a
# time-out, no /dev/kvm) is handed to the agents instead, so none probes again.
export GUESTHOUSE_ACCEL_CACHE="$PWD/.cache/accelerator.json"
accelerator=$(GUESTHOUSE_DATA_DIR="$run_dir/probe" npx tsx server/agent/main.ts --accelerator)
echo "test: $accelerator"
if [ "${GUESTHOUSE_ACCEL:-auto}" = auto ] && [ ! -s "$GUESTHOUSE_ACCEL_CACHE" ]; then
  GUESTHOUSE_ACCEL=$(sed -n 's/^accelerator: \([a-z]*\) .*/\1/p' <<<"$accelerator")
  export GUESTHOUSE_ACCEL
fi

status=0
# One file at a time: the integration and browser tests boot real guests on 2 cores.
# In a session of its own, so that stopping it stops every process it started.
setsid node --import tsx --test --test-concurrency=1 \
  --test-reporter=spec --test-reporter-destination=stdout \
  --test-reporter=tap --test-reporter-destination="$tap" \
  "${files[@]}" &
runner=$!
wait "$runner" || status=$?
runner=""

# A runner that died before writing its results leaves no file: count nothing, fail below.
passed=$(grep -sE '^# pass ' "$tap" | awk '{print $3}' || true)
failed=$(grep -sE '^# fail ' "$tap" | awk '{print $3}' || true)
skipped=$(grep -sE '^# skipped ' "$tap" | awk '{print $3}' || true)
[ -s "$tap" ] || { echo "test: the test runner wrote no results" >&2; [ "$status" != 0 ] || status=1; }
echo "test: $accelerator"
echo "${passed:-0} passed, ${failed:-0} failed, ${skipped:-0} skipped"
exit $status

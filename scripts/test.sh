#!/usr/bin/env bash
# Sets everything up and runs the whole test suite: unit, integration (real QEMU
# under TCG or KVM) and end-to-end (real Chromium). Ends with "N passed, N failed".
#   scripts/test.sh                  everything
#   scripts/test.sh tests/unit/x.test.ts …   only these files (setup still runs)
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh --test
echo "test: type-checking"
npx tsc --noEmit
echo "test: building the web app"
NODE_ENV=production npx next build >/dev/null

if [ $# -gt 0 ]; then files=("$@"); else files=(tests/unit/*.test.ts tests/integration/*.test.ts tests/e2e/*.test.ts); fi
mkdir -p .cache
tap=.cache/test-results.tap
status=0
# One file at a time: the integration and browser tests boot real guests on 2 cores.
node --import tsx --test --test-concurrency=1 \
  --test-reporter=spec --test-reporter-destination=stdout \
  --test-reporter=tap --test-reporter-destination="$tap" \
  "${files[@]}" || status=$?

passed=$(grep -E '^# pass ' "$tap" | awk '{print $3}')
failed=$(grep -E '^# fail ' "$tap" | awk '{print $3}')
skipped=$(grep -E '^# skipped ' "$tap" | awk '{print $3}')
echo "${passed:-0} passed, ${failed:-0} failed, ${skipped:-0} skipped"
exit $status

#!/usr/bin/env bash
# Reruns the fuzz suite (test/fuzz/) N times, each with a fresh random seed
# (FLEETGATE_FUZZ_SEED), and reports how many runs passed. A failing run prints
# its seed so it can be replayed: FLEETGATE_FUZZ_SEED=<seed> npx mocha dist/test/fuzz/...
# Usage: npm run fuzz:repeat [-- N]   (default 10; DATABASE_URL picks the database as for npm test)
set -uo pipefail
cd "$(dirname "$0")/.."
runs="${1:-${FLEETGATE_FUZZ_REPEAT:-10}}"
if ! [[ "$runs" =~ ^[1-9][0-9]*$ ]]; then
  echo "usage: scripts/fuzz-repeat.sh [N]  (N: a positive number of runs, got '$runs')" >&2
  exit 2
fi
npm run build >/dev/null || exit 1
passed=0
failed_seeds=()
for i in $(seq 1 "$runs"); do
  seed=$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')
  seed=$((seed % 2147483648))
  echo "== fuzz run $i/$runs, FLEETGATE_FUZZ_SEED=$seed"
  if FLEETGATE_FUZZ_SEED="$seed" npx mocha dist/test/fuzz/*.test.js; then
    passed=$((passed + 1))
  else
    failed_seeds+=("$seed")
  fi
done
echo "== fuzz:repeat: $passed of $runs runs passed"
if [ ${#failed_seeds[@]} -gt 0 ]; then
  echo "== failing seeds (replay with FLEETGATE_FUZZ_SEED=...): ${failed_seeds[*]}"
  exit 1
fi

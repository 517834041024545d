#!/usr/bin/env bash
# Run the WHOLE test suite (every marker: unit, slow, browser, load) with two CPU-bound processes beside it,
# N times in a row, stopping at the first red round. The machines CI and developers share are busy; a test that
# passes only on an idle machine is a flaky test, and a race (a file read while another process writes it) shows
# up here rather than in CI.
# Usage: scripts/under_load.sh [ROUNDS] [extra pytest args...]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds="${1:-3}"
shift || true
hogs=()
cleanup() { for pid in "${hogs[@]}"; do kill "$pid" 2>/dev/null || true; done; }
trap cleanup EXIT
for _ in 1 2; do
  python3 -c 'while True: pass' &
  hogs+=("$!")
done
for round in $(seq 1 "$rounds"); do
  echo "== round $round of $rounds, with ${#hogs[@]} CPU hogs =="
  .venv/bin/pytest -p no:cacheprovider -q "$@"
done

#!/usr/bin/env bash
# Run the browser (e2e) and load tests with two CPU-bound processes beside them, N times in a row.
# The machines CI and developers share are busy; a test that passes only on an idle machine is a flaky test.
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
  .venv/bin/pytest -m "e2e or slow" -p no:cacheprovider -q tests/e2e tests/security/test_load.py "$@"
done

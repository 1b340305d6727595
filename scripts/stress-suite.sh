#!/usr/bin/env bash
# Run the default test run (`pytest`, without the long proofs behind markers) several times in a row on
# 2 xdist workers while a CPU-bound process competes for the cores, stopping at the first failure: a test
# that depends on how fast the machine is shows up here.
#
#   bash scripts/stress-suite.sh            # 5 rounds
#   ROUNDS=2 bash scripts/stress-suite.sh   # fewer rounds
#   bash scripts/stress-suite.sh tests/test_faults.py   # only these tests (extra pytest arguments)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds="${ROUNDS:-5}"
pytest="${PYTEST:-.venv/bin/pytest}"

python3 -c 'while True: pass' &
hog=$!
trap 'kill "$hog" 2>/dev/null || true; wait "$hog" 2>/dev/null || true' EXIT

for round in $(seq 1 "$rounds"); do
  echo "== round $round/$rounds (CPU hog pid $hog running) =="
  start=$(date +%s)
  if ! "$pytest" -n 2 -q "$@"; then
    echo "round $round failed after $(( $(date +%s) - start ))s: see the output above" >&2
    exit 1
  fi
  echo "round $round passed in $(( $(date +%s) - start ))s"
done
echo "all $rounds rounds passed under CPU load"
